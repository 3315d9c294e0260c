"""7-DoF end-effector poses and their flat vector forms (SPEC §2).

A pose vector is `[x, y, z, rotation (in a declared format), gripper]`: 8 values with `quat_xyzw`
(RLBench's `actions.npy`), 7 with `euler_xyz` or `rotvec`, 10 with `rot6d`. Gripper openness is in
[0, 1] with 1 = open; a dataset with another range converts through `gripper_from_range`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rendering.rotations import RotationFormat, from_matrix, to_matrix
from rendering.validation import check_finite


@dataclass(frozen=True)
class Pose:
    positions: torch.Tensor  # (..., 3) metres, world frame
    rotations: torch.Tensor  # (..., 3, 3)
    gripper: torch.Tensor  # (...,) openness in [0, 1], 1 = open


def pose_from_vector(vector: torch.Tensor, rotation_format: str | RotationFormat) -> Pose:
    """Split (..., 3 + rotation size + 1) vectors into a `Pose`."""
    fmt = RotationFormat.parse(rotation_format)
    check_finite("pose vector", vector)
    width = 3 + fmt.size + 1
    if vector.shape[-1] != width:
        raise ValueError(f"a pose vector with {fmt.value} rotation has {width} values, got shape {tuple(vector.shape)}")
    rotation = vector[..., 3 : 3 + fmt.size]
    if fmt is RotationFormat.MATRIX:
        rotation = rotation.unflatten(-1, (3, 3))
    return Pose(vector[..., :3], to_matrix(rotation, fmt), vector[..., -1])


def pose_to_vector(pose: Pose, rotation_format: str | RotationFormat) -> torch.Tensor:
    fmt = RotationFormat.parse(rotation_format)
    rotation = from_matrix(pose.rotations, fmt)
    if fmt is RotationFormat.MATRIX:
        rotation = rotation.flatten(-2)
    return torch.cat([pose.positions, rotation, pose.gripper.unsqueeze(-1)], -1)


def gripper_from_range(values: torch.Tensor, closed: float, opened: float) -> torch.Tensor:
    """Map a dataset's gripper values to openness in [0, 1]: `closed` → 0, `opened` → 1 (e.g. a
    [-1, 1] command with closed = -1, or a 0.08 m width with closed = 0, opened = 0.08)."""
    if closed == opened:
        raise ValueError("gripper range: closed and opened values must differ")
    check_finite("gripper values", values)
    return ((values - closed) / (opened - closed)).clamp(0, 1)
