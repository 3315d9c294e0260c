"""The renderer's values against SPEC §3 on hand-computed cases."""

import math

import pytest
import roma
import torch

from rendering.cameras import Cameras, intrinsics_from_fov, look_at
from rendering.renderer import overlay_action_images, render_action_images

SIZE = 64
FOCAL = 100.0
SIGMA = 0.05 * SIZE  # 3.2 px
CENTRE = (SIZE - 1) / 2  # 31.5


def camera_at_origin(frames: int = 1) -> Cameras:
    """One camera at the origin looking down +z (OpenCV), image 64², focal 100 px."""
    intrinsics = torch.tensor([[FOCAL, 0.0, CENTRE], [0.0, FOCAL, CENTRE], [0.0, 0.0, 1.0]])
    return Cameras(intrinsics.expand(1, frames, 3, 3), torch.eye(4).expand(1, frames, 4, 4), SIZE, SIZE)


def render_one(position, rotation=None, gripper=1.0, cameras=None):
    rotation = torch.eye(3) if rotation is None else rotation
    return render_action_images(
        torch.tensor([position]), rotation[None], torch.tensor([gripper]), cameras or camera_at_origin()
    )[0, 0]  # (3, H, W)


def gaussian(du: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
    return torch.exp(-(du**2 + dv**2) / (2 * SIGMA**2))


def pixel_offsets(u: float, v: float):
    rows, cols = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    return cols - u, rows - v


def test_point_at_the_image_centre_is_a_unit_gaussian():
    image = render_one([0.0, 0.0, 1.0])
    du, dv = pixel_offsets(CENTRE, CENTRE)
    assert torch.allclose(image[0], gaussian(du, dv), atol=1e-6)
    assert image[0].max() <= 1.0 and image.min() >= 0.0


def test_green_is_the_tool_x_axis_point_and_blue_the_tool_minus_z_point():
    # Identity rotation: tool +x = world +x → G at u = c + f·0.1/1; tool −z is towards the camera → B at the centre.
    image = render_one([0.0, 0.0, 1.0])
    du, dv = pixel_offsets(CENTRE + FOCAL * 0.1, CENTRE)
    assert torch.allclose(image[1], gaussian(du, dv), atol=1e-6)
    du, dv = pixel_offsets(CENTRE, CENTRE)
    blue = gaussian(du, dv)
    expected = torch.where(blue <= 0.25, torch.tensor(0.25), blue)
    assert torch.allclose(image[2], expected, atol=1e-6)


def test_closed_gripper_sets_blue_background_and_tails_to_zero():
    image = render_one([0.0, 0.0, 1.0], gripper=0.0)
    du, dv = pixel_offsets(CENTRE, CENTRE)
    blue = gaussian(du, dv)
    assert torch.allclose(image[2], torch.where(blue <= 0.25, torch.tensor(0.0), blue), atol=1e-6)
    assert image[2].max() == pytest.approx(float(blue.max()), abs=1e-6)


@pytest.mark.parametrize("gripper, background", [(0.51, 0.25), (0.5, 0.0), (1.0, 0.25), (0.0, 0.0)])
def test_gripper_threshold_is_one_half(gripper, background):
    image = render_one([0.0, 0.0, 1.0], gripper=gripper)
    assert image[2, 0, 0] == pytest.approx(background)


def test_point_half_outside_draws_only_the_visible_half():
    # Rotate the tool so G is far away; put R's centre on the left border column u = 0.
    x = -CENTRE / FOCAL
    image = render_one([x, 0.0, 1.0])
    du, dv = pixel_offsets(0.0, CENTRE)
    assert torch.allclose(image[0], gaussian(du, dv), atol=1e-6)
    full_sum = sum(math.exp(-(k**2) / (2 * SIGMA**2)) for k in range(-40, 41))
    visible_sum = sum(math.exp(-(k**2) / (2 * SIGMA**2)) for k in range(0, 41))
    row_factor = math.exp(-(0.5**2) / (2 * SIGMA**2))  # row 31 is half a pixel off v = 31.5
    assert image[0, 31].sum().item() == pytest.approx(visible_sum * row_factor, rel=1e-4)
    assert visible_sum < 0.6 * full_sum


def test_point_behind_the_camera_draws_nothing():
    image = render_one([0.0, 0.0, -1.0], gripper=1.0)
    assert image[0].abs().max() == 0.0
    assert image[1].abs().max() == 0.0
    assert torch.allclose(image[2], torch.full_like(image[2], 0.25))  # only the gripper background


def test_sigma_follows_the_smaller_image_side():
    intrinsics = torch.tensor([[FOCAL, 0.0, 47.5], [0.0, FOCAL, 31.5], [0.0, 0.0, 1.0]])
    cameras = Cameras(intrinsics.expand(1, 1, 3, 3), torch.eye(4).expand(1, 1, 4, 4), 64, 96)
    image = render_action_images(torch.tensor([[0.0, 0.0, 1.0]]), torch.eye(3)[None], torch.ones(1), cameras, sigma_frac=0.1)
    # One pixel right of the centre: exp(-0.25 / (2·6.4²)) with σ = 0.1·min(64, 96).
    assert image[0, 0, 0, 32, 47].item() == pytest.approx(math.exp(-(0.5**2 + 0.5**2) / (2 * 6.4**2)), abs=1e-6)


def test_batch_views_and_time_match_one_frame_at_a_time():
    batch, views, frames = 2, 3, 4
    eyes = torch.randn(batch, views, frames, 3) * 0.2 + torch.tensor([1.0, 0.5, 1.0])
    cameras = Cameras(intrinsics_from_fov(60.0, 32, 32, degrees=True).expand(batch, views, frames, 3, 3), look_at(eyes, torch.zeros(3)), 32, 32)
    positions = 0.1 * torch.randn(batch, frames, 3)
    rotations = roma.random_rotmat((batch, frames))
    gripper = torch.tensor([[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    images = render_action_images(positions, rotations, gripper, cameras)
    assert images.shape == (batch, views, frames, 3, 32, 32)
    for b in range(batch):
        for v in range(views):
            for t in range(frames):
                one = Cameras(cameras.intrinsics[b, v, t][None, None], cameras.extrinsics[b, v, t][None, None], 32, 32)
                single = render_action_images(positions[b, t][None], rotations[b, t][None], gripper[b, t][None], one)
                assert torch.allclose(images[b, v, t], single[0, 0], atol=1e-6)


def test_static_cameras_broadcast_over_time_and_output_size_resizes():
    cameras = camera_at_origin(frames=1)
    positions = torch.tensor([[0.0, 0.0, 1.0], [0.05, 0.0, 1.0]])
    images = render_action_images(positions, torch.eye(3).expand(2, 3, 3), torch.ones(2), cameras, height=32, width=32)
    assert images.shape == (1, 2, 3, 32, 32)
    assert images[0, 0, 0].argmax() // 32 == 15  # the centre of 64² lands on the centre of 32²


@pytest.mark.parametrize(
    "positions, rotations, gripper, frames, message",
    [
        (torch.tensor([[float("nan"), 0.0, 1.0]]), torch.eye(3)[None], torch.ones(1), 1, "positions contains NaN"),
        (torch.tensor([[float("inf"), 0.0, 1.0]]), torch.eye(3)[None], torch.ones(1), 1, "positions contains infinite"),
        (torch.tensor([[0.0, 0.0, 1.0]]), (2 * torch.eye(3))[None], torch.ones(1), 1, "rotations is not orthonormal"),
        (torch.tensor([[0.0, 0.0, 1.0]]), torch.eye(3)[None], torch.ones(2), 1, "gripper"),
        (torch.zeros(3, 3), torch.eye(3).expand(3, 3, 3), torch.ones(3), 2, "cameras have 2 frames but the trajectory has 3"),
        (torch.zeros(3, 2), torch.eye(3).expand(3, 3, 3), torch.ones(3), 1, r"positions must have shape \(\.\.\., 3\)"),
        (torch.zeros(3, 3), torch.eye(3).expand(2, 3, 3), torch.ones(3), 1, "rotations .* do not match positions"),
        (torch.zeros(1, 3), torch.eye(3)[None], torch.tensor([float("nan")]), 1, "gripper contains NaN"),
    ],
)
def test_bad_input_is_a_clear_error(positions, rotations, gripper, frames, message):
    with pytest.raises(ValueError, match=message):
        render_action_images(positions, rotations, gripper, camera_at_origin(frames))


def test_overlay_keeps_rgb_where_there_is_no_gaussian():
    image = render_one([0.0, 0.0, 1.0])
    rgb = torch.full_like(image, 0.3)
    blended = overlay_action_images(rgb, image)
    assert blended.shape == rgb.shape
    assert torch.allclose(blended[:, 0, 0], rgb[:, 0, 0])  # B's background is not painted
    assert (blended[:, 31, 31] - rgb[:, 31, 31]).abs().max() > 0.2
    with pytest.raises(ValueError, match="differ"):
        overlay_action_images(rgb[:, :10], image)
