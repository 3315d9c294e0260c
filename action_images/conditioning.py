"""Camera conditioning of a canvas (SPEC §6): per-pixel Plücker rays for every latent frame.

Each canvas slot (view, segment, latent frame) gets the rays of its view's camera at the pixel frame
that latent frame stands for, at latent resolution, expressed in the frame of view 1's first camera
(so the conditioning does not depend on where the world origin is). Action segments reuse their
view's cameras: an action image is pixel-aligned with its RGB frame.
"""

from __future__ import annotations

import torch

from action_images.canvas import CanvasLayout
from rendering.cameras import Cameras


def latent_to_pixel_frame(latent_frame: int, temporal_factor: int, pixel_frames: int) -> int:
    """The pixel frame a latent frame stands for. Wan's causal VAE encodes the first frame alone and
    then `temporal_factor` frames per latent frame: latent k ≥ 1 covers frames (k−1)·f+1 … k·f; we
    take the last of them."""
    return min(latent_frame * temporal_factor, pixel_frames - 1)


def canvas_plucker(layout: CanvasLayout, cameras: Cameras, latent_height: int, latent_width: int, temporal_factor: int = 1) -> torch.Tensor:
    """Plücker rays of a canvas, (B, 6, layout.length, h, w).

    `cameras` has batch shape (B, V, T) with T pixel frames per segment (a static camera may use T = 1).
    """
    batch, views, frames = cameras.batch_shape[-3:]
    if views != layout.views:
        raise ValueError(f"the canvas has {layout.views} views but the cameras have {views}")
    reference = cameras.extrinsics.expand(*cameras.batch_shape, 4, 4)[:, 0, 0]  # (B, 4, 4): view 1, frame 1
    small = cameras.resize(latent_height, latent_width)
    rays = small.plucker(reference=reference[:, None, None])  # (B, V, T, 6, h, w)
    index = torch.tensor([latent_to_pixel_frame(slot.frame, temporal_factor, frames) for slot in layout.slots])
    per_slot = rays[:, torch.tensor([slot.view for slot in layout.slots]), index]  # (B, length, 6, h, w)
    return per_slot.transpose(1, 2).contiguous()
