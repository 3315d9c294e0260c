"""Tracking absolute end-effector targets with the Panda's joint position servos.

An action is `[x, y, z, qx, qy, qz, qw, g]` (float32): the EE target in the world frame (quaternion
xyzw; the EE frame is defined in `scene.py`) and the gripper openness g ∈ [0, 1], 1 = open
(0.04 m per finger), 0 = closed.

Each control step (10 Hz):
1. a *reference* pose moves from where it was towards the action's target by at most
   `max_linear_step` metres and `max_angular_step` radians — the per-step motion limit that keeps the
   arm smooth whatever the action asks;
2. damped-least-squares inverse kinematics on the EE site (`mujoco.mj_jacSite`), warm-started from the
   previous solution and pulled towards the home posture in the Jacobian's null space, turns the
   reference into joint targets (clipped to the joint limits);
3. during the physics substeps the servo targets ramp linearly from the previous joint targets to the
   new ones, plus a velocity feed-forward: the model's joint damping b would otherwise make a
   position servo of gain kp lag a moving target by (b / kp)·q̇ (≈ 0.1 s on the Panda).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from action_images.sim.geometry import quat_xyzw_to_matrix, rotation_vector, step_towards
from action_images.sim.scene import ARM_JOINTS, EE_SITE, FINGER_JOINTS, FINGER_OPEN

ACTION_SIZE = 8


@dataclass(frozen=True)
class ControllerConfig:
    control_hz: float = 10.0
    max_linear_step: float = 0.06  # metres the reference may move per control step (0.6 m/s)
    max_angular_step: float = 0.4  # radians the reference may turn per control step
    ik_iterations: int = 8
    ik_damping: float = 0.02  # λ of (J Jᵀ + λ² I)⁻¹
    rotation_weight: float = 0.3  # metres per radian: how much an orientation error counts
    posture_gain: float = 0.2  # null-space pull towards the home posture, per iteration
    joint_limit_margin: float = 0.03  # radians kept clear of each joint limit
    # Targets are clipped to this box; its floor keeps a top-down gripper's fingertips (5 cm beyond the
    # EE point) from being driven into the table.
    workspace_low: tuple[float, float, float] = (0.15, -0.55, 0.04)
    workspace_high: tuple[float, float, float] = (0.85, 0.55, 0.65)


def validate_action(action) -> np.ndarray:
    """The action as float64 (8,), quaternion normalised and g clipped to [0, 1]; a clear ValueError
    for anything that is not a finite 8-vector with a non-zero quaternion."""
    array = np.asarray(action, dtype=np.float64)
    if array.shape != (ACTION_SIZE,):
        raise ValueError(
            f"action must have shape (8,) = [x, y, z, qx, qy, qz, qw, g] (absolute EE target, world "
            f"frame, quaternion xyzw, gripper openness 1 = open); got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"action contains NaN or infinity: {array.tolist()}")
    norm = np.linalg.norm(array[3:7])
    if norm < 1e-6:
        raise ValueError(f"action quaternion (xyzw) {array[3:7].tolist()} has zero norm; it is not a rotation")
    array[3:7] /= norm
    array[7] = min(1.0, max(0.0, array[7]))
    return array


class EndEffectorController:
    """Turns EE targets into servo commands for one model; see the module docstring."""

    def __init__(self, model: mujoco.MjModel, home_joints: np.ndarray, config: ControllerConfig = ControllerConfig()):
        self.model = model
        self.config = config
        self.home_joints = np.asarray(home_joints, dtype=np.float64)
        self.substeps = max(1, round(1.0 / (config.control_hz * model.opt.timestep)))
        self._scratch = mujoco.MjData(model)  # kinematics for IK, never stepped
        self._site = model.site(EE_SITE).id
        joints = [model.joint(name) for name in ARM_JOINTS]
        self._qpos = np.array([joint.qposadr[0] for joint in joints])
        self._dofs = np.array([joint.dofadr[0] for joint in joints])
        margin = config.joint_limit_margin
        self._low = np.array([joint.range[0] for joint in joints]) + margin
        self._high = np.array([joint.range[1] for joint in joints]) - margin
        self._arm_actuators = np.array([self._actuator_for(name) for name in ARM_JOINTS])
        self._finger_actuators = np.array([self._actuator_for(name) for name in FINGER_JOINTS])
        gain = model.actuator_gainprm[self._arm_actuators, 0]
        self._lag = model.dof_damping[self._dofs] / gain  # seconds: b / kp per arm joint
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self.reference_position = np.zeros(3)
        self.reference_rotation = np.eye(3)
        self.joint_targets = self.home_joints.copy()
        self._ramp_start = self.home_joints.copy()
        self._finger_target = FINGER_OPEN

    def _actuator_for(self, joint_name: str) -> int:
        joint = self.model.joint(joint_name).id
        matches = np.flatnonzero(self.model.actuator_trnid[:, 0] == joint)
        if len(matches) != 1:
            raise ValueError(f"expected one actuator on joint {joint_name}, found {len(matches)}")
        return int(matches[0])

    # --- state ------------------------------------------------------------------------------------
    def arm_joints(self, data: mujoco.MjData) -> np.ndarray:
        return data.qpos[self._qpos].copy()

    def set_arm_joints(self, data: mujoco.MjData, joints: np.ndarray) -> None:
        data.qpos[self._qpos] = joints
        data.qvel[self._dofs] = 0.0

    def reset(self, data: mujoco.MjData, gripper: float = 1.0) -> None:
        """Hold the current pose: reference = the current EE pose, servo targets = current joints."""
        self.joint_targets = self.arm_joints(data)
        self._ramp_start = self.joint_targets.copy()
        self.reference_position = data.site_xpos[self._site].copy()
        self.reference_rotation = data.site_xmat[self._site].reshape(3, 3).copy()
        self._finger_target = FINGER_OPEN * gripper
        data.ctrl[self._arm_actuators] = self.joint_targets
        data.ctrl[self._finger_actuators] = self._finger_target

    # --- one control step -------------------------------------------------------------------------
    def set_action(self, action: np.ndarray) -> None:
        """Take a validated action (see `validate_action`): advance the reference and solve the IK."""
        goal_position = np.clip(action[:3], self.config.workspace_low, self.config.workspace_high)
        goal_rotation = quat_xyzw_to_matrix(action[3:7])
        self.reference_position, self.reference_rotation = step_towards(
            self.reference_position, self.reference_rotation, goal_position, goal_rotation,
            self.config.max_linear_step, self.config.max_angular_step,
        )
        self._ramp_start = self.joint_targets
        self.joint_targets = self.solve_ik(self.reference_position, self.reference_rotation, self.joint_targets)
        self._finger_target = FINGER_OPEN * action[7]

    def apply(self, data: mujoco.MjData, substep: int) -> None:
        """Write the servo commands of physics substep `substep` (0-based) of this control step."""
        fraction = (substep + 1) / self.substeps
        velocity = (self.joint_targets - self._ramp_start) * self.config.control_hz
        ramp = self._ramp_start + fraction * (self.joint_targets - self._ramp_start)
        data.ctrl[self._arm_actuators] = ramp + self._lag * velocity
        data.ctrl[self._finger_actuators] = self._finger_target

    # --- inverse kinematics -----------------------------------------------------------------------
    def solve_ik(self, position: np.ndarray, rotation: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Joint angles placing the EE at (position, rotation), by damped least squares from `initial`."""
        config, scratch = self.config, self._scratch
        joints = initial.copy()
        weight = config.rotation_weight
        identity = np.eye(6)
        for _ in range(config.ik_iterations):
            scratch.qpos[self._qpos] = joints
            mujoco.mj_kinematics(self.model, scratch)
            mujoco.mj_comPos(self.model, scratch)
            current_rotation = scratch.site_xmat[self._site].reshape(3, 3)
            error = np.concatenate([
                position - scratch.site_xpos[self._site],
                weight * rotation_vector(rotation @ current_rotation.T),
            ])
            mujoco.mj_jacSite(self.model, scratch, self._jacp, self._jacr, self._site)
            jacobian = np.vstack([self._jacp[:, self._dofs], weight * self._jacr[:, self._dofs]])
            inverse = jacobian.T @ np.linalg.inv(jacobian @ jacobian.T + config.ik_damping**2 * identity)
            step = inverse @ error
            null_space = np.eye(len(joints)) - inverse @ jacobian
            step += null_space @ (config.posture_gain * (self.home_joints - joints))
            joints = np.clip(joints + step, self._low, self._high)
        return joints
