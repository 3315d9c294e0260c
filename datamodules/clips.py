"""Clips: what one training sample holds, cut from an episode and rendered on the fly.

A clip starts at a frame t of an episode and takes `num_frames` frames t, t + s, t + 2s, … (stride s);
frames past the episode's end repeat its last frame (the robot holds still). For each view it gives
the RGB frames, the per-frame cameras and the action images of the end-effector poses, rendered by
`rendering.render_action_images`; and the poses themselves as 7-DoF vectors and matrices.

Datasets without calibration or poses still give clips (RGB and instruction only), flagged by
`has_actions = False`: the model trains those in `video` mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from datamodules.schema import ACTION_KEY, STATE_KEY
from rendering.cameras import Cameras
from rendering.poses import pose_from_vector
from rendering.renderer import GRIPPER_OPEN_THRESHOLD, render_action_images
from rendering.rotations import RotationFormat


class EpisodeSource(Protocol):
    """What a clip needs from a dataset (LeRobot v3.0/v2.1 or the RLBench layout)."""

    fps: int
    cameras: list[str]

    @property
    def num_episodes(self) -> int: ...

    @property
    def has_calibration(self) -> bool: ...

    def has_poses(self, key: str = STATE_KEY) -> bool: ...

    def rotation_format(self, key: str = ...) -> RotationFormat: ...

    def episode_length(self, episode: int) -> int: ...

    def instruction(self, episode: int) -> str: ...

    def poses(self, episode: int, key: str = STATE_KEY) -> np.ndarray: ...

    def cameras_of(self, episode: int, cameras: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def frames(self, episode: int, camera: str, frame_indices: np.ndarray | list[int]) -> np.ndarray: ...


@dataclass(frozen=True)
class ClipConfig:
    """Shape of a sample. `cameras` None = every camera of the dataset, in its order."""

    num_frames: int = 5
    stride: int = 4
    cameras: tuple[str, ...] | None = None
    image_size: int | None = None  # resize square; None keeps the dataset's size
    pose_key: str = STATE_KEY  # the poses drawn as action images: the measured end-effector pose
    # The gripper state drawn (B's background) and learned: the last *command* of this feature
    # (`commanded_gripper`), or None for the pose feature's own, measured openness.
    gripper_key: str | None = ACTION_KEY
    axis_length: float = 0.1
    sigma_frac: float = 0.05
    # Episodes kept decoded (at the clip's image size, uint8) per process when no on-disk frame cache
    # is attached (`datamodules.frame_cache`). Decoding a whole short episode once costs less than
    # seeking to a few frames of it for every clip; 0 decodes per clip.
    cache_episodes: int = 256


def resize_frames(frames: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 (..., 3, H, W) → uint8 (..., 3, size, size), bilinear with antialiasing; the one resize
    of training clips and of live observations, so a policy sees what the model was trained on."""
    if size is None or frames.shape[-2:] == (size, size):
        return frames
    flat = frames.reshape(-1, *frames.shape[-3:]).float()
    resized = torch.nn.functional.interpolate(flat, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8).reshape(*frames.shape[:-2], size, size)


def commanded_gripper(measured: np.ndarray, commands: np.ndarray) -> np.ndarray:
    """Per-frame gripper state as the command in force: frame 0 the measured openness thresholded at
    0.5 (at an episode's start the fingers rest fully open or closed), frame t ≥ 1 the command issued
    at frame t − 1. Why not the measured openness: fingers closed on a 4 cm cube read ≈ 0.53 open, so a
    policy that learned it and thresholds at 0.5 would command "open" while holding the cube — every
    pick fails (measured: replaying the expert's measured poses succeeds at pick_place 0/10, with the
    commanded gripper 10/10). A policy knows its last command, so it can draw the current frame alike."""
    state = np.empty(len(measured), dtype=np.float32)
    state[0] = float(measured[0] > 0.5)
    state[1:] = np.asarray(commands[:-1], dtype=np.float32)
    return state


def episode_poses(source: EpisodeSource, episode: int, config: ClipConfig) -> np.ndarray:
    """An episode's pose vectors (T, D) of `config.pose_key`, the gripper (last column) replaced by
    `commanded_gripper` when the dataset has `config.gripper_key`."""
    poses = np.array(source.poses(episode, config.pose_key), dtype=np.float32)
    if config.gripper_key is not None and source.has_poses(config.gripper_key):
        poses[:, -1] = commanded_gripper(poses[:, -1], source.poses(episode, config.gripper_key)[:, -1])
    return poses


def clip_frame_indices(start: int, length: int, num_frames: int, stride: int) -> np.ndarray:
    """Frame indices of a clip; past the end the last frame repeats."""
    return np.minimum(start + stride * np.arange(num_frames), length - 1)


class ClipDataset(torch.utils.data.Dataset):
    """Every frame of the chosen episodes is the start of one clip."""

    def __init__(self, source: EpisodeSource, episodes: list[int] | None = None, config: ClipConfig = ClipConfig()) -> None:
        self.source, self.config = source, config
        self.episodes = list(range(source.num_episodes)) if episodes is None else list(episodes)
        self.cameras = list(config.cameras or source.cameras)
        unknown = [c for c in self.cameras if c not in source.cameras]
        if unknown:
            raise ValueError(f"cameras {unknown} are not in the dataset (it has {source.cameras})")
        self.has_actions = source.has_calibration and source.has_poses(config.pose_key)
        if self.has_actions:
            self.rotation_format = source.rotation_format(config.pose_key)  # undeclared → a clear error now
        self._cache: dict[int, torch.Tensor] = {}
        self._source_size: tuple[int, int] = (0, 0)
        self.decoded = None  # a `datamodules.frame_cache.DecodedFrames` of the source, when one is attached
        lengths = np.array([source.episode_length(e) for e in self.episodes], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)])

    def _decode(self, episode: int, frames: np.ndarray) -> torch.Tensor:
        """uint8 (V, K, 3, H, W) of the given frames, resized to the clip's image size."""
        unique, inverse = np.unique(frames, return_inverse=True)
        rgb = np.stack([self.source.frames(episode, camera, unique)[inverse] for camera in self.cameras])
        self._source_size = rgb.shape[2:4]
        return resize_frames(torch.from_numpy(rgb).permute(0, 1, 4, 2, 3), self.config.image_size)

    def _decoded_episode(self, episode: int) -> torch.Tensor:
        cache = self._cache
        if episode not in cache:
            if len(cache) >= self.config.cache_episodes:
                cache.pop(next(iter(cache)))  # oldest first
            cache[episode] = self._decode(episode, np.arange(self.source.episode_length(episode)))
        return cache[episode]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(episode, start frame) of clip `index`."""
        position = int(np.searchsorted(self.starts, index, side="right") - 1)
        return self.episodes[position], index - int(self.starts[position])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        episode, start = self.locate(index)
        length = self.source.episode_length(episode)
        frames = clip_frame_indices(start, length, self.config.num_frames, self.config.stride)
        if self.decoded is not None:
            rgb = self.decoded.clip(episode, frames)
            self._source_size = self.decoded.source_size
        elif self.config.cache_episodes > 0:
            rgb = self._decoded_episode(episode)[:, frames]
        else:
            rgb = self._decode(episode, frames)
        source_height, source_width = self._source_size
        rgb = rgb.float().div_(255)  # (V, K, 3, H, W)
        height, width = rgb.shape[-2:]
        sample = {
            "rgb": rgb,
            "instruction": self.source.instruction(episode),
            "episode_index": episode,
            "frame_index": torch.from_numpy(frames),
            "has_actions": self.has_actions,
        }
        views, steps = len(self.cameras), len(frames)
        if self.has_actions:
            intrinsics, extrinsics = self.source.cameras_of(episode, self.cameras)
            cameras = Cameras(torch.from_numpy(intrinsics[:, frames]), torch.from_numpy(extrinsics[:, frames]), source_height, source_width)
            cameras = cameras.resize(height, width)
            poses = episode_poses(self.source, episode, self.config)
            vectors = torch.from_numpy(poses[frames])
            pose = pose_from_vector(vectors, self.rotation_format)
            sample["action_images"] = render_action_images(
                pose.positions, pose.rotations, pose.gripper, cameras, axis_length=self.config.axis_length, sigma_frac=self.config.sigma_frac
            )
            sample.update(
                intrinsics=cameras.intrinsics, extrinsics=cameras.extrinsics,
                positions=pose.positions, rotations=pose.rotations, gripper=pose.gripper,
                # whether the episode holds the gripper open after its first frame: pick-and-place does;
                # reaching and pushing close it at once (the simulator starts every episode open)
                gripper_opens=bool((poses[1:, -1] > GRIPPER_OPEN_THRESHOLD).any()),
            )
        else:  # video-only sample: placeholders with the right shapes keep batches uniform
            sample.update(
                action_images=torch.zeros(views, steps, 3, height, width),
                intrinsics=torch.eye(3).expand(views, steps, 3, 3).clone(),
                extrinsics=torch.eye(4).expand(views, steps, 4, 4).clone(),
                positions=torch.zeros(steps, 3), rotations=torch.eye(3).expand(steps, 3, 3).clone(), gripper=torch.zeros(steps),
                gripper_opens=False,
            )
        return sample
