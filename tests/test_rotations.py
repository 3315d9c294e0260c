import math

import pytest
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rendering.poses import Pose, gripper_from_range, pose_from_vector, pose_to_vector
from rendering.rotations import RotationFormat, convert, from_matrix, geodesic_angle, to_matrix

FORMATS = [f.value for f in RotationFormat]

unit = st.floats(-1.0, 1.0, allow_nan=False)


@st.composite
def rotation_matrices(draw):
    quat = torch.tensor([draw(unit), draw(unit), draw(unit), draw(unit)], dtype=torch.float64)
    if quat.norm() < 0.1:
        quat = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    return roma.unitquat_to_rotmat(quat / quat.norm())


def rx(t):
    c, s = math.cos(t), math.sin(t)
    return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)


def ry(t):
    c, s = math.cos(t), math.sin(t)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)


def rz(t):
    c, s = math.cos(t), math.sin(t)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(matrix=rotation_matrices(), fmt=st.sampled_from(FORMATS))
def test_every_format_round_trips(matrix, fmt):
    back = to_matrix(from_matrix(matrix, fmt), fmt)
    # Near gimbal lock (pitch ±90°) Euler angles lose precision like √ε: 1e-6 still catches any convention error.
    assert torch.allclose(back, matrix, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(matrix=rotation_matrices(), source=st.sampled_from(FORMATS), target=st.sampled_from(FORMATS))
def test_conversion_between_formats_preserves_the_rotation(matrix, source, target):
    converted = convert(from_matrix(matrix, source), source, target)
    assert torch.allclose(to_matrix(converted, target), matrix, atol=1e-6)


def test_euler_xyz_is_extrinsic_z_times_y_times_x():
    angles = torch.tensor([0.3, -0.7, 1.9], dtype=torch.float64)
    expected = rz(1.9) @ ry(-0.7) @ rx(0.3)
    assert torch.allclose(to_matrix(angles, "euler_xyz"), expected, atol=1e-12)
    assert torch.allclose(from_matrix(expected, "euler_xyz"), angles, atol=1e-12)


def test_quaternion_orders_on_a_known_rotation():
    half = math.sqrt(0.5)
    expected = rz(math.pi / 2)
    assert torch.allclose(to_matrix(torch.tensor([0, 0, half, half], dtype=torch.float64), "quat_xyzw"), expected)
    assert torch.allclose(to_matrix(torch.tensor([half, 0, 0, half], dtype=torch.float64), "quat_wxyz"), expected)
    assert torch.allclose(from_matrix(expected, "quat_wxyz"), torch.tensor([half, 0, 0, half], dtype=torch.float64))


def test_quaternions_are_normalised_and_sign_is_canonical():
    matrix = to_matrix(torch.tensor([0.0, 0.0, 2.0, 2.0]), "quat_xyzw")
    assert torch.allclose(matrix, rz(math.pi / 2).float(), atol=1e-6)
    quat = from_matrix(rz(math.pi / 2), "quat_xyzw")
    assert quat[3] >= 0


def test_rot6d_is_the_first_two_rows():
    matrix = rz(0.4) @ ry(0.2)
    assert torch.allclose(from_matrix(matrix, "rot6d"), matrix[:2].flatten())


def test_rotvec_known_value():
    assert torch.allclose(from_matrix(rx(0.5), "rotvec"), torch.tensor([0.5, 0, 0], dtype=torch.float64))


def test_geodesic_angle_small_angles_are_exact():
    assert torch.allclose(geodesic_angle(rx(0.0), rx(1e-5)), torch.tensor(1e-5, dtype=torch.float64), rtol=1e-4)
    assert torch.allclose(geodesic_angle(ry(0.1), ry(2.1)), torch.tensor(2.0, dtype=torch.float64))


def test_unknown_format_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown rotation format 'quaternion'.*quat_xyzw"):
        to_matrix(torch.zeros(4), "quaternion")
    with pytest.raises(ValueError, match="unknown rotation format"):
        from_matrix(torch.eye(3), "euler_zyx")


@pytest.mark.parametrize(
    "values, fmt, message",
    [
        (torch.tensor([float("nan"), 0.0, 0.0, 1.0]), "quat_xyzw", "NaN"),
        (torch.tensor([float("inf"), 0.0, 0.0]), "rotvec", "infinite"),
        (torch.zeros(4), "quat_wxyz", "zero-norm"),
        (torch.zeros(5), "quat_xyzw", "last dimension 4"),
        (torch.zeros(6), "rot6d", "parallel or zero"),
        (2 * torch.eye(3), "matrix", "not orthonormal"),
        (torch.diag(torch.tensor([1.0, 1.0, -1.0])), "matrix", "reflection"),
    ],
)
def test_bad_rotations_are_clear_errors(values, fmt, message):
    with pytest.raises(ValueError, match=message):
        to_matrix(values, fmt)


@pytest.mark.parametrize("fmt, width", [("quat_xyzw", 8), ("euler_xyz", 7), ("rot6d", 10), ("matrix", 13)])
def test_pose_vectors_round_trip(fmt, width):
    rotations = roma.random_rotmat(5, dtype=torch.float64)
    pose = Pose(torch.randn(5, 3, dtype=torch.float64), rotations, torch.rand(5, dtype=torch.float64))
    vector = pose_to_vector(pose, fmt)
    assert vector.shape == (5, width)
    back = pose_from_vector(vector, fmt)
    assert torch.allclose(back.positions, pose.positions)
    assert torch.allclose(back.rotations, pose.rotations, atol=1e-9)
    assert torch.allclose(back.gripper, pose.gripper)


def test_pose_vector_of_wrong_width_is_an_error():
    with pytest.raises(ValueError, match="quat_xyzw rotation has 8 values"):
        pose_from_vector(torch.zeros(2, 7), "quat_xyzw")


def test_gripper_ranges_are_declared_conversions():
    assert torch.allclose(gripper_from_range(torch.tensor([-1.0, 0.0, 1.0]), closed=-1, opened=1), torch.tensor([0, 0.5, 1]))
    assert torch.allclose(gripper_from_range(torch.tensor([0.0, 0.08]), closed=0, opened=0.08), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="must differ"):
        gripper_from_range(torch.zeros(2), closed=1, opened=1)
