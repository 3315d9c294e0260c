"""Which waypoints can a policy trust? The first plans of `reach` scenes, decoded (session 11's stall diagnosis).

    python tools/diagnose_reach.py --run runs/policy_3000s_60 --steps 2 --guidance-scale 2

On `--scenes` unseen reach scenes (seeds from 100000, as `action-images eval`) the policy makes its first
plan from the home pose. This prints, per generated frame, the share the decoder trusts as a whole pose
(`confidence`) and as a position alone (`position_confidence`), and the share of plans ending within the
task's 3 cm of the named sphere three ways: the decoded end as drawn, the plan executed when unconfident
frames are filled by whole-pose confidence (session 10's policy), and when position and rotation are
judged apart (`fill_unconfident` with both masks, the policy's way now).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import load_policy  # noqa: E402
from action_images.policy import fill_unconfident  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from tools.benchlib import last_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a training run folder (its last checkpoint is used)")
    parser.add_argument("--scenes", type=int, default=50, help="unseen reach scenes (default 50)")
    parser.add_argument("--steps", type=int, default=2, help="Euler steps (default 2)")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="classifier-free guidance (default 1: none)")
    args = parser.parse_args()
    policy = load_policy(last_checkpoint(args.run), cameras=None, mode="policy", steps=args.steps, guidance_scale=args.guidance_scale)
    env = make_env("reach", image_size=128, cameras=tuple(policy.cameras))
    whole, position, within = [], [], {"as drawn": [], "whole pose judged": [], "position judged apart": []}
    for index in range(args.scenes):
        observation, _ = env.reset(seed=100_000 + index)
        policy.reset()
        _, out = policy.generate(observation)
        decoded, target = out.decoded, env.task.target_position(env.data)
        whole.append(decoded.confidence[0].float().numpy())
        position.append(decoded.position_confidence[0].float().numpy())
        start = torch.from_numpy(observation["ee_pose"][:3]).to(decoded.positions)
        positions = torch.cat([start[None], decoded.positions[0, 1:]])
        rotations = decoded.rotations[0].nan_to_num()
        ends = {
            "as drawn": decoded.positions[0, -1],
            "whole pose judged": fill_unconfident(positions, rotations, decoded.confidence[0])[0][-1],
            "position judged apart": fill_unconfident(positions, rotations, decoded.confidence[0], decoded.position_confidence[0])[0][-1],
        }
        for name, end in ends.items():
            within[name].append(bool(np.linalg.norm(end.numpy() - target) < env.task.tolerance))
    env.close()
    print(f"trusted per frame (frame 0 is given), {args.scenes} scenes:")
    print("  as a whole pose:     " + " ".join(f"{v:.0%}" for v in np.mean(whole, 0)))
    print("  as a position alone: " + " ".join(f"{v:.0%}" for v in np.mean(position, 0)))
    for name, hits in within.items():
        print(f"first plan ends within {100 * env.task.tolerance:.0f} cm of the named sphere, {name}: {np.mean(hits):.0%}")


if __name__ == "__main__":
    main()
