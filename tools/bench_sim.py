"""Benchmark of the embedded simulator: scripted experts, step cost, calibration.

- Experts: each task's scripted expert on `--episodes` seeds (0, 1, ...): success rate and mean
  episode length (control steps at 10 Hz). Rendering is off unless `--render`.
- Step cost: milliseconds per control step (`env.step`: controller, physics substeps, observation),
  physics only (rendering off, over all expert episodes) and with three cameras at 128² (over
  `--timing-episodes` episodes per task).
- Calibration: for every camera including the wrist camera, over `--calibration-episodes` episodes
  per task, every frame's EE position is projected with the observation's intrinsics and extrinsics
  (`rendering.cameras.Cameras.project`) and must land within 2 px of a gripper pixel of
  `env.segmentation(camera, ee_marker=True)`. The EE point sits between the finger pads, so with the
  fingers open it has no gripper surface of its own; the marker (an 8 mm sphere at the EE, drawn only
  in that mask) stands for it. Frames where the EE projects outside the image, or no gripper pixel is
  visible, are counted apart. `calibration_hit_rate` is the worst camera's rate;
  `calibration_gripper_only_hit_rate_<camera>` is the same test against the hand and finger pixels
  alone, for reference.

Writes the flat JSON `benchmarks/results/sim.json` (it does not touch BENCHMARKS.md).

    python tools/bench_sim.py [--episodes 100] [--render] [--calibration-episodes 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.sim import TASKS, make_env, make_expert  # noqa: E402
from action_images.sim.calibration import Sighting, check_frame  # noqa: E402
from tools.benchlib import write_results  # noqa: E402

CAMERAS = ("front", "left", "right")


def run_episode(env, expert, seed: int, on_frame=None) -> tuple[bool, int, float]:
    """One expert episode: (success, control steps, seconds spent in env.step)."""
    obs, _ = env.reset(seed=seed)
    expert.reset()
    stepping = 0.0
    while True:
        if on_frame is not None:
            on_frame(obs)
        action = expert.act(obs)
        start = time.perf_counter()
        obs, _, terminated, truncated, info = env.step(action)
        stepping += time.perf_counter() - start
        if terminated or truncated:
            if on_frame is not None:
                on_frame(obs)
            return bool(info["success"]), env.steps, stepping


def expert_figures(task: str, episodes: int, render: bool, size: int) -> dict[str, float]:
    env = make_env(task, image_size=size, cameras=CAMERAS, render=render)
    expert = make_expert(env)
    results = [run_episode(env, expert, seed) for seed in range(episodes)]
    env.close()
    steps = sum(r[1] for r in results)
    failures = [seed for seed, r in enumerate(results) if not r[0]]
    if failures:
        print(f"  {task}: failed seeds {failures}")
    kind = "render" if render else "physics"
    return {
        f"expert_success_{task}": sum(r[0] for r in results) / episodes,
        f"episode_length_{task}": steps / episodes,
        f"ms_per_step_{kind}_{task}": 1000 * sum(r[2] for r in results) / steps,
    }


def rendering_ms(task: str, episodes: int, size: int) -> float:
    env = make_env(task, image_size=size, cameras=CAMERAS, render=True)
    expert = make_expert(env)
    results = [run_episode(env, expert, 1000 + seed) for seed in range(episodes)]
    env.close()
    return 1000 * sum(r[2] for r in results) / sum(r[1] for r in results)


def calibration_counts(task: str, episodes: int, size: int) -> dict[str, dict[str, Counter]]:
    """Per mask kind ("marker", "gripper_only") and camera, how many frames fell in each `Sighting`."""
    env = make_env(task, image_size=size, cameras=CAMERAS, wrist_camera=True, render=False)
    expert = make_expert(env)
    counts = {kind: {camera: Counter() for camera in env.camera_names} for kind in ("marker", "gripper_only")}

    def on_frame(obs: dict) -> None:
        for kind, marker in (("marker", True), ("gripper_only", False)):
            for camera, sighting in check_frame(env, obs, ee_marker=marker).items():
                counts[kind][camera][sighting] += 1

    for seed in range(episodes):
        run_episode(env, expert, 2000 + seed, on_frame)
    env.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="expert episodes per task")
    parser.add_argument("--render", action="store_true", help="render three cameras during the expert episodes")
    parser.add_argument("--timing-episodes", type=int, default=5, help="episodes per task timed with rendering")
    parser.add_argument("--calibration-episodes", type=int, default=10, help="episodes per task for calibration")
    parser.add_argument("--size", type=int, default=128, help="image size (square)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the JSON")
    args = parser.parse_args()

    figures: dict[str, float] = {"expert_episodes": float(args.episodes), "image_size": float(args.size)}
    start = time.perf_counter()
    for task in TASKS:
        figures.update(expert_figures(task, args.episodes, args.render, args.size))
        print(f"{task:>10}: success {figures[f'expert_success_{task}']:.2f}, "
              f"{figures[f'episode_length_{task}']:.1f} steps per episode")
    kind = "render" if args.render else "physics"
    figures[f"ms_per_step_{kind}"] = sum(figures[f"ms_per_step_{kind}_{task}"] for task in TASKS) / len(TASKS)
    if not args.render:
        timed = [rendering_ms(task, args.timing_episodes, args.size) for task in TASKS]
        figures["ms_per_step_render"] = sum(timed) / len(timed)
    physics = f"physics only {figures['ms_per_step_physics']:.2f}, " if "ms_per_step_physics" in figures else ""
    print(f"ms per control step: {physics}with 3 cameras at {args.size}² {figures['ms_per_step_render']:.2f}")

    totals = {"marker": {}, "gripper_only": {}}
    for task in TASKS:
        for kind, per_camera in calibration_counts(task, args.calibration_episodes, args.size).items():
            for camera, counter in per_camera.items():
                totals[kind].setdefault(camera, Counter()).update(counter)
    for kind, per_camera in totals.items():
        prefix = "calibration" if kind == "marker" else "calibration_gripper_only"
        for camera, counter in per_camera.items():
            frames = sum(counter.values())
            judged = counter[Sighting.HIT] + counter[Sighting.MISS]
            figures[f"{prefix}_hit_rate_{camera}"] = counter[Sighting.HIT] / max(judged, 1)
            figures[f"{prefix}_outside_{camera}"] = counter[Sighting.OUTSIDE] / max(frames, 1)
            figures[f"{prefix}_occluded_{camera}"] = counter[Sighting.OCCLUDED] / max(frames, 1)
            print(f"calibration ({kind}) {camera:>6}: hit rate {figures[f'{prefix}_hit_rate_{camera}']:.4f} "
                  f"of {judged} frames; {counter[Sighting.OUTSIDE]} outside, {counter[Sighting.OCCLUDED]} occluded")
        figures[f"{prefix}_hit_rate"] = min(figures[f"{prefix}_hit_rate_{camera}"] for camera in per_camera)
    print(f"calibration_hit_rate (worst camera): {figures['calibration_hit_rate']:.4f}")
    print(f"total {time.perf_counter() - start:.0f} s")
    if not args.no_write:
        print(f"wrote {write_results('sim', figures)}")


if __name__ == "__main__":
    main()
