"""Pure geometry and pixels: cameras, poses, the action-image renderer and decoder.

Conventions (SPEC §2): metres and radians; OpenCV pinhole cameras with camera-to-world extrinsics and
pixel centres at integer coordinates; rotations as 3×3 matrices inside, other formats by name;
gripper openness in [0, 1] with 1 = open.
"""

from rendering.cameras import Cameras, from_mujoco, from_negative_focal, intrinsics_from_fov, look_at, opengl_to_opencv
from rendering.decoder import DecodedActions, decode_action_images, decode_action_images_paper
from rendering.poses import Pose, gripper_from_range, pose_from_vector, pose_to_vector
from rendering.renderer import action_points, overlay_action_images, render_action_images
from rendering.rotations import RotationFormat, from_matrix, to_matrix

__all__ = [
    "Cameras",
    "DecodedActions",
    "Pose",
    "RotationFormat",
    "action_points",
    "decode_action_images",
    "decode_action_images_paper",
    "from_matrix",
    "from_mujoco",
    "from_negative_focal",
    "gripper_from_range",
    "intrinsics_from_fov",
    "look_at",
    "opengl_to_opencv",
    "overlay_action_images",
    "pose_from_vector",
    "pose_to_vector",
    "render_action_images",
    "to_matrix",
]
