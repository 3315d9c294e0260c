"""The baseline: a standard multi-view flow-matching action-chunk policy (Diffusion Policy-style).

It is trained on the same clips as the Action Images model (`datamodules.datamodule.RobotDataModule`)
and run in the same closed loop, so a success table can put the two side by side. Nothing of the
action-image machinery is used: a small CNN reads each view's current RGB frame, and a transformer
denoiser turns noise into a chunk of future end-effector poses by rectified flow.

Poses, images and the chunk's 10-vectors follow `action_images.chunks` (absolute world-frame poses,
quaternion xyzw, gripper 1 = open; `chunk = num_frames − 1`). The objective is rectified flow:
`x_t = (1 − t)·x_0 + t·ε`, the network predicts the velocity `ε − x_0`, MSE, on samples with actions
only; sampling is Euler from t = 1 (noise) to t = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from action_images.chunks import ACTION_SIZE, POSITION_SCALE, ChunkModule
from action_images.text import VocabularyTextEncoder


# --- the network ----------------------------------------------------------------------------------
class ImageEncoder(nn.Module):
    """(N, 3, H, W) in [0, 1] → (N, (H/8)·(W/8), hidden) tokens: four 3×3 convolutions with
    GroupNorm + SiLU (three of stride 2), a 1×1 projection to `hidden`, and a learned position
    embedding per feature-map cell."""

    def __init__(self, hidden: int, image_size: int, widths: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        layers, channels = [], 3
        for index, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, stride=1 if index == 0 else 2, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
            channels = width
        layers.append(nn.Conv2d(channels, hidden, 1))
        self.net = nn.Sequential(*layers)
        cells = (image_size // 2 ** (len(widths) - 1)) ** 2
        self.position = nn.Parameter(torch.randn(cells, hidden) * 0.02)

    def forward(self, images: Tensor) -> Tensor:
        features = self.net(images * 2 - 1)  # [-1, 1] inside the model (SPEC §2)
        return features.flatten(2).transpose(1, 2) + self.position


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of flow times t ∈ [0, 1] (B,) → (B, dim)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], -1)


class BaselinePolicyModule(ChunkModule):
    """A multi-view flow-matching action-chunk policy (the baseline of the success table).

    Observation tokens (the denoiser's memory): per view, the CNN's feature-map cells of the current
    RGB frame plus a learned view embedding; one token of the current pose (position in metres,
    rot6d, gripper in [-1, 1]); the instruction's word tokens (`VocabularyTextEncoder`). A transformer
    decoder over the `chunk` action tokens (noisy chunk step + chunk-position + flow-time embedding)
    self-attends and cross-attends to that memory and predicts the velocity.

    Args:
        image_size: square input size (a multiple of 8); views: cameras per sample, in a fixed order.
        chunk: future poses predicted (= the data module's `num_frames − 1`).
        hidden, layers, heads: width, depth and attention heads of the denoiser.
        text_dim, text_length: width and maximum words of the instruction encoder.
        instructions: the dataset's instructions (the vocabulary); the command line links them from the
            data module, and without them `setup` reads them from it. Saved in the hyper-parameters, so
            a checkpoint rebuilds the same encoder.
        lr, weight_decay, warmup_steps, max_steps: AdamW with linear warm-up, then cosine decay to 10 %
            over max_steps (constant when max_steps is None).
        sample_steps: Euler steps of sampling.
    """

    def __init__(
        self,
        image_size: int = 32,
        views: int = 3,
        chunk: int = 4,
        hidden: int = 256,
        layers: int = 4,
        heads: int = 4,
        text_dim: int = 32,
        text_length: int = 16,
        instructions: list[str] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        max_steps: int | None = None,
        sample_steps: int = 10,
    ) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 (the CNN downsamples three times by 2), got {image_size}")
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        if min(views, chunk, layers, sample_steps) < 1:
            raise ValueError(f"views, chunk, layers and sample_steps must be ≥ 1, got {views}, {chunk}, {layers}, {sample_steps}")
        self.save_hyperparameters()
        self.image_encoder = ImageEncoder(hidden, image_size)
        self.view_embedding = nn.Parameter(torch.randn(views, hidden) * 0.02)
        self.pose_in = nn.Linear(ACTION_SIZE, hidden)
        self.text_in = nn.Linear(text_dim, hidden)
        self.memory_norm = nn.LayerNorm(hidden)
        self.action_in = nn.Linear(ACTION_SIZE, hidden)
        self.chunk_position = nn.Parameter(torch.randn(chunk, hidden) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        layer = nn.TransformerDecoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.denoiser = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(hidden))
        self.action_out = nn.Linear(hidden, ACTION_SIZE)
        # Registered last whether built here or in `setup`, so the parameter order is the same.
        self.text_encoder: VocabularyTextEncoder | None = self.make_text_encoder(instructions) if instructions else None
        self.normalization_stats: dict[str, dict[str, Tensor]] | None = None

    def make_text_encoder(self, instructions: list[str]) -> VocabularyTextEncoder:
        return VocabularyTextEncoder.from_instructions(instructions, dim=self.hparams.text_dim, max_length=self.hparams.text_length)

    # --- the network ------------------------------------------------------------------------------
    def encode_observation(self, rgb: Tensor, pose_vector: Tensor, instructions: list[str]) -> tuple[Tensor, Tensor]:
        """Memory tokens (B, N, hidden) and their padding mask (B, N), True = ignore.

        rgb (B, V, 3, H, W) in [0, 1]; pose_vector (B, 10) from `pose_features`."""
        batch, views = rgb.shape[:2]
        images = self.image_encoder(rgb.flatten(0, 1)).unflatten(0, (batch, views))  # (B, V, cells, hidden)
        images = (images + self.view_embedding[None, :, None]).flatten(1, 2)
        text, text_mask = self.encode_text(instructions)
        memory = torch.cat([images, self.pose_in(pose_vector)[:, None], self.text_in(text)], 1)
        keep = torch.cat([torch.ones(batch, images.shape[1] + 1, dtype=torch.bool, device=rgb.device), text_mask.to(rgb.device)], 1)
        return self.memory_norm(memory), ~keep

    def velocity(self, x: Tensor, t: Tensor, memory: Tensor, padding: Tensor) -> Tensor:
        """The predicted velocity ε − x_0 at noisy chunk x (B, chunk, 10) and flow time t (B,)."""
        time = self.time_mlp(timestep_embedding(t, self.hparams.hidden))
        tokens = self.action_in(x) + self.chunk_position + time[:, None]
        return self.action_out(self.denoiser(tokens, memory, memory_key_padding_mask=padding))

    # --- training ---------------------------------------------------------------------------------
    def batch_inputs(self, batch: dict) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """A data-module batch → (rgb of frame 0, current pose features, chunk targets, has_actions)."""
        rgb = batch["rgb"][:, :, 0]
        self.check_images(rgb)
        return rgb, *self.clip_chunks(batch)

    def flow_matching_loss(self, batch: dict, generator: torch.Generator | None = None) -> Tensor:
        """Rectified flow: MSE between predicted and true velocity, mean over samples with actions."""
        rgb, current, x0, has_actions = self.batch_inputs(batch)
        memory, padding = self.encode_observation(rgb, current, batch["instruction"])
        noise = self.randn(x0.shape, generator)
        t = torch.rand(len(x0), generator=generator, device=self.noise_device(generator)).to(self.device)
        x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        error = (self.velocity(x_t, t, memory, padding) - (noise - x0)).square().mean((1, 2))
        weight = has_actions.float()
        return (error * weight).sum() / weight.sum().clamp(min=1)

    def training_step(self, batch: dict, batch_index: int) -> Tensor:
        loss = self.flow_matching_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["instruction"]))
        return loss

    def validation_step(self, batch: dict, batch_index: int) -> None:
        generator = torch.Generator(device=self.device).manual_seed(batch_index)
        size = len(batch["instruction"])
        self.log("val/loss", self.flow_matching_loss(batch, generator), prog_bar=True, batch_size=size)
        rgb, current, x0, has_actions = self.batch_inputs(batch)
        if has_actions.any():
            sampled = self.sample(rgb, current, batch["instruction"], generator=generator)
            error = (sampled[..., :3] - x0[..., :3]).norm(dim=-1).mean(1) / POSITION_SCALE  # metres, mean over the chunk
            self.log("val/position_error", error[has_actions].mean(), batch_size=int(has_actions.sum()))

    # --- sampling ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, rgb: Tensor, current: Tensor, instructions: list[str], generator: torch.Generator | None = None, steps: int | None = None) -> Tensor:
        """Euler integration of the flow from noise (t = 1) to a chunk (t = 0): (B, chunk, 10)."""
        steps = steps or self.hparams.sample_steps
        memory, padding = self.encode_observation(rgb, current, instructions)
        x = self.randn((len(rgb), self.hparams.chunk, ACTION_SIZE), generator)
        times = torch.linspace(1.0, 0.0, steps + 1, device=self.device)
        for t, t_next in zip(times[:-1], times[1:]):
            x = x + (t_next - t) * self.velocity(x, t.expand(len(x)), memory, padding)
        return x

    @torch.inference_mode()
    def predict_chunk(
        self, rgb: Tensor, pose: Tensor, instructions: list[str], generator: torch.Generator | None = None, steps: int | None = None
    ) -> Tensor:
        """The next `chunk` absolute poses from the current observation.

        Args:
            rgb: (B, V, 3, H, W) current frame of every view, floats in [0, 1] (uint8 accepted), at the
                model's image size, views in the training order.
            pose: (B, 8) current end-effector pose `[x y z qx qy qz qw g]`, world frame, g = 1 open.
            instructions: B strings.
            generator: for the initial noise (reproducible samples); steps: Euler steps (default
                `sample_steps`).
        Returns:
            (B, chunk, 8) absolute poses `[x y z qx qy qz qw g]`, quaternion xyzw (qw ≥ 0), g ∈ [0, 1].
        """
        rgb, current, features = self.live_inputs(rgb, pose, instructions)
        return self.absolute_chunk(self.sample(rgb, features, instructions, generator, steps), current)
