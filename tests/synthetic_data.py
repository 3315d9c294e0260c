"""A small calibrated dataset built in code (no simulator), for data-layer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from action_images.roundtrip import checkerboard_table, demo_cameras, sample_trajectory
from datamodules.lerobot_writer import Episode, LeRobotWriter
from rendering.poses import Pose, pose_to_vector
from rendering.renderer import overlay_action_images, render_action_images

CAMERAS = ("front", "side")


def synthetic_episode(length: int, size: int, instruction: str, phase: float = 0.0) -> Episode:
    positions, rotations, gripper = sample_trajectory(length)
    positions = positions + torch.tensor([phase, -phase, 0.0])
    cameras = demo_cameras(len(CAMERAS), size)
    actions = render_action_images(positions, rotations, gripper, cameras)
    background = checkerboard_table(cameras).expand_as(actions)
    rgb = overlay_action_images(background, actions)  # the "gripper" is visible where it is
    images = {c: (rgb[v].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8) for v, c in enumerate(CAMERAS)}
    state = pose_to_vector(Pose(positions, rotations, gripper), "quat_xyzw").numpy()
    return Episode(
        instruction=instruction,
        images=images,
        intrinsics={c: cameras.intrinsics[v, 0].numpy() for v, c in enumerate(CAMERAS)},
        extrinsics={c: cameras.extrinsics[v, 0].numpy() for v, c in enumerate(CAMERAS)},
        state=state,
        action=np.concatenate([state[1:], state[-1:]]),
    )


def write_synthetic_dataset(root: Path, lengths=(12, 9, 15), size: int = 32, **writer_options) -> list[Episode]:
    episodes = [synthetic_episode(n, size, ["reach the cube", "push the cube"][i % 2], phase=0.02 * i) for i, n in enumerate(lengths)]
    with LeRobotWriter(root, fps=10, cameras=list(CAMERAS), image_size=(size, size), **writer_options) as writer:
        for episode in episodes:
            writer.add(episode)
    return episodes
