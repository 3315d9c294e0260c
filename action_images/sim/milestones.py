"""Milestones of the multi-phase tasks: how far an episode got, not only whether it succeeded.

An observer follows the scene after the reset and after every step (`run_episode(observer=…)`) and
records which of its task's milestones were reached, in order:

- push: the fingers got *behind the cube* (within 3 cm, on the table plane, of the expert's approach
  point on the goal's far side, below 10 cm height), the *cube moved* (≥ 2 cm), it moved *towards the
  goal* (≥ 3 cm closer than it started), *success*;
- pick_place: the open fingers got *to the named cube* (within 2 cm on the table plane, below 8 cm),
  the named cube was *lifted* (≥ 2 cm off the table, touching the fingers), it was carried *over the
  pad* (lifted, inside the pad on the table plane), *success*. Touching the other cube is noted apart.
"""

from __future__ import annotations

import numpy as np

from action_images.sim.experts import PushExpert
from action_images.sim.scene import TABLE_HEIGHT
from action_images.sim.tasks import CUBE_HALF

MILESTONES = {
    "push": ("behind the cube", "cube moved", "towards the goal", "success"),
    "pick_place": ("at the named cube", "lifted", "over the pad", "success"),
}


class PushMilestones:
    def __init__(self) -> None:
        self.reached: set[str] = set()
        self.start: np.ndarray | None = None  # the cube's start on the table plane, set at the reset

    def __call__(self, env) -> None:
        task, data, ee = env.task, env.data, env.ee_pose()
        cube, goal = task.body_position(data, "cube")[:2], task.body_position(data, "goal")[:2]
        if self.start is None:  # the reset: where the cube starts, where pushing should begin
            self.start, self.start_distance = cube, float(np.linalg.norm(cube - goal))
            self.approach = PushExpert(env).approach_point()
            return
        if np.linalg.norm(ee[:2] - self.approach) < 0.03 and ee[2] < TABLE_HEIGHT + 0.10:
            self.reached.add("behind the cube")
        if np.linalg.norm(cube - self.start) >= 0.02:
            self.reached.add("cube moved")
        if np.linalg.norm(cube - goal) <= self.start_distance - 0.03:
            self.reached.add("towards the goal")
        if task.success(data):
            self.reached.add("success")


class PickPlaceMilestones:
    def __init__(self) -> None:
        self.reached: set[str] = set()
        self.touched_other = False
        # metres: the fingers' closest approach on the table plane, below 8 cm, to the named cube, the other one, the pad
        self.closest_low = {"named cube": np.inf, "other cube": np.inf, "pad": np.inf}
        self.lowest = np.inf  # metres: the fingers' lowest height

    def __call__(self, env) -> None:
        task, data, ee = env.task, env.data, env.ee_pose()
        named = task.target_cube
        other = "cube1" if named == "cube0" else "cube0"
        cube, pad = task.body_position(data, named), task.body_position(data, "pad")[:2]
        low = ee[2] < TABLE_HEIGHT + 0.08
        if low:
            for name, where in (("named cube", cube[:2]), ("other cube", task.body_position(data, other)[:2]), ("pad", pad)):
                self.closest_low[name] = min(self.closest_low[name], float(np.linalg.norm(ee[:2] - where)))
        self.lowest = min(self.lowest, float(ee[2] - TABLE_HEIGHT))
        if np.linalg.norm(ee[:2] - cube[:2]) < 0.02 and low and ee[7] > 0.5:
            self.reached.add("at the named cube")
        lifted = cube[2] > TABLE_HEIGHT + CUBE_HALF + 0.02 and task.touches_gripper(data, named)
        if lifted:
            self.reached.add("lifted")
            if np.all(np.abs(cube[:2] - pad) < task.pad_half):
                self.reached.add("over the pad")
        if task.success(data):
            self.reached.add("success")
        self.touched_other |= task.touches_gripper(data, other)


def furthest(reached: set[str], milestones: tuple[str, ...]) -> int:
    """How many milestones an episode passed: the index of the last one reached, plus one (a later one
    counts as passing the earlier ones; 0: none)."""
    return max((i + 1 for i, name in enumerate(milestones) if name in reached), default=0)


def milestone_observer(task: str) -> PushMilestones | PickPlaceMilestones:
    if task not in MILESTONES:
        raise ValueError(f"no milestones for task {task!r}; they exist for: {', '.join(MILESTONES)}")
    return PushMilestones() if task == "push" else PickPlaceMilestones()
