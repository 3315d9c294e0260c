"""Look at a dataset: each view's RGB with its action images overlaid, as an mp4 and a PNG sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datamodules.clips import EpisodeSource
from datamodules.datamodule import open_source
from datamodules.media import crop_to_even, write_image, write_video
from datamodules.schema import STATE_KEY
from rendering.cameras import Cameras
from rendering.poses import pose_from_vector
from rendering.renderer import overlay_action_images, render_action_images


def episode_overlay(source: EpisodeSource, episode: int, pose_key: str = STATE_KEY) -> torch.Tensor:
    """(V, T, 3, H, W) floats: the RGB of every view, with action images over it where the dataset
    has poses and calibration."""
    if not 0 <= episode < source.num_episodes:
        raise IndexError(f"episode {episode} does not exist; the dataset has {source.num_episodes}")
    length = source.episode_length(episode)
    rgb = np.stack([source.frames(episode, camera, np.arange(length)) for camera in source.cameras])
    rgb = torch.from_numpy(rgb).permute(0, 1, 4, 2, 3).float() / 255
    if not (source.has_calibration and source.has_poses(pose_key)):
        return rgb
    intrinsics, extrinsics = source.cameras_of(episode)
    cameras = Cameras(torch.from_numpy(intrinsics), torch.from_numpy(extrinsics), rgb.shape[-2], rgb.shape[-1])
    pose = pose_from_vector(torch.from_numpy(source.poses(episode, pose_key)), source.rotation_format(pose_key))
    action_images = render_action_images(pose.positions, pose.rotations, pose.gripper, cameras)
    return overlay_action_images(rgb, action_images)


def visualize(dataset: str | Path, episode: int, out: str | Path, fps: int | None = None) -> tuple[Path, Path]:
    """Write `out` (mp4: views side by side) and a PNG contact sheet beside it (views × 8 frames)."""
    source = open_source(dataset)
    frames = episode_overlay(source, episode)  # (V, T, 3, H, W)
    views, length = frames.shape[:2]
    out = Path(out)
    tiled = torch.cat(list(frames), -1)  # (T, 3, H, V·W)
    write_video(out, crop_to_even(tiled.permute(0, 2, 3, 1).numpy()), fps=fps or source.fps)
    picked = np.linspace(0, length - 1, min(8, length)).round().astype(int)
    sheet = torch.cat([torch.cat(list(frames[v, picked]), -1) for v in range(views)], -2)
    sheet_path = out.with_suffix(".png")
    write_image(sheet_path, sheet.permute(1, 2, 0).numpy())
    return out, sheet_path
