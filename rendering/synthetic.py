"""Random poses seen by random calibrated cameras, for decoder benchmarks and tests.

Poses are drawn in a cube workspace; each view is a camera `distance` metres from the workspace
centre, above it, looking at a point near the centre. Cameras are re-drawn until all three action
points of the pose (SPEC §3) project inside the image in front of the camera, so every Gaussian's
peak is visible (its tail may still be cut by the border).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import roma
import torch

from rendering.cameras import Cameras, intrinsics_from_fov, look_at
from rendering.renderer import action_points


@dataclass(frozen=True)
class RandomRig:
    positions: torch.Tensor  # (N, 1, 3): one frame per pose
    rotations: torch.Tensor  # (N, 1, 3, 3)
    gripper: torch.Tensor  # (N, 1)
    cameras: Cameras  # batch (N, V, 1)


def random_rig(
    num_poses: int,
    views: int,
    size: int,
    workspace: float = 0.6,
    workspace_center: tuple[float, float, float] = (0.0, 0.0, 0.4),
    distance: tuple[float, float] = (0.6, 1.8),
    fovy_degrees: float = 60.0,
    axis_length: float = 0.1,
    seed: int = 0,
    max_tries: int = 100,
) -> RandomRig:
    generator = torch.Generator().manual_seed(seed)
    center = torch.tensor(workspace_center)
    positions = center + (torch.rand(num_poses, 3, generator=generator) - 0.5) * workspace
    rotations = roma.unitquat_to_rotmat(torch.nn.functional.normalize(torch.randn(num_poses, 4, generator=generator), dim=-1))
    gripper = (torch.rand(num_poses, generator=generator) > 0.5).float()
    points = action_points(positions, rotations, axis_length)  # (N, 3, 3)
    intrinsics = intrinsics_from_fov(fovy_degrees, size, size, degrees=True)

    extrinsics = torch.zeros(num_poses, views, 4, 4)
    missing = torch.ones(num_poses, views, dtype=torch.bool)
    for _ in range(max_tries):
        elevation = torch.deg2rad(15 + 60 * torch.rand(num_poses, views, generator=generator))
        azimuth = 2 * math.pi * torch.rand(num_poses, views, generator=generator)
        direction = torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], -1)
        radius = distance[0] + (distance[1] - distance[0]) * torch.rand(num_poses, views, 1, generator=generator)
        target = center + 0.1 * torch.randn(num_poses, views, 3, generator=generator)
        candidate = look_at(center + radius * direction, target)
        pixels, depth = Cameras(intrinsics, candidate, size, size).project(points.unsqueeze(1))
        inside = ((pixels >= 0) & (pixels <= size - 1)).all(-1) & (depth > 0.1)
        accept = missing & inside.all(-1)
        extrinsics[accept] = candidate[accept]
        missing &= ~accept
        if not missing.any():
            break
    if missing.any():
        raise RuntimeError(f"random_rig: no camera sees every point of {int(missing.any(-1).sum())} poses")
    cameras = Cameras(intrinsics.expand(num_poses, views, 1, 3, 3), extrinsics.unsqueeze(2), size, size)
    return RandomRig(positions.unsqueeze(1), rotations.unsqueeze(1), gripper.unsqueeze(1), cameras)


def degrade(images: torch.Tensor, noise_std: float = 0.05, blur_sigma: float = 1.0, seed: int = 0) -> torch.Tensor:
    """What a generator produces is never clean: a 3×3 Gaussian blur, then additive Gaussian noise,
    clipped to [0, 1]. Images (..., 3, H, W)."""
    generator = torch.Generator().manual_seed(seed)
    flat = images.reshape(-1, *images.shape[-3:])
    blurred = kornia.filters.gaussian_blur2d(flat, (3, 3), (blur_sigma, blur_sigma))
    noisy = blurred + noise_std * torch.randn(blurred.shape, generator=generator)
    return noisy.clamp(0, 1).reshape(images.shape)
