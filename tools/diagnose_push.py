"""Where does a policy go on `push`? Its path against the expert's approach point (issue: the uses).

    python tools/diagnose_push.py --run runs/policy_3000s_60 --steps 2 --guidance-scale 2

The push expert first goes *behind* the cube — on the line from the goal through the cube, cube half +
fingers + 3 cm past its centre — then descends and pushes. On `--episodes` unseen push scenes (seeds from
100000, as `action-images eval`), closed loop, replanning every `--replan-every` steps, this prints per
episode and as medians: the first plan's end against that approach point and against the cube, the
closest the end effector came to each (in the table plane), where it ended, how low it went, and the
cube's distance to the goal. A policy that ignores the goal lands on the cube: the approach points of
all goal directions lie on a circle around it, and their average is its centre.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import load_policy  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from action_images.sim.experts import make_expert  # noqa: E402
from tools.benchlib import last_checkpoint  # noqa: E402

COLUMNS = ["first plan end → behind", "first plan end → cube", "closest → behind", "closest → cube",
           "final → behind", "final → cube", "lowest end-effector z", "cube → goal"]


def episode(policy, seed: int) -> list[float]:
    """One closed-loop push episode → the COLUMNS, in cm."""
    env = make_env("push", image_size=128)
    observation, _ = env.reset(seed=seed)
    expert = make_expert(env)
    (cube, goal), behind = expert.cube_and_goal(), expert.approach_point()
    policy.reset()
    plan_end = policy.plan(observation)[-1][:2]
    policy.reset()
    to_behind, to_cube, heights = [], [], []
    terminated = truncated = False
    while not (terminated or truncated):  # the environment truncates at its step limit
        observation, _, terminated, truncated, _ = env.step(policy.select_action(observation))
        position = observation["ee_pose"][:3]
        to_behind.append(np.linalg.norm(position[:2] - behind))
        to_cube.append(np.linalg.norm(position[:2] - cube))
        heights.append(position[2])
    env.close()
    values = [np.linalg.norm(plan_end - behind), np.linalg.norm(plan_end - cube), min(to_behind), min(to_cube),
              to_behind[-1], to_cube[-1], min(heights), np.linalg.norm(goal - cube)]
    return [100 * float(v) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a training run folder (any of the three models)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--replan-every", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="sampling steps (default 10)")
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    args = parser.parse_args()
    policy = load_policy(last_checkpoint(args.run), cameras=None, replan_every=args.replan_every, steps=args.steps,
                         guidance_scale=args.guidance_scale)
    rows = np.array([episode(policy, 100_000 + index) for index in range(args.episodes)])
    for name, column in zip(COLUMNS, rows.T):
        print(f"{name:26s} median {np.median(column):5.1f} cm   [{', '.join(f'{v:.1f}' for v in column)}]")


if __name__ == "__main__":
    main()
