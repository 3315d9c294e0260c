"""The action image (SPEC §3): a 7-DoF pose drawn as three Gaussians per camera.

| channel | 3D point             | meaning                                   |
|---------|----------------------|-------------------------------------------|
| R       | p                    | gripper position                          |
| G       | p + ℓ·R·[1, 0, 0]    | tool +x axis point                        |
| B       | p + ℓ·R·[0, 0, −1]   | tool −z axis point, plus the gripper state |

Each point is drawn in each view as a 2D Gaussian with peak 1 and σ = sigma_frac · min(H, W) pixels.
In B only, every pixel ≤ 0.25 becomes 0.25 if the gripper is open (g > 0.5), else 0.
(The paper's text swaps G and B; the released code and checkpoint use this table, and so do we.)
"""

from __future__ import annotations

import torch

from rendering.cameras import Cameras
from rendering.validation import check_finite, check_rotation_matrix, check_trailing_shape

GRIPPER_BACKGROUND = 0.25  # B's background when the gripper is open
GRIPPER_OPEN_THRESHOLD = 0.5


def action_points(positions: torch.Tensor, rotations: torch.Tensor, axis_length: float = 0.1) -> torch.Tensor:
    """The three 3D points of each pose, (..., 3 channels, 3 xyz), in channel order R, G, B."""
    tool_x = rotations[..., :, 0]
    tool_minus_z = -rotations[..., :, 2]
    return torch.stack([positions, positions + axis_length * tool_x, positions + axis_length * tool_minus_z], -2)


def gaussian_sigma(height: int, width: int, sigma_frac: float = 0.05) -> float:
    return sigma_frac * min(height, width)


def render_action_images(
    positions: torch.Tensor,
    rotations: torch.Tensor,
    gripper: torch.Tensor,
    cameras: Cameras,
    height: int | None = None,
    width: int | None = None,
    axis_length: float = 0.1,
    sigma_frac: float = 0.05,
) -> torch.Tensor:
    """Render poses into per-view action images.

    Args:
        positions: (..., T, 3) gripper positions in the world frame, metres.
        rotations: (..., T, 3, 3) gripper rotation matrices (use `rendering.rotations.to_matrix`).
        gripper: (..., T) openness in [0, 1], 1 = open.
        cameras: batch shape (..., V, T) or (..., V, 1) for static cameras (broadcast against the poses).
        height, width: output size; default the cameras' image size (intrinsics must match it).
    Returns:
        (..., V, T, 3, H, W) float images in [0, 1].
    """
    height, width = height or cameras.height, width or cameras.width
    if (height, width) != (cameras.height, cameras.width):
        cameras = cameras.resize(height, width)
    _check_pose_inputs(positions, rotations, gripper, cameras)

    points = action_points(positions, rotations, axis_length)  # (..., T, 3, 3)
    pixels, depth = cameras.project(points.unsqueeze(-4))  # cameras (..., V, T) × points (..., 1, T, 3, 3)
    sigma = gaussian_sigma(height, width, sigma_frac)
    # Separable Gaussians: one row profile and one column profile per point, their outer product is
    # the image. A point behind the camera gets zero profiles, so it draws nothing.
    visible = (depth > 1e-6).to(pixels.dtype)
    columns = torch.arange(width, dtype=pixels.dtype, device=pixels.device)
    rows = torch.arange(height, dtype=pixels.dtype, device=pixels.device)
    profile_x = torch.exp(-0.5 * ((columns - pixels[..., 0:1]) / sigma) ** 2) * visible.unsqueeze(-1)
    profile_y = torch.exp(-0.5 * ((rows - pixels[..., 1:2]) / sigma) ** 2)
    images = profile_y.unsqueeze(-1) * profile_x.unsqueeze(-2)  # (..., V, T, 3, H, W)

    # B's background, in place: values ≤ 0.25 → 0, then → 0.25 where the gripper is open.
    blue = images[..., 2, :, :]
    torch.nn.functional.threshold_(blue, GRIPPER_BACKGROUND, 0.0)
    open_background = (gripper > GRIPPER_OPEN_THRESHOLD).to(images.dtype) * GRIPPER_BACKGROUND  # (..., T)
    blue.clamp_(min=open_background.unsqueeze(-2)[..., None, None])
    return images


def overlay_action_images(rgb: torch.Tensor, action_images: torch.Tensor, alpha: float = 0.8) -> torch.Tensor:
    """Blend action images onto RGB for people to look at (not the model's input).

    Both are (..., 3, H, W) floats in [0, 1]. B's gripper background is removed first, so only the
    three Gaussians are painted, each in its own colour.
    """
    if rgb.shape != action_images.shape:
        raise ValueError(f"overlay: RGB {tuple(rgb.shape)} and action images {tuple(action_images.shape)} differ")
    heat = action_images.clone()
    heat[..., 2, :, :] = ((heat[..., 2, :, :] - GRIPPER_BACKGROUND) / (1 - GRIPPER_BACKGROUND)).clamp(min=0)
    weight = alpha * heat.amax(dim=-3, keepdim=True)
    colour = heat / heat.amax(dim=-3, keepdim=True).clamp(min=1e-6)
    return (rgb * (1 - weight) + colour * weight).clamp(0, 1)


def _check_pose_inputs(positions: torch.Tensor, rotations: torch.Tensor, gripper: torch.Tensor, cameras: Cameras) -> None:
    check_finite("positions", positions)
    check_trailing_shape("positions", positions, (3,))
    check_rotation_matrix("rotations", rotations)
    check_finite("gripper", gripper)
    frames = positions.shape[-2] if positions.ndim >= 2 else None
    if rotations.shape[:-2] != positions.shape[:-1]:
        raise ValueError(f"rotations {tuple(rotations.shape)} do not match positions {tuple(positions.shape)}")
    if gripper.shape != positions.shape[:-1]:
        raise ValueError(f"gripper {tuple(gripper.shape)} does not match positions {tuple(positions.shape)}")
    if frames is None or len(cameras.batch_shape) < 2:
        raise ValueError("positions must be (..., T, 3) and cameras (..., V, T): a view and a time dimension")
    camera_frames = cameras.batch_shape[-1]
    if camera_frames not in (1, frames):
        raise ValueError(f"cameras have {camera_frames} frames but the trajectory has {frames}")
    try:
        torch.broadcast_shapes(cameras.batch_shape[:-2], positions.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"camera batch {tuple(cameras.batch_shape[:-2])} does not match pose batch {tuple(positions.shape[:-2])}"
        ) from None
