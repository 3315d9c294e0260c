"""What a model commands once the scripted expert hands it the grasp: the target height and the gripper command
of each control step after the handover, per episode.

    python tools/diagnose_grasp.py --run runs/ai_s20 --episodes 8

The expert drives `pick_place` until its phase `grasp` begins (fingers open around the named cube), then the model
plans as `tools/diagnose_tasks.py --expert-until grasp` would (replanning every 3 steps, guidance 2, best of 4;
`--keep-plan` as the closed-loop evaluation).
A model that has learned the grasp closes at once and lifts after; gripper commands are 1 = open, 0 = closed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import EvalConfig, ExpertUntil, load_policy, run_episode  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from tools.benchlib import add_sampling_arguments, last_checkpoint, sampling_options  # noqa: E402


class CommandLog:
    """Passes actions through, keeping (target z, gripper command) of the steps after the handover."""

    def __init__(self, actor: ExpertUntil, steps: int) -> None:
        self.actor, self.steps, self.rows = actor, steps, []

    def reset(self) -> None:
        self.actor.reset()
        self.rows = []

    def select_action(self, observation: dict):
        action = self.actor.select_action(observation)
        if self.actor.handover_step is not None and len(self.rows) < self.steps:
            self.rows.append((float(action[2]), float(action[7])))
        return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a training run folder (its newest last.ckpt)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--logged-steps", type=int, default=14, help="control steps logged after the handover (default 14)")
    parser.add_argument("--keep-plan", action="store_true", help="keep a plan unless a new one scores higher (as eval --keep-plan)")
    add_sampling_arguments(parser)
    args = parser.parse_args()
    policy = load_policy(last_checkpoint(args.run), cameras=None, replan_every=3, keep_plan=args.keep_plan, **sampling_options(args))
    config = EvalConfig()
    env = make_env("pick_place", image_size=config.image_size, cameras=tuple(policy.cameras))
    for index in range(args.episodes):
        log = CommandLog(ExpertUntil(policy, env, "grasp"), args.logged_steps)
        result, _ = run_episode(env, log, config.seed + index, False, tuple(policy.cameras))
        first_close = next((i for i, (_, g) in enumerate(log.rows) if g < 0.5), None)
        print(f"seed {result.seed} {'success' if result.success else 'failure'}: first closed command at step "
              f"{first_close}, target z (cm) " + " ".join(f"{100 * z:.1f}{'o' if g >= 0.5 else 'c'}" for z, g in log.rows))
    env.close()


if __name__ == "__main__":
    main()
