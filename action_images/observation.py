"""Live observations → model inputs, exactly as training clips are made; plans → one action per step.

An observation is the simulator's (and a LeRobot-style robot's) dict:

| key | value |
|---|---|
| `images` | `{camera: uint8 (H, W, 3)}` RGB |
| `intrinsics` | `{camera: (3, 3)}` OpenCV K in pixels of that image |
| `extrinsics` | `{camera: (4, 4)}` camera-to-world, OpenCV |
| `ee_pose` | `(8,)` `[x, y, z, qx, qy, qz, qw, g]`, world frame, g = 1 open |
| `instruction` | the task in words |

Actions a policy returns have the `ee_pose` layout: absolute end-effector targets (SPEC §2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch
from torch import Tensor, nn

from datamodules.clips import resize_frames
from rendering.cameras import Cameras

POSE_SIZE = 8


@dataclass
class Views:
    """One time step of the chosen cameras, at the model's image size."""

    rgb: torch.Tensor  # (V, 3, H, W) float in [0, 1]
    cameras: Cameras  # batch (V,)
    pose: torch.Tensor  # (8,) float32
    instruction: str


def observation_views(observation: dict, cameras: list[str], image_size: int | None) -> Views:
    """Pick `cameras` from an observation and resize them (and their intrinsics) like training clips."""
    for key in ("images", "intrinsics", "extrinsics", "ee_pose"):
        if key not in observation:
            raise KeyError(f"observation has no {key!r} (it has {sorted(observation)})")
    missing = [c for c in cameras if c not in observation["images"] or c not in observation["intrinsics"] or c not in observation["extrinsics"]]
    if missing:
        raise KeyError(f"observation lacks cameras {missing} (images: {sorted(observation['images'])}); the model needs {cameras}")
    images = np.stack([np.asarray(observation["images"][c]) for c in cameras])
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"observation images must be uint8 (H, W, 3) per camera, got {images.dtype} {images.shape[1:]}")
    pose = torch.as_tensor(np.asarray(observation["ee_pose"], dtype=np.float32))
    if pose.shape != (POSE_SIZE,) or not torch.isfinite(pose).all():
        raise ValueError(f"observation ee_pose must be 8 finite numbers [x y z qx qy qz qw g], got {pose.tolist()}")
    height, width = images.shape[1:3]
    rgb = resize_frames(torch.from_numpy(images).permute(0, 3, 1, 2), image_size)
    intrinsics = torch.as_tensor(np.stack([observation["intrinsics"][c] for c in cameras]), dtype=torch.float32)
    extrinsics = torch.as_tensor(np.stack([observation["extrinsics"][c] for c in cameras]), dtype=torch.float32)
    view_cameras = Cameras(intrinsics, extrinsics, height, width).resize(*rgb.shape[-2:])
    return Views(rgb.float() / 255, view_cameras, pose, str(observation.get("instruction", "")))


def with_gripper_command(pose: Tensor, last_command: float | None) -> Tensor:
    """The current pose (8,) with the gripper state the models learned (`datamodules.clips.commanded_gripper`):
    the policy's last gripper command, or at an episode's start the measured openness thresholded at 0.5."""
    pose = pose.clone()
    pose[7] = float(pose[7] > 0.5) if last_command is None else float(last_command)
    return pose


def interpolate_waypoints(current: Tensor, waypoints: Tensor, stride: int) -> Tensor:
    """One absolute target per env step between chunk waypoints that are `stride` steps apart.

    `current` (8,) is the pose now, `waypoints` (C, 8) the predicted chunk, both
    `[x y z qx qy qz qw g]`. Returns (C·stride, 8): step j (1-based) lies j/stride of the way through
    its segment — positions linearly, rotations by slerp (shortest arc) — and its gripper is the
    segment's end waypoint's, thresholded at 0.5 to 1.0 (open) or 0.0 (closed). The last row is the
    last waypoint.
    """
    poses = torch.cat([current[None], waypoints]).float()
    start, end = poses[:-1], poses[1:]  # (C, 8) each
    alpha = torch.arange(1, stride + 1, dtype=poses.dtype) / stride  # (S,)
    positions = start[:, None, :3] + alpha[None, :, None] * (end[:, None, :3] - start[:, None, :3])  # (C, S, 3)
    q_start, q_end = nn.functional.normalize(start[:, 3:7], dim=-1), nn.functional.normalize(end[:, 3:7], dim=-1)
    quaternions = roma.unitquat_slerp(q_start, q_end, alpha).transpose(0, 1)  # (C, S, 4)
    gripper = (end[:, None, 7:] > 0.5).to(poses.dtype).expand(-1, stride, 1)  # (C, S, 1)
    return torch.cat([positions, quaternions, gripper], -1).flatten(0, 1)


def check_views(rgb: Tensor, views: int, size: int) -> None:
    """(B, V, 3, H, W) in [0, 1] with the model's V, H and W, finite — else a ValueError."""
    if rgb.ndim != 5 or rgb.shape[1:] != (views, 3, size, size):
        raise ValueError(f"rgb must be (B, {views} views, 3, {size}, {size}), got {tuple(rgb.shape)}")
    if not torch.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 1:
        raise ValueError("rgb must be finite floats in [0, 1]")
