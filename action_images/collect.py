"""Simulated demonstrations → a LeRobot v3.0 dataset with calibration (SPEC §7, §8).

Scripted experts run in the MuJoCo tasks; each frame records every camera's RGB and calibration, the
measured end-effector pose (`observation.state`) and the commanded absolute target (`action`). Several
tasks can go into one dataset. Worker processes simulate in parallel; the parent writes, atomically.
Only successful demonstrations are kept; a failed seed is replaced by the next one. A demonstration does
not stop at the first successful frame (the edge of the task's tolerance, where the environment
terminates) but lets the expert finish the phase it is in (reach: come within 1 cm of the sphere's
centre) for up to `settle` more steps, as long as the task stays successful: a policy that imitates
demonstrations ending on the tolerance boundary stalls just outside it. With `start_spread` the arm
starts at a random offset from its home pose, with `start_near` anywhere near the expert's first
waypoint (evaluation always starts at home): the demonstrations then cover states off the expert's
usual paths, where a closed-loop policy that drifted finds itself.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from datamodules.lerobot_writer import Episode, LeRobotWriter

FPS = 10
SEEDS_PER_TASK = 1_000_003  # seeds of different tasks never collide


@dataclass(frozen=True)
class CollectConfig:
    tasks: tuple[str, ...]
    episodes: int  # successful episodes per task
    out: Path
    workers: int = 1
    image_size: int = 128
    cameras: tuple[str, ...] = ("front", "left", "right")
    wrist_camera: bool = False
    camera_jitter: float = 0.0
    seed: int = 0
    max_attempts_factor: float = 2.0  # give up on a task after this many × episodes failed seeds
    settle: int = 10  # steps the expert may go on after the first success, finishing its phase (0: stop there)
    start_spread: float = 0.0  # metres: the EE starts at home + U(±s, ±s, [−s, 0]) (0: always at home)
    start_near: float = 0.0  # metres: the EE starts within this horizontal distance of the expert's first waypoint (0: off)
    start_heights: tuple[float, float] = (0.10, 0.25)  # metres above the table for `start_near` starts: clear of the cubes' tops

    def __post_init__(self) -> None:
        if self.start_spread and self.start_near:
            raise ValueError("start_spread and start_near each choose the start: give one of them")
        if self.start_spread < 0 or self.start_near < 0:
            raise ValueError(f"start_spread and start_near are distances ≥ 0, got {self.start_spread} and {self.start_near}")


def camera_names(config: CollectConfig) -> list[str]:
    return list(config.cameras) + (["wrist"] if config.wrist_camera else [])


_ENVIRONMENTS: dict[tuple, object] = {}


def start_options(config: CollectConfig, env, expert, seed: int) -> dict | None:
    """The `env.reset` options that place the EE where episode `seed` starts (None: at home).

    Varied starts show the expert recovering from places its own path never goes. `start_spread` scatters
    the start around home; `start_near` puts it anywhere within reach of the expert's first waypoint (over
    the cube it will grasp, behind the cube it will push), so the demonstrations hold states a policy that
    drifted or stopped short finds itself in: open and at carry height but not over the cube."""
    rng = np.random.default_rng(seed)
    if config.start_spread:
        spread = config.start_spread
        return {"ee_offset": rng.uniform([-spread, -spread, -spread], [spread, spread, 0.0])}
    if config.start_near:
        env.reset(seed=seed)  # the episode's scene (the reset is seeded): where its home and first waypoint are
        home, waypoint = env.ee_pose()[:3], expert.first_waypoint()
        angle, distance = rng.uniform(0.0, 2 * np.pi), config.start_near * np.sqrt(rng.uniform())  # uniform over the disc
        start = np.array([*(waypoint[:2] + distance * np.array([np.cos(angle), np.sin(angle)])), rng.uniform(*config.start_heights)])
        return {"ee_offset": start - home}
    return None


def record_episode(config: CollectConfig, task: str, seed: int) -> Episode | None:
    """Run the task's scripted expert once; the episode if it succeeded, else None."""
    from action_images.sim import make_env, make_expert  # MuJoCo is loaded in the worker only
    from action_images.sim.env import UnreachableStart

    key = (task, config.image_size, config.cameras, config.wrist_camera, config.camera_jitter)
    if key not in _ENVIRONMENTS:
        _ENVIRONMENTS[key] = make_env(
            task, image_size=config.image_size, cameras=config.cameras, wrist_camera=config.wrist_camera, camera_jitter=config.camera_jitter
        )
    env = _ENVIRONMENTS[key]
    expert = make_expert(env)
    try:
        observation, info = env.reset(seed=seed, options=start_options(config, env, expert, seed))
    except UnreachableStart:
        return None  # a start out of the arm's reach: the seed yields no episode, as a failed demonstration
    if info["success"]:  # started on the goal: nothing to demonstrate
        return None
    expert.reset()
    cameras = camera_names(config)
    frames: list[dict] = []
    actions: list[np.ndarray] = []
    success = False
    while True:
        action = np.asarray(expert.act(observation), dtype=np.float32)
        frames.append(observation)
        actions.append(action)
        observation, _, terminated, truncated, info = env.step(action)
        success = bool(info.get("success", False))
        if terminated or truncated:
            break
    if not success:
        return None
    phase = expert.phase_name  # the phase that reached success: let it finish, while success holds
    for _ in range(config.settle):
        if expert.phase_name != phase:
            break
        action = np.asarray(expert.act(observation), dtype=np.float32)
        following, _, _, _, info = env.step(action)
        if not info.get("success", False):
            break
        frames.append(observation)
        actions.append(action)
        observation = following
    frames.append(observation)  # the final, successful frame, holding the last target
    actions.append(actions[-1])
    return Episode(
        instruction=frames[0]["instruction"],
        images={c: np.stack([f["images"][c] for f in frames]) for c in cameras},
        intrinsics={c: np.stack([f["intrinsics"][c] for f in frames]) for c in cameras},
        extrinsics={c: np.stack([f["extrinsics"][c] for f in frames]) for c in cameras},
        state=np.stack([f["ee_pose"] for f in frames]).astype(np.float32),
        action=np.stack(actions),
    )


def _job(arguments: tuple[CollectConfig, str, int]) -> tuple[str, int, Episode | None]:
    config, task, seed = arguments
    return task, seed, record_episode(config, task, seed)


def _jobs(config: CollectConfig, task: str, start: int, count: int) -> Iterator[tuple[CollectConfig, str, int]]:
    base = config.seed * 7919 + config.tasks.index(task) * SEEDS_PER_TASK
    for k in range(start, start + count):
        yield config, task, base + k


def collect(config: CollectConfig) -> dict[str, float]:
    """Collect `episodes` successful demonstrations of each task into `config.out`."""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # a fresh process per worker: no GL context crosses a fork
    summary: dict[str, float] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with LeRobotWriter(config.out, fps=FPS, cameras=camera_names(config), image_size=(config.image_size,) * 2) as writer, Progress(*columns) as progress:
        pool = context.Pool(config.workers) if config.workers > 1 else None
        try:
            for task in config.tasks:
                bar = progress.add_task(f"collect {task}", total=config.episodes)
                kept, tried = 0, 0
                limit = int(config.episodes * config.max_attempts_factor) + 1
                while kept < config.episodes:
                    wanted = config.episodes - kept
                    if tried + wanted > limit:
                        raise RuntimeError(f"task {task!r}: the expert failed too often ({tried - kept} failures in {tried} seeds)")
                    jobs = list(_jobs(config, task, tried, wanted))
                    results = pool.imap(_job, jobs) if pool else map(_job, jobs)
                    for _, _, episode in results:
                        tried += 1
                        if episode is not None:
                            writer.add(episode)
                            kept += 1
                            progress.advance(bar)
                summary[f"attempts_{task}"] = tried
        finally:
            if pool:
                pool.close()
                pool.join()
    summary["seconds"] = time.perf_counter() - started
    summary["episodes"] = len(config.tasks) * config.episodes
    return summary
