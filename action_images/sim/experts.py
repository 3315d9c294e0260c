"""Scripted experts: one per task, producing absolute EE targets through waypoints.

An expert reads the task's state from the simulator (privileged information a policy does not get)
and walks through phases — approach, descend, grasp, lift, move, place, release, retreat. Each phase
has a goal pose (top-down, with a yaw) and a gripper command; its goal is fixed when the phase begins,
or re-evaluated every step for the closed-loop phases (pushing, turning).
The expert's action is a *cursor* that moves towards the phase goal by at most `linear_speed` metres
and `angular_speed` radians per step, so consecutive actions are close together and each one is
about where the EE will be one step later — what an action-image dataset should record. A phase ends
when the cursor has arrived, the EE is within `tolerance` of it and `hold` more steps have passed (to
let the fingers close or open), when its `until` condition holds, or after `timeout` steps.

    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    expert.reset()
    while True:
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from action_images.sim.geometry import (
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
    rotation_angle,
    step_towards,
    top_down_rotation,
    wrap_angle,
)
from action_images.sim.tasks import CUBE_HALF

OPEN, CLOSED = 1.0, 0.0
# Height of the EE point above the table when grasping near the table: the EE sits between the finger
# pads, 5 cm above the fingertips, so this leaves the fingertips ~5 mm above the table top.
GRASP_HEIGHT = 0.055
CARRY_HEIGHT = 0.15  # travel height with or without an object


@dataclass(frozen=True)
class Phase:
    """One waypoint: `goal()` → (position, yaw), evaluated when the phase begins (every step if `track`)."""

    name: str
    goal: Callable[[], tuple[np.ndarray, float]]
    gripper: float
    tolerance: float = 0.015  # metres between the EE and the goal for the phase to count as reached
    angle_tolerance: float = math.radians(5)
    hold: int = 0  # steps to stay once reached
    timeout: int = 25  # steps after which the phase ends anyway
    linear_speed: float | None = None  # None: the expert's default
    track: bool = False  # closed loop: re-evaluate the goal every step
    until: Callable[[], bool] | None = None  # ends the phase as soon as it returns True


def grasp_yaw(object_yaw: float, symmetry: float) -> float:
    """The yaw of a top-down grasp aligned with an object symmetric under turns of `symmetry` radians
    (π/2 for a cube, π for a bar), chosen closest to 0 so the wrist stays inside its joint range."""
    return (object_yaw + symmetry / 2) % symmetry - symmetry / 2


def nearest_equivalent(yaw: float, reference: float, symmetry: float) -> float:
    """Of the yaws yaw + k·symmetry, the one closest to `reference` (so a symmetric grasp never flips)."""
    return reference + (yaw - reference + symmetry / 2) % symmetry - symmetry / 2


def yaw_of(rotation: np.ndarray) -> float:
    """Angle of the EE x axis in the table plane (the `yaw` of `top_down_rotation`)."""
    return math.atan2(rotation[1, 0], rotation[0, 0])


class WaypointExpert:
    """Base class: subclasses build `phases()` from the task's state after `reset`."""

    linear_speed = 0.05  # metres per step (0.5 m/s at 10 Hz)
    angular_speed = 0.25  # radians per step

    def __init__(self, env):
        self.env = env
        self.task = env.task
        self.reset()

    def reset(self) -> None:
        """Call after `env.reset`: the next `act` plans from the new episode's state."""
        self._phases: list[Phase] | None = None
        self._index = 0

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def first_waypoint(self) -> np.ndarray:
        """Where the first phase goes (x, y, z) from the scene as it is now (call after `env.reset`)."""
        return self._evaluate(self.phases()[0])[0]

    @property
    def phase_name(self) -> str:
        if self._phases is None:
            return "not started"
        return self._phases[self._index].name if self._index < len(self._phases) else "done"

    def _begin(self, index: int) -> None:
        self._index, self._steps_in_phase, self._held = index, 0, 0
        if index < len(self._phases):
            self._goal = self._evaluate(self._phases[index])

    @staticmethod
    def _evaluate(phase: Phase) -> tuple[np.ndarray, np.ndarray]:
        position, yaw = phase.goal()
        return np.asarray(position, dtype=np.float64), top_down_rotation(yaw)

    def act(self, obs: dict) -> np.ndarray:
        ee = obs["ee_pose"].astype(np.float64)
        if self._phases is None:
            self._phases = self.phases()
            self.cursor = (ee[:3].copy(), quat_xyzw_to_matrix(ee[3:7]))
            self._gripper = OPEN
            self._begin(0)
        if self._index < len(self._phases):
            phase = self._phases[self._index]
            if phase.track:
                self._goal = self._evaluate(phase)
            self._gripper = phase.gripper
            speed = phase.linear_speed or self.linear_speed
            self.cursor = step_towards(*self.cursor, *self._goal, speed, self.angular_speed)
            arrived = (
                np.allclose(self.cursor[0], self._goal[0]) and rotation_angle(self.cursor[1], self._goal[1]) < 1e-4
                and np.linalg.norm(ee[:3] - self._goal[0]) < phase.tolerance
                and rotation_angle(quat_xyzw_to_matrix(ee[3:7]), self._goal[1]) < phase.angle_tolerance
            )
            self._held += arrived
            self._steps_in_phase += 1
            finished = phase.until is not None and phase.until()
            if finished or self._held > phase.hold or self._steps_in_phase >= phase.timeout:
                self._begin(self._index + 1)
        position, rotation = self.cursor
        return np.concatenate([position, matrix_to_quat_xyzw(rotation), [self._gripper]]).astype(np.float32)

    def _here(self, height: float | None = None) -> Callable[[], tuple[np.ndarray, float]]:
        """Goal: where the cursor is when the phase begins (optionally at another height)."""

        def goal() -> tuple[np.ndarray, float]:
            position = self.cursor[0].copy()
            if height is not None:
                position[2] = height
            return position, yaw_of(self.cursor[1])

        return goal

    # --- helpers ----------------------------------------------------------------------------------
    def _data(self):
        return self.env.data

    def _fixed(self, position, yaw: float) -> Callable[[], tuple[np.ndarray, float]]:
        return lambda: (np.asarray(position, dtype=np.float64), yaw)

    def _pick_and_place_phases(self, cube: str, place_xy: Callable[[], np.ndarray], place_height: float) -> list[Phase]:
        """Grasp `cube` from above, carry it and put it down with the EE at `place_height` over `place_xy`."""
        task, data = self.task, self._data()
        yaw = grasp_yaw(task.body_yaw(data, cube), math.pi / 2)
        cube_xy = lambda: task.body_position(self._data(), cube)[:2]  # noqa: E731
        return [
            Phase("approach", lambda: ([*cube_xy(), CARRY_HEIGHT], yaw), OPEN, tolerance=0.02),
            Phase("descend", lambda: ([*cube_xy(), GRASP_HEIGHT], yaw), OPEN, tolerance=0.008, linear_speed=0.035),
            Phase("grasp", lambda: ([*cube_xy(), GRASP_HEIGHT], yaw), CLOSED, hold=4),
            Phase("lift", lambda: ([*cube_xy(), CARRY_HEIGHT], yaw), CLOSED, tolerance=0.02),
            Phase("move", lambda: ([*place_xy(), CARRY_HEIGHT], yaw), CLOSED, tolerance=0.015),
            Phase("lower", lambda: ([*place_xy(), place_height], yaw), CLOSED, tolerance=0.008, linear_speed=0.035),
            Phase("release", lambda: ([*place_xy(), place_height], yaw), OPEN, hold=3),
            Phase("retreat", lambda: ([*place_xy(), CARRY_HEIGHT], yaw), OPEN, timeout=40),
        ]


class ReachExpert(WaypointExpert):
    linear_speed = 0.025

    def phases(self) -> list[Phase]:
        target = lambda: (self.task.target_position(self._data()), 0.0)  # noqa: E731
        return [Phase("reach", target, CLOSED, tolerance=0.01, timeout=60)]


class PickPlaceExpert(WaypointExpert):
    def phases(self) -> list[Phase]:
        pad_xy = lambda: self.task.body_position(self._data(), "pad")[:2]  # noqa: E731
        return self._pick_and_place_phases(self.task.target_cube, pad_xy, GRASP_HEIGHT + 0.004)


class StackExpert(WaypointExpert):
    def phases(self) -> list[Phase]:
        bottom_xy = lambda: self.task.body_position(self._data(), self.task.bottom_cube)[:2]  # noqa: E731
        return self._pick_and_place_phases(self.task.top_cube, bottom_xy, GRASP_HEIGHT + 2 * CUBE_HALF + 0.004)


class TurnExpert(WaypointExpert):
    """Grasp the bar over the hinge, yaw the wrist about the approach axis until the handle has turned
    by ±90°, let go."""

    angular_speed = 0.2

    def phases(self) -> list[Phase]:
        task, data = self.task, self._data()
        turn = wrap_angle(task.goal_angle - task.start_angle)
        # Of the two grasps of the (π-symmetric) bar, take the one whose turn passes closest to yaw 0.
        start = grasp_yaw(task.handle_angle(data) + turn / 2, math.pi) - turn / 2
        bar = task.bar_centre(data)
        above, at = [bar[0], bar[1], CARRY_HEIGHT + 0.02], [bar[0], bar[1], bar[2]]
        turned = lambda: abs(self._remaining()) < math.radians(3)  # noqa: E731
        return [
            Phase("approach", self._fixed(above, start), OPEN, tolerance=0.02),
            Phase("descend", self._fixed(at, start), OPEN, tolerance=0.008, linear_speed=0.035),
            Phase("grasp", self._fixed(at, start), CLOSED, hold=4),
            Phase("turn", lambda: (at, yaw_of(self.cursor[1]) + self._remaining()), CLOSED, track=True, until=turned,
                  timeout=30),
            Phase("release", self._here(), OPEN, hold=3),
            Phase("retreat", self._here(CARRY_HEIGHT + 0.02), OPEN, timeout=40),
        ]

    def _remaining(self) -> float:
        """How far the handle still has to turn (radians). Closing the loop on the handle's angle, not
        the wrist's, absorbs the few degrees of play between the fingers and the bar."""
        return wrap_angle(self.task.goal_angle - self.task.handle_angle(self._data()))


class PushExpert(WaypointExpert):
    """Closed loop: get behind the cube on the line to the goal, then push along that line, re-aiming
    every step at the cube's current position, until the cube is on the goal."""

    # The closed fingers' face along the EE x axis is ~2 cm ahead of the EE point; it does the pushing.
    contact_offset = 0.02
    push_speed = 0.025

    def phases(self) -> list[Phase]:
        cube, goal = self.cube_and_goal()
        direction = (goal - cube) / np.linalg.norm(goal - cube)
        yaw = grasp_yaw(math.atan2(direction[1], direction[0]), math.pi)  # the closed fingers push alike both ways
        behind = self.approach_point()
        on_goal = lambda: float(np.linalg.norm(np.subtract(*self.cube_and_goal()))) < 0.008  # noqa: E731
        return [
            Phase("approach", self._fixed([*behind, CARRY_HEIGHT], yaw), CLOSED, tolerance=0.02),
            Phase("descend", self._fixed([*behind, GRASP_HEIGHT], yaw), CLOSED, tolerance=0.01, linear_speed=0.035),
            Phase("push", self._push_goal, CLOSED, tolerance=0.0, timeout=60, linear_speed=self.push_speed,
                  track=True, until=on_goal),
            Phase("retreat", self._here(CARRY_HEIGHT), CLOSED, timeout=40),
        ]

    def approach_point(self) -> np.ndarray:
        """Where pushing starts (x, y): on the line from the goal through the cube, past the cube's
        centre by its half, the fingers' reach and 3 cm of clearance."""
        cube, goal = self.cube_and_goal()
        direction = (goal - cube) / np.linalg.norm(goal - cube)
        return cube - direction * (self.task.cube_half + self.contact_offset + 0.03)

    def cube_and_goal(self) -> tuple[np.ndarray, np.ndarray]:
        data = self._data()
        return self.task.body_position(data, "cube")[:2], self.task.body_position(data, "goal")[:2]

    def _push_goal(self) -> tuple[np.ndarray, float]:
        """Just past the contact point behind the cube, on the line from the cube to the goal."""
        cube, goal = self.cube_and_goal()
        distance = float(np.linalg.norm(goal - cube))
        direction = (goal - cube) / max(distance, 1e-9)
        contact = cube - direction * (self.task.cube_half + self.contact_offset)
        target = contact + direction * min(self.push_speed, distance)
        yaw = nearest_equivalent(math.atan2(direction[1], direction[0]), yaw_of(self.cursor[1]), math.pi)
        return np.array([*target, GRASP_HEIGHT]), yaw


EXPERTS = {
    "reach": ReachExpert,
    "push": PushExpert,
    "pick_place": PickPlaceExpert,
    "stack": StackExpert,
    "turn": TurnExpert,
}


def make_expert(env) -> WaypointExpert:
    """The scripted expert of `env`'s task."""
    name = env.task.name
    if name not in EXPERTS:
        raise ValueError(f"no expert for task {name!r}; experts exist for: {', '.join(EXPERTS)}")
    return EXPERTS[name](env)
