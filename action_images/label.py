"""Label videos with 7-DoF actions (SPEC §1 `v2a`, §9 `label`): a dataset in, a new dataset out.

    pipeline = load_pipeline("exports/sim_cpu")          # a pipeline folder or a training .ckpt
    summary = label_dataset(pipeline, "data/sim_unlabelled", "data/sim_labelled")

The model sees clips of `num_frames` frames `stride` apart (the training clip shape) and, in `v2a`,
generates the action images of every frame of a clip from all its RGB frames and the *first* pose;
the decoder lifts them to 7-DoF. Whole episodes are covered by sliding windows stitched together:

* Frames split into `stride` residue classes. Class r (r = 1 … stride−1, and class 0 for the frames
  stride, 2·stride, …) is labelled by a chain of windows. The first window of every chain starts at
  frame 0, whose pose is given, and then jumps to the class: frames 0, r, r + s, …, r + (N−2)·s
  (for r = 0: 0, s, 2s, …). Every later window starts at the last frame of the previous one, and
  the pose *decoded* there is the next window's given first pose (stitching; when that pose could
  not be decoded, the chain's last decoded pose is held). Past the end of an episode a window
  repeats the last frame, as training clips do. All chains of an episode run as one batch per step.
* Every frame ≥ 1 is predicted by at least one window; where several windows predict a frame (the
  repeated last frame), the prediction the decoder trusts most wins (its executable flag first,
  then the continuous quality below) — a choice, not an average, so a pose is always one the
  decoder produced.
* Frames no window could decode (a point seen in fewer than two views) get positions interpolated
  linearly between their labelled neighbours and the rotation and gripper of the previous labelled
  frame, with confidence 0.

**Labelling needs the first end-effector pose of each episode** (the `v2a` canvas is given the
first action frame): it is read from the input's `observation.state` (only frame 0: with
`hide_ground_truth=True`, the default, nothing else of the recorded poses is read until labelling
is over), or passed as `first_pose` (one pose, e.g. the robot's home pose, for datasets without
poses). Without either, `label_dataset` fails and says so.

The output is a NEW LeRobot v3.0 dataset (the input is never touched): the same cameras, videos at
their original size and calibration, `observation.state` = the labelled pose of each frame, `action`
= the labelled pose of the next frame (the absolute target the robot reached; the last frame holds
its own), as `action-images collect` records them, and per frame `label.confidence` in [0, 1]:
0 where the decoder flags the frame as not executable or the pose was interpolated, else a quality
score `q = clamp(1 − max axis-length error / (0.25·ℓ), 0, 1) / (1 + reprojection residual / 2 px)`;
frame 0 (given) has 1. When the input has recorded poses, the summary holds the labelling error
against them (frames ≥ 1): median and mean position error in cm, median rotation error in degrees,
gripper accuracy (open/closed), and the share of confident frames.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from datamodules.clips import ClipConfig, EpisodeSource, episode_poses, resize_frames
from datamodules.lerobot_writer import Episode, LeRobotWriter
from datamodules.schema import ACTION_KEY, STATE_KEY
from rendering.cameras import Cameras
from rendering.decoder import DecodedActions
from rendering.poses import Pose, pose_from_vector, pose_to_vector
from rendering.rotations import RotationFormat, geodesic_angle

POSE_FORMAT = RotationFormat.QUAT_XYZW  # what the pipeline is given and what the new datasets hold
CONFIDENCE_KEY = "label.confidence"
AXIS_LENGTH, AXIS_TOLERANCE, RESIDUAL_PX = 0.1, 0.25, 2.0  # the decoder's defaults (rendering.decoder)


# --- shared with `action_images.augment` -------------------------------------------------------------
def load_pipeline(path: str | os.PathLike):
    """An `ActionImagesPipeline` from a pipeline folder (`action-images export`) or a training .ckpt."""
    from action_images.pipeline import ActionImagesPipeline

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} (a pipeline folder written by `action-images export`, or a .ckpt)")
    return ActionImagesPipeline.from_pretrained(path) if path.is_dir() else ActionImagesPipeline.from_checkpoint(path)


def open_input(path: str | os.PathLike) -> EpisodeSource:
    """The input dataset (LeRobot v3.0/v2.1 or processed RLBench); a missing one is a clear error."""
    from datamodules.datamodule import open_source

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input dataset not found: {path}")
    return open_source(path)


def check_output(path: str | os.PathLike, input_path: str | os.PathLike) -> Path:
    """The output folder must not exist yet (datasets are derived, never edited or overwritten)."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"output dataset already exists: {path} (choose a new folder; the input {input_path} is never modified)")
    return path


def choose_cameras(source: EpisodeSource, cameras: Sequence[str] | None) -> list[str]:
    chosen = list(cameras) if cameras else list(source.cameras)
    unknown = [c for c in chosen if c not in source.cameras]
    if unknown:
        raise ValueError(f"cameras {unknown} are not in the dataset (it has {source.cameras})")
    if not chosen:
        raise ValueError("the dataset has no cameras")
    return chosen


def require_calibration(source: EpisodeSource, cameras: list[str], path: str | os.PathLike, what: str) -> None:
    calibrated = getattr(source, "calibrated_cameras", source.cameras if source.has_calibration else [])
    missing = [c for c in cameras if c not in calibrated]
    if missing:
        raise ValueError(
            f"{what} needs calibrated cameras: {path} has no calibration for {missing} "
            "(observation.cameras.<cam>.intrinsics / .extrinsics, see the README's Data section)"
        )


def plan_chains(length: int, num_frames: int, stride: int) -> list[list[np.ndarray]]:
    """Windows covering frames 1 … length−1 of an episode, as chains (one per residue class); see the
    module docstring. Each window is an int array of `num_frames` frame indices starting at a frame
    whose pose (or RGB) is known when the window runs."""
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 2 (the first frame is given), got {num_frames}")
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    last = length - 1
    chains = []
    for residue in range(stride):
        first_target = residue if residue > 0 else stride
        if first_target > last:
            continue
        window = np.minimum(np.concatenate([[0], first_target + stride * np.arange(num_frames - 1)]), last)
        chain = [window]
        while chain[-1][-1] + stride <= last:
            chain.append(np.minimum(chain[-1][-1] + stride * np.arange(num_frames), last))
        chains.append(chain)
    return chains


@dataclass
class LoadedEpisode:
    """One episode's RGB at its size (for writing) and at the model's size, with cameras for both."""

    rgb: np.ndarray  # (V, T, H, W, 3) uint8, the recorded size
    small: torch.Tensor  # (V, T, 3, h, w) float in [0, 1], the model's size
    cameras: Cameras | None  # (V, T) at the recorded size
    small_cameras: Cameras | None  # (V, T) at the model's size
    intrinsics: np.ndarray | None  # (V, T, 3, 3), recorded size
    extrinsics: np.ndarray | None  # (V, T, 4, 4)


def load_episode(source: EpisodeSource, episode: int, cameras: list[str], image_size: int | None, calibrated: bool = True) -> LoadedEpisode:
    length = source.episode_length(episode)
    rgb = np.stack([source.frames(episode, camera, np.arange(length)) for camera in cameras])
    small = resize_frames(torch.from_numpy(rgb).permute(0, 1, 4, 2, 3), image_size).float().div_(255)
    if not calibrated:
        return LoadedEpisode(rgb, small, None, None, None, None)
    intrinsics, extrinsics = source.cameras_of(episode, cameras)
    full = Cameras(torch.from_numpy(intrinsics), torch.from_numpy(extrinsics), rgb.shape[2], rgb.shape[3])
    return LoadedEpisode(rgb, small, full, full.resize(small.shape[-2], small.shape[-1]), intrinsics, extrinsics)


def select_views(episode: LoadedEpisode, views: list[int]) -> LoadedEpisode:
    """The same episode with only some views (in the given order)."""
    def pick(cameras: Cameras | None) -> Cameras | None:
        return None if cameras is None else Cameras(cameras.intrinsics[views], cameras.extrinsics[views], cameras.height, cameras.width)

    return LoadedEpisode(
        episode.rgb[views], episode.small[views], pick(episode.cameras), pick(episode.small_cameras),
        None if episode.intrinsics is None else episode.intrinsics[views], None if episode.extrinsics is None else episode.extrinsics[views],
    )


def window_batch(episode: LoadedEpisode, windows: list[np.ndarray], rgb: torch.Tensor | None = None) -> tuple[torch.Tensor, Cameras]:
    """Images (B, V, N, 3, h, w) and cameras (B, V, N) of windows of one episode (`rgb`: another
    (V, T, 3, h, w) video than the recorded one)."""
    video = episode.small if rgb is None else rgb
    index = torch.from_numpy(np.stack(windows))  # (B, N)
    images = video[:, index].transpose(0, 1)  # (B, V, N, 3, h, w)
    cams = episode.small_cameras
    cameras = Cameras(cams.intrinsics[:, index].transpose(0, 1), cams.extrinsics[:, index].transpose(0, 1), cams.height, cams.width)
    return images, cameras


def next_frame_actions(state: np.ndarray) -> np.ndarray:
    """Absolute targets: the pose of the next frame; the last frame holds its own."""
    return np.concatenate([state[1:], state[-1:]]) if len(state) else state


def make_progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())


def _advance(progress, bar, amount: int = 1) -> None:
    if progress is not None:
        progress.advance(bar, amount)


# --- labelling --------------------------------------------------------------------------------------
def decoded_quality(decoded: DecodedActions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(valid, confident, quality) per frame: valid = a finite pose was decoded; confident = the
    decoder's executable flag; quality in [0, 1] from the axis lengths and the reprojection residual."""
    valid = torch.isfinite(decoded.positions).all(-1) & torch.isfinite(decoded.rotations).flatten(-2).all(-1) & torch.isfinite(decoded.gripper)
    axis_error = ((decoded.axis_lengths - AXIS_LENGTH).abs().amax(-1) / (AXIS_TOLERANCE * AXIS_LENGTH)).nan_to_num(float("inf"))
    quality = (1 - axis_error).clamp(0, 1) / (1 + decoded.residual_px.nan_to_num(float("inf")).clamp(min=0) / RESIDUAL_PX)
    quality = torch.where(valid, quality.nan_to_num(0.0), 0.0)
    return valid, decoded.confidence & valid, quality


def fill_gaps(positions: np.ndarray, rotations: np.ndarray, gripper: np.ndarray, labelled: np.ndarray) -> None:
    """In place: frames not labelled get positions interpolated between labelled neighbours (held
    past the last one) and the previous labelled frame's rotation and gripper. Frame 0 is labelled."""
    known = np.flatnonzero(labelled)
    missing = np.flatnonzero(~labelled)
    if not len(missing):
        return
    for axis in range(3):
        positions[missing, axis] = np.interp(missing, known, positions[known, axis])
    previous = known[np.searchsorted(known, missing, side="right") - 1]
    rotations[missing], gripper[missing] = rotations[previous], gripper[previous]


def label_episode(
    pipeline, episode: LoadedEpisode, first_pose: np.ndarray, instruction: str, num_frames: int, stride: int, steps: int,
    generator: torch.Generator, truth: np.ndarray | None = None, on_step=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Label one episode: poses (T, 8) `x y z qx qy qz qw g` and confidence (T,).

    `first_pose` is the given pose of frame 0 (8 values, quat_xyzw). `truth` (T, 8), when given,
    anchors every window on the recorded pose of its first frame instead of stitching (an upper
    bound for evaluation; `hide_ground_truth=False`)."""
    length = episode.small.shape[1]
    positions, rotations = np.full((length, 3), np.nan, np.float32), np.full((length, 3, 3), np.nan, np.float32)
    gripper, confidence = np.full(length, np.nan, np.float32), np.zeros(length, np.float32)
    score = np.full(length, -np.inf)
    first = pose_from_vector(torch.as_tensor(first_pose, dtype=torch.float32), POSE_FORMAT)
    positions[0], rotations[0], gripper[0], confidence[0], score[0] = first.positions.numpy(), first.rotations.numpy(), float(first.gripper), 1.0, np.inf

    chains = plan_chains(length, num_frames, stride)
    given = [np.asarray(first_pose, np.float32) for _ in chains]  # the next window's first pose, per chain
    for step in range(max((len(c) for c in chains), default=0)):
        active = [c for c, chain in enumerate(chains) if step < len(chain)]
        windows = [chains[c][step] for c in active]
        images, cameras = window_batch(episode, windows)
        starts = [truth[w[0]] if truth is not None else given[c] for c, w in zip(active, windows)]
        actions = torch.from_numpy(np.stack(starts)).unsqueeze(1).expand(-1, num_frames, -1).contiguous()  # only frame 0 is read
        out = pipeline(mode="v2a", images=images, cameras=cameras, actions=actions, prompt=instruction, num_inference_steps=steps, generator=generator, rotation_format=POSE_FORMAT.value)
        decoded = out.decoded
        valid, confident, quality = (t.cpu().numpy() for t in decoded_quality(decoded))
        ranking = np.where(valid, 2.0 * confident + quality, -1.0)
        pose = pose_to_vector(Pose(decoded.positions.nan_to_num(0.0), _safe_rotations(decoded.rotations), decoded.gripper_open.float()), POSE_FORMAT).cpu().numpy()
        for b, (c, window) in enumerate(zip(active, windows)):
            for j in range(1, num_frames):
                frame = window[j]
                if valid[b, j] and ranking[b, j] > score[frame]:
                    score[frame] = ranking[b, j]
                    positions[frame] = decoded.positions[b, j].cpu().numpy()
                    rotations[frame] = decoded.rotations[b, j].cpu().numpy()
                    gripper[frame] = float(decoded.gripper_open[b, j])
                    confidence[frame] = quality[b, j] if confident[b, j] else 0.0
            if valid[b, -1]:
                given[c] = pose[b, -1]
        if on_step is not None:
            on_step()
    labelled = score > -np.inf  # frame 0 (given) has +inf
    fill_gaps(positions, rotations, gripper, labelled)
    confidence[~labelled] = 0.0
    vector = pose_to_vector(Pose(torch.from_numpy(positions), torch.from_numpy(rotations), torch.from_numpy(gripper)), POSE_FORMAT).numpy()
    return vector.astype(np.float32), confidence


def _safe_rotations(rotations: torch.Tensor) -> torch.Tensor:
    """NaN rotations (undecoded frames) → identity, so they convert; such frames are not used."""
    finite = torch.isfinite(rotations).flatten(-2).all(-1)[..., None, None]
    return torch.where(finite, rotations, torch.eye(3, dtype=rotations.dtype, device=rotations.device))


def labelling_error(labels: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """Errors of labelled poses against recorded ones (both (T, 8) quat_xyzw), frames ≥ 1 (frame 0 is given)."""
    label = pose_from_vector(torch.from_numpy(np.concatenate([x[1:] for x in labels])), POSE_FORMAT)
    truth = pose_from_vector(torch.from_numpy(np.concatenate([x[1:] for x in truths])), POSE_FORMAT)
    if not len(label.positions):
        return {}
    position_cm = (label.positions - truth.positions).norm(dim=-1) * 100
    rotation_deg = torch.rad2deg(geodesic_angle(label.rotations, truth.rotations))
    return {
        "position_error_cm_median": float(position_cm.median()),
        "position_error_cm_mean": float(position_cm.mean()),
        "rotation_error_deg_median": float(rotation_deg.median()),
        "gripper_accuracy": float(((label.gripper > 0.5) == (truth.gripper > 0.5)).float().mean()),
        "frames_evaluated": int(len(position_cm)),
    }


def label_dataset(
    pipeline,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    num_frames: int = 5,
    stride: int = 3,
    image_size: int | None = 32,
    cameras: Sequence[str] | None = None,
    steps: int = 10,
    seed: int = 0,
    hide_ground_truth: bool = True,
    first_pose: Sequence[float] | None = None,
    pose_key: str = STATE_KEY,
    progress: bool = True,
) -> dict:
    """Label every frame of every episode of `input_path` with `v2a` and write a new dataset.

    Args:
        pipeline: an `ActionImagesPipeline` (see `load_pipeline`).
        num_frames, stride, image_size, cameras: the clip shape the model was trained on (the
            `data:` block of its config; defaults: `configs/sim_cpu.yaml`); cameras None = all the
            dataset's cameras, in its order (all of them go to the output either way).
        steps, seed: sampling steps and the seed of the sampling noise.
        hide_ground_truth: True (default): only frame 0 of the recorded poses is read for labelling
            (stitched windows). False: every window starts from the recorded pose of its first frame.
        first_pose: `x y z qx qy qz qw g` of every episode's first frame, for inputs without poses
            (ignored when the input has them).
        pose_key: the recorded pose feature (frame 0, and the ground truth of the summary).
    Returns:
        a summary: episodes, frames, seconds, frames_per_s, confident_fraction, output, and — when
        the input has recorded poses — the labelling errors of `labelling_error`.
    """
    source = open_input(input_path)
    output = check_output(output_path, input_path)
    chosen = choose_cameras(source, cameras)
    require_calibration(source, list(source.cameras), input_path, "labelling")
    has_truth = source.has_poses(pose_key)
    if not has_truth and first_pose is None:
        raise ValueError(
            f"labelling needs the first end-effector pose of each episode (v2a is given the first action frame): "
            f"{input_path} has no {pose_key!r} feature; pass first_pose (x y z qx qy qz qw gripper, e.g. the robot's home pose)"
        )
    truth_format = source.rotation_format(pose_key) if has_truth else None
    if first_pose is not None and np.shape(first_pose) != (8,):
        raise ValueError(f"first_pose must be 8 values x y z qx qy qz qw gripper, got {np.shape(first_pose)}")
    model = pipeline.model
    generator = torch.Generator(device=model.device).manual_seed(seed)
    plans = [plan_chains(source.episode_length(e), num_frames, stride) for e in range(source.num_episodes)]
    total_steps = sum(max((len(c) for c in chains), default=0) for chains in plans)

    info = getattr(source, "info", {}) or {}
    labels, truths, confidences = [], [], []
    started = time.perf_counter()
    writer = None
    try:
        with make_progress(progress) as bar_owner:
            bar = bar_owner.add_task("label (v2a)", total=total_steps) if bar_owner is not None else None
            for e in range(source.num_episodes):
                loaded = load_episode(source, e, list(source.cameras), image_size)
                model_episode = select_views(loaded, [source.cameras.index(c) for c in chosen])
                # Hidden ground truth: only recorded[0] reaches the labeller (unless hide_ground_truth=False);
                # the rest is compared with the labels once they are written.
                recorded = recorded_poses(source, e, pose_key, truth_format, gripper_key=ACTION_KEY) if has_truth else None
                start_pose = recorded[0] if recorded is not None else np.asarray(first_pose, np.float32)
                state, confidence = label_episode(
                    pipeline, model_episode, start_pose, source.instruction(e), num_frames, stride, steps, generator,
                    truth=None if hide_ground_truth else recorded, on_step=lambda: _advance(bar_owner, bar),
                )
                if writer is None:
                    writer = LeRobotWriter(
                        output, fps=source.fps, cameras=list(source.cameras), image_size=loaded.rgb.shape[2:4],
                        extra_features={CONFIDENCE_KEY: confidence_feature()}, robot_type=info.get("robot_type") or "unknown",
                    )
                writer.add(Episode(
                    instruction=source.instruction(e),
                    images={c: loaded.rgb[v] for v, c in enumerate(source.cameras)},
                    intrinsics={c: loaded.intrinsics[v] for v, c in enumerate(source.cameras)},
                    extrinsics={c: loaded.extrinsics[v] for v, c in enumerate(source.cameras)},
                    state=state, action=next_frame_actions(state), extra={CONFIDENCE_KEY: confidence},
                ))
                labels.append(state)
                confidences.append(confidence)
                if recorded is not None:
                    truths.append(recorded)
        if writer is None:
            raise ValueError(f"{input_path} has no episodes")
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    seconds = time.perf_counter() - started
    frames = int(sum(len(x) for x in labels))
    every = np.concatenate(confidences)
    summary = {
        "output": str(output), "episodes": len(labels), "frames": frames, "seconds": seconds,
        "frames_per_s": frames / max(seconds, 1e-9), "confident_fraction": float((every[1:] > 0).mean()) if len(every) > 1 else 1.0,
    }
    if truths:
        summary.update(labelling_error(labels, truths))
    return summary


def confidence_feature() -> dict:
    return {
        "dtype": "float32", "shape": [1], "names": None,
        "info": {"meaning": "labelling confidence in [0, 1]: 0 = the decoder flags the frame as not executable or the pose was interpolated; frame 0 is given (1)", "written_by": "action-images label"},
    }


def recorded_poses(source: EpisodeSource, episode: int, key: str, rotation_format: RotationFormat, gripper_key: str | None = None) -> np.ndarray:
    """Recorded poses (T, 8) in quat_xyzw; with `gripper_key`, the gripper as the models learn it
    (the last command, `datamodules.clips.commanded_gripper`)."""
    vectors = episode_poses(source, episode, ClipConfig(pose_key=key, gripper_key=gripper_key))
    pose = pose_from_vector(torch.from_numpy(vectors), rotation_format)
    return pose_to_vector(pose, POSE_FORMAT).numpy().astype(np.float32)
