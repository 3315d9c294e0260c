"""Input checks shared by the geometry code: each raises a `ValueError` that names the problem."""

from __future__ import annotations

import torch

RIGID_TOLERANCE = 1e-3


def check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.is_tensor(tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    # One reduction is much cheaper than an elementwise test on large images; a non-finite sum is
    # then checked element by element (a finite tensor can still overflow the sum).
    if tensor.is_floating_point() and not torch.isfinite(tensor.sum()) and not torch.isfinite(tensor).all():
        bad = "NaN" if torch.isnan(tensor).any() else "infinite"
        raise ValueError(f"{name} contains {bad} values")


def check_trailing_shape(name: str, tensor: torch.Tensor, trailing: tuple[int, ...]) -> None:
    if tensor.ndim < len(trailing) or tuple(tensor.shape[-len(trailing):]) != trailing:
        want = "(..., " + ", ".join(map(str, trailing)) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")


def check_rotation_matrix(name: str, matrix: torch.Tensor, tolerance: float = RIGID_TOLERANCE) -> None:
    check_finite(name, matrix)
    check_trailing_shape(name, matrix, (3, 3))
    eye = torch.eye(3, dtype=matrix.dtype, device=matrix.device)
    # RᵀR as products and sums, not a matmul, so an enclosing autocast cannot round it to bf16.
    gram = (matrix[..., :, :, None] * matrix[..., :, None, :]).sum(-3)
    orthogonality = (gram - eye).abs().amax() if matrix.numel() else 0.0
    if orthogonality > tolerance:
        raise ValueError(f"{name} is not orthonormal (max |RᵀR − I| = {float(orthogonality):.3g})")
    # det = (c0 × c1) · c2, much cheaper than torch.linalg.det on many tiny matrices.
    determinant = (torch.linalg.cross(matrix[..., :, 0], matrix[..., :, 1], dim=-1) * matrix[..., :, 2]).sum(-1)
    if matrix.numel() and (determinant < 0).any():
        raise ValueError(f"{name} has determinant −1: a reflection, not a rotation (a flipped axis?)")


def check_rigid_transform(name: str, transform: torch.Tensor) -> None:
    """A 4×4 rigid transform: rotation block orthonormal with det +1, last row [0, 0, 0, 1]."""
    check_finite(name, transform)
    check_trailing_shape(name, transform, (4, 4))
    last_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=transform.dtype, device=transform.device)
    if transform.numel() and (transform[..., 3, :] - last_row).abs().amax() > RIGID_TOLERANCE:
        raise ValueError(f"{name} is not rigid: its last row must be [0, 0, 0, 1]")
    try:
        check_rotation_matrix(f"rotation block of {name}", transform[..., :3, :3])
    except ValueError as error:
        raise ValueError(f"{name} is not rigid: {error}") from None


def check_intrinsics(name: str, intrinsics: torch.Tensor) -> None:
    """A pinhole K: non-zero focal lengths, last row [0, 0, 1]. Negative focal lengths are another
    convention (RLBench) and must be converted with `rendering.cameras.from_negative_focal` first."""
    check_finite(name, intrinsics)
    check_trailing_shape(name, intrinsics, (3, 3))
    if not intrinsics.numel():
        return
    last_row = torch.tensor([0.0, 0.0, 1.0], dtype=intrinsics.dtype, device=intrinsics.device)
    if (intrinsics[..., 2, :] - last_row).abs().amax() > 1e-6:
        raise ValueError(f"{name} must have last row [0, 0, 1]")
    focal = torch.stack([intrinsics[..., 0, 0], intrinsics[..., 1, 1]], -1)
    if (focal.abs() < 1e-9).any():
        raise ValueError(f"{name} is singular: a focal length is zero")
    if (focal < 0).any():
        raise ValueError(
            f"{name} has a negative focal length (RLBench convention?); convert it with "
            "rendering.cameras.from_negative_focal"
        )
