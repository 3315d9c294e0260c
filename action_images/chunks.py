"""What the action-chunk models (the baseline, ImageWAM) share: poses ↔ chunk vectors, and a training
module base that reads clips as chunks and checks live observations.

Conventions (SPEC §2):
- poses are **absolute** end-effector poses in the world frame (= robot base frame), as
  `[x, y, z, qx, qy, qz, qw, g]`: metres, quaternion **xyzw**, gripper openness g ∈ [0, 1], 1 = open;
- images are RGB floats in [0, 1], `(B, V, 3, H, W)`, views in the order the model was trained on;
- a clip's frame 0 is the current observation, frames 1 … K−1 (`stride` env steps apart) are the
  chunk to predict, so `chunk = num_frames − 1`.

Inside a model, each chunk step is a 10-vector (`ACTION_SIZE`): the position's displacement from the
current position times `POSITION_SCALE` (so a chunk's motion is O(1)), the absolute rotation as rot6d
(first two rows of R) and the gripper mapped to [−1, 1]. The current pose is the same 10-vector with
the absolute position (`pose_features`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from action_images.observation import POSE_SIZE, check_views
from action_images.text import VocabularyTextEncoder
from action_images.training import TrainingModule
from rendering.poses import Pose, pose_from_vector, pose_to_vector
from rendering.rotations import RotationFormat, from_matrix, to_matrix

POSITION_SCALE = 10.0  # metres → decimetres: a chunk's displacements are O(1)
ACTION_SIZE = 10  # per chunk step: displacement (3), rot6d (6), gripper in [-1, 1] (1)


def pose_features(positions: Tensor, rotations: Tensor, gripper: Tensor) -> Tensor:
    """(..., 3), (..., 3, 3), (...,) → (..., 10): position as given, rot6d, gripper in [-1, 1]."""
    return torch.cat([positions, from_matrix(rotations, RotationFormat.ROT6D), (2 * gripper - 1).unsqueeze(-1)], -1)


def chunk_targets(positions: Tensor, rotations: Tensor, gripper: Tensor) -> Tensor:
    """A clip's poses (B, K, …) → the model's chunk (B, K − 1, 10), relative to frame 0's position."""
    displacement = (positions[:, 1:] - positions[:, :1]) * POSITION_SCALE
    return pose_features(displacement, rotations[:, 1:], gripper[:, 1:])


def chunk_poses(actions: Tensor, current_positions: Tensor) -> Pose:
    """The model's chunk (B, C, 10) and the current positions (B, 3) → absolute poses (B, C, …)."""
    positions = current_positions[:, None] + actions[..., :3] / POSITION_SCALE
    rotations = to_matrix(actions[..., 3:9], RotationFormat.ROT6D)
    gripper = ((actions[..., 9] + 1) / 2).clamp(0, 1)
    return Pose(positions, rotations, gripper)


class ChunkModule(TrainingModule):
    """Base of the action-chunk training modules. A subclass has the hyper-parameters `views`,
    `image_size` and `chunk`, builds its instruction encoder in `make_text_encoder`, and assigns
    `self.text_encoder` (None until it knows the instructions) last in its `__init__`, so the
    parameter order is the same whether the encoder is built there or in `setup`."""

    text_encoder: VocabularyTextEncoder | None

    def make_text_encoder(self, instructions: list[str]) -> VocabularyTextEncoder:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        """Build the instruction encoder from the data module's instructions when none were given, and
        take the data module's normalisation statistics (they travel with the checkpoint)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if self.text_encoder is None:
            if datamodule is None:
                raise ValueError("the instruction vocabulary is learned from a data module's instructions; none was given")
            self.hparams.instructions = list(datamodule.instructions())
            self.text_encoder = self.make_text_encoder(self.hparams.instructions).to(self.device)
        if datamodule is not None and hasattr(datamodule, "normalization_stats"):
            self.normalization_stats = datamodule.normalization_stats()

    def encode_text(self, instructions: list[str]) -> tuple[Tensor, Tensor]:
        if self.text_encoder is None:
            raise ValueError("the instruction encoder is not built yet: give `instructions` or train with a data module")
        text, mask = self.text_encoder(list(instructions))
        return text.to(self.device), mask.to(self.device)

    def check_images(self, rgb: Tensor) -> None:
        check_views(rgb, self.hparams.views, self.hparams.image_size)

    def clip_chunks(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """A data-module batch → (current pose features (B, 10), chunk targets (B, chunk, 10), has_actions (B,))."""
        steps = batch["positions"].shape[1]
        if steps - 1 != self.hparams.chunk:
            raise ValueError(f"clips of {steps} frames give chunks of {steps - 1}, but the model predicts {self.hparams.chunk}: set num_frames = chunk + 1")
        positions, rotations, gripper = batch["positions"].float(), batch["rotations"].float(), batch["gripper"].float()
        has_actions = torch.as_tensor(batch["has_actions"], dtype=torch.bool, device=positions.device)
        return pose_features(positions[:, 0], rotations[:, 0], gripper[:, 0]), chunk_targets(positions, rotations, gripper), has_actions

    def live_inputs(self, rgb: Tensor, pose: Tensor, instructions: list[str]) -> tuple[Tensor, Pose, Tensor]:
        """A live observation, checked: views (B, V, 3, H, W) in [0, 1] (uint8 accepted), the current
        pose (B, 8) `[x y z qx qy qz qw g]` and B instructions → (float views on the model's device,
        the current pose, its features (B, 10))."""
        if rgb.dtype == torch.uint8:
            rgb = rgb.float() / 255
        self.check_images(rgb)
        if pose.ndim != 2 or pose.shape != (len(rgb), POSE_SIZE) or not torch.isfinite(pose).all():
            raise ValueError(f"pose must be (B, 8) = ({len(rgb)}, 8) finite [x y z qx qy qz qw g], got {tuple(pose.shape)}")
        if isinstance(instructions, str) or len(instructions) != len(rgb):
            raise ValueError(f"instructions must be a list of {len(rgb)} strings, got {instructions!r}")
        rgb, pose = rgb.to(self.device, torch.float32), pose.to(self.device, torch.float32)
        current = pose_from_vector(pose, RotationFormat.QUAT_XYZW)
        return rgb, current, pose_features(current.positions, current.rotations, current.gripper)

    @staticmethod
    def absolute_chunk(actions: Tensor, current: Pose, samples: int = 1) -> Tensor:
        """The model's chunk (B·samples, C, 10), each observation's samples together → absolute poses
        (B·samples, C, 8) `[x y z qx qy qz qw g]`, xyzw, g ∈ [0, 1]."""
        return pose_to_vector(chunk_poses(actions, current.positions.repeat_interleave(samples, 0)), RotationFormat.QUAT_XYZW)
