"""How the project's data lives in a LeRobot dataset (SPEC §7): feature names and the calibration schema.

LeRobot has no home for camera calibration yet; this project defines one, as ordinary per-frame
feature columns next to each camera's video:

| feature                                   | shape | meaning                                          |
|-------------------------------------------|-------|--------------------------------------------------|
| `observation.images.<cam>`                | video | RGB, uint8                                       |
| `observation.cameras.<cam>.intrinsics`    | [9]   | K, row-major, pixels, OpenCV, pixel centres at integers |
| `observation.cameras.<cam>.extrinsics`    | [16]  | camera-to-world 4×4, row-major, OpenCV (x right, y down, z forward) |
| `observation.state`                       | [8]   | end-effector pose `x y z qx qy qz qw gripper`     |
| `action`                                  | [8]   | absolute end-effector target, same layout         |

Conventions travel inside each feature's own `info` dict (LeRobot drops unknown top-level keys of
info.json when it rewrites it): the rotation format of poses, the frame, absolute vs delta, the gripper
range; OpenCV and camera-to-world for the calibration columns.
"""

from __future__ import annotations

from rendering.rotations import RotationFormat

IMAGE_PREFIX = "observation.images."
CAMERA_PREFIX = "observation.cameras."
STATE_KEY = "observation.state"
ACTION_KEY = "action"

DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

CALIBRATION_INFO = {"convention": "opencv", "frame": "camera_to_world", "layout": "row_major", "units": "pixels_and_metres"}


def image_key(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


def intrinsics_key(camera: str) -> str:
    return f"{CAMERA_PREFIX}{camera}.intrinsics"


def extrinsics_key(camera: str) -> str:
    return f"{CAMERA_PREFIX}{camera}.extrinsics"


def pose_names(rotation_format: str | RotationFormat) -> list[str]:
    fmt = RotationFormat.parse(rotation_format)
    rotation = {
        RotationFormat.QUAT_XYZW: ["qx", "qy", "qz", "qw"],
        RotationFormat.QUAT_WXYZ: ["qw", "qx", "qy", "qz"],
        RotationFormat.EULER_XYZ: ["roll", "pitch", "yaw"],
        RotationFormat.ROTVEC: ["rx", "ry", "rz"],
        RotationFormat.ROT6D: [f"r{i}" for i in range(6)],
        RotationFormat.MATRIX: [f"m{i}{j}" for i in range(3) for j in range(3)],
    }[fmt]
    return ["x", "y", "z", *rotation, "gripper"]


def pose_feature(rotation_format: str | RotationFormat, kind: str) -> dict:
    """A pose vector feature with its conventions declared in `info`."""
    names = pose_names(rotation_format)
    return {
        "dtype": "float32",
        "shape": [len(names)],
        "names": names,
        "info": {
            "rotation_format": RotationFormat.parse(rotation_format).value,
            "frame": "world",
            "kind": kind,
            "units": "metres",
            "gripper": "openness in [0, 1], 1 = open",
        },
    }


def video_feature(height: int, width: int, fps: int, codec: str = "h264") -> dict:
    return {
        "dtype": "video",
        "shape": [height, width, 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": height,
            "video.width": width,
            "video.codec": codec,
            "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        },
    }


def calibration_features(camera: str) -> dict[str, dict]:
    return {
        intrinsics_key(camera): {"dtype": "float32", "shape": [9], "names": None, "info": dict(CALIBRATION_INFO)},
        extrinsics_key(camera): {"dtype": "float32", "shape": [16], "names": None, "info": dict(CALIBRATION_INFO)},
    }
