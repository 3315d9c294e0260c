"""Does a model's first `pick_place` plan go to the cube its instruction names?

    python tools/diagnose_grounding.py --run runs/ai_s23_balanced --scenes 20

On unseen `pick_place` scenes (seeds from 100000, the evaluation's) there are two cubes and a pad. From the home pose it
plans once with the scene's instruction and once with the same words naming the other cube (the same sampling noise
for both), as `action-images eval --steps 2 --guidance-scale 2 --candidates 4` would, and prints where the plans end
(table plane): the median distances to the named cube, the other cube and the pad, and how often a plan ends nearer the
cube it was told than the other one. A model that reads which cube is named moves its plan when the name changes;
one that does not plans the same both times (the median distance between the two plan ends, against that between
the scripted expert's positions at the plan's end, told to take one cube or the other), while naming the pad in a
colour the scene lacks should not move it. With the other cube taken out of sight, a model that sees cubes but cannot
tell which is named should plan to the one that is left.

`--start-near R` plans from where `action-images collect --start-near R` would start the scene instead of from home:
anywhere within R metres of the spot above the named cube, 10–25 cm above the table, the gripper open — the states a
closed-loop policy that stopped short of the cube is in. (Scenes whose start the arm cannot reach are skipped.)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import mujoco
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.collect import CollectConfig, start_options  # noqa: E402
from action_images.evaluate import load_policy  # noqa: E402
from action_images.sim import make_env, make_expert  # noqa: E402
from action_images.sim.env import UnreachableStart  # noqa: E402
from action_images.sim.tasks import COLOURS  # noqa: E402
from tools.benchlib import add_sampling_arguments, last_checkpoint, sampling_options  # noqa: E402


def renamed(instruction: str, colour: str, other: str) -> str:
    """The instruction with the colour word `colour` replaced by `other` (it must be named once)."""
    changed, count = re.subn(rf"\b{colour}\b", other, instruction)
    if count != 1:
        raise ValueError(f"the instruction {instruction!r} names the colour {colour!r} {count} times, not once")
    return changed


def demonstrated_end(env, seed: int, cube: int, steps: int, options: dict | None = None) -> np.ndarray:
    """Where the scripted expert's EE is (table plane) after `steps` steps of the scene `seed` (reset with `options`),
    told to take `cube`."""
    observation, _ = env.reset(seed=seed, options=options)
    env.task.target_cube = f"cube{cube}"
    expert = make_expert(env)
    expert.reset()
    for _ in range(steps):
        observation, *_ = env.step(np.asarray(expert.act(observation), dtype=np.float32))
    return observation["ee_pose"][:2].copy()


def plan_end(policy, observation: dict) -> np.ndarray:
    """Where a first plan from `observation` ends (table plane), with the policy's noise restarted, so every probe
    of a scene draws the same noise."""
    policy.reset()
    return policy.plan(observation)[-1][:2]


def without_cube(env, observation: dict, cube: int) -> dict:
    """`observation` with `cube` taken out of every camera's sight (until the next `env.reset`)."""
    env.task._set_free_body(env.data, f"cube{cube}", np.array([0.0, 3.0, 0.0]), 0.0)
    mujoco.mj_forward(env.model, env.data)
    return {**observation, "images": {name: env.render_camera(name) for name in env.camera_names}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a training run folder (its last.ckpt is used)")
    parser.add_argument("--scenes", type=int, default=20, help="unseen pick_place scenes (default: 20)")
    parser.add_argument("--first-seed", type=int, default=100000,
                        help="the first scene's seed (default: 100000, the evaluation's unseen scenes; a dataset's own seeds probe what it was trained on)")
    parser.add_argument("--start-near", type=float, default=0.0, metavar="R",
                        help="plan from a start within R metres of the spot above the named cube, as collect --start-near R (default: 0, from home)")
    add_sampling_arguments(parser)
    args = parser.parse_args()
    near = CollectConfig(tasks=("pick_place",), episodes=1, out=None, start_near=args.start_near) if args.start_near else None
    policy = load_policy(last_checkpoint(args.run), cameras=None, replan_every=3, **sampling_options(args))
    env = make_env("pick_place", cameras=policy.cameras)
    task = env.task
    horizon = (policy.num_frames - 1) * policy.stride  # control steps to the clip's last frame
    rows, moved, moved_by_pad, between, alone, expert_to_cube = [], [], [], [], [], []
    for seed in range(args.first_seed, args.first_seed + args.scenes):
        try:
            options = start_options(near, env, make_expert(env), seed) if near else None
            observation, _ = env.reset(seed=seed, options=options)
        except UnreachableStart:
            continue
        named = int(task.target_cube[-1])
        cubes = [task.body_position(env.data, f"cube{i}")[:2] for i in (0, 1)]
        pad = task.body_position(env.data, "pad")[:2]
        instruction = observation["instruction"]
        absent = next(colour for colour in COLOURS if colour not in task.colours)  # a pad colour the scene lacks
        ends = [plan_end(policy, observation),
                plan_end(policy, {**observation, "instruction": renamed(instruction, task.colours[named], task.colours[1 - named])})]
        for cube, end in zip((named, 1 - named), ends):
            rows.append([np.linalg.norm(end - p) for p in (cubes[cube], cubes[1 - cube], pad)])
        moved.append(np.linalg.norm(ends[0] - ends[1]))
        moved_by_pad.append(np.linalg.norm(ends[0] - plan_end(policy, {**observation, "instruction": renamed(instruction, task.colours[2], absent)})))
        alone.append(np.linalg.norm(plan_end(policy, without_cube(env, observation, 1 - named)) - cubes[named]))
        demonstrated = demonstrated_end(env, seed, named, horizon, options)
        between.append(np.linalg.norm(demonstrated - demonstrated_end(env, seed, 1 - named, horizon, options)))
        expert_to_cube.append(np.linalg.norm(demonstrated - cubes[named]))
    r = 100 * np.array(rows)
    start = f"starts within {100 * args.start_near:.0f} cm of the named cube" if near else "home"
    print(f"{len(r)} first pick_place plans from {len(r) // 2} scenes, {start} (each scene's instruction and the other cube's); plan end, median distance to:")
    for name, column in zip(("the cube named", "the other cube", "the pad"), r.T):
        print(f"  {name}: {np.median(column):.1f} cm (within 4 cm: {np.mean(column < 4):.0%})")
    print(f"  (the scripted expert's position then, to the cube named: {100 * np.median(expert_to_cube):.1f} cm)")
    print(f"nearer the named cube than the other: {np.mean(r[:, 0] < r[:, 1]):.0%}; nearer the pad than the named cube: {np.mean(r[:, 2] < r[:, 0]):.0%}")
    print(f"with the other cube taken away, the plan ends a median {100 * np.median(alone):.1f} cm from the named cube "
          f"(within 4 cm: {np.mean(np.array(alone) < 0.04):.0%})")
    print(f"renaming the cube moves the plan's end by a median {100 * np.median(moved):.1f} cm "
          f"(the scripted expert's position {horizon} steps on, by {100 * np.median(between):.1f} cm); "
          f"renaming the pad to a colour the scene lacks moves it by {100 * np.median(moved_by_pad):.1f} cm")


if __name__ == "__main__":
    main()
