"""Where does ImageWAM lose `reach`? Its chunk ends against its goal readout, along real episodes.

    python tools/diagnose_imagewam.py --checkpoint runs/imagewam_readout/checkpoints/last.ckpt --scenes 50

On `--scenes` unseen reach scenes (seeds from 100000, as `action-images eval`) the plain policy (replan
every 3 steps, as the benchmark) runs; at every plan it also samples `--samples` chunks from the same
prefix pass and prints, binned by how far the end effector is from the named sphere, the distance from
the sphere to: the executed chunk's end, the mean of the sampled ends (what averaging would give), the
end the goal readout chooses among them (`--candidates`), and the point the readout names, triangulated
(`--anchor`). Near the sphere the chunk end should be on it (the demonstrations stop there), so these
distances separate a biased expert (every sample short) from a noisy one (samples around it) and say
whether the readout knows better. Writes `benchmarks/results/imagewam/<results>.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import load_policy  # noqa: E402
from action_images.goal_readout import readout_point  # noqa: E402
from action_images.observation import observation_views, with_gripper_command  # noqa: E402
from action_images.policy import goal_readout_scores  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from tools.benchlib import RESULTS, write_json  # noqa: E402

BINS = [(0.0, 0.06), (0.06, 0.12), (0.12, float("inf"))]  # metres from the sphere when the plan is made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="an ImageWAM .ckpt trained with a goal readout")
    parser.add_argument("--scenes", type=int, default=50, help="unseen reach scenes (default 50)")
    parser.add_argument("--samples", type=int, default=8, help="chunks sampled per plan from one prefix pass (default 8)")
    parser.add_argument("--replan-every", type=int, default=3, help="control steps per plan (default 3)")
    parser.add_argument("--results", default="readout_diagnosis", help="name of the JSON written under benchmarks/results/imagewam")
    args = parser.parse_args()
    policy = load_policy(args.checkpoint, cameras=None, replan_every=args.replan_every)
    generator = torch.Generator().manual_seed(1)
    env = make_env("reach", image_size=128, cameras=tuple(policy.cameras))
    rows = []
    for index in track(range(args.scenes), description="reach scenes"):
        observation, _ = env.reset(seed=100_000 + index)
        policy.reset()
        done = False
        while not done:
            if policy.targets is None or policy.steps_into_plan >= policy.replan_every:
                rows.append(probe(policy, observation, env.task.target_position(env.data), args.samples, generator))
            observation, _, success, truncated, _ = env.step(policy.select_action(observation))
            done = success or truncated
    env.close()
    table = np.array(rows)  # columns: now, executed end, mean end, chosen end, readout point, sample spread
    names = ["executed chunk end", "mean of the samples' ends", "end the readout chooses", "readout point (triangulated)"]
    report = {"checkpoint": str(args.checkpoint), "scenes": args.scenes, "samples": args.samples, "plans": len(table)}
    print(f"{len(table)} plans over {args.scenes} reach scenes; median distance to the named sphere (cm):")
    for low, high in BINS:
        chosen = table[(table[:, 0] >= low) & (table[:, 0] < high)]
        label = f"{100 * low:.0f}-{100 * high:.0f} cm" if np.isfinite(high) else f">{100 * low:.0f} cm"
        if not len(chosen):
            continue
        medians = [float(np.nanmedian(chosen[:, column])) * 100 for column in range(1, 5)]
        spread = float(np.median(chosen[:, 5])) * 100
        print(f"  EE {label} away ({len(chosen)} plans): " + ", ".join(f"{n} {m:.1f}" for n, m in zip(names, medians))
              + f"; samples' spread {spread:.1f}")
        report[label] = {"plans": len(chosen), **{n: m for n, m in zip(names, medians)}, "sample spread": spread}
    write_json(RESULTS / "imagewam" / f"{args.results}.json", report)


@torch.inference_mode()
def probe(policy, observation: dict, sphere: np.ndarray, samples: int, generator: torch.Generator) -> list[float]:
    """One plan's distances to the sphere (m): the EE now, the first sample's end (what the plain policy
    draws, up to its noise), the samples' mean end, the readout's choice among them, the readout point,
    and the samples' spread (RMS distance of the ends from their mean)."""
    views = observation_views(observation, policy.cameras, policy.module.hparams.image_size)
    views.pose = with_gripper_command(views.pose, policy.gripper_command)
    chunks, readout, cameras = policy.sample_chunks(views, samples, generator)  # its own noise: the plain policy's is untouched
    ends = chunks[:, -1, :3]
    chosen = ends[int(goal_readout_scores(readout, ends, cameras).argmax())]
    point, _ = readout_point(readout, cameras)
    target = torch.from_numpy(sphere).float()
    distance = lambda p: float((p - target).norm())  # noqa: E731
    spread = float((ends - ends.mean(0)).norm(dim=-1).pow(2).mean().sqrt())
    return [distance(views.pose[:3]), distance(ends[0]), distance(ends.mean(0)), distance(chosen), distance(point), spread]


if __name__ == "__main__":
    main()
