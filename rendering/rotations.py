"""Rotation formats and conversions (SPEC §2).

Internally a rotation is a 3×3 matrix. Every other format is converted explicitly, by name:

| format      | shape | meaning                                                                  |
|-------------|-------|--------------------------------------------------------------------------|
| `matrix`    | 3×3   | rotation matrix, columns are the rotated frame's axes in the parent frame |
| `quat_xyzw` | 4     | unit quaternion, scalar last (ROS, SciPy, roma, RLBench)                  |
| `quat_wxyz` | 4     | unit quaternion, scalar first (MuJoCo, Isaac)                             |
| `euler_xyz` | 3     | extrinsic x-y-z angles in radians, R = Rz·Ry·Rx                           |
| `rotvec`    | 3     | axis × angle (radians)                                                    |
| `rot6d`     | 6     | first two *rows* of R, row-major (pytorch3d's and Diffusion Policy's)     |

A reader meeting any other name fails with a `ValueError` that lists these.
"""

from __future__ import annotations

from enum import Enum

import roma
import torch

from rendering.validation import check_finite, check_rotation_matrix


class RotationFormat(str, Enum):
    MATRIX = "matrix"
    QUAT_XYZW = "quat_xyzw"
    QUAT_WXYZ = "quat_wxyz"
    EULER_XYZ = "euler_xyz"
    ROTVEC = "rotvec"
    ROT6D = "rot6d"

    @classmethod
    def parse(cls, value: "str | RotationFormat") -> "RotationFormat":
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(f.value for f in cls)
            raise ValueError(f"unknown rotation format {value!r}; known formats: {known}") from None

    @property
    def size(self) -> int:
        """Number of values of one rotation in this format, flattened."""
        return {"matrix": 9, "quat_xyzw": 4, "quat_wxyz": 4, "euler_xyz": 3, "rotvec": 3, "rot6d": 6}[self.value]


def to_matrix(values: torch.Tensor, rotation_format: "str | RotationFormat") -> torch.Tensor:
    """Convert rotations given in `rotation_format` to matrices of shape (..., 3, 3)."""
    fmt = RotationFormat.parse(rotation_format)
    check_finite("rotation", values)
    if fmt is RotationFormat.MATRIX:
        check_rotation_matrix("rotation matrix", values)
        return values
    _check_last_dim(values, fmt)
    if fmt in (RotationFormat.QUAT_XYZW, RotationFormat.QUAT_WXYZ):
        quat = values if fmt is RotationFormat.QUAT_XYZW else roma.quat_wxyz_to_xyzw(values)
        norm = quat.norm(dim=-1, keepdim=True)
        if (norm < 1e-6).any():
            raise ValueError(f"rotation ({fmt.value}): zero-norm quaternion cannot be a rotation")
        return roma.unitquat_to_rotmat(quat / norm)
    if fmt is RotationFormat.EULER_XYZ:
        return roma.euler_to_rotmat("xyz", values)
    if fmt is RotationFormat.ROTVEC:
        return roma.rotvec_to_rotmat(values)
    # rot6d: rows r1, r2 of R; Gram-Schmidt on them as columns gives Rᵀ.
    rows = values.unflatten(-1, (2, 3))
    if (torch.linalg.cross(rows[..., 0, :], rows[..., 1, :]).norm(dim=-1) < 1e-6).any():
        raise ValueError("rotation (rot6d): the two rows are parallel or zero, not a rotation")
    return roma.special_gramschmidt(rows.transpose(-1, -2)).transpose(-1, -2)


def from_matrix(matrix: torch.Tensor, rotation_format: "str | RotationFormat") -> torch.Tensor:
    """Convert rotation matrices (..., 3, 3) to `rotation_format` (matrices stay (..., 3, 3))."""
    fmt = RotationFormat.parse(rotation_format)
    check_rotation_matrix("rotation matrix", matrix)
    if fmt is RotationFormat.MATRIX:
        return matrix
    if fmt in (RotationFormat.QUAT_XYZW, RotationFormat.QUAT_WXYZ):
        quat = roma.rotmat_to_unitquat(matrix)
        # One sign per rotation: make the scalar part non-negative so round trips are stable.
        quat = torch.where(quat[..., 3:] < 0, -quat, quat)
        return quat if fmt is RotationFormat.QUAT_XYZW else roma.quat_xyzw_to_wxyz(quat)
    if fmt is RotationFormat.EULER_XYZ:
        return roma.rotmat_to_euler("xyz", matrix)
    if fmt is RotationFormat.ROTVEC:
        return roma.rotmat_to_rotvec(matrix)
    return matrix[..., :2, :].flatten(-2)


def convert(values: torch.Tensor, source: "str | RotationFormat", target: "str | RotationFormat") -> torch.Tensor:
    return from_matrix(to_matrix(values, source), target)


def geodesic_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians of the rotation taking matrix `a` to matrix `b` (..., 3, 3) → (...).
    Through the rotation vector (via a quaternion), which stays accurate at small angles where
    acos of the trace does not."""
    return roma.rotmat_to_rotvec(a.transpose(-1, -2) @ b).norm(dim=-1)


def _check_last_dim(values: torch.Tensor, fmt: RotationFormat) -> None:
    if values.shape[-1:] != (fmt.size,):
        raise ValueError(
            f"rotation ({fmt.value}) must have last dimension {fmt.size}, got shape {tuple(values.shape)}"
        )
