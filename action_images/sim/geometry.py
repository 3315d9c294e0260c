"""Small numpy rotation helpers for the simulator's control loop (torch would cost more than the math).

Quaternions here are **xyzw** (scalar last), as in actions and observations; MuJoCo's own functions
use wxyz and are only called through these helpers. Rotation matrices have the rotated frame's axes
as columns.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np


def quat_xyzw_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Unit quaternion (xyzw; normalised here) → 3×3 rotation matrix."""
    quat = np.asarray(quat, dtype=np.float64)
    wxyz = np.array([quat[3], quat[0], quat[1], quat[2]]) / np.linalg.norm(quat)
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, wxyz)
    return matrix.reshape(3, 3)


def matrix_to_quat_xyzw(matrix: np.ndarray) -> np.ndarray:
    """3×3 rotation matrix → unit quaternion (xyzw) with a non-negative scalar part (one of the two
    equivalent signs, chosen so that equal rotations give equal vectors)."""
    wxyz = np.zeros(4)
    mujoco.mju_mat2Quat(wxyz, np.ascontiguousarray(matrix, dtype=np.float64).flatten())
    if wxyz[0] < 0:
        wxyz = -wxyz
    return np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]])


def rotation_vector(matrix: np.ndarray) -> np.ndarray:
    """Axis × angle (radians) of a rotation matrix, angle in [0, π]."""
    wxyz = np.zeros(4)
    mujoco.mju_mat2Quat(wxyz, np.ascontiguousarray(matrix, dtype=np.float64).flatten())
    if wxyz[0] < 0:
        wxyz = -wxyz
    sin_half = np.linalg.norm(wxyz[1:])
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * math.atan2(sin_half, wxyz[0])
    return wxyz[1:] / sin_half * angle


def rotation_from_vector(rotvec: np.ndarray) -> np.ndarray:
    """Axis × angle → 3×3 rotation matrix."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    axis = np.asarray(rotvec) / angle
    wxyz = np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, wxyz)
    return matrix.reshape(3, 3)


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Geodesic angle (radians) between two rotation matrices."""
    cosine = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(math.acos(min(1.0, max(-1.0, cosine))))


def step_towards(
    position: np.ndarray, rotation: np.ndarray, goal_position: np.ndarray, goal_rotation: np.ndarray,
    max_distance: float, max_angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Move a pose towards a goal by at most `max_distance` metres and `max_angle` radians (along the
    straight line and the shortest rotation), arriving exactly when the goal is within reach."""
    offset = goal_position - position
    distance = float(np.linalg.norm(offset))
    if distance > max_distance:
        offset = offset * (max_distance / distance)
    turn = rotation_vector(goal_rotation @ rotation.T)  # world-frame rotation from current to goal
    angle = float(np.linalg.norm(turn))
    if angle > max_angle:
        turn = turn * (max_angle / angle)
        goal_rotation = rotation_from_vector(turn) @ rotation
    return position + offset, goal_rotation


def top_down_rotation(yaw: float) -> np.ndarray:
    """EE rotation of a top-down grasp: +z (approach) along world −z, +x at angle `yaw` from world +x
    in the table plane. yaw = 0 is the quaternion (xyzw) [1, 0, 0, 0]."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def wrap_angle(angle: float) -> float:
    """Angle wrapped to [-π, π)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi
