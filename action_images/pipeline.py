"""Inference: `ActionImagesPipeline`, a diffusers `DiffusionPipeline` over a trained model.

    pipeline = ActionImagesPipeline.from_pretrained("exports/sim_cpu")
    out = pipeline(mode="joint", images=rgb, cameras=cameras, actions=poses, prompt="push the red cube",
                   num_inference_steps=10, guidance_scale=1.0)
    out.rgb, out.action_images, out.decoded.positions, out.decoded.confidence

A pipeline folder holds the weights (`model.safetensors`), the resolved configuration (`config.json`),
the normalisation statistics (`normalization_stats.json`), the scheduler's config and a model card.
It is written with `save_pretrained` and read with `from_pretrained` from a local path; pipelines are
for inference only (training is `action-images fit`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from safetensors.torch import load_file, save_file

from action_images.canvas import Mode
from action_images.module import ActionImagesModule
from datamodules.media import atomic_path
from rendering.cameras import Cameras
from rendering.decoder import DecodedActions, decode_action_images
from rendering.poses import pose_from_vector
from rendering.renderer import render_action_images

MODEL_CARD = """# Action Images model

A multiview video-action diffusion model (Action Images, Zhen et al. 2026) trained with the
`action-images` library. Load it with:

```python
from action_images.pipeline import ActionImagesPipeline
pipeline = ActionImagesPipeline.from_pretrained("{folder}")
```

Training configuration: `config.json`. Normalisation statistics of the training data:
`normalization_stats.json`. Conventions: OpenCV cameras with camera-to-world extrinsics, poses
`x y z qx qy qz qw gripper` (absolute, world frame, gripper openness 1 = open).
"""


@dataclass
class ActionImagesOutput:
    rgb: torch.Tensor  # (B, V, T, 3, H, W) in [0, 1] (T = 1 for the policy canvas)
    action_images: torch.Tensor | None  # (B, V, T, 3, H, W) in [0, 1]
    decoded: DecodedActions | None  # 7-DoF trajectory with per-frame confidence
    goal_readout: torch.Tensor | None = None  # (B, V, H, W) log-probabilities of where the clip ends (`return_readout`)


class ActionImagesPipeline(DiffusionPipeline):
    def __init__(self, model: ActionImagesModule, scheduler: FlowMatchEulerDiscreteScheduler) -> None:
        super().__init__()
        self.model, self.scheduler = model.eval(), scheduler  # the model is no diffusers component: kept as an attribute

    def fuse_qkv_projections(self) -> None:
        """For inference: each attention's q/k/v projections as one linear (diffusers'
        `fuse_qkv_projections`: the same products in one matrix multiply). The policies call it;
        `save_pretrained` writes the separate projections only."""
        self.model.transformer.wan.fuse_qkv_projections()

    # --- files ------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike, **_) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "model.safetensors") as path:
            fused = (".to_qkv.", ".to_kv.", ".to_added_qkv.", ".to_added_kv.")  # inference copies of saved weights
            weights = {k: v.contiguous() for k, v in self.model.state_dict().items() if not any(f in k for f in fused)}
            save_file(weights, str(path))
        with atomic_path(folder / "config.json") as path:
            path.write_text(json.dumps(dict(self.model.hparams), indent=2, default=str))
        stats = self.model.normalization_stats or {}
        with atomic_path(folder / "normalization_stats.json") as path:
            path.write_text(json.dumps({k: {s: v.tolist() for s, v in d.items()} for k, d in stats.items()}, indent=2))
        self.scheduler.save_pretrained(folder / "scheduler")
        with atomic_path(folder / "README.md") as path:
            path.write_text(MODEL_CARD.format(folder=folder))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **_) -> "ActionImagesPipeline":
        folder = Path(folder)
        for name in ("config.json", "model.safetensors", "normalization_stats.json"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"not an Action Images pipeline folder: {folder / name} is missing")
        model = ActionImagesModule(**json.loads((folder / "config.json").read_text()))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        stats = json.loads((folder / "normalization_stats.json").read_text())
        model.normalization_stats = {k: {s: torch.tensor(v) for s, v in d.items()} for k, d in stats.items()}
        return cls(model, FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler"))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "ActionImagesPipeline":
        """From a training checkpoint (loaded with `weights_only=True`)."""
        model = ActionImagesModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
        return cls(model, FlowMatchEulerDiscreteScheduler(shift=model.hparams.timestep_shift))

    # --- inference --------------------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(
        self,
        mode: str | Mode,
        images: torch.Tensor,
        cameras: Cameras,
        actions: torch.Tensor | None = None,
        prompt: str | list[str] = "",
        num_inference_steps: int = 10,
        guidance_scale: float = 1.0,
        generator: torch.Generator | None = None,
        rotation_format: str = "quat_xyzw",
        decode: bool = True,
        return_readout: bool = False,
        guide_observation: bool | None = None,
    ) -> ActionImagesOutput:
        """Generate what `mode` leaves open.

        Args:
            images: (B, V, T, 3, H, W) RGB in [0, 1] (uint8 is accepted). Only frame 0 is read except
                in `v2a`, which labels all frames.
            cameras: batch (B, V, T) (or (B, V, 1) for static cameras), OpenCV, camera-to-world.
            actions: (B, T, D) end-effector poses in `rotation_format`; frame 0 (the current pose) is
                needed by every mode but `video`; `a2v` reads all frames.
            prompt: one instruction or one per sample.
            return_readout: also return the goal readout (models trained with one).
            guide_observation: guidance also on the observation (default: as the model was trained).
        """
        mode = Mode.parse(mode)
        if images.dtype == torch.uint8:
            images = images.float() / 255
        if images.ndim != 6 or images.shape[3] != 3:
            raise ValueError(f"images must be (B, V, T, 3, H, W), got {tuple(images.shape)}")
        batch_size, views, frames, _, height, width = images.shape
        cameras = Cameras(
            cameras.intrinsics.expand(batch_size, views, frames, 3, 3), cameras.extrinsics.expand(batch_size, views, frames, 4, 4), height, width
        )
        if actions is None:
            if mode is not Mode.VIDEO:
                raise ValueError(f"mode {mode.value} needs the current end-effector pose: pass actions (B, T, D)")
            action_images = torch.zeros_like(images)
        else:
            if actions.shape[:2] != (batch_size, frames):
                raise ValueError(f"actions must be (B, T, D) = ({batch_size}, {frames}, D), got {tuple(actions.shape)}")
            pose = pose_from_vector(actions.float(), rotation_format)
            action_images = render_action_images(pose.positions, pose.rotations, pose.gripper, cameras)
        prompts = [prompt] * batch_size if isinstance(prompt, str) else list(prompt)
        batch = {"rgb": images, "action_images": action_images, "intrinsics": cameras.intrinsics, "extrinsics": cameras.extrinsics, "instruction": prompts}
        batch = {k: (v.to(self.model.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)  # a fresh one: steps keep state
        out = self.model.generate(batch, mode, steps=num_inference_steps, guidance_scale=guidance_scale, generator=generator, scheduler=scheduler, return_readout=return_readout,
                                  guide_observation=guide_observation)
        decoded = None
        if decode and out["action_images"] is not None:
            decoded = decode_action_images(out["action_images"].cpu(), cameras)
        return ActionImagesOutput(rgb=out["rgb"], action_images=out["action_images"], decoded=decoded, goal_readout=out.get("goal_readout"))
