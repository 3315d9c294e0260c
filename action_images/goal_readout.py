"""The goal readout, a training aid shared by both models: from the tokens of the current image, per-pixel
logits of where the end effector is at the end of the clip (or the edited target frame), scored by
cross-entropy against that pixel. It teaches the given image what the instruction chooses (BENCHMARKS.md,
"Grounding found")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rendering.cameras import Cameras
from rendering.decoder import triangulate


def last_pose_pixels(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the end effector is at a clip's last frame, in each view's first frame: the row-major
    pixel index (B, V) and whether it counts (B, V): in front of the camera, inside the image, and the
    sample has actions. Pixel centres are integers (SPEC §2), so the nearest pixel is the rounded one."""
    height, width = batch["rgb"].shape[-2:]
    views = batch["rgb"].shape[1]
    cameras = Cameras(batch["intrinsics"][:, :, 0], batch["extrinsics"][:, :, 0], height, width)
    goal = batch["positions"][:, -1].to(cameras.extrinsics)[:, None, None].expand(-1, views, 1, 3)
    pixels, depth = cameras.project(goal)
    column, row = pixels[..., 0, 0].round().long(), pixels[..., 0, 1].round().long()
    has_actions = torch.as_tensor(batch["has_actions"], dtype=torch.bool).to(column.device)
    valid = (depth[..., 0] > 0) & (column >= 0) & (column < width) & (row >= 0) & (row < height) & has_actions[:, None]
    return row.clamp(0, height - 1) * width + column.clamp(0, width - 1), valid


def pixel_hits(scores: torch.Tensor, target: torch.Tensor, width: int, radius: float = 1.5) -> torch.Tensor:
    """Share of rows of per-pixel scores (N, H·W) whose best pixel lies within `radius` of `target` (N,)."""
    best = scores.argmax(-1)
    return ((best // width - target // width).float().hypot((best % width - target % width).float()) <= radius).float().mean()


def goal_readout_loss(maps: torch.Tensor, goal_pixels: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Cross-entropy of per-pixel readout logits (B, V, H, W) against each view's goal pixel (B, V)
    (row-major), and the share of views read out within 1.5 px (`pixel_hits`), over the `valid` views."""
    valid = torch.ones_like(goal_pixels, dtype=torch.bool) if valid is None else valid.to(maps.device).bool()
    if not valid.any():
        return {"goal_readout": maps.sum() * 0, "goal_hit": torch.tensor(float("nan"))}
    scores, target = maps.flatten(2)[valid], goal_pixels.to(maps.device)[valid]
    return {"goal_readout": F.cross_entropy(scores, target), "goal_hit": pixel_hits(scores.detach(), target, maps.shape[-1])}


def readout_point(log_probs: torch.Tensor, cameras: Cameras, radius: float = 1.5, min_mass: float = 0.3) -> tuple[torch.Tensor, int]:
    """The world point (3,) a goal readout names, and how many views name it: per view (log-probabilities
    (V, H, W) over its pixels) the probability-weighted mean pixel within `radius` of the likeliest one,
    triangulated over the views that put at least `min_mass` there (NaN with fewer than two).
    `cameras`: the V views, batch shape (V, 1)."""
    probs = log_probs.exp().flatten(1)  # (V, H·W)
    grid = cameras.pixel_grid().to(probs)
    near = (grid[None] - grid[probs.argmax(-1)][:, None]).norm(dim=-1) <= radius
    near_probs = probs * near
    mass = near_probs.sum(-1)
    centres = near_probs @ grid / mass[:, None].clamp(min=1e-12)  # (V, 2) as (u, v)
    weights = torch.where(mass >= min_mass, mass, 0.0)
    point = triangulate(centres[:, None, None], weights[:, None, None], cameras)[0, 0]
    return point, int((weights > 0).sum())


def anchor_chunk(chunk: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """A chunk of poses (C, 8) moved so that its last position is `end` (3,): waypoint k of C shifts by
    k/C of the last one's correction, so the path bends toward `end` from where the chunk starts."""
    share = torch.arange(1, len(chunk) + 1, dtype=chunk.dtype, device=chunk.device)[:, None] / len(chunk)
    moved = chunk.clone()
    moved[:, :3] += share * (end.to(chunk) - chunk[-1, :3])
    return moved


def anchor_on_readout(chunk: torch.Tensor, log_probs: torch.Tensor, cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A chunk of poses (C, ≥ 3) anchored (`anchor_chunk`) on the point a goal readout (V, H, W) names
    (`readout_point`), and that point; the chunk unchanged and None when fewer than two views name one."""
    end, views_found = readout_point(log_probs, cameras)
    if views_found < 2:
        return chunk, None
    return anchor_chunk(chunk, end), end
