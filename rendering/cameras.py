"""Batched pinhole cameras in the OpenCV convention (SPEC §2), and converters from other conventions.

Convention, the only one used inside the project:
- `intrinsics` K, (..., 3, 3), in pixels; the centre of the top-left pixel is (0, 0), so an image of
  width W spans u ∈ [-0.5, W - 0.5] and its centre is at (W - 1) / 2.
- `extrinsics` T_wc, (..., 4, 4), **camera-to-world**; the camera looks down +z, x right, y down.
- Cameras may move: the batch shape is usually (..., V, T) — per view, per frame.

Converters from the conventions the project meets: OpenGL / MuJoCo cameras (look down −z, y up)
and RLBench (negative focal lengths). Each has a round-trip test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from kornia.geometry.camera.perspective import project_points, unproject_points
from kornia.geometry.linalg import inverse_transformation, transform_points

from rendering.validation import check_finite, check_intrinsics, check_rigid_transform, check_trailing_shape

# Flips y and z of the camera frame: OpenGL/MuJoCo (−z forward, y up) ↔ OpenCV (+z forward, y down).
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def invert_rigid(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid 4×4 transforms of any batch shape."""
    flat = transform.reshape(-1, 4, 4)
    return inverse_transformation(flat).reshape(transform.shape)


@dataclass(frozen=True)
class Cameras:
    """A batch of OpenCV pinhole cameras sharing one image size."""

    intrinsics: torch.Tensor  # (..., 3, 3) K in pixels
    extrinsics: torch.Tensor  # (..., 4, 4) camera-to-world
    height: int
    width: int

    def __post_init__(self) -> None:
        check_intrinsics("camera intrinsics", self.intrinsics)
        check_rigid_transform("camera extrinsics (camera-to-world)", self.extrinsics)
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"camera image size must be positive, got {self.height}×{self.width}")
        try:
            torch.broadcast_shapes(self.intrinsics.shape[:-2], self.extrinsics.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"camera intrinsics batch {tuple(self.intrinsics.shape[:-2])} and extrinsics batch "
                f"{tuple(self.extrinsics.shape[:-2])} do not match"
            ) from None

    # --- shape ------------------------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        return torch.broadcast_shapes(self.intrinsics.shape[:-2], self.extrinsics.shape[:-2])

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres in the world frame, (..., 3)."""
        return self.extrinsics[..., :3, 3]

    @property
    def world_to_camera(self) -> torch.Tensor:
        return invert_rigid(self.extrinsics)

    def to(self, *args, **kwargs) -> "Cameras":
        return Cameras(self.intrinsics.to(*args, **kwargs), self.extrinsics.to(*args, **kwargs), self.height, self.width)

    def select(self, dim: int, index: int) -> "Cameras":
        """Index one batch dimension (negative `dim` counts over batch dimensions only), e.g. a view."""
        shape = self.batch_shape
        dim = dim if dim >= 0 else len(shape) + dim
        intrinsics, extrinsics = self.intrinsics.expand(*shape, 3, 3), self.extrinsics.expand(*shape, 4, 4)
        return Cameras(intrinsics.select(dim, index), extrinsics.select(dim, index), self.height, self.width)

    def unsqueeze(self, dim: int) -> "Cameras":
        """Insert a batch dimension (negative `dim` counts over batch dimensions only)."""
        dim = dim if dim >= 0 else dim - 2
        return Cameras(self.intrinsics.unsqueeze(dim), self.extrinsics.unsqueeze(dim), self.height, self.width)

    # --- geometry ---------------------------------------------------------------------------------
    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points (*batch, N, 3) → pixels (*batch, N, 2) and depth along +z (*batch, N).

        Points with depth ≤ 0 are behind the camera; their pixel coordinates are meaningless and
        callers must mask them with the returned depth.
        """
        check_trailing_shape("points", points, (3,))
        world_to_camera, points = _broadcast_batch(self.world_to_camera, points)
        camera_points = transform_points(world_to_camera, points)
        depth = camera_points[..., 2]
        safe = torch.where(depth.abs().unsqueeze(-1) < 1e-9, torch.ones_like(camera_points), camera_points)
        pixels = project_points(safe, self.intrinsics.unsqueeze(-3))
        return pixels, depth

    def unproject(self, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Pixels (*batch, N, 2) at depth (*batch, N) along +z → world points (*batch, N, 3)."""
        check_trailing_shape("pixels", pixels, (2,))
        intrinsics = self.intrinsics.unsqueeze(-3).expand(*pixels.shape[:-1], 3, 3)
        camera_points = unproject_points(pixels, depth.unsqueeze(-1), intrinsics, normalize=False)
        return transform_points(*_broadcast_batch(self.extrinsics, camera_points))

    def rays(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through pixels (*batch, N, 2): world origins (*batch, N, 3) and unit directions."""
        points = self.unproject(pixels, torch.ones_like(pixels[..., 0]))
        origins = self.centers.unsqueeze(-2).expand_as(points)
        return origins, torch.nn.functional.normalize(points - origins, dim=-1)

    def pixel_grid(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """All pixel centres of the image, (H·W, 2) as (u, v), row-major."""
        v, u = torch.meshgrid(
            torch.arange(self.height, dtype=dtype), torch.arange(self.width, dtype=dtype), indexing="ij"
        )
        return torch.stack([u.flatten(), v.flatten()], -1).to(self.intrinsics.device)

    def plucker(self, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Per-pixel Plücker rays (direction d, moment o × d), (*batch, 6, H, W).

        `reference` (4×4 camera-to-world, broadcastable to the batch) expresses the rays in that
        frame — the model uses the first frame of view 1 (SPEC §6).
        """
        extrinsics = self.extrinsics
        if reference is not None:
            check_rigid_transform("Plücker reference pose", reference)
            extrinsics = invert_rigid(reference) @ extrinsics
        relative = Cameras(self.intrinsics, extrinsics, self.height, self.width)
        grid = self.pixel_grid(self.intrinsics.dtype).expand(*self.batch_shape, -1, -1)
        origins, directions = relative.rays(grid)
        moments = torch.linalg.cross(origins, directions, dim=-1)
        rays = torch.cat([directions, moments], -1)  # (*batch, H·W, 6)
        return rays.transpose(-1, -2).unflatten(-1, (self.height, self.width))

    # --- image operations -------------------------------------------------------------------------
    def crop(self, top: int, left: int, height: int, width: int) -> "Cameras":
        """Cameras of the crop [top : top + height, left : left + width] of the image."""
        shift = torch.tensor([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]], dtype=self.intrinsics.dtype)
        return Cameras(shift.to(self.intrinsics.device) @ self.intrinsics, self.extrinsics, height, width)

    def resize(self, height: int, width: int) -> "Cameras":
        """Cameras of the whole image resized to height × width (pixel centres stay pixel centres:
        u' = (u + 0.5)·s − 0.5)."""
        sx, sy = width / self.width, height / self.height
        scale = torch.tensor(
            [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=self.intrinsics.dtype
        )
        return Cameras(scale.to(self.intrinsics.device) @ self.intrinsics, self.extrinsics, height, width)


def _broadcast_batch(transform: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expand transforms (*A, 4, 4) and points (*B, N, 3) to one batch shape (kornia needs it)."""
    batch = torch.broadcast_shapes(transform.shape[:-2], points.shape[:-2])
    return transform.expand(*batch, 4, 4), points.expand(*batch, *points.shape[-2:])


# --- constructors and converters ----------------------------------------------------------------
def intrinsics_from_fov(fovy: float | torch.Tensor, height: int, width: int, degrees: bool = False) -> torch.Tensor:
    """K of a camera with vertical field of view `fovy`, square pixels and centred principal point
    (MuJoCo and OpenGL cameras are defined this way)."""
    fovy = torch.as_tensor(fovy, dtype=torch.float32)
    if degrees:
        fovy = fovy * (math.pi / 180)
    if ((fovy <= 0) | (fovy >= math.pi)).any():
        raise ValueError(f"field of view must lie in (0, π), got {fovy}")
    focal = 0.5 * height / torch.tan(0.5 * fovy)
    intrinsics = torch.zeros(*focal.shape, 3, 3)
    intrinsics[..., 0, 0] = focal
    intrinsics[..., 1, 1] = focal
    intrinsics[..., 0, 2] = (width - 1) / 2
    intrinsics[..., 1, 2] = (height - 1) / 2
    intrinsics[..., 2, 2] = 1.0
    return intrinsics


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """Camera-to-world OpenCV extrinsics of cameras at `eye` looking at `target` (..., 3); the image's
    up direction is as close to `up` (default world +z) as possible."""
    eye, target = torch.as_tensor(eye, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32)
    up = torch.tensor([0.0, 0.0, 1.0]) if up is None else torch.as_tensor(up, dtype=torch.float32)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up.expand_as(forward), dim=-1)
    if (right.norm(dim=-1) < 1e-6).any():
        raise ValueError("look_at: viewing direction is parallel to `up`; pass another up vector")
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    extrinsics = torch.zeros(*forward.shape[:-1], 4, 4)
    extrinsics[..., :3, 0], extrinsics[..., :3, 1], extrinsics[..., :3, 2] = right, down, forward
    extrinsics[..., :3, 3] = eye.expand_as(forward)
    extrinsics[..., 3, 3] = 1.0
    return extrinsics


def opengl_to_opencv(extrinsics_gl: torch.Tensor) -> torch.Tensor:
    """Camera-to-world of an OpenGL-convention camera (looks down −z, y up) → OpenCV convention."""
    check_rigid_transform("OpenGL camera-to-world", extrinsics_gl)
    return extrinsics_gl @ _GL_TO_CV.to(extrinsics_gl)


def opencv_to_opengl(extrinsics_cv: torch.Tensor) -> torch.Tensor:
    check_rigid_transform("OpenCV camera-to-world", extrinsics_cv)
    return extrinsics_cv @ _GL_TO_CV.to(extrinsics_cv)


def from_mujoco(cam_xpos: torch.Tensor, cam_xmat: torch.Tensor, fovy_degrees: float | torch.Tensor, height: int, width: int) -> Cameras:
    """Cameras from MuJoCo's `data.cam_xpos` (..., 3), `data.cam_xmat` (..., 9, row-major
    camera-to-world rotation of a camera looking down −z with y up) and `model.cam_fovy` (degrees)."""
    cam_xpos, cam_xmat = torch.as_tensor(cam_xpos, dtype=torch.float32), torch.as_tensor(cam_xmat, dtype=torch.float32)
    check_finite("MuJoCo cam_xpos", cam_xpos)
    check_trailing_shape("MuJoCo cam_xpos", cam_xpos, (3,))
    check_trailing_shape("MuJoCo cam_xmat", cam_xmat, (9,))
    extrinsics_gl = torch.zeros(*cam_xpos.shape[:-1], 4, 4)
    extrinsics_gl[..., :3, :3] = cam_xmat.unflatten(-1, (3, 3))
    extrinsics_gl[..., :3, 3] = cam_xpos
    extrinsics_gl[..., 3, 3] = 1.0
    intrinsics = intrinsics_from_fov(fovy_degrees, height, width, degrees=True).expand(*cam_xpos.shape[:-1], 3, 3)
    return Cameras(intrinsics, opengl_to_opencv(extrinsics_gl), height, width)


def from_negative_focal(intrinsics: torch.Tensor, extrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RLBench stores K with negative focal lengths and a camera frame whose x and y point the other
    way. u = fx·x/z + cx with fx < 0 equals |fx|·(−x)/z + cx, so negate both focal lengths and flip the
    camera's x and y axes: the projection of every point is unchanged and K is OpenCV again."""
    check_finite("intrinsics", intrinsics)
    check_rigid_transform("extrinsics (camera-to-world)", extrinsics)
    fx_negative, fy_negative = intrinsics[..., 0, 0] < 0, intrinsics[..., 1, 1] < 0
    if (fx_negative != fy_negative).any():
        raise ValueError(
            "exactly one negative focal length: flipping one camera axis would make a left-handed frame; "
            "this is not the RLBench convention"
        )
    sign = torch.where(fx_negative, -1.0, 1.0).to(intrinsics)
    flip = torch.diag_embed(torch.stack([sign, sign, torch.ones_like(sign)], -1))
    flip4 = torch.diag_embed(torch.stack([sign, sign, torch.ones_like(sign), torch.ones_like(sign)], -1))
    return intrinsics @ flip, extrinsics @ flip4
