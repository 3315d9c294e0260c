import math

import pytest
import roma
import torch

from rendering.cameras import (
    Cameras,
    from_mujoco,
    from_negative_focal,
    intrinsics_from_fov,
    look_at,
    opencv_to_opengl,
    opengl_to_opencv,
)


def random_cameras(batch=(4,), size=(48, 64), seed=0) -> Cameras:
    generator = torch.Generator().manual_seed(seed)
    eyes = torch.randn(*batch, 3, generator=generator) + torch.tensor([0.0, 0.0, 2.0])
    targets = 0.1 * torch.randn(*batch, 3, generator=generator)
    intrinsics = torch.tensor([[50.0, 0.0, 31.0], [0.0, 55.0, 24.0], [0.0, 0.0, 1.0]]).expand(*batch, 3, 3)
    return Cameras(intrinsics, look_at(eyes, targets), *size)


def test_project_unproject_round_trip():
    cameras = random_cameras()
    points = 0.3 * torch.randn(4, 10, 3)
    pixels, depth = cameras.project(points)
    assert (depth > 0).all()
    assert torch.allclose(cameras.unproject(pixels, depth), points, atol=1e-5)


def test_look_at_centres_the_target_with_y_down():
    intrinsics = intrinsics_from_fov(60.0, 48, 64, degrees=True)
    cameras = Cameras(intrinsics, look_at(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])), 48, 64)
    pixels, depth = cameras.project(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.5], [0.0, 0.5, 1.0]]))
    assert torch.allclose(pixels[0], torch.tensor([31.5, 23.5]), atol=1e-5)  # centre = ((W-1)/2, (H-1)/2)
    assert pixels[1, 1] < 23.5  # world up is image up: smaller v
    assert pixels[2, 0] > 31.5  # looking along −x with z up, world +y is image right
    assert torch.allclose(depth[0], torch.tensor(2.0))


def test_intrinsics_from_fov_spans_the_image():
    intrinsics = intrinsics_from_fov(math.pi / 2, 100, 100)
    assert torch.allclose(intrinsics[0, 0], torch.tensor(50.0))
    assert torch.allclose(intrinsics[:2, 2], torch.tensor([49.5, 49.5]))


def test_opengl_round_trip_and_projection_matches_the_gl_formula():
    rotation = roma.random_rotmat()
    extrinsics_gl = torch.eye(4)
    extrinsics_gl[:3, :3], extrinsics_gl[:3, 3] = rotation, torch.tensor([0.2, -0.1, 0.5])
    assert torch.allclose(opencv_to_opengl(opengl_to_opencv(extrinsics_gl)), extrinsics_gl, atol=1e-6)
    # A point 2 m in front of the GL camera (its −z) and a bit up (+y).
    point_gl = torch.tensor([0.1, 0.3, -2.0])
    point_world = rotation @ point_gl + extrinsics_gl[:3, 3]
    intrinsics = intrinsics_from_fov(50.0, 60, 80, degrees=True)
    cameras = Cameras(intrinsics, opengl_to_opencv(extrinsics_gl), 60, 80)
    pixels, depth = cameras.project(point_world[None])
    focal, cx, cy = intrinsics[0, 0], intrinsics[0, 2], intrinsics[1, 2]
    expected = torch.stack([cx + focal * 0.1 / 2.0, cy - focal * 0.3 / 2.0])  # GL up is image up
    assert torch.allclose(pixels[0], expected, atol=1e-4)
    assert torch.allclose(depth, torch.tensor([2.0]), atol=1e-5)


def test_from_mujoco_uses_the_gl_camera_frame():
    # A MuJoCo camera at (0, 0, 1) with identity orientation looks straight down −z.
    cameras = from_mujoco(torch.tensor([0.0, 0.0, 1.0]), torch.eye(3).flatten(), 45.0, 32, 32)
    pixels, depth = cameras.project(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0]]))
    assert torch.allclose(pixels[0], torch.tensor([15.5, 15.5]), atol=1e-5)
    assert torch.allclose(depth[0], torch.tensor(1.0))
    assert pixels[1, 1] < 15.5  # camera y up → a point at +y is higher in the image


def test_rlbench_negative_focal_lengths_convert_without_moving_pixels():
    intrinsics_rl = torch.tensor([[-110.0, 0.0, 63.5], [0.0, -110.0, 63.5], [0.0, 0.0, 1.0]])
    extrinsics = look_at(torch.tensor([1.0, 0.5, 1.5]), torch.zeros(3))
    points = 0.2 * torch.randn(20, 3)
    camera_points = (points - extrinsics[:3, 3]) @ extrinsics[:3, :3]  # world → camera, rows
    raw = (camera_points @ intrinsics_rl.T)
    expected = raw[:, :2] / raw[:, 2:]
    intrinsics, converted = from_negative_focal(intrinsics_rl, extrinsics)
    assert (intrinsics[0, 0] > 0) and (intrinsics[1, 1] > 0)
    pixels, _ = Cameras(intrinsics, converted, 128, 128).project(points)
    assert torch.allclose(pixels, expected, atol=1e-3)
    with pytest.raises(ValueError, match="exactly one negative focal"):
        from_negative_focal(torch.tensor([[-110.0, 0, 63.5], [0, 110.0, 63.5], [0, 0, 1]]), extrinsics)


def test_negative_focal_is_refused_without_conversion():
    with pytest.raises(ValueError, match="negative focal length.*from_negative_focal"):
        Cameras(torch.tensor([[-100.0, 0, 10], [0, -100.0, 10], [0, 0, 1]]), torch.eye(4), 20, 20)


def test_crop_and_resize_keep_pixels_on_the_same_scene_points():
    cameras = random_cameras()
    points = 0.3 * torch.randn(4, 6, 3)
    pixels, _ = cameras.project(points)
    cropped, _ = cameras.crop(top=5, left=7, height=30, width=40).project(points)
    assert torch.allclose(cropped, pixels - torch.tensor([7.0, 5.0]), atol=1e-4)
    resized_cameras = cameras.resize(24, 128)
    resized, _ = resized_cameras.project(points)
    scale = torch.tensor([128 / 64, 24 / 48])
    assert torch.allclose(resized, (pixels + 0.5) * scale - 0.5, atol=1e-4)
    assert (resized_cameras.height, resized_cameras.width) == (24, 128)


def test_plucker_rays_are_unit_directions_with_orthogonal_moments():
    cameras = random_cameras(batch=(2, 3), size=(6, 8))
    rays = cameras.plucker()
    assert rays.shape == (2, 3, 6, 6, 8)
    directions, moments = rays[..., :3, :, :], rays[..., 3:, :, :]
    assert torch.allclose(directions.norm(dim=-3), torch.ones(2, 3, 6, 8), atol=1e-5)
    assert (directions * moments).sum(-3).abs().max() < 1e-5
    # Relative to its own pose a camera sits at the origin: its moments vanish and its centre ray is +z.
    reference = cameras.extrinsics[0, 0]
    own = cameras.select(0, 0).select(0, 0).plucker(reference=reference)
    assert own[3:].abs().max() < 1e-5
    centre = Cameras(cameras.intrinsics[0, 0], cameras.extrinsics[0, 0], 6, 8)
    centre_ray = centre.rays(torch.tensor([[31.0, 24.0]]))[1]  # the principal point
    assert torch.allclose(own[:3, 0, 0], centre.plucker(reference=reference)[:3, 0, 0])
    assert torch.allclose(reference[:3, :3].T @ centre_ray[0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_moving_cameras_broadcast_per_frame():
    cameras = random_cameras(batch=(2, 5))  # views × frames
    points = torch.randn(5, 4, 3).unsqueeze(0)  # one set of points per frame
    pixels, depth = cameras.project(points)
    assert pixels.shape == (2, 5, 4, 2) and depth.shape == (2, 5, 4)


@pytest.mark.parametrize(
    "intrinsics, extrinsics, message",
    [
        (torch.eye(3), torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0])), "not rigid.*not orthonormal"),
        (torch.eye(3), torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0])), "reflection"),
        (torch.eye(3), torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]), "last row"),
        (torch.eye(3), torch.full((4, 4), float("nan")), "NaN"),
        (torch.diag(torch.tensor([0.0, 1.0, 1.0])), torch.eye(4), "singular"),
        (torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 1]]), torch.eye(4), "last row"),
        (torch.eye(3).expand(3, 3, 3), torch.eye(4).expand(2, 4, 4), "do not match"),
    ],
)
def test_bad_cameras_are_clear_errors(intrinsics, extrinsics, message):
    with pytest.raises(ValueError, match=message):
        Cameras(intrinsics, extrinsics, 10, 10)
