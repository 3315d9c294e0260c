"""Decoder accuracy on rendered action images, its diagnostics, and its errors."""

import pytest
import torch

from rendering.cameras import Cameras
from rendering.decoder import decode_action_images, decode_action_images_paper, fit_gaussian_peaks, ray_search
from rendering.renderer import render_action_images
from rendering.rotations import geodesic_angle
from rendering.synthetic import degrade, random_rig


def render(rig, size=None):
    return render_action_images(rig.positions, rig.rotations, rig.gripper, rig.cameras)


def errors(decoded, rig):
    position_mm = ((decoded.positions - rig.positions).norm(dim=-1) * 1000).flatten()
    rotation_deg = torch.rad2deg(geodesic_angle(decoded.rotations, rig.rotations)).flatten()
    gripper = (decoded.gripper_open == (rig.gripper > 0.5)).float().mean()
    return position_mm, rotation_deg, gripper


@pytest.fixture(scope="module")
def rig2():
    return random_rig(120, views=2, size=128, seed=1)


def test_clean_round_trip_is_near_exact(rig2):
    decoded = decode_action_images(render(rig2), rig2.cameras)
    position_mm, rotation_deg, gripper = errors(decoded, rig2)
    assert position_mm.median() <= 0.1 and position_mm.quantile(0.99) <= 1.0
    assert rotation_deg.median() <= 0.1 and rotation_deg.quantile(0.99) <= 0.5
    assert gripper == 1.0
    assert decoded.confidence.all()
    assert (decoded.views_seen == 2).all()
    assert torch.allclose(decoded.axis_lengths, torch.full_like(decoded.axis_lengths, 0.1), atol=1e-3)


def test_noisy_round_trip_stays_within_millimetres(rig2):
    decoded = decode_action_images(degrade(render(rig2)), rig2.cameras)
    position_mm, _, gripper = errors(decoded, rig2)
    # At 128² (half the benchmark's resolution) the same noise costs about twice as much.
    assert position_mm.median() <= 2.0 and position_mm.quantile(0.99) <= 15.0
    assert gripper >= 0.99


def test_our_decoder_beats_the_papers_on_the_same_images(rig2):
    images = render(rig2)
    ours, _, _ = errors(decode_action_images(images, rig2.cameras), rig2)
    paper, _, paper_gripper = errors(decode_action_images_paper(images, rig2.cameras), rig2)
    assert paper.median() > 10 * ours.median()
    assert paper.median() < 20.0  # the baseline works, it is just coarser
    assert paper_gripper == 1.0


def test_a_blank_view_is_flagged_not_invented(rig2):
    images = render(rig2)
    images[:10, 1] = 0.0  # second view shows nothing for ten frames
    decoded = decode_action_images(images, rig2.cameras)
    assert not decoded.confidence[:10].any()
    assert decoded.positions[:10].isnan().all()
    assert (decoded.views_seen[:10] == 1).all()
    assert decoded.confidence[10:].all()


def test_a_blurred_axis_tip_costs_the_rotation_not_the_position(rig2):
    images = render(rig2)
    images[:10, :, :, 1] = 0.0  # the x-axis tips (G) are gone in ten frames; the position Gaussian (R) is intact
    decoded = decode_action_images(images, rig2.cameras)
    position_mm, _, _ = errors(decoded, rig2)
    assert not decoded.confidence[:10].any() and decoded.position_confidence[:10].all()
    assert position_mm[:10].max() < 0.1
    images[:10, 1] = 0.0  # and one of the two views is blank: the position is not located either
    assert not decode_action_images(images, rig2.cameras).position_confidence[:10].any()


def test_with_four_views_one_blank_view_still_decodes():
    rig = random_rig(20, views=4, size=96, seed=2)
    images = render(rig)
    images[:, 3] = 0.0
    decoded = decode_action_images(images, rig.cameras)
    position_mm, _, gripper = errors(decoded, rig)
    assert decoded.confidence.all() and position_mm.max() < 0.1 and gripper == 1.0


def test_inconsistent_views_are_refined_along_the_ray_and_flagged():
    rig = random_rig(8, views=2, size=128, seed=3)
    images = render(rig)
    shifted = images.clone()
    shifted[:, 1, :, 0] = torch.roll(images[:, 1, :, 0], shifts=(25, 25), dims=(-2, -1))  # R moves in view 2 only
    decoded = decode_action_images(shifted, rig.cameras)
    assert torch.isfinite(decoded.positions).all()
    assert not decoded.confidence.any()


def test_gaussian_fit_is_exact_when_the_border_cuts_the_tail():
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    centres = torch.tensor([[1.3, 40.7], [62.2, 0.4], [31.5, 31.5]])
    heatmaps = torch.stack([torch.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 3.2**2)) for u, v in centres])
    fit = fit_gaussian_peaks(heatmaps, nominal_sigma=3.2)
    assert fit.valid.all()
    assert torch.allclose(fit.centers, centres, atol=1e-3)
    assert torch.allclose(fit.sigma, torch.full((3,), 3.2), atol=1e-3)
    assert torch.allclose(fit.amplitude, torch.ones(3), atol=1e-3)
    empty = fit_gaussian_peaks(torch.zeros(2, 64, 64), nominal_sigma=3.2)
    assert not empty.valid.any()


def test_ray_search_finds_the_point_on_a_ray_through_it(rig2):
    images = render(rig2)[:5]
    cameras = Cameras(rig2.cameras.intrinsics[:5], rig2.cameras.extrinsics[:5], 128, 128)
    truth = rig2.positions[:5]  # (5, 1, 3)
    centre = cameras.centers[:, 0, 0]  # view 1
    direction = torch.nn.functional.normalize(truth[:, 0] - centre, dim=-1)
    depth = (truth[:, 0] - centre).norm(dim=-1)
    depths = depth[:, None] + torch.linspace(-0.2, 0.2, 81)  # 5 mm steps
    heat = images[..., :1, :, :]  # R channel only
    point, score = ray_search(heat, cameras, centre[:, None, None], direction[:, None, None], depths[:, None, None])
    # Within two 5 mm samples: depth along one ray is only as sharp as the other view sees it.
    assert (point[:, 0, 0] - truth[:, 0]).norm(dim=-1).max() < 1e-2
    assert (score > 0.9).all()


@pytest.mark.parametrize(
    "shape, views, frames, message",
    [
        ((2, 1, 4, 32, 32), 2, 1, r"shape \(\.\.\., V, T, 3, H, W\)"),
        ((3, 1, 3, 32, 32), 2, 1, "3 views of action images but cameras"),
        ((2, 5, 3, 32, 32), 2, 4, "cameras have 4 frames but the action images have 5"),
    ],
)
def test_bad_input_is_a_clear_error(shape, views, frames, message):
    cameras = Cameras(torch.eye(3).expand(views, frames, 3, 3), torch.eye(4).expand(views, frames, 4, 4), 32, 32)
    with pytest.raises(ValueError, match=message):
        decode_action_images(torch.zeros(shape), cameras)


def test_nan_images_are_refused(rig2):
    images = render(rig2)[:2]
    images[0, 0, 0, 1, 3, 3] = float("nan")
    cameras = Cameras(rig2.cameras.intrinsics[:2], rig2.cameras.extrinsics[:2], 128, 128)
    with pytest.raises(ValueError, match="action images contains NaN"):
        decode_action_images(images, cameras)
