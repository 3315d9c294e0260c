"""The backbone (SPEC §6): diffusers' `WanTransformer3DModel` plus per-pixel Plücker camera conditioning.

The Wan transformer is used as it is, so a user with Wan weights on disk loads them unchanged
(`ActionImagesTransformer.from_wan(path)`); this file adds only the project's new layers:

- `camera_embedding`: a patch embedding of the Plücker rays (direction d, moment o × d, 6 channels)
  at latent resolution, with the transformer's own patch size, so each token gets its camera rays;
- `camera_projections`: one **zero-initialised** linear layer per block, whose output is added to the
  hidden states entering that block's self-attention (ReCamMaster-style). At initialisation the
  model computes exactly what the Wan model computes;
- optionally `slot_embedding` (zero-initialised), a learned embedding per canvas slot kind and view
  (the reference adds none and relies on 3D RoPE over the packed time axis);
- optionally `text_pooling` (zero-initialised, no bias): the mean of the prompt's token embeddings,
  added to the timestep embedding, so the instruction also modulates every block (adaLN), as the pooled
  text vector does in SD3 and FLUX. Wan reads text through cross-attention only, which small models
  trained briefly learned to ignore (SPEC §10 has no such lever; see BENCHMARKS, "instruction effect");
- optionally `goal_readout` (a training aid; `goal_readout_factor` = pixels per latent, so each token
  gives p_h·f × p_w·f pixel logits): reads the last
  block's hidden states of a token out as per-pixel logits, so the training module can ask the given
  first frame's tokens where the end effector will be (`ActionImagesModule(goal_readout_weight=...)`).
  Sampling never calls it.

Rays are expressed relative to the first frame of view 1, and action segments reuse their view's
cameras (the caller builds the ray maps; see `action_images.conditioning`).
"""

from __future__ import annotations

import logging

import torch
from diffusers import ModelMixin, WanTransformer3DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

logger = logging.getLogger(__name__)

PLUCKER_CHANNELS = 6


class ActionImagesTransformer(ModelMixin, ConfigMixin):
    """Wan transformer with camera conditioning. Arguments up to `pos_embed_seq_len` are Wan's own."""

    _supports_gradient_checkpointing = True
    _no_split_modules = ["WanTransformerBlock"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        camera_conditioning: bool = True,
        num_slot_ids: int = 0,
        pooled_text: bool = False,
        goal_readout_factor: int = 0,
    ) -> None:
        super().__init__()
        self.wan = WanTransformer3DModel(
            patch_size=tuple(patch_size), num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim,
            in_channels=in_channels, out_channels=out_channels, text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim,
            num_layers=num_layers, cross_attn_norm=cross_attn_norm, qk_norm=qk_norm, eps=eps, rope_max_seq_len=rope_max_seq_len,
        )
        inner_dim = num_attention_heads * attention_head_dim
        if camera_conditioning:
            self.camera_embedding = nn.Conv3d(PLUCKER_CHANNELS, inner_dim, kernel_size=patch_size, stride=patch_size)
            self.camera_projections = nn.ModuleList(nn.Linear(inner_dim, inner_dim) for _ in range(num_layers))
        if num_slot_ids:
            self.slot_embedding = nn.Embedding(num_slot_ids, inner_dim)
        if pooled_text:
            self.text_pooling = nn.Linear(text_dim, inner_dim, bias=False)  # the empty prompt adds nothing
        if goal_readout_factor:
            pixels = patch_size[1] * patch_size[2] * goal_readout_factor**2
            self.goal_readout = nn.Sequential(nn.LayerNorm(inner_dim), nn.Linear(inner_dim, pixels))
        self.gradient_checkpointing = False
        self.zero_new_layers()

    def zero_new_layers(self) -> None:
        """Zero the layers that feed new information in, so that training starts from Wan's function."""
        if self.config.camera_conditioning:
            for projection in self.camera_projections:
                nn.init.zeros_(projection.weight)
                nn.init.zeros_(projection.bias)
        if self.config.num_slot_ids:
            nn.init.zeros_(self.slot_embedding.weight)
        if self.config.pooled_text:
            nn.init.zeros_(self.text_pooling.weight)

    @property
    def new_layer_prefixes(self) -> tuple[str, ...]:
        prefixes = ("camera_embedding", "camera_projections") if self.config.camera_conditioning else ()
        prefixes += ("slot_embedding",) if self.config.num_slot_ids else ()
        prefixes += ("text_pooling",) if self.config.pooled_text else ()
        return prefixes + (("goal_readout",) if self.config.goal_readout_factor else ())

    @classmethod
    def from_wan(cls, path: str, subfolder: str | None = "transformer", torch_dtype: torch.dtype = torch.float32, **new_layers) -> "ActionImagesTransformer":
        """Load a diffusers Wan transformer folder (e.g. Wan2.2-TI2V-5B-Diffusers) from a local path
        and add the project's layers, freshly initialised; the log says which."""
        wan = WanTransformer3DModel.from_pretrained(path, subfolder=subfolder, torch_dtype=torch_dtype)
        keys = cls.config_keys()
        model = cls(**{k: v for k, v in wan.config.items() if k in keys}, **new_layers)
        model.wan = wan
        model.to(torch_dtype)
        fresh = sorted({name.split(".")[0] for name, _ in model.named_parameters() if not name.startswith("wan.")})
        logger.info("loaded Wan transformer from %s; new layers start fresh: %s", path, ", ".join(fresh) or "none")
        return model

    @classmethod
    def config_keys(cls) -> set[str]:
        import inspect

        return set(inspect.signature(cls.__init__).parameters) - {"self"}

    def camera_terms(self, plucker: torch.Tensor, latent_shape: torch.Size) -> list[torch.Tensor]:
        """What each block adds for the cameras, (B, tokens, dim) per block, from Plücker rays at latent
        resolution (B, 6, T, H, W). It depends on the cameras only, so sampling computes it once per
        generation and passes it to every step (`forward(camera_terms=...)`): exact reuse."""
        if not self.config.camera_conditioning:
            raise ValueError("this model has no camera conditioning; pass plucker=None")
        batch = latent_shape[0]
        if plucker.shape[0] != batch or plucker.shape[1] != PLUCKER_CHANNELS or plucker.shape[2:] != latent_shape[2:]:
            raise ValueError(f"Plücker rays must be (B, 6, T, H, W) = {(batch, 6, *latent_shape[2:])}, got {tuple(plucker.shape)}")
        dtype = self.camera_embedding.weight.dtype
        camera_tokens = self.camera_embedding(plucker.to(dtype)).flatten(2).transpose(1, 2)
        return [projection(camera_tokens) for projection in self.camera_projections]

    def pooled_text_term(self, text: torch.Tensor, per_token: bool) -> torch.Tensor:
        """The pooled prompt's share of the timestep embedding: (B, dim), or (B, 1, dim) for per-token
        timesteps. Padding is exactly zero (`action_images.text`), so the mean runs over real tokens."""
        real = text.abs().sum(-1, keepdim=True) > 0  # (B, L, 1)
        pooled = (text * real).sum(1) / real.sum(1).clamp(min=1)
        term = self.text_pooling(pooled.to(self.text_pooling.weight.dtype))
        return term[:, None] if per_token else term

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        plucker: torch.Tensor | None = None,
        slot_ids: torch.Tensor | None = None,
        camera_terms: list[torch.Tensor] | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predict from latents (B, C, T, H, W), timesteps (B,) or per token (B, seq_len), text (B, L, D),
        Plücker rays at latent resolution (B, 6, T, H, W) — or their `camera_terms`, computed once — and
        canvas slot ids (T,) → (B, C_out, T, H, W); with `return_hidden`, also the last block's hidden
        states (B, T/p_t, H/p_h, W/p_w, dim), for `goal_readout`.

        Mirrors `WanTransformer3DModel.forward`, adding the camera terms before each block.
        """
        wan = self.wan
        batch, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = wan.config.patch_size
        if frames % p_t or height % p_h or width % p_w:
            raise ValueError(f"latents {tuple(hidden_states.shape)} are not divisible by the patch size {wan.config.patch_size}")
        rotary_emb = wan.rope(hidden_states)
        tokens = wan.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()

        per_token = timestep.ndim == 2
        temb, timestep_proj, text, _ = wan.condition_embedder(
            timestep.flatten() if per_token else timestep, encoder_hidden_states, None,
            timestep_seq_len=timestep.shape[1] if per_token else None,
        )
        if self.config.pooled_text:
            temb = temb + self.pooled_text_term(encoder_hidden_states, per_token)
            timestep_proj = wan.condition_embedder.time_proj(wan.condition_embedder.act_fn(temb))
        timestep_proj = timestep_proj.unflatten(2 if per_token else 1, (6, -1))

        if plucker is not None:
            if camera_terms is not None:
                raise ValueError("pass plucker or camera_terms, not both")
            camera_terms = self.camera_terms(plucker, hidden_states.shape)
        if slot_ids is not None and self.config.num_slot_ids:
            slot_tokens = self.slot_embedding(slot_ids[::p_t]).repeat_interleave((height // p_h) * (width // p_w), dim=0)
            tokens = tokens + slot_tokens

        for index, block in enumerate(wan.blocks):
            if camera_terms is not None:
                tokens = tokens + camera_terms[index]
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens = self._gradient_checkpointing_func(block, tokens, text, timestep_proj, rotary_emb)
            else:
                tokens = block(tokens, text, timestep_proj, rotary_emb)

        if temb.ndim == 3:  # per-token timesteps
            shift, scale = (wan.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:
            shift, scale = (wan.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
        hidden = tokens
        tokens = (wan.norm_out(tokens.float()) * (1 + scale) + shift).type_as(tokens)
        tokens = wan.proj_out(tokens)
        tokens = tokens.reshape(batch, frames // p_t, height // p_h, width // p_w, p_t, p_h, p_w, -1)
        output = tokens.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if return_hidden:
            return output, hidden.unflatten(1, (frames // p_t, height // p_h, width // p_w))
        return output
