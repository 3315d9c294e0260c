"""The MuJoCo scene: the Franka Panda of `gymnasium-robotics`, a table, lights and calibrated cameras.

Frames and conventions (SPEC §2):
- The world frame is the robot base frame: the Panda's base (`panda0_link0`) sits at the origin on the
  table top (z = 0), facing +x. Metres and radians.
- The end-effector (EE) frame is the Panda's `end_effector` site (0.21 m from the flange of link 7,
  between the finger pads). Its +z axis points out of the gripper along the approach direction (down
  towards the table in a top-down grasp); its +y axis is the finger-opening direction (from the right
  finger towards the left finger); +x = y × z is perpendicular to the fingers' opening. The same frame
  is used for actions, observations and experts. A top-down grasp with x along world +x is the
  quaternion (xyzw) [1, 0, 0, 0], a half turn about x.
- MuJoCo cameras look down their −z axis with +y up; observations convert them to OpenCV
  (`rendering.cameras.from_mujoco`).

The robot's model files (Apache-2.0) are read from the installed `gymnasium_robotics` package, never
copied into this repository; they are parsed and edited in memory:
- every robot body gets `gravcomp="1"`, so the position servos do not sag under gravity;
- the joint damping is lowered (100 → 40 N·m·s on joints 1–4, 10 → 5 on joints 5–7): with the
  servos' force limits (87 and 12 N·m) the original damping capped the joints at 0.9–1.2 rad/s, about
  half the real Panda's 2.2–2.6 rad/s;
- the site's sphere is hidden, and a sphere at the EE in geom group 5 (never drawn in the images) lets
  a calibration check see the EE point even between open fingers;
- the arm links are drawn with their collision meshes unless `SceneConfig.arm_meshes = "visual"`;
- the arm links' collision meshes are switched off (only the hand and the fingers touch the world),
  which keeps the physics cheap and avoids arm-table self-tangles the tasks never need.
"""

from __future__ import annotations

import importlib.util
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

EE_SITE = "end_effector"
HAND_BODY = "panda0_link7"
FINGER_BODIES = ("panda0_leftfinger", "panda0_rightfinger")
ARM_JOINTS = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("robot:panda0_finger_joint1", "robot:panda0_finger_joint2")
FINGER_OPEN = 0.04  # metres per finger at openness g = 1
TABLE_HEIGHT = 0.0
EE_MARKER = "ee_marker"  # invisible in images; see `_robot_elements`
EE_MARKER_GROUP = 5
EE_MARKER_RADIUS = 0.008  # the table top is the plane z = 0 of the robot base frame

# The EE frame expressed in link 7 (from chain.xml): 0.21 m along the flange axis, turned −45° about
# it so that +y is the fingers' sliding axis. Used to mount the wrist camera relative to the EE.
_EE_IN_LINK7_POS = np.array([0.0, 0.0, 0.21])
_EE_IN_LINK7_YAW = -math.pi / 4


def franka_asset_dir() -> Path:
    """Directory of the Panda model files inside the installed `gymnasium_robotics` package."""
    # find_spec locates the package without importing it (importing it loads every robotics env).
    spec = importlib.util.find_spec("gymnasium_robotics")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    candidates = [Path(location) / "envs" / "assets" / "kitchen_franka" / "franka_assets" for location in locations]
    directory = next((c for c in candidates if (c / "chain.xml").is_file()), None)
    if directory is None:
        raise FileNotFoundError(
            "the Franka Panda model files (gymnasium_robotics/envs/assets/kitchen_franka/franka_assets) "
            "were not found; install gymnasium-robotics (pip install gymnasium-robotics)"
        )
    return directory


# --- cameras ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraSpec:
    """A fixed camera looking from `eye` at `target` (world frame), vertical field of view in degrees."""

    name: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    fovy: float = 45.0


WORKSPACE_CENTRE = (0.48, 0.0, 0.14)

DEFAULT_CAMERAS = (
    CameraSpec("front", eye=(1.20, 0.0, 0.75), target=WORKSPACE_CENTRE, fovy=42.0),
    CameraSpec("left", eye=(0.80, 0.75, 0.70), target=WORKSPACE_CENTRE, fovy=42.0),
    CameraSpec("right", eye=(0.80, -0.75, 0.70), target=WORKSPACE_CENTRE, fovy=42.0),
)


@dataclass(frozen=True)
class WristCameraSpec:
    """The camera on the hand, placed in the EE frame: behind the fingers on the +x side of the hand,
    looking along the approach axis at a point `look_at_depth` beyond the EE."""

    name: str = "wrist"
    position_in_ee: tuple[float, float, float] = (0.09, 0.0, -0.08)
    look_at_in_ee: tuple[float, float, float] = (0.0, 0.0, 0.12)
    fovy: float = 70.0


def mujoco_camera_quat(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Orientation (wxyz) of a MuJoCo camera at `eye` looking at `target`: its −z axis points at the
    target and its +y axis is as close to `up` (default world +z) as possible."""
    up = np.array([0.0, 0.0, 1.0]) if up is None else up
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    camera_up = np.cross(right, forward)
    matrix = np.stack([right, camera_up, -forward], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, matrix.flatten())
    return quat


def _rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def wrist_camera_in_link7(spec: WristCameraSpec) -> tuple[np.ndarray, np.ndarray]:
    """Position and orientation (wxyz) of the wrist camera in the frame of link 7 (its parent body)."""
    eye, target = np.array(spec.position_in_ee), np.array(spec.look_at_in_ee)
    # Up in the image = towards the flange (−z of the EE frame), so the fingers appear at the bottom.
    quat_in_ee = mujoco_camera_quat(eye, target, up=np.array([0.0, 0.0, -1.0]))
    ee_rotation = _rotation_z(_EE_IN_LINK7_YAW)
    position = _EE_IN_LINK7_POS + ee_rotation @ eye
    ee_quat = np.zeros(4)
    mujoco.mju_mat2Quat(ee_quat, ee_rotation.flatten())
    quat = np.zeros(4)
    mujoco.mju_mulQuat(quat, ee_quat, quat_in_ee)
    return position, quat


def jittered_camera_pose(spec: CameraSpec, jitter: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Camera position and orientation (wxyz) with the eye moved by up to `jitter` metres per axis and
    the view turned by up to `jitter` radians about each camera axis; `jitter = 0` gives the nominal pose."""
    eye, target = np.array(spec.eye), np.array(spec.target)
    offset = rng.uniform(-jitter, jitter, size=3) if jitter > 0 else np.zeros(3)
    angles = rng.uniform(-jitter, jitter, size=3) if jitter > 0 else np.zeros(3)
    quat = mujoco_camera_quat(eye + offset, target)
    turn = np.zeros(4)
    mujoco.mju_euler2Quat(turn, angles, "XYZ")  # about the camera's own axes
    jittered = np.zeros(4)
    mujoco.mju_mulQuat(jittered, quat, turn)
    return eye + offset, jittered


# --- the model ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneConfig:
    """What goes into the scene besides the task's objects."""

    cameras: tuple[CameraSpec, ...] = DEFAULT_CAMERAS
    wrist_camera: WristCameraSpec | None = None
    timestep: float = 0.002  # seconds per physics step
    max_image_size: int = 640  # offscreen buffer size; images may not be larger
    table_half_size: tuple[float, float] = (0.75, 0.7)
    table_centre_x: float = 0.45
    # "collision": draw the arm links with their collision meshes (200–300 triangles each instead of
    # 12–22 thousand): indistinguishable at 128² and ~6× faster to render on a CPU. "visual": the
    # detailed meshes. The hand and fingers always use their visual meshes.
    arm_meshes: str = "collision"
    arm_damping: float = 40.0  # joints 1–4, N·m·s/rad
    forearm_damping: float = 5.0  # joints 5–7
    # EE at (0.45, 0, 0.30), top-down, x along world +x (found by the controller's IK)
    home_joints: tuple[float, ...] = (0.0, -0.2588, 0.0, -2.4317, 0.0, 0.6026, 0.0)


def _read_include(name: str) -> ET.Element:
    root = ET.parse(franka_asset_dir() / name).getroot()
    if root.tag != "mujocoinclude":
        raise ValueError(f"unexpected root <{root.tag}> in {name}; expected <mujocoinclude>")
    return root


def _robot_elements(config: SceneConfig) -> tuple[list[ET.Element], ET.Element, list[ET.Element]]:
    """The robot's (asset and default sections, root body, actuators), edited as the module says."""
    if config.arm_meshes not in ("collision", "visual"):
        raise ValueError(f"arm_meshes must be 'collision' or 'visual', got {config.arm_meshes!r}")
    # assets.xml also sets <compiler> (a relative meshdir) and <option>; the scene sets its own.
    sections = [child for child in _read_include("assets.xml") if child.tag not in ("compiler", "option")]
    for section in sections:
        _edit_defaults(section, config)
    base = _read_include("chain.xml").find("body")
    _edit_chain(base, config)
    return sections, base, list(_read_include("actuator.xml"))


def _edit_defaults(section: ET.Element, config: SceneConfig) -> None:
    for element in section.iter("default"):
        kind = element.get("class")
        if kind == "panda_col":  # arm links do not collide (the hand is switched back on in _edit_chain)
            element.find("geom").set("contype", "0")
            element.find("geom").set("conaffinity", "0")
        elif kind == "panda_arm":
            element.find("joint").set("damping", f"{config.arm_damping:g}")
        elif kind == "panda_forearm":
            element.find("joint").set("damping", f"{config.forearm_damping:g}")


def _edit_chain(base: ET.Element, config: SceneConfig) -> None:
    for body in base.iter("body"):
        body.set("gravcomp", "1")
    for geom in base.iter("geom"):
        mesh = geom.get("mesh", "")
        if mesh == "hand_col":  # the hand may touch objects
            geom.set("contype", "1")
            geom.set("conaffinity", "1")
        if config.arm_meshes == "collision" and mesh.startswith("link") and mesh.endswith("_viz"):
            geom.set("mesh", mesh.replace("_viz", "_col"))
    link7 = next(body for body in base.iter("body") if body.get("name") == HAND_BODY)
    site = next(site for site in link7.iter("site") if site.get("name") == EE_SITE)
    site.set("group", "3")  # keep the site's sphere out of the images
    ET.SubElement(  # a small sphere at the EE, drawn only when group 5 is asked for (calibration checks)
        link7, "geom", name=EE_MARKER, type="sphere", size=f"{EE_MARKER_RADIUS:g}", pos=site.get("pos"),
        group=str(EE_MARKER_GROUP), contype="0", conaffinity="0", mass="0", rgba="1 0 1 1",
    )
    if config.wrist_camera is not None:
        position, quat = wrist_camera_in_link7(config.wrist_camera)
        ET.SubElement(
            link7, "camera", name=config.wrist_camera.name, pos=_fmt(position), quat=_fmt(quat),
            fovy=f"{config.wrist_camera.fovy:g}",
        )


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


_SCENE_TEMPLATE = """
<mujoco model="{model_name}">
  <compiler angle="radian" meshdir="{meshdir}" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{size}" offheight="{size}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
  </visual>
  <asset>
    <material name="table" rgba="0.5 0.42 0.34 1" specular="0.1"/>
    <material name="floor" rgba="0.25 0.27 0.3 1"/>
  </asset>
  <worldbody>
    <light name="key" pos="1.2 0.8 2.0" dir="-0.5 -0.4 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <light name="fill" pos="1.2 -0.8 2.0" dir="-0.5 0.4 -1" diffuse="0.3 0.3 0.3" castshadow="false"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" material="floor" contype="0" conaffinity="0"/>
    <geom name="table" type="box" size="{table_size} 0.02" pos="{table_x:g} 0 -0.02" material="table"
          friction="0.5 0.005 0.0001"/>
  </worldbody>
</mujoco>
"""


def build_scene_xml(task_objects: str, config: SceneConfig = SceneConfig(), model_name: str = "action_images") -> str:
    """The full MJCF of the scene: the robot, table, lights, the fixed cameras of `config` (at their
    nominal poses; see `jittered_camera_pose`), and the task's objects (an XML fragment of worldbody
    elements, optionally followed by other top-level sections wrapped in <extra>...</extra>)."""
    directory = franka_asset_dir()
    root = ET.fromstring(
        _SCENE_TEMPLATE.format(
            model_name=model_name,
            meshdir=str(directory / "meshes"),
            timestep=config.timestep,
            size=config.max_image_size,
            table_size=_fmt(config.table_half_size),
            table_x=config.table_centre_x,
        )
    )
    assets, robot, actuators = _robot_elements(config)
    for index, element in enumerate(assets):
        root.insert(1 + index, element)
    worldbody = root.find("worldbody")
    for spec in config.cameras:
        position, quat = jittered_camera_pose(spec, 0.0, np.random.default_rng(0))
        ET.SubElement(worldbody, "camera", name=spec.name, pos=_fmt(position), quat=_fmt(quat), fovy=f"{spec.fovy:g}")
    worldbody.append(robot)
    fragment = ET.fromstring(f"<fragment>{task_objects}</fragment>")
    for element in fragment:
        if element.tag == "extra":
            root.extend(list(element))
        else:
            worldbody.append(element)
    actuator = ET.SubElement(root, "actuator")
    for section in actuators:
        actuator.extend(list(section))
    return ET.tostring(root, encoding="unicode")


def load_model(xml: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(xml)


# --- reading the state --------------------------------------------------------------------------
def gripper_geom_ids(model: mujoco.MjModel) -> np.ndarray:
    """Visible geoms of the gripper: the hand mesh on link 7 and everything on the two fingers."""
    hand_mesh = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MESH, "hand_viz")
    finger_bodies = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) for name in FINGER_BODIES]
    ids = [
        geom
        for geom in range(model.ngeom)
        if model.geom_bodyid[geom] in finger_bodies
        or (model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_MESH and model.geom_dataid[geom] == hand_mesh)
    ]
    return np.array(ids, dtype=np.int64)


def ee_frame(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
    """Position (3,) and rotation matrix (3, 3) of the EE frame in the world, from `data`'s kinematics."""
    site = model.site(EE_SITE).id
    return data.site_xpos[site].copy(), data.site_xmat[site].reshape(3, 3).copy()
