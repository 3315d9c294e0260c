"""Where does each replan of a closed-loop episode go? One line per new plan, beside where the task's objects are.

    python tools/diagnose_plans.py --run runs/ai_s27_near --task pick_place --episodes 4

The policy runs the seeded evaluation episodes of `action-images eval` (seeds from 100000) and, at every plan it
makes, prints the step, the EE (x, y, z; fingers' openness), the plan's first waypoint (where it will be when the
next plan is made, with `--replan-every` 3) and its end with the gripper it commands there, and how far the EE is on
the table plane from the object it must go to first (pick_place: the named cube; push: the cube; reach: the sphere)
and from where it must bring it (the pad; the goal). Success tables say that an episode failed; this says which
plan turned away and from what state. Session 27 read from it that `pick_place` plans from the open gripper at carry
height descend where they are, wherever the cube is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import load_policy  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from tools.benchlib import add_sampling_arguments, last_checkpoint, sampling_options  # noqa: E402


def landmarks(env) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y) of what the task's EE must go to first, and of where that is to be brought (None for reach)."""
    task, data = env.task, env.data
    if env.task.name == "pick_place":
        return task.body_position(data, task.target_cube)[:2], task.body_position(data, "pad")[:2]
    if env.task.name == "push":
        return task.body_position(data, "cube")[:2], task.body_position(data, "goal")[:2]
    if env.task.name == "reach":
        return task.target_position(data)[:2], None
    raise ValueError(f"diagnose_plans knows reach, push and pick_place, not {env.task.name!r}")


def xyz(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{value:.2f}" for value in point[:3]) + ")"


def centimetres(a: np.ndarray, b: np.ndarray | None) -> str:
    return "  —" if b is None else f"{100 * np.linalg.norm(a[:2] - b[:2]):3.0f}"


def recording_plans(policy) -> list[np.ndarray]:
    """Make `policy.plan` (Action Images' or a chunk policy's) append each plan it returns to the list returned."""
    plans, plan = [], policy.plan

    def recorded(observation: dict) -> np.ndarray:
        plans.append(plan(observation))
        return plans[-1]

    policy.plan = recorded
    return plans


def trace_episode(env, policy, plans: list[np.ndarray], seed: int) -> bool:
    """Run one episode, printing each plan the policy makes; returns whether it succeeded."""
    observation, info = env.reset(seed=seed)
    policy.reset()
    plans.clear()
    first, second = landmarks(env)
    print(f"seed {seed} {info['instruction']!r}: first {xyz(first)}, then {'—' if second is None else xyz(second)}")
    print("  step  EE (x, y, z) open | 1st waypoint → end, gripper | cm to first, then")
    step = 0
    while True:
        ee, made = observation["ee_pose"], len(plans)
        action = policy.select_action(observation)
        if len(plans) > made:
            plan = plans[-1]
            waypoint = plan[min(policy.replan_every, len(plan)) - 1]
            print(f"  {step:4d}  {xyz(ee)} {ee[7]:.1f} | {xyz(waypoint)} → {xyz(plan[-1])}, {'open' if plan[-1, 7] > 0.5 else 'closed'} | "
                  f"{centimetres(ee, first)} {centimetres(ee, second)}{' (kept)' if getattr(policy, 'kept', False) else ''}")
        observation, _, terminated, truncated, info = env.step(action)
        step += 1
        if terminated or truncated:
            print(f"  {'success' if info['success'] else 'failure'} after {step} steps")
            return bool(info["success"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a training run folder (its last checkpoint is used)")
    parser.add_argument("--task", default="pick_place", choices=["reach", "push", "pick_place"])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--replan-every", type=int, default=3, help="control steps per plan (default 3, as the closed-loop evaluation)")
    parser.add_argument("--keep-plan", action="store_true", help="keep the plan unless a new one scores higher (as evaluate_run.sh)")
    add_sampling_arguments(parser)
    args = parser.parse_args()
    policy = load_policy(last_checkpoint(args.run), cameras=None, replan_every=args.replan_every, keep_plan=args.keep_plan,
                         **sampling_options(args))
    env = make_env(args.task, cameras=policy.cameras)
    plans = recording_plans(policy)
    successes = sum(trace_episode(env, policy, plans, seed) for seed in range(100000, 100000 + args.episodes))
    print(f"{successes} of {args.episodes} episodes succeeded")


if __name__ == "__main__":
    main()
