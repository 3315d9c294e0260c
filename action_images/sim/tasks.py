"""The five tasks: their objects, randomisation, instructions and success checks.

Every task adds its objects to the scene as an MJCF fragment, randomises them in `reset` from the
environment's seeded generator (poses, colours, which object is named, the instruction's wording) and
judges success from the simulator state alone. Sizes are half-sizes in metres, as MuJoCo's; the table
top is z = 0 of the robot base frame.

| task | instruction (one of several wordings) | success |
|---|---|---|
| `reach` | "touch the red target" (three floating spheres) | EE within 3 cm of the named sphere's centre |
| `push` | "push the cube into the green square" | cube centre inside the square, on the table |
| `pick_place` | "put the red cube on the blue pad" (two cubes) | named cube on the pad, released |
| `stack` | "stack the red cube on the green cube" | named cube resting on the other, released |
| `turn` | "turn the handle 90 degrees clockwise" | handle within 10° of its goal angle, released |

`turn` needs the wrist to rotate about the approach axis: the handle turns with a top-down grasp
that yaws by ±90°.
"""

from __future__ import annotations

import functools
import math
import re

import mujoco
import numpy as np

from action_images.sim.scene import FINGER_BODIES, TABLE_HEIGHT, ee_frame

COLOURS = {
    "red": (0.85, 0.15, 0.15),
    "green": (0.2, 0.7, 0.25),
    "blue": (0.2, 0.35, 0.9),
    "yellow": (0.92, 0.82, 0.15),
    "purple": (0.58, 0.28, 0.75),
    "orange": (0.95, 0.5, 0.1),
}

# Where objects are placed: a region in front of the robot that every camera sees.
PLACEMENT_LOW = np.array([0.36, -0.20])
PLACEMENT_HIGH = np.array([0.62, 0.20])

CUBE_HALF = 0.02


def _sample_positions(rng: np.random.Generator, count: int, min_distance: float,
                      low: np.ndarray = PLACEMENT_LOW, high: np.ndarray = PLACEMENT_HIGH) -> np.ndarray:
    """`count` xy positions in [low, high] at least `min_distance` apart (rejection sampling)."""
    for _ in range(1000):
        points = rng.uniform(low, high, size=(count, 2))
        distances = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(count) * 1e9
        if distances.min() >= min_distance:
            return points
    raise RuntimeError(f"could not place {count} objects {min_distance} m apart")


def _yaw_quat_wxyz(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def _cube_xml(name: str, half: float = CUBE_HALF, friction: float = 0.8) -> str:
    """A free cube. MuJoCo takes the larger friction of two touching geoms: the fingers' (1.0) holds
    the grasp, and the cube's own sets how it slides on the table (whose own is 0.5)."""
    return (
        f'<body name="{name}" pos="0.5 0 {half}"><freejoint name="{name}_joint"/>'
        f'<geom name="{name}" type="box" size="{half} {half} {half}" mass="0.08" '
        f'friction="{friction:g} 0.005 0.0001" condim="4" rgba="1 1 1 1"/></body>'
    )


def _marker_xml(name: str, geom: str) -> str:
    """A visual-only marker body that reset moves (mocap), e.g. a goal square on the table."""
    return f'<body name="{name}" mocap="true" pos="0.5 0 0">{geom}</body>'


class Task:
    """One task. `bind` looks up ids in a compiled model; `reset` randomises and returns the instruction."""

    name: str = ""
    max_steps: int = 60
    templates: tuple[str, ...] = ()

    def objects_xml(self) -> str:
        raise NotImplementedError

    def bind(self, model: mujoco.MjModel) -> None:
        self.model = model
        self._finger_bodies = {model.body(name).id for name in FINGER_BODIES}

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def success(self, data: mujoco.MjData) -> bool:
        raise NotImplementedError

    def goal_distance(self, data: mujoco.MjData) -> float:
        """How far the task is from done, in metres (what its success test thresholds): a graded
        measure beside the binary success; NaN for a task without one."""
        return math.nan

    # --- helpers shared by the tasks --------------------------------------------------------------
    def _instruction(self, rng: np.random.Generator, **names: str) -> str:
        return self.templates[rng.integers(len(self.templates))].format(**names)

    def _set_free_body(self, data: mujoco.MjData, body: str, position: np.ndarray, yaw: float) -> None:
        joint = self.model.joint(f"{body}_joint")
        address = joint.qposadr[0]
        data.qpos[address : address + 3] = position
        data.qpos[address + 3 : address + 7] = _yaw_quat_wxyz(yaw)
        data.qvel[joint.dofadr[0] : joint.dofadr[0] + 6] = 0.0

    def _place_cube(self, data: mujoco.MjData, body: str, xy: np.ndarray, rng: np.random.Generator,
                    half: float = CUBE_HALF) -> None:
        """A cube resting on the table at `xy`, turned by a random yaw (all yaws up to its symmetry)."""
        self._set_free_body(data, body, np.array([*xy, TABLE_HEIGHT + half]), rng.uniform(-math.pi / 4, math.pi / 4))

    def _set_colour(self, geom: str, colour: str) -> None:
        self.model.geom(geom).rgba[:3] = COLOURS[colour]

    def body_position(self, data: mujoco.MjData, body: str) -> np.ndarray:
        return data.xpos[self.model.body(body).id].copy()

    def body_yaw(self, data: mujoco.MjData, body: str) -> float:
        matrix = data.xmat[self.model.body(body).id].reshape(3, 3)
        return math.atan2(matrix[1, 0], matrix[0, 0])

    def touches_gripper(self, data: mujoco.MjData, body: str) -> bool:
        """Whether any geom of `body` is in contact with a finger."""
        body_id = self.model.body(body).id
        for contact in data.contact[: data.ncon]:
            bodies = {self.model.geom_bodyid[contact.geom1], self.model.geom_bodyid[contact.geom2]}
            if body_id in bodies and bodies & self._finger_bodies:
                return True
        return False

    def resting_on_table(self, data: mujoco.MjData, body: str, half_height: float = CUBE_HALF) -> bool:
        return abs(self.body_position(data, body)[2] - (TABLE_HEIGHT + half_height)) < 0.01


def _pick_colours(rng: np.random.Generator, count: int) -> list[str]:
    return [str(name) for name in rng.choice(list(COLOURS), size=count, replace=False)]


# --- reach --------------------------------------------------------------------------------------
class Reach(Task):
    name = "reach"
    max_steps = 40
    templates = (
        "touch the {colour} target",
        "reach the {colour} ball",
        "move the gripper to the {colour} sphere",
        "go to the {colour} target",
    )
    num_targets = 3
    radius = 0.02
    tolerance = 0.03

    def objects_xml(self) -> str:
        return "".join(
            _marker_xml(f"target{i}", f'<geom name="target{i}" type="sphere" size="{self.radius}" '
                                      'contype="0" conaffinity="0" rgba="1 1 1 1"/>')
            for i in range(self.num_targets)
        )

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> str:
        colours = _pick_colours(rng, self.num_targets)
        xy = _sample_positions(rng, self.num_targets, 0.1)
        heights = rng.uniform(0.08, 0.25, size=self.num_targets)
        for i in range(self.num_targets):
            data.mocap_pos[self.model.body(f"target{i}").mocapid[0]] = [*xy[i], heights[i]]
            self._set_colour(f"target{i}", colours[i])
        self.colours = colours  # of target0, target1, …: what an instruction may name
        self.target_index = int(rng.integers(self.num_targets))
        return self._instruction(rng, colour=colours[self.target_index])

    def target_position(self, data: mujoco.MjData) -> np.ndarray:
        return self.body_position(data, f"target{self.target_index}")

    def goal_distance(self, data: mujoco.MjData) -> float:
        """The end-effector's distance to the named sphere's centre (success below `tolerance`)."""
        position, _ = ee_frame(self.model, data)
        return float(np.linalg.norm(position - self.target_position(data)))

    def success(self, data: mujoco.MjData) -> bool:
        return self.goal_distance(data) < self.tolerance


# --- push ---------------------------------------------------------------------------------------
class Push(Task):
    name = "push"
    max_steps = 60
    templates = (
        "push the cube into the {goal} square",
        "slide the {cube} block onto the {goal} square",
        "push the {cube} cube to the {goal} area",
        "move the {cube} cube into the {goal} region by pushing it",
    )
    cube_half = 0.025
    goal_half = 0.045
    tolerance = 0.035  # the cube centre must be this close to the goal centre (inside the square)

    def objects_xml(self) -> str:
        goal = (f'<geom name="goal" type="box" size="{self.goal_half} {self.goal_half} 0.0005" pos="0 0 0.0005" '
                'contype="0" conaffinity="0" rgba="1 1 1 1"/>')
        return _marker_xml("goal", goal) + _cube_xml("cube", self.cube_half, friction=0.4)

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> str:
        cube_colour, goal_colour = _pick_colours(rng, 2)
        # The cube starts 12–20 cm from the goal, in any direction that keeps both on the table's
        # reachable middle; the expert pushes it along the line between them.
        for _ in range(1000):
            cube = rng.uniform(PLACEMENT_LOW, PLACEMENT_HIGH)
            angle, distance = rng.uniform(-math.pi, math.pi), rng.uniform(0.12, 0.2)
            goal = cube + distance * np.array([math.cos(angle), math.sin(angle)])
            if np.all(goal >= PLACEMENT_LOW - 0.03) and np.all(goal <= PLACEMENT_HIGH + 0.03):
                break
        self._set_free_body(data, "cube", np.array([*cube, TABLE_HEIGHT + self.cube_half]), rng.uniform(-0.3, 0.3))
        data.mocap_pos[self.model.body("goal").mocapid[0]] = [*goal, TABLE_HEIGHT]
        self._set_colour("cube", cube_colour)
        self._set_colour("goal", goal_colour)
        return self._instruction(rng, cube=cube_colour, goal=goal_colour)

    def goal_distance(self, data: mujoco.MjData) -> float:
        """The cube centre's distance to the goal square's centre on the table plane."""
        cube, goal = self.body_position(data, "cube"), self.body_position(data, "goal")
        return float(np.linalg.norm(cube[:2] - goal[:2]))

    def success(self, data: mujoco.MjData) -> bool:
        return bool(self.goal_distance(data) < self.tolerance and self.resting_on_table(data, "cube", self.cube_half))


# --- pick and place -----------------------------------------------------------------------------
class PickPlace(Task):
    name = "pick_place"
    max_steps = 70
    templates = (
        "put the {cube} cube on the {pad} pad",
        "place the {cube} block onto the {pad} pad",
        "pick up the {cube} cube and put it on the {pad} mat",
        "move the {cube} cube to the {pad} pad",
    )
    pad_half = 0.06

    def objects_xml(self) -> str:
        pad = (f'<geom name="pad" type="box" size="{self.pad_half} {self.pad_half} 0.0005" pos="0 0 0.0005" '
               'contype="0" conaffinity="0" rgba="1 1 1 1"/>')
        return _marker_xml("pad", pad) + _cube_xml("cube0") + _cube_xml("cube1")

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> str:
        colours = _pick_colours(rng, 3)
        cube0, cube1, pad = _sample_positions(rng, 3, 0.13)
        self._place_cube(data, "cube0", cube0, rng)
        self._place_cube(data, "cube1", cube1, rng)
        data.mocap_pos[self.model.body("pad").mocapid[0]] = [*pad, TABLE_HEIGHT]
        for geom, colour in zip(("cube0", "cube1", "pad"), colours):
            self._set_colour(geom, colour)
        self.colours = colours  # of cube0, cube1 and the pad
        self.target_cube = f"cube{rng.integers(2)}"
        return self._instruction(rng, cube=colours[int(self.target_cube[-1])], pad=colours[2])

    def goal_distance(self, data: mujoco.MjData) -> float:
        """The named cube's distance to the pad's centre on the table plane (inside the pad from
        about `pad_half`)."""
        cube, pad = self.body_position(data, self.target_cube), self.body_position(data, "pad")
        return float(np.linalg.norm(cube[:2] - pad[:2]))

    def success(self, data: mujoco.MjData) -> bool:
        cube, pad = self.body_position(data, self.target_cube), self.body_position(data, "pad")
        inside = bool(np.all(np.abs(cube[:2] - pad[:2]) < self.pad_half))
        released = not self.touches_gripper(data, self.target_cube)
        return inside and released and self.resting_on_table(data, self.target_cube)


# --- stack --------------------------------------------------------------------------------------
class Stack(Task):
    name = "stack"
    max_steps = 70
    templates = (
        "stack the {top} cube on the {bottom} cube",
        "put the {top} block on top of the {bottom} block",
        "place the {top} cube onto the {bottom} one",
        "pick up the {top} cube and stack it on the {bottom} cube",
    )

    def objects_xml(self) -> str:
        return _cube_xml("cube0") + _cube_xml("cube1")

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> str:
        colours = _pick_colours(rng, 2)
        positions = _sample_positions(rng, 2, 0.12)
        for i in range(2):
            self._place_cube(data, f"cube{i}", positions[i], rng)
            self._set_colour(f"cube{i}", colours[i])
        top = int(rng.integers(2))
        self.top_cube, self.bottom_cube = f"cube{top}", f"cube{1 - top}"
        return self._instruction(rng, top=colours[top], bottom=colours[1 - top])

    def goal_distance(self, data: mujoco.MjData) -> float:
        """The top cube's distance to its resting place on the bottom cube."""
        top, bottom = self.body_position(data, self.top_cube), self.body_position(data, self.bottom_cube)
        return float(np.linalg.norm(top - bottom - np.array([0.0, 0.0, 2 * CUBE_HALF])))

    def success(self, data: mujoco.MjData) -> bool:
        top, bottom = self.body_position(data, self.top_cube), self.body_position(data, self.bottom_cube)
        aligned = np.linalg.norm(top[:2] - bottom[:2]) < 0.025
        on_top = abs(top[2] - bottom[2] - 2 * CUBE_HALF) < 0.008
        return bool(aligned and on_top and self.resting_on_table(data, self.bottom_cube)
                    and not self.touches_gripper(data, self.top_cube))


# --- turn ---------------------------------------------------------------------------------------
class Turn(Task):
    """A T-handle on a vertical hinge; turning it by 90° needs the wrist to yaw while grasping the bar."""

    name = "turn"
    max_steps = 60
    templates = (
        "turn the handle 90 degrees {direction}",
        "rotate the {colour} handle a quarter turn {direction}",
        "twist the {colour} knob {direction} by 90 degrees",
        "turn the {colour} handle {direction}",
    )
    bar_height = 0.08  # height of the bar's axis above the table
    bar_half = (0.055, 0.012, 0.012)
    tolerance = math.radians(10)

    def objects_xml(self) -> str:
        length, width, height = self.bar_half
        return (
            '<body name="handle_base" pos="0.5 0 0">'
            '<geom name="handle_base" type="cylinder" size="0.045 0.005" pos="0 0 0.005" rgba="0.3 0.3 0.32 1"/>'
            '<body name="handle" pos="0 0 0.01">'
            '<joint name="handle_hinge" type="hinge" axis="0 0 1" damping="0.3" frictionloss="0.05"/>'
            f'<geom name="handle_post" type="cylinder" size="0.008 {self.bar_height / 2 - 0.005:g}" '
            f'pos="0 0 {self.bar_height / 2 - 0.005:g}" rgba="0.3 0.3 0.32 1" mass="0.05"/>'
            f'<geom name="handle_bar" type="box" size="{length} {width} {height}" pos="0 0 {self.bar_height - 0.01:g}" '
            'friction="1.2 0.01 0.0002" condim="4" rgba="1 1 1 1" mass="0.05"/>'
            "</body></body>"
        )

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> str:
        colour = _pick_colours(rng, 1)[0]
        xy = rng.uniform(PLACEMENT_LOW + 0.04, PLACEMENT_HIGH - 0.04)
        self.model.body("handle_base").pos[:] = [*xy, TABLE_HEIGHT]
        self._set_colour("handle_bar", colour)
        hinge = self.model.joint("handle_hinge")
        self.start_angle = float(rng.uniform(-math.pi / 4, math.pi / 4))
        data.qpos[hinge.qposadr[0]] = self.start_angle
        data.qvel[hinge.dofadr[0]] = 0.0
        clockwise = bool(rng.integers(2))
        # Seen from above (looking down −z), clockwise is a negative turn about +z.
        self.goal_angle = self.start_angle + (-math.pi / 2 if clockwise else math.pi / 2)
        return self._instruction(rng, direction="clockwise" if clockwise else "counterclockwise", colour=colour)

    def handle_angle(self, data: mujoco.MjData) -> float:
        return float(data.qpos[self.model.joint("handle_hinge").qposadr[0]])

    def bar_centre(self, data: mujoco.MjData) -> np.ndarray:
        return data.geom_xpos[self.model.geom("handle_bar").id].copy()

    def success(self, data: mujoco.MjData) -> bool:
        turned = abs(self.handle_angle(data) - self.goal_angle) < self.tolerance
        return bool(turned and not self.touches_gripper(data, "handle"))


TASKS: dict[str, type[Task]] = {task.name: task for task in (Reach, Push, PickPlace, Stack, Turn)}


@functools.cache
def _instruction_patterns() -> tuple[tuple[str, re.Pattern], ...]:
    """(task, regex) per wording: each `{field}` of a template matches one word."""
    return tuple((name, re.compile(re.sub(r"\\\{\w+\\\}", r"[\\w-]+", re.escape(template))))
                 for name, task in TASKS.items() for template in task.templates)


def task_of_instruction(instruction: str) -> str | None:
    """The task whose wordings (`templates`) produce `instruction`, or None: a dataset's instruction
    names its task without a task column (wordings overlap in words, e.g. "move the …", not in form)."""
    return next((name for name, pattern in _instruction_patterns() if pattern.fullmatch(instruction.strip())), None)


def make_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]()
