"""Does anchoring an Action Images plan on its goal readout move it toward the named sphere?

    python tools/diagnose_anchor.py --checkpoint RUN/lightning_logs/version_0/checkpoints/last.ckpt --scenes 20

On unseen `reach` scenes (seeds from 100000, the evaluation's), plans once from the home pose as `action-images eval
--steps 2 --guidance-scale 2 --candidates 4` would, then the same generation anchored (`--anchor`; the policy's noise
restarts, so both plans are the same sample), and prints how often the readout named a point, how far it moved the
plan's end, and how far the plan's end, the anchored end and the readout point lie from the named sphere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import load_policy  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from tools.benchlib import add_sampling_arguments, sampling_options  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="an Action Images checkpoint trained with a goal readout")
    parser.add_argument("--scenes", type=int, default=20, help="unseen reach scenes (default: 20)")
    add_sampling_arguments(parser)
    args = parser.parse_args()
    policy = load_policy(args.checkpoint, cameras=None, replan_every=3, anchor=True, **sampling_options(args))
    env = make_env("reach", cameras=policy.cameras)
    rows = []
    for seed in range(100000, 100000 + args.scenes):
        observation, _ = env.reset(seed=seed)
        target = env.task.target_position(env.data)
        policy.anchor = False
        policy.reset()
        plain = policy.plan(observation)[-1, :3]
        policy.anchor = True
        policy.reset()
        anchored = policy.plan(observation)[-1, :3]
        point = policy.anchor_point.numpy() if policy.anchored else np.full(3, np.nan)
        rows.append([policy.anchored, np.linalg.norm(anchored - plain), np.linalg.norm(plain - target), np.linalg.norm(anchored - target),
                     np.linalg.norm(point - target)])
    r = np.array(rows, dtype=float)
    print(f"anchored {int(r[:, 0].sum())} of {len(r)} first plans; the plan's end moved {100 * np.median(r[:, 1]):.1f} cm (median)")
    print(f"to the named sphere (median): plan end {100 * np.median(r[:, 2]):.1f} cm, anchored end {100 * np.median(r[:, 3]):.1f} cm, "
          f"readout point {100 * np.nanmedian(r[:, 4]):.1f} cm; within 3 cm: {np.mean(r[:, 2] < 0.03):.0%} → {np.mean(r[:, 3] < 0.03):.0%}")


if __name__ == "__main__":
    main()
