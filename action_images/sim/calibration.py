"""Checking the recorded calibration against the rendered images.

The EE position, projected with an observation's intrinsics and extrinsics, must land on the gripper
in that camera's image: within `tolerance` pixels of a pixel that `ManipulationEnv.segmentation` marks
as gripper. A wrong convention (camera-to-world vs world-to-camera, OpenGL vs OpenCV, pixel centres)
moves the projection by many pixels, so this catches calibration bugs end to end.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch

from action_images.sim.scene import EE_MARKER_RADIUS
from rendering.cameras import Cameras


class Sighting(str, Enum):
    HIT = "hit"  # projection within tolerance of a gripper pixel
    MISS = "miss"  # projection elsewhere, and nothing hides the EE there
    OUTSIDE = "outside"  # the EE projects outside the image or behind the camera
    OCCLUDED = "occluded"  # no gripper pixel visible, or another object's surface in front of the EE there


def project_ee(obs: dict, camera: str, image_size: int) -> tuple[np.ndarray, float]:
    """Pixel (u, v) and depth of the observation's EE position in `camera`, from the recorded calibration."""
    cameras = Cameras(
        torch.from_numpy(obs["intrinsics"][camera]), torch.from_numpy(obs["extrinsics"][camera]), image_size, image_size
    )
    position = torch.from_numpy(obs["ee_pose"][:3]).reshape(1, 3)
    pixels, depth = cameras.project(position)
    return pixels[0].numpy(), float(depth[0])


def classify(pixel: np.ndarray, depth: float, mask: np.ndarray, depth_image: np.ndarray | None = None,
             tolerance: float = 2.0, occlusion_margin: float = EE_MARKER_RADIUS) -> Sighting:
    """Where a projected point (u, v) at `depth` falls relative to a gripper mask (H, W).

    With the rendered `depth_image` (H, W, metres along the optical axis), a point whose pixel shows a
    surface more than `occlusion_margin` in front of it is hidden (e.g. the EE inside a grasped bar)
    and counts as occluded rather than missed; the default margin, the EE marker's radius, is where
    such a surface hides the marker's centre too.
    """
    height, width = mask.shape
    inside = depth > 0 and -0.5 <= pixel[0] <= width - 0.5 and -0.5 <= pixel[1] <= height - 0.5
    if not inside:
        return Sighting.OUTSIDE
    rows, columns = np.nonzero(mask)
    if len(rows) == 0:
        return Sighting.OCCLUDED
    distance_squared = (columns - pixel[0]) ** 2 + (rows - pixel[1]) ** 2
    if distance_squared.min() <= tolerance**2:
        return Sighting.HIT
    if depth_image is not None:
        row = min(height - 1, max(0, round(float(pixel[1]))))
        column = min(width - 1, max(0, round(float(pixel[0]))))
        if depth_image[row, column] < depth - occlusion_margin:
            return Sighting.OCCLUDED
    return Sighting.MISS


def check_frame(env, obs: dict, tolerance: float = 2.0, ee_marker: bool = True) -> dict[str, Sighting]:
    """The sighting of the EE in every camera of `env` for the current state (which `obs` describes)."""
    size = env.config.image_size
    result = {}
    for camera in env.camera_names:
        pixel, depth = project_ee(obs, camera, size)
        mask, depth_image = env.segmentation(camera, ee_marker=ee_marker), env.depth(camera)
        result[camera] = classify(pixel, depth, mask, depth_image, tolerance)
    return result
