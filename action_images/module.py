"""Training (SPEC §5): the Lightning module of the multiview video-action diffusion model.

A batch of clips (RGB and action images of every view, cameras, instructions) is encoded segment by
segment, packed into one canvas, and each sample gets a mode from the mode mix: `joint`, `a2v`,
`v2a` (or `video` for samples without actions or calibration). Given latents stay clean with
timestep 0 per token; generated latents are noised by flow matching; the loss is on generated latents
only, weighted towards the drawn Gaussians of action frames. The same module samples (Euler,
diffusers' `FlowMatchEulerDiscreteScheduler`, only generated latents updated) for validation and for
the inference pipeline.

Samples without actions (`video` mode) are trained on the same canvas as `a2v` with blank action
images: the action segments are given and empty, and only RGB is generated — so batches of mixed
data keep one canvas shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from action_images.canvas import CanvasLayout, Mode, SegmentKind
from action_images.codecs import LatentCodec, make_codec
from action_images.conditioning import canvas_plucker
from action_images.flow import TIMESTEP_SCALE, Prediction, add_noise, sample_timesteps, to_velocity, training_target
from action_images.goal_readout import goal_readout_loss, last_pose_pixels
from action_images.text import TextEncoder, VocabularyTextEncoder, make_text_encoder
from action_images.training import TrainingModule
from action_images.transformer import ActionImagesTransformer
from rendering.cameras import Cameras
from rendering.decoder import decode_action_images
from rendering.renderer import GRIPPER_BACKGROUND

TRAINING_MODES = (Mode.JOINT, Mode.A2V, Mode.V2A, Mode.VIDEO)
EMPHASES = ("intensity", "balanced", "gaussians", "near_close", "gripper_episodes")


def closed_near_open(blue: torch.Tensor, window: int) -> torch.Tensor:
    """(..., T, H, W) B channels of action images → (..., T) whether a frame shows the gripper closed
    within `window` frames of one that shows it open. A frame's state is its background (SPEC §3),
    read as the median of B, which the few drawn Gaussian pixels do not move."""
    is_open = (blue.flatten(-2).median(-1).values > GRIPPER_BACKGROUND / 2).float()
    frames = is_open.shape[-1]
    near_open = torch.nn.functional.max_pool1d(is_open.reshape(-1, 1, frames), 2 * window + 1, stride=1, padding=window)
    return (is_open == 0) & (near_open.reshape(is_open.shape) > 0)


class ActionImagesModule(TrainingModule):
    """Args:
        transformer: `ActionImagesTransformer` arguments (in/out channels and text width are derived
            from the codec and text encoder); `pretrained: PATH` loads a diffusers Wan folder.
        codec: `{"name": "patch", "patch": 4}` or `{"name": "wan_vae", "path": ...}`.
        text_encoder: `{"name": "vocabulary", "dim": 64}` (learned from the dataset's instructions) or
            `{"name": "umt5", "path": ...}`.
        canvas: "joint" (full canvas, mode mix) or "policy" (the short canvas: action frames only).
        order: canvas order, "segments" (the reference) or "given_first".
        mode_mix: probabilities of joint / a2v / v2a / video for samples with actions, and optionally
            `policy`: the share of batches trained on the short `policy` canvas (a whole batch at a
            time, as one batch has one canvas), so one model serves both canvases.
        prediction: "velocity" (the reference) or "x0".
        timestep_shift: Wan's shift (5 at 512²).
        action_loss_weight: w in 1 + w·g on generated action latents (pixel-like codecs only), where g is
            chosen by `action_loss_on`: "intensity" (the action image itself, B's gripper background
            included), "balanced" (the same, with B's background weighed as if open in both gripper
            states), "gaussians" (only the drawn Gaussians: the few pixels that carry the pose),
            "near_close" ("intensity", except that a closed frame within `action_loss_close_window`
            frames of an open one in the clip weighs its background as if open: the bias towards
            "open" is removed where the gripper changes state and kept elsewhere, since "intensity"
            is the only emphasis whose plans find the named object: BENCHMARKS session 25) or
            "gripper_episodes" ("balanced" in the clips of episodes that open the gripper at some
            frame, "intensity" in the others, whose gripper never changes state).
            Under "intensity" a closed frame's background weighs 1 and an open one's 1 + w/4, which
            moves the loss's optimum towards "open": the decoded gripper closes only where the model
            is more than (1 + w/4)/(2 + w/4) sure it is closed (78 % at w = 10). "balanced" keeps the
            gripper's weight and removes that bias.
        predict_change: segment kinds ("rgb", "action") whose x0 is predicted as the change from the
            view's given first frame of that kind: at initialisation the model repeats the first frame,
            and learns only what moves (x0 prediction only).
        text_dropout: share of prompts dropped to "" for classifier-free guidance.
        observation_dropout: share of samples whose observation is dropped with their prompt: the given
            first RGB frame of every view is blanked (the latent origin) and the prompt emptied. A model
            trained with it guides on the observation as well as the instruction: its unconditional
            pass sees neither, so guidance amplifies what the scene (where the goal is, which way to
            push) changes in the plan, not only what the words change. 0 (the default): text only.
        goal_readout_weight: weight of an auxiliary loss that makes the instruction matter early: the last
            block's hidden states of each view's given first frame are read out (`transformer.goal_readout`)
            as per-pixel logits of where the end effector is at the clip's last frame, scored by
            cross-entropy. Only where the pose projects into the view; 0 (the default) adds no layer.
            Sampling never uses it.
        goal_readout_min_noise: the readout is scored only on samples whose generated latents are at
            least this noisy: at low noise the given tokens could read the answer off the nearly clean
            future through attention, while sampling must decide from pure noise.
        lr, weight_decay, warmup_steps, max_steps: AdamW with linear warm-up, then cosine decay to 10 %
            over max_steps (constant when max_steps is None).
        lr_schedule: "steps" (the default: the cosine spans `max_steps`, and a resumed run is the same run) or
            "time": it spans the trainer's `max_time` instead, read off Lightning's `Timer` (whose elapsed
            time checkpoints keep), so a run sized in minutes decays fully whatever the machine's speed.
            The learning rate then depends on wall time: two runs are not step-for-step the same.
        compile: run the transformer's training forward through `torch.compile` (inductor), 1.31× the
            steps per minute on 2 CPU cores for the sim_cpu model after a 46-second compile (`make bench`). Only the
            training step is compiled (validation and sampling stay eager: their shapes differ), and the
            weights and checkpoints are the plain module's.
        sample_steps, guidance_scale: Euler sampling in validation.
        samples_dir: where validation writes sample videos (none when unset).
        instructions: the dataset's instructions, for the vocabulary text encoder (the command line
            links them from the data module; without them `setup` reads them from the data module).
    """

    def __init__(
        self,
        transformer: dict[str, Any] | None = None,
        codec: dict[str, Any] | None = None,
        text_encoder: dict[str, Any] | None = None,
        canvas: str = "joint",
        order: str = "segments",
        mode_mix: dict[str, float] | None = None,
        prediction: str = "velocity",
        timestep_shift: float = 5.0,
        action_loss_weight: float = 0.0,
        action_loss_on: str = "intensity",
        action_loss_close_window: int = 2,
        predict_change: list[str] | None = None,
        text_dropout: float = 0.05,
        observation_dropout: float = 0.0,
        goal_readout_weight: float = 0.0,
        goal_readout_min_noise: float = 0.0,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        max_steps: int | None = None,
        lr_schedule: str = "steps",
        compile: bool = False,
        sample_steps: int = 10,
        guidance_scale: float = 1.0,
        samples_dir: str | None = None,
        instructions: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.codec: LatentCodec = make_codec(**(codec or {"name": "patch", "patch": 4}))
        text_options = dict(text_encoder or {"name": "vocabulary", "dim": 64})
        # The vocabulary encoder needs the dataset's instructions: without them it is built in `setup`.
        # Either way it is registered after the transformer, so the parameter order (which optimizer
        # checkpoints rely on) is the same whether it comes from a checkpoint or from the data.
        if text_options["name"] == "vocabulary" and "vocabulary" not in text_options and instructions:
            text_options = {"name": "vocabulary", **VocabularyTextEncoder.from_instructions(instructions, **{k: v for k, v in text_options.items() if k != "name"}).config}
        encoder = make_text_encoder(**text_options) if text_options["name"] != "vocabulary" or "vocabulary" in text_options else None
        text_dim = encoder.dim if encoder is not None else text_options.get("dim", 64)
        options = dict(transformer or {})
        pretrained = options.pop("pretrained", None)
        if goal_readout_weight:  # per-pixel logits for each token's patch of the image
            options["goal_readout_factor"] = self.codec.spatial_factor
        if pretrained:
            self.transformer = ActionImagesTransformer.from_wan(pretrained, **options)
        else:
            self.transformer = ActionImagesTransformer(in_channels=self.codec.channels, out_channels=self.codec.channels, text_dim=text_dim, **options)
        self.text_encoder: TextEncoder | None = encoder
        self.canvas_kind = Mode.parse(canvas)
        if self.canvas_kind not in (Mode.JOINT, Mode.POLICY):
            raise ValueError(f"canvas must be 'joint' or 'policy', got {canvas!r}")
        self.order = order
        mix = mode_mix or {"joint": 0.85, "a2v": 0.05, "v2a": 0.05, "video": 0.05}
        self.mode_mix = {Mode.parse(name): float(p) for name, p in mix.items()}
        if set(self.mode_mix) - {*TRAINING_MODES, Mode.POLICY} or min(self.mode_mix.values()) < 0 or not any(self.mode_mix.values()):
            raise ValueError(f"mode_mix takes non-negative weights of {[m.value for m in (*TRAINING_MODES, Mode.POLICY)]}, got {mix}")
        if not any(p for m, p in self.mode_mix.items() if m is not Mode.POLICY) and self.canvas_kind is Mode.JOINT:
            raise ValueError(f"mode_mix {mix} leaves the joint canvas without a mode: give joint, a2v, v2a or video a weight")
        self.prediction = Prediction.parse(prediction)
        if action_loss_on not in EMPHASES:
            raise ValueError(f"action_loss_on must be one of {EMPHASES}, got {action_loss_on!r}")
        self.change_kinds = {SegmentKind(kind) for kind in (predict_change or [])}
        if self.change_kinds and self.prediction is not Prediction.X0:
            raise ValueError(f"predict_change={predict_change} needs prediction='x0', got {prediction!r}")
        self.normalization_stats: dict | None = None

    # --- set-up -----------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Build the vocabulary text encoder from the dataset's instructions (once; it is then part of
        the hyper-parameters, so a checkpoint rebuilds it)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if self.text_encoder is None:
            if datamodule is None:
                raise ValueError("the vocabulary text encoder is learned from a data module's instructions; none was given")
            instructions = datamodule.instructions()
            options = dict(self.hparams.text_encoder or {"name": "vocabulary", "dim": 64})
            options.pop("name")
            self.text_encoder = VocabularyTextEncoder.from_instructions(instructions, **options)
            self.hparams.text_encoder = {"name": "vocabulary", **self.text_encoder.config}
        if datamodule is not None and hasattr(datamodule, "normalization_stats"):
            self.normalization_stats = datamodule.normalization_stats()

    # --- canvas -----------------------------------------------------------------------------------
    def encode_segments(self, images: torch.Tensor) -> torch.Tensor:
        """(B, V, T, 3, H, W) in [0, 1] → latents (B, V, C, T_l, h, w)."""
        batch, views = images.shape[:2]
        video = images.flatten(0, 1).transpose(1, 2) * 2 - 1  # (B·V, 3, T, H, W) in [-1, 1]
        return self.codec.encode(video).unflatten(0, (batch, views))

    @staticmethod
    def blank_observation(rgb: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """RGB latents (B, V, C, T_l, h, w) with the first latent frame (the given observation) of the
        `drop` samples (B,) set to the latent origin: the condition guidance on the observation leaves out."""
        first = torch.where(drop.to(rgb.device).view(-1, 1, 1, 1, 1, 1), 0.0, rgb[:, :, :, :1])
        return torch.cat([first, rgb[:, :, :, 1:]], 3)

    def decode_segments(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, V, C, T_l, h, w) → (B, V, T, 3, H, W) in [0, 1]."""
        batch, views = latents.shape[:2]
        video = self.codec.decode(latents.flatten(0, 1))
        return ((video.transpose(1, 2) + 1) / 2).clamp(0, 1).unflatten(0, (batch, views))

    def layout_for(self, views: int, latent_frames: int, mode: Mode) -> CanvasLayout:
        return CanvasLayout.for_mode(mode if mode is Mode.POLICY else Mode.JOINT, views, latent_frames, order=self.order)

    def conditioning(self, batch: dict, layout: CanvasLayout, latent_size: tuple[int, int], prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = batch["rgb"].shape[-2:]
        with torch.autocast(self.device.type, enabled=False):  # camera geometry in fp32, also under mixed precision
            cameras = Cameras(batch["intrinsics"], batch["extrinsics"], height, width)
            plucker = canvas_plucker(layout, cameras, *latent_size, temporal_factor=self.codec.temporal_factor)
        text, _ = self.text_encoder(prompts)
        return plucker.to(self.device), text.to(self.device)

    def token_layout(self, layout: CanvasLayout, latent_size: tuple[int, int]) -> tuple[int, int]:
        p_t, p_h, p_w = self.transformer.config.patch_size
        return p_t, (latent_size[0] // p_h) * (latent_size[1] // p_w)

    def change_base(self, layout: CanvasLayout, canvas: torch.Tensor) -> torch.Tensor | None:
        """What the network's output is added to: each slot's given first frame of the same view and
        kind, for the kinds in `predict_change` (None when there are none). Frame 0 is given in every
        mode, so this reads only clean latents."""
        if not self.change_kinds:
            return None
        keep = torch.tensor([slot.kind in self.change_kinds for slot in layout.slots], device=canvas.device)
        base = canvas.index_select(2, layout.first_frame_positions().to(canvas.device))
        return base * keep[None, None, :, None, None]

    def transformer_forward(self):
        """The transformer's forward: compiled for training steps when `compile` is set, else eager."""
        if not (self.hparams.get("compile") and self.training and torch.is_grad_enabled()):
            return self.transformer
        compiled = self.__dict__.get("_compiled_forward")
        if compiled is None or compiled[0] != id(self.transformer):  # a copy (EMA) or a new transformer compiles its own
            compiled = (id(self.transformer), torch.compile(self.transformer.forward))
            self.__dict__["_compiled_forward"] = compiled  # a plain function, not a submodule: no second set of weights
        return compiled[1]

    def predict(self, layout: CanvasLayout, x: torch.Tensor, clean_first: torch.Tensor, *args, return_hidden: bool = False, **kwargs):
        """The transformer's output in the module's prediction target (x0 or velocity); with
        `return_hidden`, also the last block's hidden states."""
        output = self.transformer_forward()(x, *args, return_hidden=return_hidden, **kwargs)
        output, hidden = output if return_hidden else (output, None)
        base = self.change_base(layout, clean_first)
        output = output if base is None else output + base
        return (output, hidden) if return_hidden else output

    def readout_logits(self, layout: CanvasLayout, hidden: torch.Tensor) -> torch.Tensor:
        """The goal readout of each view's given first-frame tokens: per-pixel logits (B, V, H, W) of
        where the end effector is at the clip's last frame."""
        p_t, p_h, p_w = self.transformer.config.patch_size
        factor = self.codec.spatial_factor
        first_rgb = [slot.position // p_t for slot in layout.slots if slot.kind is SegmentKind.RGB and slot.frame == 0]
        logits = self.transformer.goal_readout(hidden[:, first_rgb])  # (B, V, h, w, p_h·f · p_w·f)
        return logits.unflatten(-1, (p_h * factor, p_w * factor)).permute(0, 1, 2, 4, 3, 5).flatten(2, 3).flatten(3, 4)

    def goal_readout_loss(self, batch: dict, layout: CanvasLayout, hidden: torch.Tensor, scored: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of the per-pixel readout of each view's given first-frame tokens against the
        pixel of the end effector at the clip's last frame, and the share read out within 1.5 px, over
        the `scored` samples (B,)."""
        logits = self.readout_logits(layout, hidden)
        target, valid = last_pose_pixels(batch)
        return goal_readout_loss(logits, target, valid.to(logits.device) & scored[:, None])

    def action_emphasis_latents(self, action_images: torch.Tensor, gripper_opens: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, T, 3, H, W) action images → per-latent emphasis in [0, 1] for `action_loss_on`
        "gaussians" (B above its gripper background: only the drawn Gaussians), "balanced" (B's
        background at its open level whatever the gripper's state, SPEC §3: B ≤ 0.25 is 0.25 open,
        0 closed), "near_close" (at its open level in the closed frames near an open one) or
        "gripper_episodes" (at its open level in the samples whose episode opens the gripper,
        `gripper_opens` (B,)), R and G as they are, through the (pixel-like) codec."""
        red, green, blue = action_images.unbind(-3)
        on = self.hparams.action_loss_on
        if on == "gaussians":
            blue = ((blue - GRIPPER_BACKGROUND) / (1 - GRIPPER_BACKGROUND)).clamp(min=0)
        else:  # B's background lifted to its open level in the frames (B, V, T) that `on` names
            if on == "near_close":
                lifted = closed_near_open(blue, self.hparams.action_loss_close_window)
            elif on == "gripper_episodes":
                if gripper_opens is None:
                    raise ValueError('action_loss_on="gripper_episodes" needs the batch\'s "gripper_opens" (datamodules.clips gives it)')
                lifted = torch.as_tensor(gripper_opens, dtype=torch.bool, device=blue.device)[:, None, None].expand(blue.shape[:3])
            else:  # balanced: every frame
                lifted = torch.ones(blue.shape[:3], dtype=torch.bool, device=blue.device)
            blue = torch.where(lifted[..., None, None], blue.clamp(min=GRIPPER_BACKGROUND), blue)
        return ((self.encode_segments(torch.stack([red, green, blue], -3)) + 1) / 2).clamp(0, 1)

    # --- training ---------------------------------------------------------------------------------
    @property
    def trained_modes(self) -> list[Mode]:
        """The modes this model is trained on (a `policy`-canvas model knows no other)."""
        if self.canvas_kind is Mode.POLICY:
            return [Mode.POLICY]
        return [m for m, p in self.mode_mix.items() if p > 0]

    def sample_modes(self, has_actions: torch.Tensor) -> list[Mode]:
        """Modes of one batch: all `policy` (the short canvas) with the mix's `policy` share, or one
        full-canvas mode per sample from the rest of the mix (`video` where a sample has no actions)."""
        policy_share = self.mode_mix.get(Mode.POLICY, 0.0) / sum(self.mode_mix.values())
        if self.canvas_kind is Mode.POLICY or (policy_share and torch.rand(1).item() < policy_share):
            return [Mode.POLICY] * len(has_actions)
        full = {m: p for m, p in self.mode_mix.items() if m is not Mode.POLICY}
        modes, weights = list(full), torch.tensor(list(full.values()))
        picks = torch.multinomial(weights, len(has_actions), replacement=True)
        return [modes[i] if bool(h) else Mode.VIDEO for i, h in zip(picks.tolist(), has_actions)]

    def diffusion_loss(self, batch: dict, modes: list[Mode], generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[Mode, torch.Tensor], dict[str, torch.Tensor]]:
        """The training loss, the flow-matching loss per mode, and the goal readout's terms (empty
        without one; its weighted cross-entropy is part of the loss)."""
        rgb = self.encode_segments(batch["rgb"])
        actions = self.encode_segments(batch["action_images"])
        views, latent_frames = rgb.shape[1], rgb.shape[3]
        short = Mode.POLICY in modes
        if short and set(modes) != {Mode.POLICY}:
            raise ValueError(f"one batch has one canvas: `policy` cannot be mixed with other modes, got {sorted(m.value for m in set(modes))}")
        layout = self.layout_for(views, latent_frames, Mode.POLICY if short else Mode.JOINT)
        clean = layout.pack(rgb, actions)  # (B, C, L, h, w)
        latent_size = clean.shape[-2:]
        patch_t, tokens_per_frame = self.token_layout(layout, latent_size)

        draw_on = generator.device if generator is not None else None  # where the generator lives (a GPU's in validation)
        prompts = [p if torch.rand(1, generator=generator, device=draw_on).item() >= self.hparams.text_dropout else "" for p in batch["instruction"]]
        dropped = torch.zeros(len(modes), dtype=torch.bool)  # samples without their observation (and prompt)
        if self.hparams.observation_dropout:
            dropped = torch.rand(len(modes), generator=generator, device=draw_on).cpu() < self.hparams.observation_dropout
            prompts = ["" if d else p for p, d in zip(prompts, dropped.tolist())]
            clean = layout.pack(self.blank_observation(rgb, dropped), actions)
        plucker, text = self.conditioning(batch, layout, latent_size, prompts)

        t = sample_timesteps(len(modes), self.hparams.timestep_shift, generator, device=clean.device)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device)
        mask_modes = [Mode.A2V if m is Mode.VIDEO else m for m in modes]  # video: blank actions, given
        given = torch.stack([layout.given(m) for m in mask_modes]).to(clean.device)  # (B, L)
        frame_given = given[:, None, :, None, None]
        noisy = torch.where(frame_given, clean, add_noise(clean, noise, t))
        timesteps = torch.cat([layout.token_timesteps(m, t[i : i + 1] * TIMESTEP_SCALE, patch_t, tokens_per_frame) for i, m in enumerate(mask_modes)])

        readout = bool(self.hparams.goal_readout_weight)
        output = self.predict(layout, noisy, clean, timesteps, text, plucker=plucker, slot_ids=layout.slot_ids().to(clean.device), return_hidden=readout)
        output, hidden = output if readout else (output, None)
        target = training_target(clean, noise, self.prediction)
        weight = (~frame_given).float().expand_as(clean).clone()
        if self.hparams.action_loss_weight:
            is_action = torch.tensor([s.kind is SegmentKind.ACTION for s in layout.slots], device=clean.device)[None, None, :, None, None]
            if self.hparams.action_loss_on == "intensity":
                emphasis = ((clean + 1) / 2).clamp(0, 1)
            else:
                emphasis = layout.pack(torch.zeros_like(rgb), self.action_emphasis_latents(batch["action_images"], batch.get("gripper_opens")))
            weight = weight * torch.where(is_action, 1 + self.hparams.action_loss_weight * emphasis, 1.0)
        if short:  # the policy canvas generates only actions: samples without them teach nothing
            weight = weight * batch["has_actions"].to(weight)[:, None, None, None, None]
        error = (output - target).square() * weight
        per_sample = error.flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1)
        per_mode = {m: per_sample[[i for i, x in enumerate(modes) if x is m]].mean() for m in set(modes)}
        if not readout:
            return per_sample.mean(), per_mode, {}
        # Without the observation there is nothing to read the goal from: those samples are not scored.
        terms = self.goal_readout_loss(batch, layout, hidden, (t >= self.hparams.goal_readout_min_noise) & ~dropped.to(t.device))
        return per_sample.mean() + self.hparams.goal_readout_weight * terms["goal_readout"], per_mode, terms

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        modes = self.sample_modes(batch["has_actions"])
        loss, per_mode, readout = self.diffusion_loss(batch, modes)
        batch_size = len(modes)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        for mode, value in per_mode.items():
            self.log(f"train/loss_{mode.value}", value, batch_size=batch_size)
        self.log_readout("train", readout, batch_size)
        return loss

    def log_readout(self, stage: str, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        for name, value in terms.items():
            if torch.isfinite(value):  # NaN: no sample was scored, nothing to log
                self.log(f"{stage}/{name}", value, batch_size=batch_size)

    def validation_mode(self) -> Mode:
        """The mode validation scores and decodes — what the model was trained for: `policy` on the
        short canvas, `v2a` for a labeller (trained on `v2a` and not on `joint`), else `joint`."""
        if self.canvas_kind is Mode.POLICY:
            return Mode.POLICY
        if self.mode_mix.get(Mode.V2A, 0) > 0 and self.mode_mix.get(Mode.JOINT, 0) == 0:
            return Mode.V2A
        return Mode.JOINT

    def validation_step(self, batch: dict, batch_index: int) -> None:
        generator = torch.Generator(device=self.device).manual_seed(batch_index)
        control = self.validation_mode()
        modes = [control if bool(h) else Mode.VIDEO for h in batch["has_actions"]]
        loss, _, readout = self.diffusion_loss(batch, modes, generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(modes))
        self.log_readout("val", readout, len(modes))
        has_actions = torch.as_tensor(batch["has_actions"], dtype=torch.bool).cpu()
        if has_actions.any():  # what control sees: the generated future, decoded (comparable with the chunk models' curve)
            generated = self.generate(batch, control, generator=torch.Generator(device=self.device).manual_seed(batch_index))
            height, width = batch["rgb"].shape[-2:]
            with torch.autocast("cpu", enabled=False):  # the decoder's geometry in fp32 (it runs on the CPU)
                decoded = decode_action_images(
                    generated["action_images"].float().cpu(), Cameras(batch["intrinsics"].cpu(), batch["extrinsics"].cpu(), height, width)
                )
            error = (decoded.positions[:, 1:] - batch["positions"][:, 1:].cpu()).norm(dim=-1)[has_actions]  # metres, (B, T − 1)
            decodable = torch.isfinite(error)
            if decodable.any():  # the mean is the chunk models' measure; the median is robust to a few wild decodes
                self.log("val/position_error", error[decodable].mean(), batch_size=int(decodable.sum()))
                self.log("val/position_error_median", error[decodable].median(), batch_size=int(decodable.sum()))
            self.log("val/undecoded", 1 - decodable.float().mean(), batch_size=error.numel())
        if batch_index == 0 and self.hparams.samples_dir and self.trainer.is_global_zero:
            self.write_samples(batch)

    # --- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, batch: dict, mode: Mode, steps: int | None = None, guidance_scale: float | None = None, generator: torch.Generator | None = None,
        scheduler: FlowMatchEulerDiscreteScheduler | None = None, return_readout: bool = False, guide_observation: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Generate the latents a mode leaves open, from a batch of clips (the given parts are read
        from it). Returns decoded RGB and action images (B, V, T, 3, H, W) in [0, 1]; with
        `return_readout` (a model trained with a goal readout), also "goal_readout": per-pixel
        log-probabilities (B, V, H, W) of where the clip ends, read at the first (noisiest) step.
        `guide_observation`: whether guidance's unconditional pass also leaves out the observation (None:
        as trained, i.e. when the model was trained with observation dropout; True needs such a model)."""
        if return_readout and not self.hparams.goal_readout_weight:
            raise ValueError("this model was trained without a goal readout (model.goal_readout_weight 0)")
        if guide_observation is None:
            guide_observation = bool(self.hparams.observation_dropout)
        elif guide_observation and not self.hparams.observation_dropout:
            raise ValueError("guidance on the observation needs a model trained with model.observation_dropout > 0")
        steps = steps or self.hparams.sample_steps
        guidance = self.hparams.guidance_scale if guidance_scale is None else guidance_scale
        rgb, actions = self.encode_segments(batch["rgb"]), self.encode_segments(batch["action_images"])
        layout = self.layout_for(rgb.shape[1], rgb.shape[3], mode)
        video_only, mode = mode is Mode.VIDEO, (Mode.A2V if mode is Mode.VIDEO else mode)  # as trained: blank actions given
        if video_only:
            actions = self.encode_segments(torch.zeros_like(batch["action_images"]))
        clean = layout.pack(rgb, actions)
        latent_size = clean.shape[-2:]
        patch_t, tokens_per_frame = self.token_layout(layout, latent_size)
        plucker, text = self.conditioning(batch, layout, latent_size, list(batch["instruction"]))
        _, empty = self.conditioning(batch, layout, latent_size, [""] * len(batch["instruction"])) if guidance != 1 else (None, None)
        slot_ids = layout.slot_ids().to(clean.device)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=self.hparams.timestep_shift) if scheduler is None else scheduler
        scheduler.set_timesteps(steps, device=clean.device)
        given = layout.given(mode).to(clean.device)[None, None, :, None, None]
        # The unconditional pass of a model trained with observation dropout sees no observation either.
        clean_unconditional = clean
        if guidance != 1 and guide_observation:
            clean_unconditional = layout.pack(self.blank_observation(rgb, torch.ones(len(rgb), dtype=torch.bool)), actions)
        x = torch.where(given, clean, self.randn(clean.shape, generator))
        camera_terms = self.transformer.camera_terms(plucker, clean.shape)  # the same at every step: computed once
        readout = None
        for timestep in scheduler.timesteps:
            sigma = (timestep / TIMESTEP_SCALE).expand(len(x))
            tokens_t = layout.token_timesteps(mode, sigma * TIMESTEP_SCALE, patch_t, tokens_per_frame)
            first = return_readout and readout is None  # read out where the noise is highest, as trained
            output = self.predict(layout, x, clean, tokens_t, text, camera_terms=camera_terms, slot_ids=slot_ids, return_hidden=first)
            if first:
                output, hidden = output
                readout = self.readout_logits(layout, hidden).float().flatten(2).log_softmax(-1).unflatten(-1, batch["rgb"].shape[-2:])
            velocity = to_velocity(output, x, sigma, self.prediction)
            if guidance != 1:
                x_unconditional = torch.where(given, clean_unconditional, x)
                unconditional = self.predict(layout, x_unconditional, clean_unconditional, tokens_t, empty, camera_terms=camera_terms, slot_ids=slot_ids)
                unconditional = to_velocity(unconditional, x, sigma, self.prediction)
                velocity = unconditional + guidance * (velocity - unconditional)
            x = scheduler.step(velocity, timestep, x).prev_sample
            x = torch.where(given, clean, x)
        rgb_out, actions_out = layout.unpack(x)
        out = {"rgb": self.decode_segments(rgb_out), "action_images": None if video_only else self.decode_segments(actions_out)}
        return {**out, "goal_readout": readout} if return_readout else out

    def write_samples(self, batch: dict, count: int = 2) -> None:
        """RGB | action images | overlay, generated in the training canvas's mode, as mp4 per sample."""
        from datamodules.media import crop_to_even, write_video
        from rendering.renderer import overlay_action_images

        small = {k: (v[:count] if torch.is_tensor(v) or isinstance(v, list) else v) for k, v in batch.items()}
        mode = Mode.POLICY if self.canvas_kind is Mode.POLICY else Mode.JOINT
        out = self.generate(small, mode, generator=torch.Generator(device=self.device).manual_seed(0))
        folder = Path(self.hparams.samples_dir) / f"step_{self.global_step:07d}"
        for i in range(len(small["instruction"])):
            actions = out["action_images"][i]  # (V, T, 3, H, W)
            rgb = out["rgb"][i] if out["rgb"].shape[2] == actions.shape[1] else small["rgb"][i]
            rows = torch.cat([rgb, actions, overlay_action_images(rgb, actions)], -2)  # (V, T, 3, 3H, W)
            frames = torch.cat(list(rows), -1).permute(0, 2, 3, 1).cpu().numpy()  # (T, 3H, V·W, 3)
            write_video(folder / f"sample_{i}.mp4", crop_to_even(frames), fps=2)
