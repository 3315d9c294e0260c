"""Does a policy do what it is told? The instruction-following check on `reach` scenes.

    python tools/bench_grounding.py --checkpoint runs/policy_3000/…/last.ckpt --mode policy --steps 2 --results policy_3000

In `reach` three spheres differ only by colour, so only the instruction says which to touch. For each
seeded scene (unseen in training) the policy plans once per sphere, naming that sphere's colour in the
scene's own wording, and once more with other sampling noise. A policy that reads its instruction ends
its plans nearest the named sphere (chance: 1/3) and moves its plan's end when the named colour changes
by about as much as the spheres lie apart; one that ignores it moves the end by less than sampling noise
does. Writes `benchmarks/results/grounding/<results>.json` (`action_images.evaluate.InstructionFollowing`).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import instruction_following, load_policy  # noqa: E402
from tools.benchlib import RESULTS, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a training checkpoint (ours, the baseline or ImageWAM) or a pipeline folder")
    parser.add_argument("--mode", default="policy", choices=["joint", "policy"], help="canvas of an Action Images model (default policy)")
    parser.add_argument("--steps", type=int, default=2, help="Euler steps (default 2)")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale of an Action Images model (default 1: none)")
    parser.add_argument("--scenes", type=int, default=10, help="reach scenes, seeded from 100000 (default 10)")
    parser.add_argument("--results", required=True, help="name of the JSON file under benchmarks/results/grounding/")
    args = parser.parse_args()
    policy = load_policy(args.checkpoint, cameras=None, mode=args.mode, steps=args.steps)
    if args.guidance != 1.0:
        if not hasattr(policy, "guidance_scale"):
            raise SystemExit(f"{args.checkpoint} is an action-chunk model: it has no classifier-free guidance")
        policy.guidance_scale = args.guidance
    figures = instruction_following(policy, scenes=args.scenes)
    print(f"{args.results}: plan ends nearest the named sphere {figures.named_nearest:.0%} (chance 33%); "
          f"end → named {figures.plan_end_to_named_cm:.1f} cm (start {figures.start_to_named_cm:.1f}); "
          f"moving the plan's end: naming another colour {figures.instruction_effect_cm:.2f} cm, other noise {figures.noise_effect_cm:.2f} cm"
          + ("" if math.isnan(figures.readout_named_best) else
             f"; its goal readout scores the named sphere highest in {figures.readout_named_best:.0%} of scenes"))
    write_json(RESULTS / "grounding" / f"{args.results}.json",
               {"checkpoint": str(args.checkpoint), "mode": args.mode, "steps": args.steps, "guidance": args.guidance, **asdict(figures)})


if __name__ == "__main__":
    main()
