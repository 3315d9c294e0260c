"""Where do `push` and `pick_place` episodes fail? Each episode's furthest milestone, task by task.

    python tools/diagnose_tasks.py --run runs/policy_start_fresh --task push pick_place --candidates 4 --guidance-scale 2

The policy runs the seeded evaluation episodes of `action-images eval` (seeds from 100000, the same
scenes) while `action_images.sim.milestones` follows the scene step by step and records how far each
episode got (push: behind the cube, cube moved, towards the goal, success; pick_place: at the named
cube, lifted, over the pad, success).

It prints the share of episodes reaching each milestone and writes `diagnosis.json` per episode under
`--out` when given.

`--expert-until PHASE` splits the work: the scripted expert drives each episode until its phase PHASE begins
(push: approach, descend, push, retreat; pick_place: approach, descend, grasp, lift, move, lower, release,
retreat), then the model takes over from that state for the rest of the episode — which phases a model fails
at, not only how far it gets from the start.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import EvalConfig, ExpertUntil, load_policy, run_episode  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from action_images.sim.milestones import MILESTONES, furthest, milestone_observer  # noqa: E402
from tools.benchlib import add_sampling_arguments, last_checkpoint, sampling_options  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a training run folder (its last checkpoint is used)")
    parser.add_argument("--task", nargs="+", default=list(MILESTONES), choices=list(MILESTONES))
    parser.add_argument("--episodes", type=int, default=50)
    add_sampling_arguments(parser)
    parser.add_argument("--replan-every", type=int, default=None, help="control steps per plan (default: the whole horizon)")
    parser.add_argument("--anchor", action="store_true", help="anchor each plan's (chunk's) end on the model's goal readout (as eval --anchor)")
    parser.add_argument("--expert-until", metavar="PHASE", default=None,
                        help="the scripted expert acts until its phase PHASE begins, then the model (e.g. push for the push task)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    policy = load_policy(last_checkpoint(args.run), cameras=None, replan_every=args.replan_every, anchor=args.anchor, **sampling_options(args))
    config = EvalConfig()
    rows = []
    for task in args.task:
        env = make_env(task, image_size=config.image_size, cameras=tuple(policy.cameras))
        milestones = MILESTONES[task]
        actor = policy if args.expert_until is None else ExpertUntil(policy, env, args.expert_until)
        for index in range(args.episodes):
            observer = milestone_observer(task)
            result, _ = run_episode(env, actor, config.seed + index, False, tuple(policy.cameras), observer=observer)
            rows.append({"task": task, "seed": result.seed, "success": result.success, "handover_step": getattr(actor, "handover_step", None), "furthest": furthest(observer.reached, milestones),
                         "reached": sorted(observer.reached), "touched_other": getattr(observer, "touched_other", None),
                         "final_distance": result.final_distance, "lowest_cm": 100 * getattr(observer, "lowest", np.nan),
                         **{f"closest_low_to_{k.replace(' ', '_')}_cm": 100 * v for k, v in getattr(observer, "closest_low", {}).items()}})
        env.close()
        done = [row for row in rows if row["task"] == task]
        print(f"{task} ({len(done)} episodes), share passing each milestone: " + ", ".join(
            f"{name} {np.mean([row['furthest'] > i for row in done]):.0%}" for i, name in enumerate(milestones)))
        if args.expert_until is not None:
            handed = [row["handover_step"] for row in done if row["handover_step"] is not None]
            print(f"  the expert handed over at its phase {args.expert_until!r} in {len(handed)} of {len(done)} episodes"
                  + (f", after {np.median(handed):.0f} steps (median)" if handed else ""))
        if task == "pick_place":
            closest = ", ".join(f"{name} {np.median([row[f'closest_low_to_{name}_cm'] for row in done]):.1f}"
                                for name in ("named_cube", "other_cube", "pad"))
            print(f"  touched the other cube: {np.mean([row['touched_other'] for row in done]):.0%}; medians: lowest fingers "
                  f"{np.median([row['lowest_cm'] for row in done]):.1f} cm above the table; closest below 8 cm (table plane, cm): {closest}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "diagnosis.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
