"""The decoder (SPEC §4): action images of several views → 7-DoF poses with a confidence per frame.

Per view and channel, the Gaussian's centre is found to sub-pixel precision by a weighted
least-squares fit of log-intensity, ln I = α·r² + β·x + γ·y + δ, on the pixels above a threshold in a
window around the peak. A sampled Gaussian is exact under this model, so clean images decode exactly
even when the border cuts the tail; weights I² make it the usual maximum-likelihood approximation
under additive noise. Then, per channel:

1. least-squares triangulation of the views' rays, weighted by each fit's confidence (its peak) and
   re-weighted by 1/depth² so that it approximates the reprojection error;
2. a search along the best view's ray maximising the product of the heatmaps sampled bilinearly in all
   views (the paper's decoder). Bilinear sampling cannot place a peak to better than a fraction of a
   pixel, so its point replaces the least-squares one only where the views disagree (a reprojection
   residual above `refine_residual_px`), i.e. where a generated heatmap is off;
3. rotation from x̂ = (G − p)/|G − p| and ẑ = (p − B)/|p − B|, projected onto SO(3) by SVD;
4. gripper openness from B's background: mean of its low pixels over the views, divided by 0.25.

A frame is confident when each point is seen in ≥ 2 views, both decoded axes are within
`axis_tolerance` of the tool-axis length and the reprojection residual is small; its position alone is
confident when the R point is seen in ≥ 2 views with a small residual (a blurred axis tip then costs the
rotation, not the position). Points seen in fewer than two views are NaN: the decoder does not invent a
pose; the policy layer decides what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import roma
import torch
import torch.nn.functional as F

from rendering.cameras import Cameras
from rendering.renderer import GRIPPER_BACKGROUND, GRIPPER_OPEN_THRESHOLD, gaussian_sigma
from rendering.validation import check_finite

# Fit thresholds per channel (R, G, B): B's floor must clear the 0.25 gripper background.
FIT_FLOOR = (0.1, 0.1, 0.35)
FIT_RELATIVE = 0.2  # pixels below this fraction of the window's maximum are left out
MIN_FIT_PIXELS = 6


@dataclass(frozen=True)
class GaussianFit:
    """Fitted Gaussians, one per image: centres (..., 2) as (u, v) pixels, peak and σ (...)."""

    centers: torch.Tensor
    amplitude: torch.Tensor
    sigma: torch.Tensor
    valid: torch.Tensor


@dataclass(frozen=True)
class DecodedActions:
    positions: torch.Tensor  # (..., T, 3), NaN where not seen in two views
    rotations: torch.Tensor  # (..., T, 3, 3), NaN where undetermined
    gripper: torch.Tensor  # (..., T) openness in [0, 1] (continuous)
    gripper_open: torch.Tensor  # (..., T) bool, gripper > 0.5
    confidence: torch.Tensor  # (..., T) bool: the frame can be executed
    position_confidence: torch.Tensor  # (..., T) bool: its position alone can (the R point seen well, axes aside)
    points: torch.Tensor  # (..., T, 3, 3): the triangulated R, G, B points
    views_seen: torch.Tensor  # (..., T, 3) views in which each point was found
    axis_lengths: torch.Tensor  # (..., T, 2) |G − p| and |p − B|
    residual_px: torch.Tensor  # (..., T) largest reprojection residual over points and views


def fit_gaussian_peaks(
    heatmaps: torch.Tensor, nominal_sigma: float, floor: torch.Tensor | float = 0.1, window_sigmas: float = 2.5
) -> GaussianFit:
    """Fit one isotropic Gaussian per heatmap (..., H, W); `floor` broadcasts to (...)."""
    height, width = heatmaps.shape[-2:]
    batch = heatmaps.shape[:-2]
    flat = heatmaps.reshape(-1, height, width)
    floor = torch.as_tensor(floor, dtype=heatmaps.dtype).expand(batch).reshape(-1)
    half = math.ceil(window_sigmas * nominal_sigma)

    # Coarse peak from the two marginals: robust to noise, and exact enough to centre a window.
    center = torch.stack([_marginal_peak(flat.sum(-2)), _marginal_peak(flat.sum(-1))], -1)
    fit = None
    for _ in range(2):  # second pass re-centres the window on the first fit
        fit = _fit_window(flat, center.round(), half, nominal_sigma, floor)
        center = torch.where(fit.valid.unsqueeze(-1), fit.centers.clamp(-half, max(height, width) + half), center)
    assert fit is not None
    return GaussianFit(
        fit.centers.reshape(*batch, 2), fit.amplitude.reshape(batch), fit.sigma.reshape(batch), fit.valid.reshape(batch)
    )


def _marginal_peak(marginal: torch.Tensor) -> torch.Tensor:
    smooth = F.avg_pool1d(marginal.unsqueeze(1), 5, stride=1, padding=2, count_include_pad=False).squeeze(1)
    return smooth.argmax(-1).to(marginal.dtype)


def _fit_window(flat: torch.Tensor, center: torch.Tensor, half: int, sigma0: float, floor: torch.Tensor) -> GaussianFit:
    n, height, width = flat.shape
    offsets = torch.arange(-half, half + 1, device=flat.device)
    cols = center[:, 0:1].long() + offsets  # (n, P)
    rows = center[:, 1:2].long() + offsets
    col_ok, row_ok = (cols >= 0) & (cols < width), (rows >= 0) & (rows < height)
    patch = flat.gather(1, rows.clamp(0, height - 1).unsqueeze(-1).expand(-1, -1, width))
    patch = patch.gather(2, cols.clamp(0, width - 1).unsqueeze(1).expand(-1, patch.shape[1], -1))  # (n, P, P)
    inside = row_ok.unsqueeze(-1) & col_ok.unsqueeze(1)

    threshold = torch.maximum(floor, FIT_RELATIVE * (patch * inside).amax((-1, -2)))
    use = inside & (patch > threshold[:, None, None])
    patch = patch.double()
    weights = torch.where(use, patch**2, 0.0)
    log_values = torch.where(use, patch.clamp(min=1e-12).log(), 0.0)

    # Moments Σ w·xᵃ·yᵇ from two matrix products with power tables (coordinates in units of σ0).
    x = offsets.double() / sigma0
    powers = torch.stack([x**k for k in range(5)], -1)  # (P, 5)
    moments = powers.T @ weights @ powers  # (n, 5, 5): [b, a] = Σ w yᵇ xᵃ
    log_moments = powers[:, :3].T @ (weights * log_values) @ powers[:, :3]
    m, lm = moments, log_moments
    normal = torch.stack(
        [
            torch.stack([m[:, 0, 4] + 2 * m[:, 2, 2] + m[:, 4, 0], m[:, 0, 3] + m[:, 2, 1], m[:, 1, 2] + m[:, 3, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
            torch.stack([m[:, 0, 3] + m[:, 2, 1], m[:, 0, 2], m[:, 1, 1], m[:, 0, 1]], -1),
            torch.stack([m[:, 1, 2] + m[:, 3, 0], m[:, 1, 1], m[:, 2, 0], m[:, 1, 0]], -1),
            torch.stack([m[:, 0, 2] + m[:, 2, 0], m[:, 0, 1], m[:, 1, 0], m[:, 0, 0]], -1),
        ],
        -2,
    )
    rhs = torch.stack([lm[:, 0, 2] + lm[:, 2, 0], lm[:, 0, 1], lm[:, 1, 0], lm[:, 0, 0]], -1)
    count = use.sum((-1, -2))
    enough = count >= MIN_FIT_PIXELS
    eye = torch.eye(4, dtype=torch.float64, device=flat.device)
    solution = torch.linalg.solve(torch.where(enough[:, None, None], normal, eye) + 1e-12 * eye, rhs.unsqueeze(-1)).squeeze(-1)
    alpha, beta, gamma, delta = solution.unbind(-1)
    valid = enough & (alpha < -1e-6) & torch.isfinite(solution).all(-1)
    alpha = torch.where(valid, alpha, -0.5)
    du, dv = -beta / (2 * alpha), -gamma / (2 * alpha)
    centers = center + sigma0 * torch.stack([du, dv], -1).to(flat.dtype)
    log_peak = delta - (beta**2 + gamma**2) / (4 * alpha)
    amplitude = torch.where(valid, log_peak.clamp(max=20).exp(), 0.0).to(flat.dtype)
    sigma = (sigma0 * torch.sqrt(-0.5 / alpha)).to(flat.dtype)
    return GaussianFit(centers, amplitude, sigma, valid)


def triangulate(pixels: torch.Tensor, weights: torch.Tensor, cameras: Cameras, iterations: int = 2) -> torch.Tensor:
    """Weighted least-squares intersection of rays.

    pixels (..., V, T, N, 2), weights (..., V, T, N) (0 = not seen), cameras batch (..., V, T).
    Returns points (..., T, N, 3): argmin Σ_v w_v/d_v² · |(I − d̂d̂ᵀ)(X − o_v)|², the ray-distance form of
    the reprojection error (d_v the depth of X in view v, refreshed each iteration).
    """
    origins, directions = cameras.rays(pixels)
    origins, directions = origins.double(), directions.double()
    weights = weights.double()
    projector = torch.eye(3, dtype=torch.float64) - directions.unsqueeze(-1) * directions.unsqueeze(-2)
    scale = torch.ones_like(weights)
    points = None
    for _ in range(iterations):
        w = (weights * scale)[..., None, None]
        lhs = (w * projector).sum(-5)
        rhs = (w * projector @ origins.unsqueeze(-1)).sum(-5)
        solvable = (weights > 0).sum(-3) >= 2
        eye = torch.eye(3, dtype=torch.float64)
        lhs = torch.where(solvable[..., None, None], lhs, eye)
        points = torch.linalg.solve(lhs + 1e-12 * eye, rhs).squeeze(-1)
        points = torch.where(solvable.unsqueeze(-1), points, torch.nan)
        depth = ((points.unsqueeze(-4) - origins) * directions).sum(-1)
        scale = 1 / depth.clamp(min=1e-3).nan_to_num(1.0) ** 2
    return points.to(pixels.dtype)


def sample_heatmaps(heatmaps: torch.Tensor, cameras: Cameras, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of heatmaps (..., V, T, C, H, W) at the projections of world points
    (..., T, C, S, 3) → (..., V, T, C, S); 0 outside an image or behind a camera."""
    height, width = heatmaps.shape[-2:]
    pixels, depth = cameras.unsqueeze(-1).project(points.unsqueeze(-5))  # (..., V, T, C, S, 2)
    grid = torch.stack([2 * pixels[..., 0] / (width - 1) - 1, 2 * pixels[..., 1] / (height - 1) - 1], -1)
    grid = torch.where((depth > 1e-6).unsqueeze(-1), grid, torch.full_like(grid, 2.0))  # behind → outside
    flat_maps = heatmaps.reshape(-1, 1, height, width)
    flat_grid = grid.expand(*heatmaps.shape[:-2], grid.shape[-2], 2).reshape(-1, 1, grid.shape[-2], 2)
    samples = F.grid_sample(flat_maps, flat_grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return samples.reshape(*heatmaps.shape[:-2], grid.shape[-2])


def ray_search(
    heatmaps: torch.Tensor, cameras: Cameras, origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise the product of the views' heatmaps along rays.

    heatmaps (..., V, T, C, H, W); origins, directions (..., T, C, 3); depths (..., T, C, S) candidate
    distances along each ray. Returns the best points (..., T, C, 3), with a parabolic sub-sample
    refinement of the log-score, and the best score (product of heatmaps).
    """
    candidates = origins.unsqueeze(-2) + depths.unsqueeze(-1) * directions.unsqueeze(-2)  # (..., T, C, S, 3)
    log_score = sample_heatmaps(heatmaps, cameras, candidates).clamp(min=1e-6).log().sum(-4)  # (..., T, C, S)
    best = log_score.argmax(-1, keepdim=True)
    last = depths.shape[-1] - 1
    left, right = (best - 1).clamp(0, last), (best + 1).clamp(0, last)
    f0, fl, fr = (log_score.gather(-1, i) for i in (best, left, right))
    curvature = fl - 2 * f0 + fr
    shift = torch.where(curvature < -1e-12, 0.5 * (fl - fr) / curvature.clamp(max=-1e-12), 0.0).clamp(-0.5, 0.5)
    step = depths.gather(-1, right) - depths.gather(-1, left)
    best_depth = depths.gather(-1, best) + shift * torch.where(right - left == 2, step / 2, 0.0)
    points = origins + best_depth * directions
    return points, f0.squeeze(-1).exp()


def gripper_from_background(blue: torch.Tensor, seen: torch.Tensor, low: float = 0.3) -> torch.Tensor:
    """Openness from B's background: mean of B's low pixels per view divided by 0.25, averaged over
    the views that saw the frame. blue (..., V, T, H, W), seen (..., V, T) → (..., T) in [0, 1]."""
    low_pixels = blue < low
    low_sum = torch.where(low_pixels, blue, 0.0).sum((-1, -2))
    per_view = low_sum / low_pixels.sum((-1, -2)).clamp(min=1) / GRIPPER_BACKGROUND
    seen = seen.to(blue.dtype)
    return ((per_view * seen).sum(-2) / seen.sum(-2).clamp(min=1)).clamp(0, 1)


def rotations_from_points(points: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from the R, G, B points (..., 3, 3); NaN where undetermined."""
    position, tool_x_point, tool_minus_z_point = points.unbind(-2)
    x_axis = F.normalize(tool_x_point - position, dim=-1)
    z_axis = F.normalize(position - tool_minus_z_point, dim=-1)
    y_axis = F.normalize(torch.linalg.cross(z_axis, x_axis, dim=-1), dim=-1)
    frame = torch.stack([x_axis, y_axis, z_axis], -1)
    defined = torch.isfinite(frame).all(-1).all(-1) & (y_axis.norm(dim=-1) > 0.5)
    eye = torch.eye(3, dtype=points.dtype).expand_as(frame)
    rotations = roma.special_procrustes(torch.where(defined[..., None, None], frame, eye))
    return torch.where(defined[..., None, None], rotations, torch.nan)


def decode_action_images(
    images: torch.Tensor,
    cameras: Cameras,
    axis_length: float = 0.1,
    sigma_frac: float = 0.05,
    axis_tolerance: float = 0.25,
    refine_residual_px: float = 2.0,
    search_range: float = 0.1,
    search_samples: int = 65,
) -> DecodedActions:
    """Decode action images (..., V, T, 3, H, W) seen by `cameras` (batch (..., V, T) or (..., V, 1)).

    `axis_tolerance` is the relative error allowed on the decoded axis lengths; `refine_residual_px`
    the reprojection residual above which the ray search replaces the least-squares point; the search
    covers ±`search_range` metres around it with `search_samples` samples.
    """
    cameras = _check_decoder_inputs(images, cameras)
    height, width = images.shape[-2:]
    sigma = gaussian_sigma(height, width, sigma_frac)
    floor = torch.tensor(FIT_FLOOR, dtype=images.dtype)
    fit = fit_gaussian_peaks(images, sigma, floor=floor)  # (..., V, T, 3)
    weights = torch.where(fit.valid, fit.amplitude.clamp(0, 1), 0.0)

    points = triangulate(fit.centers, weights, cameras)  # (..., T, 3, 3)
    residual = _reprojection_residual(points, fit, cameras)  # (..., T, 3)

    disagree = (residual > refine_residual_px) & torch.isfinite(points).all(-1)
    if disagree.any():  # ray search along the best view's ray where the views disagree
        best_view = weights.argmax(-3, keepdim=True)  # (..., 1, T, 3)
        origins, directions = cameras.rays(fit.centers)
        index = best_view.unsqueeze(-1).expand(*best_view.shape, 3)
        origin, direction = origins.gather(-4, index).squeeze(-4), directions.gather(-4, index).squeeze(-4)
        center_depth = ((points - origin) * direction).sum(-1, keepdim=True).nan_to_num(1.0)
        offsets = torch.linspace(-search_range, search_range, search_samples, dtype=images.dtype)
        heat = _heatmaps_without_background(images)
        searched, _ = ray_search(heat, cameras, origin, direction, (center_depth + offsets).clamp(min=1e-3))
        points = torch.where(disagree.unsqueeze(-1), searched, points)
        residual = torch.where(disagree, _reprojection_residual(points, fit, cameras), residual)

    views_seen = fit.valid.sum(-3)  # (..., T, 3)
    seen = fit.valid.any(-1)  # (..., V, T): the view shows this frame's action image
    gripper = gripper_from_background(images[..., 2, :, :], seen)
    axis_lengths = _axis_lengths(points)
    residual = residual.nan_to_num(float("inf"))
    located = (views_seen >= 2) & (residual <= 4 * refine_residual_px)  # (..., T, 3) per point
    confidence = located.all(-1) & ((axis_lengths - axis_length).abs() <= axis_tolerance * axis_length).all(-1)
    return _decoded(points, gripper, confidence, located[..., 0], views_seen, residual.amax(-1))


def decode_action_images_paper(
    images: torch.Tensor,
    cameras: Cameras,
    axis_length: float = 0.1,
    near: float = 0.2,
    far: float = 3.0,
    num_samples: int = 512,
) -> DecodedActions:
    """The paper's decoder, kept as a baseline: the weighted centroid of each heatmap in the *first*
    view defines a ray; `num_samples` depths in [near, far] along it are scored by the product of all
    views' bilinearly sampled heatmaps; the best sample is the point. No least squares, no sub-sample."""
    cameras = _check_decoder_inputs(images, cameras)
    heat = _heatmaps_without_background(images)
    first = heat[..., 0, :, :, :, :]  # (..., T, 3, H, W)
    # Pixels under a tenth of the peak are left out, else noise over the whole image drags the centroid.
    first = torch.where(first >= 0.1 * first.amax((-1, -2), keepdim=True), first, 0.0)
    height, width = images.shape[-2:]
    total = first.sum((-1, -2)).clamp(min=1e-12)
    u = (first.sum(-2) * torch.arange(width, dtype=images.dtype)).sum(-1) / total
    v = (first.sum(-1) * torch.arange(height, dtype=images.dtype)).sum(-1) / total
    origin, direction = cameras.select(-2, 0).rays(torch.stack([u, v], -1))  # (..., T, 3, 3)
    depths = torch.linspace(near, far, num_samples, dtype=images.dtype).expand(*origin.shape[:-1], num_samples)
    candidates = origin.unsqueeze(-2) + depths.unsqueeze(-1) * direction.unsqueeze(-2)
    score = sample_heatmaps(heat, cameras, candidates).prod(-4)  # (..., T, 3, S)
    best_score, best = score.max(-1, keepdim=True)
    points = origin + depths.gather(-1, best) * direction
    found = best_score.squeeze(-1) > 0
    points = torch.where(found.unsqueeze(-1), points, torch.nan)
    seen = (heat.amax((-1, -2)) > 0.1).any(-1)
    gripper = gripper_from_background(images[..., 2, :, :], seen)
    views = (heat.amax((-1, -2)) > 0.1).sum(-3)
    return _decoded(points, gripper, found.all(-1), found[..., 0], views, torch.zeros_like(points[..., 0, 0]))


def _axis_lengths(points: torch.Tensor) -> torch.Tensor:
    """|G − p| and |p − B| of the R, G, B points (..., 3, 3) → (..., 2)."""
    position = points[..., 0, :]
    return torch.stack([(points[..., 1, :] - position).norm(dim=-1), (position - points[..., 2, :]).norm(dim=-1)], -1)


def _decoded(points, gripper, confidence, position_confidence, views_seen, residual_px) -> DecodedActions:
    return DecodedActions(
        positions=points[..., 0, :],
        rotations=rotations_from_points(points),
        gripper=gripper,
        gripper_open=gripper > GRIPPER_OPEN_THRESHOLD,
        confidence=confidence,
        position_confidence=position_confidence,
        points=points,
        views_seen=views_seen,
        axis_lengths=_axis_lengths(points),
        residual_px=residual_px,
    )


def _heatmaps_without_background(images: torch.Tensor) -> torch.Tensor:
    """R and G as they are; B with its gripper background (≤ 0.25) removed."""
    blue = ((images[..., 2:3, :, :] - GRIPPER_BACKGROUND) / (1 - GRIPPER_BACKGROUND)).clamp(min=0)
    return torch.cat([images[..., :2, :, :], blue], -3)


def _reprojection_residual(points: torch.Tensor, fit: GaussianFit, cameras: Cameras) -> torch.Tensor:
    """Largest pixel distance, over the views that saw it, between each point's projection and the
    fitted centre: (..., T, C)."""
    projected, _ = cameras.project(points.unsqueeze(-4).nan_to_num(0.0))
    distance = (projected - fit.centers).norm(dim=-1)
    distance = torch.where(fit.valid, distance, 0.0).amax(-3)
    return torch.where(torch.isfinite(points).all(-1), distance, torch.nan)


def _check_decoder_inputs(images: torch.Tensor, cameras: Cameras) -> Cameras:
    check_finite("action images", images)
    if images.ndim < 5 or images.shape[-3] != 3:
        raise ValueError(f"action images must have shape (..., V, T, 3, H, W), got {tuple(images.shape)}")
    views, frames = images.shape[-5], images.shape[-4]
    if len(cameras.batch_shape) < 2 or cameras.batch_shape[-2] != views:
        raise ValueError(f"{views} views of action images but cameras have batch shape {tuple(cameras.batch_shape)}")
    if cameras.batch_shape[-1] not in (1, frames):
        raise ValueError(f"cameras have {cameras.batch_shape[-1]} frames but the action images have {frames}")
    height, width = images.shape[-2:]
    if (height, width) != (cameras.height, cameras.width):
        cameras = cameras.resize(height, width)
    return cameras
