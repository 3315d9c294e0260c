"""Training ImageWAM (``action_images.imagewam``) through the same Lightning CLI, data and checkpoints.

A batch of clips from ``datamodules.RobotDataModule`` (``datamodules.clips``) becomes:

| model input | from the clip |
|---|---|
| current image | frame 0 of every view, tiled into one image (``view_layout``), in [-1, 1] |
| target image | the clip's last frame, ``(num_frames − 1) · stride`` env steps ahead (``target_offset``) |
| action chunk | poses of frames 1 … num_frames − 1 as the baseline encodes them (``action_images.baseline``): displacement from frame 0 × 10, rot6d, gripper in [-1, 1] → ``chunk = num_frames − 1`` steps of 10 |
| proprio token | frame 0's pose: position (m), rot6d, gripper in [-1, 1] (10 values) |
| text | the instruction through the vocabulary encoder, as wide as the backbone's ``joint_attention_dim`` |
| goal pixels (with ``goal_readout_weight``) | where the end effector is at the clip's last frame, projected into each view's first frame (``goal_readout.last_pose_pixels``) |

The loss is ``ImageWAMTransformer.flow_loss`` (image 0.5 + action 1.0, independent timesteps);
samples without actions train the image only. Checkpoints carry the data's normalisation statistics
and the random state, so a resumed run is the same run (as ``BaselinePolicyModule``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from action_images.chunks import ACTION_SIZE, POSITION_SCALE, ChunkModule
from action_images.codecs import LatentCodec, PatchCodec
from action_images.goal_readout import last_pose_pixels
from action_images.imagewam import Flux2VAECodec, ImageWAM, ImageWAMTransformer
from action_images.text import VocabularyTextEncoder

# The CPU default: a FLUX.2-architecture backbone of ~2 M parameters (the codec sets in_channels).
CPU_TRANSFORMER: dict[str, Any] = dict(
    backbone_config=dict(
        patch_size=1, num_layers=2, num_single_layers=4, attention_head_dim=32, num_attention_heads=4,
        joint_attention_dim=64, timestep_guidance_channels=64, mlp_ratio=3.0, axes_dims_rope=(8, 8, 8, 8),
        rope_theta=2000, eps=1e-6, guidance_embeds=False,
    ),
    action_hidden_dim=64,
    action_mlp_ratio=4.0,
)


def make_imagewam_codec(options: dict[str, Any] | None) -> LatentCodec:
    """``{"name": "patch", "patch": 4}`` (CPU) or ``{"name": "flux2_vae", "path": DIR, "subfolder": "vae"}``."""
    options = dict(options or {"name": "patch", "patch": 4})
    name = options.pop("name", None)
    if name == "patch":
        return PatchCodec(**options)
    if name == "flux2_vae":
        return Flux2VAECodec.from_pretrained(**options)
    raise ValueError(f"unknown ImageWAM codec {name!r}; known: patch, flux2_vae")


class ImageWAMModule(ChunkModule):
    """ImageWAM as a Lightning module (see the module docstring for what a batch becomes).

    Args:
        transformer: ``ImageWAMTransformer`` arguments (``backbone_config``, ``action_hidden_dim``,
            ``edit_timestep``, …); ``pretrained: DIR`` (with ``subfolder``, default ``transformer``)
            loads a diffusers FLUX.2 transformer folder instead of ``backbone_config``. The backbone's
            ``in_channels`` comes from the codec; ``action_dim``, ``proprio_dim`` (10) and
            ``action_chunk`` (= ``chunk``) are set here.
        codec: see ``make_imagewam_codec``.
        image_size, views, view_layout: the square size of each view, the number of cameras (in the
            data module's order) and how they are tiled.
        chunk: poses predicted per chunk (= the data module's ``num_frames − 1``).
        target_offset: env steps from the current to the target image (= ``chunk · stride``); recorded.
        text_length: maximum words of the instruction encoder.
        instructions: the dataset's instructions (linked from the data module by the command line).
        lr, weight_decay, warmup_steps, max_steps: AdamW, linear warm-up, cosine decay to 10 %.
        sample_steps: Euler steps of the action expert at inference.
        goal_readout_weight: weight of the goal readout (``goal_readout``; 0 = none, the reference):
            per-pixel logits, read from the current image's tokens, of where the end effector is at the
            target frame — what made the main model follow its instruction (BENCHMARKS.md).
    """

    def __init__(
        self,
        transformer: dict[str, Any] | None = None,
        codec: dict[str, Any] | None = None,
        image_size: int = 32,
        views: int = 3,
        view_layout: str = "horizontal",
        chunk: int = 4,
        target_offset: int = 12,
        text_length: int = 16,
        instructions: list[str] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        max_steps: int | None = None,
        sample_steps: int = 10,
        goal_readout_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if min(views, chunk, sample_steps, target_offset) < 1:
            raise ValueError(f"views, chunk, sample_steps and target_offset must be ≥ 1, got {views}, {chunk}, {sample_steps}, {target_offset}")
        self.save_hyperparameters()
        latent_codec = make_imagewam_codec(codec)
        if image_size % latent_codec.spatial_factor:
            raise ValueError(f"image_size {image_size} is not a multiple of the codec's factor {latent_codec.spatial_factor}")
        options = copy.deepcopy(CPU_TRANSFORMER if transformer is None else transformer)
        options.update(action_dim=ACTION_SIZE, proprio_dim=ACTION_SIZE, action_chunk=chunk, target_offset=target_offset)
        if goal_readout_weight:
            options["goal_readout_pixels"] = latent_codec.spatial_factor**2
        pretrained = options.pop("pretrained", None)
        if pretrained is not None:
            options.pop("backbone_config", None)
            model = ImageWAMTransformer.from_flux2(pretrained, subfolder=options.pop("subfolder", "transformer"), **options)
        else:
            options.pop("subfolder", None)
            options["backbone_config"] = {**options.get("backbone_config", {}), "in_channels": latent_codec.channels, "out_channels": None}
            model = ImageWAMTransformer(**options)
        self.model = ImageWAM(model, latent_codec, num_views=views, view_layout=view_layout)
        # Registered last whether built here or in `setup`, so the parameter order is the same.
        self.text_encoder: VocabularyTextEncoder | None = self.make_text_encoder(instructions) if instructions else None
        self.normalization_stats: dict[str, dict[str, Tensor]] | None = None

    @property
    def transformer(self) -> ImageWAMTransformer:
        return self.model.transformer

    def make_text_encoder(self, instructions: list[str]) -> VocabularyTextEncoder:
        width = self.transformer.backbone.config.joint_attention_dim
        return VocabularyTextEncoder.from_instructions(instructions, dim=width, max_length=self.hparams.text_length)

    # --- inputs -------------------------------------------------------------------------------------
    def batch_inputs(self, batch: dict) -> dict[str, Tensor]:
        """A data-module batch → the ``ImageWAM.loss`` arguments (views in [-1, 1])."""
        rgb = batch["rgb"]
        self.check_images(rgb[:, :, 0])
        proprio, actions, has_actions = self.clip_chunks(batch)
        text, text_mask = self.encode_text(batch["instruction"])
        inputs = dict(current=rgb[:, :, 0] * 2 - 1, target=rgb[:, :, -1] * 2 - 1, text=text, text_mask=text_mask,
                      proprio=proprio, actions=actions, has_actions=has_actions)
        if self.hparams.goal_readout_weight:
            inputs["goal_pixels"], inputs["goal_valid"] = last_pose_pixels(batch)
        return inputs

    # --- training -----------------------------------------------------------------------------------
    def losses(self, batch: dict, generator: torch.Generator | None = None, inputs: dict | None = None) -> dict[str, Tensor]:
        """The model's losses; ``loss`` includes the weighted goal readout where the model has one."""
        losses = self.model.loss(**(inputs or self.batch_inputs(batch)), generator=generator)
        if "goal_readout" in losses:
            losses["loss"] = losses["loss"] + self.hparams.goal_readout_weight * losses["goal_readout"]
        return losses

    def log_losses(self, stage: str, losses: dict[str, Tensor], size: int) -> None:
        self.log(f"{stage}/loss", losses["loss"], prog_bar=True, batch_size=size)
        for name in ("image_loss", "action_loss", "goal_readout", "goal_hit"):
            if name in losses and not (name == "goal_hit" and losses[name].isnan()):
                self.log(f"{stage}/{name}", losses[name], batch_size=size)

    def training_step(self, batch: dict, batch_index: int) -> Tensor:
        losses = self.losses(batch)
        self.log_losses("train", losses, len(batch["instruction"]))
        return losses["loss"]

    def validation_step(self, batch: dict, batch_index: int) -> None:
        generator = torch.Generator().manual_seed(batch_index)
        size = len(batch["instruction"])
        inputs = self.batch_inputs(batch)
        self.log_losses("val", self.losses(batch, generator, inputs), size)
        has_actions = inputs["has_actions"]
        if has_actions.any():
            cache = self.model.fill_cache(inputs["current"], inputs["text"], inputs["text_mask"], inputs["proprio"])
            sampled = self.model.sample_actions(cache, self.hparams.sample_steps, generator)
            error = (sampled[..., :3] - inputs["actions"][..., :3]).norm(dim=-1).mean(1) / POSITION_SCALE  # metres
            self.log("val/position_error", error[has_actions].mean(), batch_size=int(has_actions.sum()))

    # --- inference ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_chunk(
        self, rgb: Tensor, pose: Tensor, instructions: list[str], generator: torch.Generator | None = None, steps: int | None = None
    ) -> Tensor:
        """The next ``chunk`` absolute poses (B, chunk, 8) ``[x y z qx qy qz qw g]`` from the current
        views (B, V, 3, H, W) in [0, 1] (uint8 accepted), the current pose (B, 8) and B instructions:
        one prefix pass fills the cache, then ``steps`` Euler steps of the action expert; no target
        image is drawn."""
        rgb, current, proprio = self.live_inputs(rgb, pose, instructions)
        text, text_mask = self.encode_text(instructions)
        cache = self.model.fill_cache(rgb * 2 - 1, text, text_mask, proprio)
        actions = self.model.sample_actions(cache, steps or self.hparams.sample_steps, generator)
        return self.absolute_chunk(actions, current)

    @torch.inference_mode()
    def predict_chunks(
        self, rgb: Tensor, pose: Tensor, instructions: list[str], samples: int = 1, generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``samples`` chunks per observation (B, samples, chunk, 8) from one prefix pass, as
        ``predict_chunk`` gives one, and that pass's goal readout (B, V, H, W) as log-probabilities over
        each view's pixels of where the end effector is at the chunk's end (a model trained with
        ``goal_readout_weight`` > 0)."""
        if samples < 1:
            raise ValueError(f"samples must be ≥ 1, got {samples}")
        if not self.hparams.goal_readout_weight:
            raise ValueError("this ImageWAM model was trained without a goal readout (model.goal_readout_weight = 0)")
        rgb, current, proprio = self.live_inputs(rgb, pose, instructions)
        text, text_mask = self.encode_text(instructions)
        cache, readout = self.model.fill_cache_with_readout(rgb * 2 - 1, text, text_mask, proprio)
        actions = self.model.sample_actions(cache.repeat(samples), steps or self.hparams.sample_steps, generator)
        chunks = self.absolute_chunk(actions, current, samples)
        return chunks.view(len(rgb), samples, *chunks.shape[1:]), readout

    def fuse_qkv_projections(self) -> None:
        """For inference (the policy calls it): every attention's q/k/v projections as one linear
        (diffusers' `AttentionMixin.fuse_qkv_projections`). Training updates the separate weights, so
        fuse only a model that is done training."""
        self.model.transformer.fuse_qkv_projections()

    @torch.inference_mode()
    def edited_target(
        self, rgb: Tensor, pose: Tensor, instructions: list[str], steps: int = 20, generator: torch.Generator | None = None
    ) -> Tensor:
        """The backbone's edited target views (B, V, 3, H, W) in [0, 1], for people to look at."""
        rgb, _, proprio = self.live_inputs(rgb, pose, instructions)
        text, text_mask = self.encode_text(instructions)
        edited = self.model.decode_target(rgb * 2 - 1, text, text_mask, proprio, steps, generator)
        return (edited + 1) / 2
