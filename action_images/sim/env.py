"""`ManipulationEnv`: a `gymnasium.Env` around one task in the Panda scene, and the `make_env` factory.

Action: float32 (8,) `[x, y, z, qx, qy, qz, qw, g]` — the absolute EE target in the world frame
(= robot base frame), quaternion xyzw, gripper openness g ∈ [0, 1] (1 = open). The EE frame is defined
in `scene.py` (+z out of the gripper along the approach, +y along the fingers' opening). Positions are
clipped to the controller's workspace box; g is clipped to [0, 1]; a wrong shape, NaN or a zero
quaternion is a ValueError. Control runs at 10 Hz (`fps`), with physics substeps inside.

Observation (a dict):
- `images`: camera name → uint8 (H, W, 3) RGB (empty when the env was made with `render=False`);
- `intrinsics`: camera name → float32 (3, 3) OpenCV K, pixel centres at integer coordinates;
- `extrinsics`: camera name → float32 (4, 4) camera-to-world, OpenCV (x right, y down, z forward);
  the wrist camera's changes every step;
- `ee_pose`: float32 (8,) the current EE pose in the action's format, g = the fingers' openness;
- `instruction`: str.

Reward is 1.0 on success, else 0.0; an episode terminates on success (`info["success"]`) and is
truncated after `max_steps` control steps. `reset(seed=...)` makes the episode reproducible: object
poses and colours, the named object, the instruction's wording and camera jitter all come from it.
`reset(options={"ee_offset": (dx, dy, dz)})` starts the EE that far from its home position (collection
uses it for varied starts; evaluation always starts at home); `info["success"]` says whether that start
already completes the task.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: offscreen rendering without a display

import dataclasses  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from action_images.sim.controller import ControllerConfig, EndEffectorController, validate_action  # noqa: E402
from action_images.sim.geometry import matrix_to_quat_xyzw  # noqa: E402
from action_images.sim.scene import (  # noqa: E402
    DEFAULT_CAMERAS,
    EE_MARKER,
    EE_MARKER_GROUP,
    FINGER_JOINTS,
    FINGER_OPEN,
    SceneConfig,
    WristCameraSpec,
    build_scene_xml,
    ee_frame,
    gripper_geom_ids,
    jittered_camera_pose,
    load_model,
)
from action_images.sim.tasks import Task, make_task  # noqa: E402
from rendering.cameras import from_mujoco  # noqa: E402

FPS = 10


class UnreachableStart(ValueError):
    """A requested start (`reset(options={"ee_offset": …})`) lies out of the arm's reach."""


@dataclass(frozen=True)
class EnvConfig:
    image_size: int = 128
    cameras: tuple[str, ...] = ("front", "left", "right")  # fixed cameras, rendered in this order
    wrist_camera: bool = False  # also render the camera on the hand, named "wrist"
    # Fixed cameras only (the wrist camera is mounted): the eye moves by up to this many metres per
    # axis and the view turns by up to this many radians about each camera axis, uniformly, per reset.
    camera_jitter: float = 0.0
    max_steps: int | None = None  # None: the task's default
    render: bool = True  # False: no images in observations (physics and calibration only)
    scene: SceneConfig = field(default_factory=SceneConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)


class ManipulationEnv(gym.Env):
    """One task in the Panda scene; see the module docstring for actions, observations and episodes."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, task: Task, config: EnvConfig = EnvConfig()):
        known = {spec.name: spec for spec in DEFAULT_CAMERAS}
        unknown = [name for name in config.cameras if name not in known]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; known fixed cameras: {', '.join(known)} (and 'wrist' "
                             "through wrist_camera=True)")
        if config.image_size < 8 or config.image_size > config.scene.max_image_size:
            raise ValueError(f"image_size must lie in [8, {config.scene.max_image_size}], got {config.image_size}")
        self.task = task
        self.config = config
        self.render_mode = "rgb_array"
        self.fps = FPS
        self.camera_specs = tuple(known[name] for name in config.cameras)
        wrist = WristCameraSpec() if config.wrist_camera else None
        scene = dataclasses.replace(config.scene, cameras=self.camera_specs, wrist_camera=wrist)
        self.camera_names = tuple(config.cameras) + ((wrist.name,) if wrist else ())
        self.model = load_model(build_scene_xml(task.objects_xml(), scene, model_name=f"action_images_{task.name}"))
        self.data = mujoco.MjData(self.model)
        task.bind(self.model)
        self.home_joints = np.array(scene.home_joints)
        self.controller = EndEffectorController(self.model, self.home_joints, config.controller)
        self.max_steps = config.max_steps if config.max_steps is not None else task.max_steps
        self._camera_ids = np.array([self.model.camera(name).id for name in self.camera_names])
        self._finger_qpos = np.array([self.model.joint(name).qposadr[0] for name in FINGER_JOINTS])
        self._gripper_geoms = gripper_geom_ids(self.model)
        self._ee_marker = self.model.geom(EE_MARKER).id
        self._renderer: mujoco.Renderer | None = None
        self.instruction = ""
        self.steps = 0
        self._define_spaces()

    def _define_spaces(self) -> None:
        size = self.config.image_size
        low, high = self.config.controller.workspace_low, self.config.controller.workspace_high
        self.action_space = gym.spaces.Box(
            low=np.array([*low, -1, -1, -1, -1, 0], dtype=np.float32),
            high=np.array([*high, 1, 1, 1, 1, 1], dtype=np.float32),
            dtype=np.float32,
        )
        def per_camera(space: gym.Space) -> gym.spaces.Dict:
            return gym.spaces.Dict({name: space for name in self.camera_names})

        image = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        characters = "".join(sorted(gym.spaces.text.alphanumeric)) + " ,.'-"
        self.observation_space = gym.spaces.Dict({
            "images": per_camera(image) if self.config.render else gym.spaces.Dict({}),
            "intrinsics": per_camera(gym.spaces.Box(-np.inf, np.inf, (3, 3), np.float32)),
            "extrinsics": per_camera(gym.spaces.Box(-np.inf, np.inf, (4, 4), np.float32)),
            "ee_pose": gym.spaces.Box(-np.inf, np.inf, (8,), np.float32),
            "instruction": gym.spaces.Text(max_length=200, charset=characters),
        })

    # --- episode ----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        self.controller.set_arm_joints(data, self.home_joints)
        data.qpos[self._finger_qpos] = FINGER_OPEN
        self._place_cameras()
        self.instruction = self.task.reset(data, self.np_random)
        mujoco.mj_forward(model, data)
        offset = (options or {}).get("ee_offset")
        if offset is not None:
            self._move_home_by(np.asarray(offset, dtype=np.float64))
        self.controller.reset(data, gripper=1.0)
        self.steps = 0
        return self._observe(), {"success": self.task.success(data), "instruction": self.instruction}

    def _move_home_by(self, offset: np.ndarray, tolerance: float = 0.005) -> None:
        """Start with the EE at its home position + `offset` (metres, world frame; home rotation): the
        arm is placed there by inverse kinematics, no control step is spent. Raises if it cannot be."""
        if offset.shape != (3,) or not np.isfinite(offset).all():
            raise ValueError(f"ee_offset must be 3 finite numbers (metres), got {offset!r}")
        home, rotation = ee_frame(self.model, self.data)
        target = np.clip(home + offset, self.config.controller.workspace_low, self.config.controller.workspace_high)
        joints = self.home_joints.copy()
        for _ in range(10):  # each call takes a few damped steps; a start far from home needs more
            joints = self.controller.solve_ik(target, rotation, joints)
        self.controller.set_arm_joints(self.data, joints)
        mujoco.mj_forward(self.model, self.data)
        reached = np.linalg.norm(ee_frame(self.model, self.data)[0] - target)
        if reached > tolerance:
            raise UnreachableStart(f"cannot start the EE at {target.round(3).tolist()}: inverse kinematics ends {100 * reached:.1f} cm away")

    def _place_cameras(self) -> None:
        for spec in self.camera_specs:
            position, quat = jittered_camera_pose(spec, self.config.camera_jitter, self.np_random)
            camera = self.model.camera(spec.name)
            camera.pos[:] = position
            camera.quat[:] = quat

    def step(self, action):
        action = validate_action(action)
        self.controller.set_action(action)
        for substep in range(self.controller.substeps):
            self.controller.apply(self.data, substep)
            mujoco.mj_step(self.model, self.data)
        self.steps += 1
        success = self.task.success(self.data)
        truncated = self.steps >= self.max_steps and not success
        info = {"success": success, "instruction": self.instruction, "goal_distance": self.task.goal_distance(self.data)}
        return self._observe(), float(success), success, truncated, info

    # --- observations -----------------------------------------------------------------------------
    def ee_pose(self) -> np.ndarray:
        """float32 (8,) `[x, y, z, qx, qy, qz, qw, g]`: the EE pose now, g = the fingers' openness."""
        position, rotation = ee_frame(self.model, self.data)
        openness = float(np.clip(self.data.qpos[self._finger_qpos].mean() / FINGER_OPEN, 0.0, 1.0))
        return np.concatenate([position, matrix_to_quat_xyzw(rotation), [openness]]).astype(np.float32)

    def cameras(self):
        """The calibrated cameras now, as `rendering.cameras.Cameras` with batch shape (V,) in the
        order of `camera_names` (OpenCV, camera-to-world)."""
        ids = self._camera_ids
        size = self.config.image_size
        return from_mujoco(
            torch.from_numpy(self.data.cam_xpos[ids].copy()),
            torch.from_numpy(self.data.cam_xmat[ids].copy()),
            torch.from_numpy(self.model.cam_fovy[ids].copy()),
            size,
            size,
        )

    def _observe(self) -> dict:
        cameras = self.cameras()
        intrinsics, extrinsics = cameras.intrinsics.numpy(), cameras.extrinsics.numpy()
        return {
            "images": {name: self.render_camera(name) for name in self.camera_names} if self.config.render else {},
            "intrinsics": {name: intrinsics[i].astype(np.float32) for i, name in enumerate(self.camera_names)},
            "extrinsics": {name: extrinsics[i].astype(np.float32) for i, name in enumerate(self.camera_names)},
            "ee_pose": self.ee_pose(),
            "instruction": self.instruction,
        }

    # --- rendering --------------------------------------------------------------------------------
    def _get_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            size = self.config.image_size
            self._renderer = mujoco.Renderer(self.model, size, size)
        return self._renderer

    def render_camera(self, camera: str) -> np.ndarray:
        """uint8 (H, W, 3) RGB image of `camera` in the current state."""
        renderer = self._get_renderer()
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def render(self) -> np.ndarray:
        """gymnasium's render: the first camera's image."""
        return self.render_camera(self.camera_names[0])

    def segmentation(self, camera: str, ee_marker: bool = False) -> np.ndarray:
        """bool (H, W): True on pixels where the gripper (hand and fingers) is the visible surface.

        With `ee_marker`, a small sphere at the EE point (8 mm radius, never drawn in the images) is
        drawn and counted as gripper: between open fingers the EE point has no gripper surface of its
        own, and the marker shows where it is unless the gripper hides it.
        """
        if camera not in self.camera_names:
            raise ValueError(f"unknown camera {camera!r}; this env has {', '.join(self.camera_names)}")
        renderer = self._get_renderer()
        option = mujoco.MjvOption()
        option.geomgroup[EE_MARKER_GROUP] = int(ee_marker)
        renderer.enable_segmentation_rendering()
        try:
            renderer.update_scene(self.data, camera=camera, scene_option=option)
            ids = renderer.render()  # (H, W, 2): object id, object type; -1 for background
        finally:
            renderer.disable_segmentation_rendering()
        is_geom = ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
        geoms = np.append(self._gripper_geoms, self._ee_marker) if ee_marker else self._gripper_geoms
        return is_geom & np.isin(ids[..., 0], geoms)

    def depth(self, camera: str) -> np.ndarray:
        """float32 (H, W): distance of the visible surface along the camera's optical axis, in metres."""
        if camera not in self.camera_names:
            raise ValueError(f"unknown camera {camera!r}; this env has {', '.join(self.camera_names)}")
        renderer = self._get_renderer()
        renderer.enable_depth_rendering()
        try:
            renderer.update_scene(self.data, camera=camera)
            return renderer.render().astype(np.float32)
        finally:
            renderer.disable_depth_rendering()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def make_env(
    task: str,
    image_size: int = 128,
    cameras: tuple[str, ...] = ("front", "left", "right"),
    wrist_camera: bool = False,
    camera_jitter: float = 0.0,
    max_steps: int | None = None,
    render: bool = True,
) -> ManipulationEnv:
    """A `ManipulationEnv` for the task named `task` (one of `tasks.TASKS`)."""
    config = EnvConfig(
        image_size=image_size, cameras=tuple(cameras), wrist_camera=wrist_camera, camera_jitter=camera_jitter,
        max_steps=max_steps, render=render,
    )
    return ManipulationEnv(make_task(task), config)
