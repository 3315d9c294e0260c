"""Render a sample trajectory into action images, decode it back and report the errors.

A self-check of the action-image representation that needs no data and no model: people see the
Gaussians over a synthetic table in an mp4 and a PNG contact sheet, and read the round-trip errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch
from rich.console import Console
from rich.table import Table

from datamodules.media import write_image, write_video
from rendering.cameras import Cameras, intrinsics_from_fov, look_at
from rendering.decoder import decode_action_images
from rendering.renderer import overlay_action_images, render_action_images
from rendering.rotations import geodesic_angle


@dataclass(frozen=True)
class RoundTripConfig:
    out: Path = Path("demo_output")
    size: int = 256
    frames: int = 41
    views: int = 3
    axis_length: float = 0.1
    fps: int = 10


def sample_trajectory(frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A descending helix above the table: the tool points down, yaws and tilts; the gripper closes
    half-way. Returns positions (T, 3), rotations (T, 3, 3), gripper (T,)."""
    s = torch.linspace(0, 1, frames)
    angle = 1.5 * math.pi * s
    positions = torch.stack([0.15 * torch.cos(angle), 0.15 * torch.sin(angle), 0.35 - 0.2 * s], -1)
    pointing_down = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # tool z = world −z
    yaw = roma.rotvec_to_rotmat(torch.stack([torch.zeros_like(s), torch.zeros_like(s), angle], -1))
    tilt = roma.rotvec_to_rotmat(torch.stack([0.3 * torch.sin(2 * angle), torch.zeros_like(s), torch.zeros_like(s)], -1))
    rotations = yaw @ tilt @ pointing_down
    gripper = (s < 0.5).float()
    return positions, rotations, gripper


def demo_cameras(views: int, size: int) -> Cameras:
    """`views` cameras on a circle 1.1 m around the workspace, 0.8 m up, looking at its centre."""
    azimuth = torch.linspace(0, 2 * math.pi, views + 1)[:-1] + 0.4
    eyes = torch.stack([1.1 * torch.cos(azimuth), 1.1 * torch.sin(azimuth), torch.full_like(azimuth, 0.8)], -1)
    extrinsics = look_at(eyes, torch.tensor([0.0, 0.0, 0.2]).expand(views, 3))
    intrinsics = intrinsics_from_fov(45.0, size, size, degrees=True).expand(views, 3, 3)
    return Cameras(intrinsics.unsqueeze(1), extrinsics.unsqueeze(1), size, size)  # (V, 1): static


def checkerboard_table(cameras: Cameras, square: float = 0.1) -> torch.Tensor:
    """Each view's picture of a checkerboard table at z = 0 under a plain sky, (*batch, 3, H, W)."""
    origins, directions = cameras.rays(cameras.pixel_grid().expand(*cameras.batch_shape, -1, -1))
    distance = -origins[..., 2] / directions[..., 2].clamp(max=-1e-6)
    hit = origins + distance.unsqueeze(-1) * directions
    parity = (torch.floor(hit[..., 0] / square) + torch.floor(hit[..., 1] / square)) % 2
    table = torch.where(parity.bool().unsqueeze(-1), torch.tensor([0.55, 0.5, 0.45]), torch.tensor([0.35, 0.32, 0.3]))
    sky = torch.tensor([0.75, 0.8, 0.85])
    image = torch.where((directions[..., 2] < -1e-3).unsqueeze(-1), table, sky)
    return image.transpose(-1, -2).unflatten(-1, (cameras.height, cameras.width))


def run_roundtrip(config: RoundTripConfig) -> dict[str, float]:
    console = Console()
    positions, rotations, gripper = sample_trajectory(config.frames)
    cameras = demo_cameras(config.views, config.size)
    images = render_action_images(positions, rotations, gripper, cameras, axis_length=config.axis_length)
    decoded = decode_action_images(images, cameras, axis_length=config.axis_length)

    position_error_mm = (decoded.positions - positions).norm(dim=-1) * 1000
    rotation_error_deg = torch.rad2deg(geodesic_angle(decoded.rotations, rotations))
    figures = {
        "frames": config.frames,
        "views": config.views,
        "image_size": config.size,
        "position_error_mm_median": position_error_mm.nanmedian().item(),
        "position_error_mm_max": position_error_mm.nan_to_num(float("inf")).max().item(),
        "rotation_error_deg_median": rotation_error_deg.nanmedian().item(),
        "rotation_error_deg_max": rotation_error_deg.nan_to_num(float("inf")).max().item(),
        "gripper_accuracy": (decoded.gripper_open == (gripper > 0.5)).float().mean().item(),
        "confident_fraction": decoded.confidence.float().mean().item(),
    }
    table = Table(title=f"render → decode, {config.views} views × {config.frames} frames at {config.size}²")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)

    background = checkerboard_table(cameras).expand(config.views, config.frames, 3, config.size, config.size)
    overlay = overlay_action_images(background, images)
    # Video: top row the overlays, bottom row the raw action images, one column per view.
    rows = torch.cat([torch.cat(list(overlay), -1), torch.cat(list(images), -1)], -2)  # (T, 3, 2H, V·W)
    config.out.mkdir(parents=True, exist_ok=True)
    write_video(config.out / "roundtrip.mp4", rows.permute(0, 2, 3, 1).numpy(), fps=config.fps)
    picked = np.linspace(0, config.frames - 1, min(6, config.frames)).round().astype(int)
    sheet = torch.cat([torch.cat(list(overlay[v, picked]), -1) for v in range(config.views)], -2)
    write_image(config.out / "roundtrip.png", sheet.permute(1, 2, 0).numpy())
    console.print(f"wrote {config.out / 'roundtrip.mp4'} and {config.out / 'roundtrip.png'}")
    return figures
