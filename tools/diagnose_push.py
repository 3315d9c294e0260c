"""Where does a model's first `push` plan go: behind the cube, where the expert goes, or to the goal square?

    python tools/diagnose_push.py --checkpoint RUN/lightning_logs/version_0/checkpoints/last.ckpt --scenes 20

On unseen `push` scenes (seeds from 100000, the evaluation's), plans once from the home pose as `action-images eval
--steps 2 --guidance-scale 2 --candidates 4` would, then runs the scripted expert from the same scene for the plan's
length (the clip's last frame, what training taught the plan to end on) and prints, for the plan's end, the median
distances (table plane) to the expert's position then, to the expert's approach point behind the cube, to the cube
and to the goal square (and, for scale, from the start to the expert's position), how often the plan ends nearer the goal square than the approach point, and for a model with a goal readout
how far the readout's triangulated point (what `--anchor` would move the plan's end to) lies from the expert's position.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import load_policy  # noqa: E402
from action_images.sim import make_env, make_expert  # noqa: E402
from tools.benchlib import add_sampling_arguments, sampling_options  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="an Action Images checkpoint")
    parser.add_argument("--scenes", type=int, default=20, help="unseen push scenes (default: 20)")
    add_sampling_arguments(parser)
    args = parser.parse_args()
    policy = load_policy(args.checkpoint, cameras=None, replan_every=3, **sampling_options(args))
    readout = policy.has_goal_readout
    horizon = (policy.num_frames - 1) * policy.stride  # control steps to the clip's last frame
    env = make_env("push", cameras=policy.cameras)
    rows = []
    for seed in range(100000, 100000 + args.scenes):
        observation, _ = env.reset(seed=seed)
        policy.reset()
        start = observation["ee_pose"][:2].copy()
        start_height = float(observation["ee_pose"][2])
        plan_end = policy.plan(observation)[-1]
        end = plan_end[:2]
        point = np.full(2, np.nan)
        if readout:  # the same generation again, anchored, for the readout's triangulated point
            policy.anchor = True
            policy.reset()
            policy.plan(observation)
            point = policy.anchor_point.numpy()[:2] if policy.anchored else point
            policy.anchor = False
        expert = make_expert(env)
        expert.reset()
        approach = expert.approach_point()
        cube, goal = expert.cube_and_goal()
        for _ in range(horizon):
            observation, *_ = env.step(np.asarray(expert.act(observation), dtype=np.float32))
        demonstrated = observation["ee_pose"][:2]
        heights = [start_height, float(plan_end[2]), float(observation["ee_pose"][2])]
        rows.append([np.linalg.norm(end - p) for p in (demonstrated, approach, cube, goal)] + [np.linalg.norm(start - demonstrated), np.linalg.norm(point - demonstrated)] + heights)
    r = 100 * np.array(rows)
    print(f"{len(r)} first push plans, {horizon} control steps; the plan's end on the table plane, median distance to:")
    for name, column in zip(("the expert's position then", "the approach point behind the cube", "the cube", "the goal square"), r.T):
        print(f"  {name}: {np.median(column):.1f} cm (within 4 cm: {np.mean(column < 4):.0%})")
    print(f"standing still (the start) to the expert's position then: {np.median(r[:, 4]):.1f} cm")
    if readout:
        found = np.isfinite(r[:, 5])
        if found.any():
            print(f"the goal readout's point (found in {found.mean():.0%}) to the expert's position then: {np.median(r[found, 5]):.1f} cm "
                  f"(within 4 cm: {np.mean(r[found, 5] < 4):.0%})")
        else:
            print("the goal readout found no point (fewer than two views agree) in any scene")
    print(f"nearer the goal square than the approach point: {np.mean(r[:, 3] < r[:, 1]):.0%}")
    print(f"height above the start's, median: plan end {np.median(r[:, 7] - r[:, 6]):+.1f} cm, expert then {np.median(r[:, 8] - r[:, 6]):+.1f} cm")


if __name__ == "__main__":
    main()
