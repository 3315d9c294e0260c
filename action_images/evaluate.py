"""Closed-loop evaluation in the simulator: any policy with `reset()` / `select_action(observation)`.

Each episode is seeded (`seed + index`), so every policy meets the same scenes. The success rate of a
task comes with a 95 % Wilson interval. Episodes can be recorded as mp4: the real views on top, and,
for policies that expose what they imagined (`policy.imagined`: generated RGB and action images of the
last plan), the imagined RGB and action images below, at the frame the plan has reached.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from rich.progress import Progress

from action_images.sim import make_env, make_expert
from datamodules.clips import resize_frames
from datamodules.media import atomic_path, write_video

PANEL = 96  # pixels per view in episode videos


class Policy(Protocol):
    def reset(self) -> None: ...

    def select_action(self, observation: dict) -> np.ndarray: ...


class ExpertUntil:
    """A policy that lets the task's scripted expert act until the expert's phase `phase` begins (or the
    expert is done), then hands the episode to `policy`, reset at the handover so it plans from that state
    alone: which phase of a multi-phase task a model fails at (`tools/diagnose_tasks.py --expert-until`).
    `handover_step` is the control step of the handover (None while the expert acts)."""

    def __init__(self, policy: Policy, env, phase: str) -> None:
        self.policy, self.expert, self.phase = policy, make_expert(env), phase
        self.handover_step: int | None = None
        self.steps = 0
        self._last_action: np.ndarray | None = None

    def reset(self) -> None:
        self.expert.reset()
        self.policy.reset()
        self.handover_step, self.steps, self._last_action = None, 0, None

    def select_action(self, observation: dict) -> np.ndarray:
        if self.handover_step is None and self.expert.phase_name in (self.phase, "done"):
            self.handover_step = self.steps
            self.policy.reset()
            if hasattr(self.policy, "gripper_command") and self._last_action is not None:
                # The gripper state the models are given is the command in force, which a reset forgets; the
                # measured opening would call fingers closed on a cube "open" (`observation.with_gripper_command`).
                self.policy.gripper_command = float(self._last_action[7])
        self.steps += 1
        if self.handover_step is None:
            self._last_action = np.asarray(self.expert.act(observation), dtype=np.float32)
            return self._last_action
        return self.policy.select_action(observation)


@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    steps: int
    seconds: float
    instruction: str
    final_distance: float = math.nan  # metres from done at the end (`Task.goal_distance`)
    closest_distance: float = math.nan  # and at the closest point of the episode


@dataclass
class EvalConfig:
    tasks: tuple[str, ...] = ("reach",)
    episodes: int = 50
    seed: int = 100_000  # far from collection seeds (0…), so evaluation scenes are unseen
    image_size: int = 128  # the simulator's render size (the policy resizes to its own)
    cameras: tuple[str, ...] = ("front", "left", "right")
    camera_jitter: float = 0.0
    videos: int = 2  # episodes recorded per task
    out: Path | None = None
    label: str = "policy"
    results: list[EpisodeResult] = field(default_factory=list)


CLIP_KEYS = ("num_frames", "stride", "image_size")


def training_clip(path: str | Path) -> dict:
    """The clip shape a model was trained on: the data module's arguments in a training checkpoint,
    or `clip.json` in a pipeline folder ({} when neither says)."""
    path = Path(path)
    if path.is_dir():
        clip_file = path / "clip.json"
        return json.loads(clip_file.read_text()) if clip_file.exists() else {}
    return checkpoint_clip(torch.load(path, map_location="cpu", weights_only=True))


def checkpoint_clip(checkpoint: dict) -> dict:
    """The clip shape in a loaded training checkpoint (the data module's hyper-parameters)."""
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    return {key: data[key] for key in (*CLIP_KEYS, "cameras") if data.get(key) is not None}


def resolve_device(name: str) -> torch.device:
    """"auto" → the first GPU if torch sees one, else the CPU; any other name as torch spells it, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch {torch.__version__} sees no GPU here (use --device cpu)")
    return device


def load_policy(path: str | Path, cameras: list[str], mode: str | None = None, replan_every: int | None = None, steps: int = 10,
                guidance_scale: float = 1.0, device: str | torch.device = "cpu", candidates: int = 1, keep_plan: bool = False,
                guide_observation: bool | None = None, anchor: bool = False, **clip) -> Policy:
    """An Action Images checkpoint or pipeline folder → `ActionImagesPolicy`; a checkpoint of the
    baseline or ImageWAM → `ChunkPolicy` (which has no classifier-free guidance: a scale other than 1 is
    an error; `candidates`, `anchor` and `keep_plan` use the model's goal readout). The clip shape comes from the checkpoint unless given (None = from it); so does the
    canvas (`mode` None = the one it was trained on; a model trained on the policy canvas alone never
    learned to draw RGB, so asking it for `joint` is an error). The model runs on `device`; observations
    and actions stay on the CPU."""
    from action_images.pipeline import ActionImagesPipeline
    from action_images.policy import ActionImagesPolicy, ChunkPolicy, chunk_module_class

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint or pipeline folder at {path}")
    stored = None if path.is_dir() else torch.load(path, map_location="cpu", weights_only=True)  # read once
    shape = {**(training_clip(path) if stored is None else checkpoint_clip(stored)), **{k: v for k, v in clip.items() if v is not None}}
    cameras = list(cameras or shape.get("cameras") or ["front", "left", "right"])
    missing = [key for key in CLIP_KEYS if key not in shape]
    if missing:
        raise ValueError(f"{path} does not say its training clip's {missing}: pass them (--num-frames, --stride, --image-size)")
    if stored is None:
        pipeline = ActionImagesPipeline.from_pretrained(path)
    else:
        module_class = chunk_module_class(stored.get("hyper_parameters", {}))
        if module_class is not None:
            if guidance_scale != 1.0 or keep_plan or guide_observation is not None:
                raise ValueError(f"{path} is an action-chunk model ({module_class.__name__}): it has no classifier-free guidance "
                                 "and keeps no plan against new ones")
            module = module_class.load_from_checkpoint(path, map_location="cpu", weights_only=True).to(device)
            return ChunkPolicy(module, cameras, stride=shape["stride"], replan_every=replan_every, sample_steps=steps,
                               candidates=candidates, anchor=anchor)
        pipeline = ActionImagesPipeline.from_checkpoint(path)
    pipeline.model.to(device)
    trained = pipeline.model.hparams.get("canvas", "joint")
    mode = mode or trained
    if trained == "policy" and mode == "joint":
        raise ValueError(f"{path} was trained on the policy canvas only (action images, no RGB): it cannot generate the joint canvas; "
                         "evaluate it with mode 'policy'")
    return ActionImagesPolicy(
        pipeline, cameras, num_frames=shape["num_frames"], stride=shape["stride"], image_size=shape["image_size"],
        mode=mode, replan_every=replan_every, steps=steps, guidance_scale=guidance_scale, candidates=candidates, keep_plan=keep_plan,
        guide_observation=guide_observation, anchor=anchor,
    )


def evaluate_checkpoint(path: str | Path, label: str, tasks: list[str], episodes: int, out: Path | None = None,
                        camera_jitter: float = 0.0, **policy_options) -> dict:
    """`load_policy(path, **policy_options)` on the cameras it was trained with, then `evaluate` on the
    seeded episodes every policy meets: the success table."""
    policy = load_policy(path, cameras=None, **policy_options)
    config = EvalConfig(tasks=tuple(tasks), episodes=episodes, camera_jitter=camera_jitter, out=out, label=label, cameras=tuple(policy.cameras))
    return evaluate(policy, config)


@dataclass
class InstructionFollowing:
    """Does a policy act on what it is told? Measured on `reach` scenes, where three spheres differ only by
    colour, so the instruction alone says which one to go to."""

    scenes: int
    named_nearest: float  # share of plans ending nearest the named sphere (chance: 1/3)
    plan_end_to_named_cm: float  # median distance from a plan's last waypoint to the named sphere
    start_to_named_cm: float  # the same from where the gripper starts
    instruction_effect_cm: float  # median distance between plan ends when only the colour named changes
    noise_effect_cm: float  # … and when only the sampling noise changes (same instruction)
    readout_named_best: float = math.nan  # share of scenes whose goal readout scores the named sphere highest (models with one)


def instruction_following(policy, scenes: int = 10, seed: int = 100_000, image_size: int = 128, env=None) -> InstructionFollowing:
    """Plan once per sphere of each seeded `reach` scene, naming that sphere's colour in the scene's own
    wording, and once more with other noise; see `InstructionFollowing`. `policy` needs `plan(observation)`
    (every control-step target of one generation) and a `seed` that `reset()` restarts its noise from.
    `env`: a `reach` environment to use (default: one with the policy's cameras); it is closed after."""
    env = env or make_env("reach", image_size=image_size, cameras=tuple(policy.cameras))
    nearest, to_named, from_start, text_effect, noise_effect, readout_best = [], [], [], [], [], []
    has_readout = getattr(policy, "has_goal_readout", False)
    base_seed = policy.seed
    try:
        for index in range(scenes):
            observation, _ = env.reset(seed=seed + index)
            task = env.task
            spheres = np.stack([task.body_position(env.data, f"target{i}") for i in range(task.num_targets)])
            named = task.colours[task.target_index]
            if has_readout:
                policy.seed = base_seed
                policy.reset()
                readout_best.append(float(int(policy.readout_scores(observation, torch.from_numpy(spheres).float()).argmax()) == task.target_index))
            ends = []
            for sphere, colour in enumerate(task.colours):
                policy.seed = base_seed
                policy.reset()
                end = policy.plan({**observation, "instruction": observation["instruction"].replace(named, colour)})[-1, :3]
                distances = np.linalg.norm(spheres - end, axis=1)
                nearest.append(float(distances.argmin() == sphere))
                to_named.append(distances[sphere])
                from_start.append(np.linalg.norm(spheres[sphere] - observation["ee_pose"][:3]))
                ends.append(end)
            text_effect.extend(np.linalg.norm(ends[i] - ends[j]) for i in range(len(ends)) for j in range(i + 1, len(ends)))
            policy.seed = base_seed + 1
            policy.reset()
            noise_effect.append(np.linalg.norm(policy.plan(observation)[-1, :3] - ends[task.target_index]))
    finally:
        policy.seed = base_seed
        policy.reset()
        env.close()
    return InstructionFollowing(scenes, float(np.mean(nearest)), 100 * float(np.median(to_named)), 100 * float(np.median(from_start)),
                                100 * float(np.median(text_effect)), 100 * float(np.median(noise_effect)),
                                float(np.mean(readout_best)) if readout_best else math.nan)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if trials == 0:
        return (math.nan, math.nan)
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _panel(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) images → one row (3, PANEL, n·PANEL)."""
    frames = resize_frames(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), PANEL)
    return torch.cat(list(frames), -1)


def _video_frame(observation: dict, cameras: tuple[str, ...], policy: Policy) -> np.ndarray:
    """The real views; below them, for policies that imagine, the imagined frame being headed to."""
    rows = [_panel([observation["images"][c] for c in cameras])]
    imagined = getattr(policy, "imagined", None)
    if imagined is not None:
        frame = min(imagined["action_images"].shape[1] - 1, policy.plan_step // policy.stride + 1)
        for key in ("rgb", "action_images"):
            video = imagined[key]
            picked = video[:, min(frame, video.shape[1] - 1)]  # (V, 3, h, w) in [0, 1]
            rows.append(_panel([(v.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for v in picked]))
    return torch.cat(rows, -2).permute(1, 2, 0).numpy()


def run_episode(env, policy: Policy, seed: int, record: bool, cameras: tuple[str, ...], observer=None) -> tuple[EpisodeResult, list[np.ndarray]]:
    """One seeded episode. `observer(env)`, when given, is called after the reset and after every step
    (to follow the scene's state, e.g. `tools/diagnose_tasks.py`)."""
    observation, info = env.reset(seed=seed)
    policy.reset()
    if observer is not None:
        observer(env)
    frames, success, steps, start, distances = [], False, 0, time.perf_counter(), []
    while True:
        action = policy.select_action(observation)
        if record:
            frames.append(_video_frame(observation, cameras, policy))
        observation, _, terminated, truncated, info = env.step(action)
        if observer is not None:
            observer(env)
        steps += 1
        success = bool(info["success"])
        distances.append(info.get("goal_distance", math.nan))
        if terminated or truncated:
            break
    result = EpisodeResult(env.task.name if hasattr(env.task, "name") else "", seed, success, steps, time.perf_counter() - start, info["instruction"],
                           final_distance=float(distances[-1]), closest_distance=float(np.fmin.reduce(distances)))
    return result, frames


def evaluate(policy: Policy, config: EvalConfig) -> dict:
    """Run `config.episodes` seeded episodes per task; returns the success table (and writes it, with
    videos, under `config.out` when set)."""
    table = {}
    with Progress() as progress:
        for task in config.tasks:
            env = make_env(task, image_size=config.image_size, cameras=config.cameras, camera_jitter=config.camera_jitter)
            bar = progress.add_task(f"{config.label}: {task}", total=config.episodes)
            results = []
            for index in range(config.episodes):
                record = config.out is not None and index < config.videos
                result, frames = run_episode(env, policy, config.seed + index, record, config.cameras)
                result.task = task
                results.append(result)
                if record:
                    outcome = "success" if result.success else "failure"
                    write_video(config.out / "videos" / f"{config.label}_{task}_{index:03d}_{outcome}.mp4", np.stack(frames), fps=5)
                progress.update(bar, advance=1, description=f"{config.label}: {task} {sum(r.success for r in results)}/{len(results)}")
            env.close()
            config.results.extend(results)
            successes = sum(r.success for r in results)
            low, high = wilson_interval(successes, len(results))
            table[task] = {
                "success": successes / len(results), "ci95": [low, high], "episodes": len(results),
                "mean_steps": float(np.mean([r.steps for r in results])),
                "median_final_distance_m": float(np.median([r.final_distance for r in results])),
                "median_closest_distance_m": float(np.median([r.closest_distance for r in results])),
                "seconds_per_episode": float(np.mean([r.seconds for r in results])),
            }
    if config.out is not None:
        config.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(config.out / f"{config.label}_episodes.json") as path:
            path.write_text(json.dumps([asdict(r) for r in config.results], indent=1))
        with atomic_path(config.out / f"{config.label}_success.json") as path:
            path.write_text(json.dumps(table, indent=1))
    return table


def success_markdown(tables: dict[str, dict]) -> str:
    """{policy label: table} → one markdown table, a column per policy: `rate [low, high]`."""
    tasks = sorted({task for table in tables.values() for task in table})
    lines = ["| task | " + " | ".join(tables) + " |", "|---|" + "---|" * len(tables)]
    for task in tasks:
        cells = []
        for table in tables.values():
            row = table.get(task)
            cells.append("—" if row is None else f"{row['success']:.0%} [{row['ci95'][0]:.0%}, {row['ci95'][1]:.0%}] (n={row['episodes']})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
