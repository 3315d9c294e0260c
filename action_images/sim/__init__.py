"""The embedded simulator (SPEC §8): MuJoCo scenes with the Franka Panda, calibrated cameras, five
tasks with scripted experts and a `gymnasium.Env` interface.

    from action_images.sim import make_env, make_expert

    env = make_env("pick_place", image_size=128, cameras=("front", "left", "right"))
    expert = make_expert(env)
    obs, info = env.reset(seed=0)
    expert.reset()
    obs, reward, terminated, truncated, info = env.step(expert.act(obs))

Conventions: world frame = robot base frame, metres, radians; actions and `obs["ee_pose"]` are
`[x, y, z, qx, qy, qz, qw, g]` (absolute EE pose in the world, quaternion xyzw, gripper openness
1 = open); cameras are OpenCV with camera-to-world extrinsics. The EE frame: see `scene.py`.
Rendering uses `MUJOCO_GL=egl` unless the variable is already set.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first `import mujoco`

from action_images.sim.controller import (  # noqa: E402
    ACTION_SIZE,
    ControllerConfig,
    EndEffectorController,
    validate_action,
)
from action_images.sim.env import FPS, EnvConfig, ManipulationEnv, make_env  # noqa: E402
from action_images.sim.experts import EXPERTS, WaypointExpert, make_expert  # noqa: E402
from action_images.sim.scene import DEFAULT_CAMERAS, CameraSpec, SceneConfig, WristCameraSpec  # noqa: E402
from action_images.sim.tasks import TASKS, Task, make_task, task_of_instruction  # noqa: E402

__all__ = [
    "ACTION_SIZE",
    "CameraSpec",
    "ControllerConfig",
    "DEFAULT_CAMERAS",
    "EXPERTS",
    "EndEffectorController",
    "EnvConfig",
    "FPS",
    "ManipulationEnv",
    "SceneConfig",
    "TASKS",
    "Task",
    "WaypointExpert",
    "WristCameraSpec",
    "make_env",
    "make_expert",
    "make_task",
    "task_of_instruction",
    "validate_action",
]
