"""ImageWAM: an image-editing transformer whose key/value cache drives a flow-matching action expert.

Zhang et al., 2026, *ImageWAM: Do World Action Models Really Need Video Generation, or Just Image
Editing?* (arXiv 2606.19531; the authors' code is ``yuyangalin/ImageWAM``). The project's second
backbone, beside Action Images, trained on the same data and judged in the same harness.

**The editing backbone** is diffusers' ``Flux2Transformer2DModel`` with its modules and weights as they
are (the FLUX.2 klein architecture: double-stream blocks, then single-stream blocks, over packed latent
tokens). It learns to edit the *current* image into the *target* image ``target_offset`` control steps
ahead. Several cameras are one image: their views are tiled side by side (``tile_views``), as the
reference tiles LIBERO's two cameras, and encoded by one latent codec.

**The action expert** is a second FLUX.2-style transformer with the backbone's depth (as many double-
and single-stream blocks), heads and head dimension, but a smaller residual width (reference: 1024 for
klein 4B's 3072, MLP ratio 4), its own timestep embedding and modulation, an action encoder and an
action head. In every layer its queries attend to the backbone's keys/values of that layer plus its own.
It is initialised from the backbone's image-stream weights (``init_action_expert_from_backbone``).

Token layout and attention mask, written down once; ``TOKEN_LAYOUT`` is this table in code and every
mask is built from it by ``attention_mask``:

| # | segment | tokens                                                          | computed by              | attends to              |
|---|---------|-----------------------------------------------------------------|--------------------------|-------------------------|
| 1 | text    | instruction embeddings, then the proprio token (right after the valid text tokens) | backbone, context stream | text, current |
| 2 | current | the current image, views tiled, clean                           | backbone, image stream   | text, current           |
| 3 | target  | the noisy target image ``target_offset`` steps ahead            | backbone, image stream   | text, current, target   |
| 4 | action  | the noisy action chunk (``action_chunk`` steps)                 | action expert            | text, current, action   |

Rows 1–2 are the **prefix**: it attends only to itself, so nothing after it changes it, and action
tokens never see the noisy target. Padded text tokens are attended to by no one. The proprio token sits
in the prefix, packed after the valid text tokens as the reference does (``pack_proprio_after_text``).

Rotary positions (4 axes ``(t, h, w, l)`` as FLUX.2): text ``(0, 0, 0, i)``; current ``(10, row, col, 0)``
(diffusers' klein pipelines give the first reference image t = 10); target ``(0, row, col, 0)``;
action ``(2, i, 0, 0)`` (the reference's action ids), through the backbone's own ``pos_embed``.

Timesteps (t ∈ [0, 1], t = 1 pure noise, the network sees 1000·t as diffusers' Flux2 does):

| tokens        | modulated with                                                                          |
|---------------|-----------------------------------------------------------------------------------------|
| target        | the target's timestep                                                                   |
| text, current | training: the target's timestep (the reference) — or, with ``prefix_shares_target_timestep=False``, always ``edit_timestep``; inference: ``edit_timestep`` (reference 0, clean) |
| action        | the action's own timestep, through the expert's own embedding and modulation           |

**Training** (``flow_loss``): flow matching on the target image (weight 0.5) and on the action chunk
(weight 1.0), with independent timesteps, both shifted as in Wan (shift 5) and weighted per sample by
the reference's bell-shaped weight over timesteps.

**Inference** never draws the target: ``fill_cache`` runs the backbone once over the prefix only, at
``edit_timestep``, and keeps every layer's prefix keys/values in diffusers' ``Flux2KVCache``;
``sample_actions`` then runs a few Euler steps of the action expert alone against that cache.
Because the prefix attends only to itself, this gives exactly what the full masked forward gives
(``tests/test_imagewam.py`` checks it). ``sample_target`` (``ImageWAM.decode_target`` in pixels)
denoises the edited target for people to look at.

Why the cache is filled by this file's own layer loop rather than by ``Flux2Transformer2DModel.forward``
with ``kv_cache_mode="extract"``: diffusers' extract mode caches only the reference-image tokens and
lets text attend to the noisy image, whereas here text belongs to the prefix and is cached too; and the
action expert must run in lock-step with the backbone, layer by layer. The cache container, its
per-layer ``store``/``get`` and its "not populated" check are diffusers'.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.normalization import AdaLayerNormContinuous
from diffusers.models.transformers.transformer_flux2 import (
    Flux2Attention,
    Flux2FeedForward,
    Flux2KVCache,
    Flux2Modulation,
    Flux2ParallelSelfAttention,
    Flux2TimestepGuidanceEmbeddings,
    Flux2Transformer2DModel,
)
from einops import rearrange
from torch import Tensor, nn

from action_images.codecs import LatentCodec
from action_images.flow import sample_timesteps, shift_timesteps
from action_images.goal_readout import goal_readout_loss

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------
# The token layout: the table of the module docstring, in code.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    name: str
    computed_by: str
    attends_to: tuple[str, ...]


TOKEN_LAYOUT: tuple[Segment, ...] = (
    Segment("text", "backbone context stream", ("text", "current")),
    Segment("current", "backbone image stream", ("text", "current")),
    Segment("target", "backbone image stream", ("text", "current", "target")),
    Segment("action", "action expert", ("text", "current", "action")),
)
SEGMENTS = tuple(segment.name for segment in TOKEN_LAYOUT)
PREFIX = ("text", "current")

# Rotary time coordinates (axis 0 of FLUX.2's 4-axis ids).
CURRENT_TIME, TARGET_TIME, ACTION_TIME = 10.0, 0.0, 2.0


def attention_mask(lengths: dict[str, int], text_valid: Tensor | None = None) -> Tensor:
    """The boolean mask (B, L, L) of ``TOKEN_LAYOUT`` (True = may attend), for the sequence
    ``[text | current | target | action]`` with the given segment lengths (missing or 0 = absent).

    ``text_valid`` (B, L_text) marks real text tokens; padded ones are masked as keys for every row.
    Without it the batch dimension is 1.
    """
    unknown = set(lengths) - set(SEGMENTS)
    if unknown:
        raise ValueError(f"unknown segments {sorted(unknown)}; the layout has {SEGMENTS}")
    sizes = [int(lengths.get(name, 0)) for name in SEGMENTS]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    span = {name: slice(start, start + size) for name, start, size in zip(SEGMENTS, starts, sizes)}
    total = sum(sizes)
    device = text_valid.device if text_valid is not None else None
    mask = torch.zeros(total, total, dtype=torch.bool, device=device)
    for segment in TOKEN_LAYOUT:
        for other in segment.attends_to:
            mask[span[segment.name], span[other]] = True
    if text_valid is None:
        return mask.unsqueeze(0)
    if text_valid.ndim != 2 or text_valid.shape[1] != sizes[0]:
        raise ValueError(f"text_valid must be (B, {sizes[0]}), got {tuple(text_valid.shape)}")
    mask = mask.unsqueeze(0).repeat(text_valid.shape[0], 1, 1)
    mask[:, :, span["text"]] &= text_valid.bool()[:, None, :]
    return mask


# ---------------------------------------------------------------------------------------------------
# Views, latents and positions.
# ---------------------------------------------------------------------------------------------------

VIEW_LAYOUTS = ("horizontal", "vertical")


def tile_views(images: Tensor, num_views: int, layout: str = "horizontal") -> Tensor:
    """Views (B, V, C, H, W) → one image (B, C, H, V·W) (``horizontal``) or (B, C, V·H, W) (``vertical``),
    in view order, as the reference concatenates its cameras."""
    if layout not in VIEW_LAYOUTS:
        raise ValueError(f"unknown view layout {layout!r}; known: {', '.join(VIEW_LAYOUTS)}")
    if images.ndim != 5:
        raise ValueError(f"views must be (B, V, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] != num_views:
        raise ValueError(f"this model takes {num_views} views (cameras), got {images.shape[1]}")
    pattern = "b v c h w -> b c h (v w)" if layout == "horizontal" else "b v c h w -> b c (v h) w"
    return rearrange(images, pattern)


def untile_views(image: Tensor, num_views: int, layout: str = "horizontal") -> Tensor:
    """The inverse of ``tile_views``: (B, C, H', W') → (B, V, C, H, W)."""
    if layout not in VIEW_LAYOUTS:
        raise ValueError(f"unknown view layout {layout!r}; known: {', '.join(VIEW_LAYOUTS)}")
    pattern = "b c h (v w) -> b v c h w" if layout == "horizontal" else "b c (v h) w -> b v c h w"
    return rearrange(image, pattern, v=num_views)


def pack_latents(latents: Tensor) -> Tensor:
    """(B, C, h, w) → tokens (B, h·w, C), row-major, as diffusers' Flux2 pipelines pack."""
    return rearrange(latents, "b c h w -> b (h w) c")


def unpack_latents(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    return rearrange(tokens, "b (h w) c -> b c h w", h=grid[0], w=grid[1])


def text_ids(length: int, device=None) -> Tensor:
    ids = torch.zeros(length, 4, device=device)
    ids[:, 3] = torch.arange(length, device=device)
    return ids


def image_ids(grid: tuple[int, int], time: float, device=None) -> Tensor:
    height, width = grid
    ids = torch.zeros(height, width, 4, device=device)
    ids[..., 0] = time
    ids[..., 1] = torch.arange(height, device=device)[:, None]
    ids[..., 2] = torch.arange(width, device=device)[None, :]
    return ids.reshape(height * width, 4)


def action_ids(length: int, device=None) -> Tensor:
    ids = torch.zeros(length, 4, device=device)
    ids[:, 0] = ACTION_TIME
    ids[:, 1] = torch.arange(length, device=device)
    return ids


# ---------------------------------------------------------------------------------------------------
# Block arithmetic on diffusers' Flux2 modules, split at the attention so that streams can be mixed.
# Each mirrors the corresponding part of `Flux2TransformerBlock.forward` /
# `Flux2SingleTransformerBlock.forward` (a test checks the backbone path against diffusers' forward).
# ---------------------------------------------------------------------------------------------------


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, x, 1 + scale)


def _normed_qkv(q_norm: nn.Module, k_norm: nn.Module, qkv: Tensor | tuple[Tensor, Tensor, Tensor], head_dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """Projected ``[q | k | v]`` (B, L, 3·H·D) — or q, k, v apart — → q, k, v (B, L, H, D) with
    diffusers' q/k ``RMSNorm`` applied: both norms in one call of torch's fused kernel, weights after
    (the same arithmetic; the modules' Python path costs ~3× the kernel on a control step's few tokens)."""
    if isinstance(qkv, Tensor):
        qkv = qkv.unflatten(-1, (3, -1, head_dim))  # (B, L, 3, H, D), a view
        qk, v = qkv[:, :, :2], qkv[:, :, 2]
    else:
        qk, v = torch.stack([_heads(qkv[0], head_dim), _heads(qkv[1], head_dim)], dim=2), _heads(qkv[2], head_dim)
    weight = torch.stack([q_norm.weight, k_norm.weight])[:, None]  # (2, 1, D)
    qk = F.rms_norm(qk.to(weight.dtype), (head_dim,), None, q_norm.eps) * weight
    return qk[:, :, 0], qk[:, :, 1], v


def _projections(attn: nn.Module, fused: str, separate: tuple[str, str, str], h: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """``[q | k | v]`` from the fused linear ``fused`` (after ``fuse_qkv_projections``), or q, k, v from
    the three ``separate`` ones."""
    if getattr(attn, "fused_projections", False):
        return getattr(attn, fused)(h)
    return tuple(getattr(attn, name)(h) for name in separate)


def _heads(x: Tensor, head_dim: int) -> Tensor:
    return x.unflatten(-1, (-1, head_dim))


def _gated(x: Tensor, gate: Tensor, update: Tensor) -> Tensor:
    return torch.addcmul(x, gate, update)


def _out(attn: nn.Module, attended: Tensor) -> Tensor:
    """A double block's output projection; its dropout only while training."""
    out = attn.to_out[0](attended)
    return attn.to_out[1](out) if attn.training else out


def _image_qkv(block: nn.Module, x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Queries, keys, values (B, L, H, D) of a double block's image stream (or the expert's block)."""
    (shift, scale, _), _ = Flux2Modulation.split(mod, 2)
    h = _modulate(block.norm1(x), shift, scale)
    attn = block.attn
    qkv = _projections(attn, "to_qkv", ("to_q", "to_k", "to_v"), h)
    return _normed_qkv(attn.norm_q, attn.norm_k, qkv, attn.head_dim)


def _image_post(block: nn.Module, x: Tensor, attended: Tensor, mod: Tensor) -> Tensor:
    (_, _, gate), (shift, scale, gate_mlp) = Flux2Modulation.split(mod, 2)
    x = _gated(x, gate, _out(block.attn, attended))
    return _gated(x, gate_mlp, block.ff(_modulate(block.norm2(x), shift, scale)))


def _context_qkv(block: nn.Module, x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    (shift, scale, _), _ = Flux2Modulation.split(mod, 2)
    h = _modulate(block.norm1_context(x), shift, scale)
    attn = block.attn
    qkv = _projections(attn, "to_added_qkv", ("add_q_proj", "add_k_proj", "add_v_proj"), h)
    return _normed_qkv(attn.norm_added_q, attn.norm_added_k, qkv, attn.head_dim)


def _context_post(block: nn.Module, x: Tensor, attended: Tensor, mod: Tensor) -> Tensor:
    (_, _, gate), (shift, scale, gate_mlp) = Flux2Modulation.split(mod, 2)
    x = _gated(x, gate, block.attn.to_add_out(attended))
    return _gated(x, gate_mlp, block.ff_context(_modulate(block.norm2_context(x), shift, scale)))


def _single_qkv(block: nn.Module, x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Queries, keys, values (B, L, H, D) and the MLP branch of a single-stream (parallel) block."""
    ((shift, scale, _),) = Flux2Modulation.split(mod, 1)
    attn = block.attn
    projected = attn.to_qkv_mlp_proj(_modulate(block.norm(x), shift, scale))
    qkv, mlp = projected.split([3 * attn.inner_dim, projected.shape[-1] - 3 * attn.inner_dim], dim=-1)
    return (*_normed_qkv(attn.norm_q, attn.norm_k, qkv, attn.head_dim), mlp)


def _single_post(block: nn.Module, x: Tensor, attended: Tensor, mlp: Tensor, mod: Tensor) -> Tensor:
    ((_, _, gate),) = Flux2Modulation.split(mod, 1)
    return _gated(x, gate, block.attn.to_out(torch.cat([attended, block.attn.mlp_act_fn(mlp)], dim=-1)))


def _rope(x: Tensor, rotary: Tensor) -> Tensor:
    """Rotate (B, L, H, D) queries/keys by the complex rotary factors (L, D/2) of ``_rotary``: diffusers'
    ``apply_rotary_emb`` (real pairs, interleaved) as one complex product."""
    pairs = x.float().unflatten(-1, (-1, 2))
    if pairs.storage_offset() % 2 or any(stride % 2 for stride in pairs.stride()[:-1]):  # not viewable as complex
        pairs = pairs.contiguous()
    return torch.view_as_real(torch.view_as_complex(pairs) * rotary[:, None]).flatten(-2).to(x.dtype)


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Scaled dot-product attention over (B, L, H, D) tensors; mask (B, Lq, Lk) bool → (B, Lq, H·D)."""
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=None if mask is None else mask[:, None]
    )
    return out.transpose(1, 2).flatten(2).to(q.dtype)


def _per_token(pieces: list[tuple[Tensor, int]]) -> Tensor:
    """Modulations (B, K) for consecutive runs of tokens → (B, K) when all are the same tensor, else
    (B, L, K) with each run's modulation repeated along its tokens."""
    pieces = [(mod, n) for mod, n in pieces if n > 0]
    if all(mod is pieces[0][0] for mod, _ in pieces):
        return pieces[0][0]
    return torch.cat([mod[:, None, :].expand(-1, n, -1) for mod, n in pieces], dim=1)


# ---------------------------------------------------------------------------------------------------
# The action expert.
# ---------------------------------------------------------------------------------------------------


class ActionDoubleBlock(nn.Module):
    """The image stream of a FLUX.2 double block, at the expert's width (no context stream).

    Module names are the backbone block's, so weights map one to one.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.attn = Flux2Attention(query_dim=dim, heads=heads, dim_head=head_dim, bias=False, out_bias=False, eps=eps)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.ff = Flux2FeedForward(dim=dim, dim_out=dim, mult=mlp_ratio, bias=False)


class ActionSingleBlock(nn.Module):
    """A FLUX.2 single-stream (parallel attention + MLP) block whose attention width (heads × head_dim)
    may exceed its residual width."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.attn = Flux2ParallelSelfAttention(
            query_dim=dim, heads=heads, dim_head=head_dim, bias=False, out_bias=False, eps=eps, mlp_ratio=mlp_ratio
        )


class ImageWAMActionExpert(nn.Module):
    """Flow-matching action transformer: the backbone's depth, heads and head dimension, residual
    width ``dim``. ``time_guidance_embed``, the modulations and the blocks are named as in the
    backbone; ``action_encoder`` and the head (``norm_out``, ``proj_out``) are its own."""

    def __init__(
        self,
        action_dim: int,
        dim: int,
        num_layers: int,
        num_single_layers: int,
        heads: int,
        head_dim: int,
        mlp_ratio: float = 4.0,
        timestep_channels: int = 256,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.action_encoder = nn.Linear(action_dim, dim)
        self.time_guidance_embed = Flux2TimestepGuidanceEmbeddings(
            in_channels=timestep_channels, embedding_dim=dim, bias=False, guidance_embeds=False
        )
        self.double_stream_modulation_img = Flux2Modulation(dim, mod_param_sets=2, bias=False)
        self.single_stream_modulation = Flux2Modulation(dim, mod_param_sets=1, bias=False)
        self.transformer_blocks = nn.ModuleList(
            ActionDoubleBlock(dim, heads, head_dim, mlp_ratio, eps) for _ in range(num_layers)
        )
        self.single_transformer_blocks = nn.ModuleList(
            ActionSingleBlock(dim, heads, head_dim, mlp_ratio, eps) for _ in range(num_single_layers)
        )
        self.norm_out = AdaLayerNormContinuous(dim, dim, elementwise_affine=False, eps=eps, bias=False)
        self.proj_out = nn.Linear(dim, action_dim, bias=False)

    FRESH = ("action_encoder", "norm_out", "proj_out")

    def embed_time(self, t: Tensor) -> Tensor:
        return self.time_guidance_embed(t * 1000.0, None)

    def head(self, x: Tensor, temb: Tensor) -> Tensor:
        return self.proj_out(self.norm_out(x, temb))


# ---------------------------------------------------------------------------------------------------
# Initialising the expert from the backbone.
# ---------------------------------------------------------------------------------------------------


def _resize_axis(tensor: Tensor, axis: int, source_blocks: list[int], target_blocks: list[int]) -> Tensor:
    """Resize one axis block by block (packed projections keep their q | k | v | gate | up layout),
    by linear interpolation with aligned corners, as the reference's initialisation script does."""
    if len(source_blocks) != len(target_blocks) or sum(source_blocks) != tensor.shape[axis]:
        raise ValueError(f"cannot map blocks {source_blocks} onto {target_blocks} along axis {axis} of {tuple(tensor.shape)}")
    pieces = []
    for piece, size in zip(tensor.split(source_blocks, dim=axis), target_blocks):
        if piece.shape[axis] != size:
            moved = piece.movedim(axis, -1)
            flat = moved.reshape(-1, 1, moved.shape[-1]).float()
            flat = F.interpolate(flat, size=size, mode="linear", align_corners=True)
            piece = flat.reshape(*moved.shape[:-1], size).movedim(-1, axis)
        pieces.append(piece)
    return torch.cat(pieces, dim=axis)


def _blocks(name: str, module: nn.Module, axis: int) -> list[int]:
    """The packed blocks of a weight's output (axis 0) or input (axis 1) dimension."""
    weight = module.weight
    if axis == 0:
        if hasattr(module, "_tp_packed_col_blocks"):  # to_qkv_mlp_proj: q, k, v, gate, up
            return list(module._tp_packed_col_blocks)
        if name.endswith("ff.linear_in"):  # SwiGLU gate | up
            return [weight.shape[0] // 2] * 2
        if name.endswith("modulation_img.linear") or name.endswith("modulation.linear"):
            sets = weight.shape[0] // weight.shape[1]  # shift, scale, gate per set
            return [weight.shape[1]] * sets
        return [weight.shape[0]]
    if hasattr(module, "_tp_packed_row_blocks"):  # single-block to_out: attention | MLP
        return list(module._tp_packed_row_blocks)
    return [weight.shape[1]]


@torch.no_grad()
def init_expert_from_backbone(expert: ImageWAMActionExpert, backbone: Flux2Transformer2DModel) -> dict[str, list[str]]:
    """Copy the backbone's weights into the expert where shapes agree and interpolate them where they
    don't; the action encoder and head stay fresh.

    A weight maps to the backbone weight of the same name (the double blocks' image stream, the
    single blocks, the timestep embedding and modulations). A mismatched axis is resized block by
    block (``_resize_axis``); when the input axis changes, the weight is scaled by
    √(source width / target width), as the reference's ``preprocess_action_dit_flux2.py`` does so that
    activations keep their scale. Returns the names copied, resized and left fresh.
    """
    source = dict(backbone.named_modules())
    report: dict[str, list[str]] = {"copied": [], "resized": [], "fresh": []}
    for name, module in expert.named_modules():
        if not isinstance(module, (nn.Linear, nn.RMSNorm)) or module.weight is None:
            continue
        key = f"{name}.weight"
        if name.split(".")[0] in expert.FRESH or name not in source or getattr(source[name], "weight", None) is None:
            report["fresh"].append(key)
            continue
        origin = source[name]
        value = origin.weight.detach()
        if value.shape == module.weight.shape:
            module.weight.copy_(value)
            report["copied"].append(key)
            continue
        if value.ndim != module.weight.ndim:
            report["fresh"].append(key)
            continue
        resized = value.float()
        for axis in range(value.ndim):
            if resized.shape[axis] != module.weight.shape[axis]:
                resized = _resize_axis(resized, axis, _blocks(name, origin, axis), _blocks(name, module, axis))
        if value.ndim >= 2 and value.shape[-1] != module.weight.shape[-1]:
            resized = resized * math.sqrt(value.shape[-1] / module.weight.shape[-1])
        module.weight.copy_(resized.to(module.weight.dtype))
        report["resized"].append(key)
    return report


# ---------------------------------------------------------------------------------------------------
# The cache and the model.
# ---------------------------------------------------------------------------------------------------


@dataclass
class ImageWAMCache:
    """The backbone's per-layer prefix keys/values (post-norm, post-RoPE, (B, L_prefix, H, D)) in
    diffusers' ``Flux2KVCache``, and which prefix keys are real (padded text tokens are not)."""

    kv: Flux2KVCache
    key_valid: Tensor  # (B, L_prefix) bool
    edit_timestep: float
    goal_logits: Tensor | None = None  # the goal readout of the current-image tokens (B, N, pixels), if asked for

    @property
    def batch_size(self) -> int:
        return self.key_valid.shape[0]

    def repeat(self, times: int) -> ImageWAMCache:
        """Each row's cache `times` times over (B·times rows, row b's copies together): several action
        samples read one prefix pass."""
        kv = Flux2KVCache(len(self.kv.double_block_caches), len(self.kv.single_block_caches))
        kv.num_ref_tokens = self.kv.num_ref_tokens
        for source, copy in zip(self.kv.double_block_caches + self.kv.single_block_caches, kv.double_block_caches + kv.single_block_caches):
            k, v = source.get()
            copy.store(k.repeat_interleave(times, 0), v.repeat_interleave(times, 0))
        logits = None if self.goal_logits is None else self.goal_logits.repeat_interleave(times, 0)
        return ImageWAMCache(kv, self.key_valid.repeat_interleave(times, 0), self.edit_timestep, logits)


@dataclass
class ImageWAMOutput:
    target: Tensor | None  # velocity of the target tokens (B, N, C)
    action: Tensor | None  # velocity of the action chunk (B, chunk, action_dim)
    goal_logits: Tensor | None = None  # the goal readout of the current-image tokens (B, N, goal_readout_pixels)


# FLUX.2 klein 4B's transformer, in diffusers' naming (black-forest-labs flux2 `Klein4BParams`:
# hidden 3072 = 24 heads × 128, depth 5, single-stream depth 20, context 7680 = 3 × Qwen3-4B's 2560,
# 128 packed latent channels, MLP ratio 3, RoPE axes 4 × 32 with θ = 2000, no guidance embedding).
FLUX2_KLEIN_4B: dict = dict(
    patch_size=1, in_channels=128, out_channels=None, num_layers=5, num_single_layers=20, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=7680, timestep_guidance_channels=256, mlp_ratio=3.0,
    axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, eps=1e-6, guidance_embeds=False,
)


def _bell_weight(t: Tensor, shift: float, grid_size: int = 1000) -> Tensor:
    """The reference's per-sample loss weight over timesteps (its ``training_weight``): a Gaussian bump
    exp(−2 (t − ½)²), shifted to 0 at its minimum over the shifted training grid and normalised to mean 1
    on that grid."""
    u = torch.linspace(1.0, 0.0, grid_size + 1, dtype=torch.float64)[:-1]
    grid = torch.exp(-2.0 * (shift_timesteps(u, shift) - 0.5) ** 2)
    low, mean = grid.min(), (grid - grid.min()).mean()
    y = torch.exp(-2.0 * (t.double() - 0.5) ** 2)
    return ((y - low) / (mean + 1e-10)).to(t.dtype)


class ImageWAMTransformer(ModelMixin, ConfigMixin, AttentionMixin):
    """The editing backbone (diffusers' ``Flux2Transformer2DModel``, config ``backbone_config``) and the
    action expert, over latent tokens. Views and pixels are ``ImageWAM``'s business.

    Args:
        backbone_config: ``Flux2Transformer2DModel`` arguments (``FLUX2_KLEIN_4B`` at paper scale).
        action_dim: width of one action (ours: 8, ``x y z qx qy qz qw gripper`` normalised).
        proprio_dim: width of the proprio token's input; ``None`` = no proprio token.
        action_hidden_dim, action_mlp_ratio: the expert's residual width and MLP ratio (reference: 1024, 4).
        action_chunk: actions per chunk (reference 16). target_offset: control steps from the current to
            the target image (reference 16); the data side uses it, the model records it.
        edit_timestep: the prefix's timestep when filling the cache (reference 0, clean).
        prefix_shares_target_timestep: True (reference): in training the prefix is modulated with the
            target's timestep; False: always with ``edit_timestep``, so training sees the cache inference reads.
        image_shift, action_shift: Wan timestep shifts for training and sampling (reference 5, 5).
        image_loss_weight, action_loss_weight: 0.5 and 1.0 (reference); an image weight of 0 trains without the
            editing objective (the target segment is left out): the no-editing ablation.
        loss_weighting: ``"bell"`` (the reference's per-timestep weight) or ``"uniform"``.
        goal_readout_pixels: 0 (reference: none) or the pixels one image token covers: a training aid that
            reads out, from each current-image token after the last layer, per-pixel logits of where the end
            effector is at the target frame (``goal_readout.goal_readout_loss``). The prefix never sees the noisy
            target, so the answer cannot leak; the readout teaches the cached prefix the instruction's choice.
    """

    _no_split_modules = ["Flux2TransformerBlock", "Flux2SingleTransformerBlock", "ActionDoubleBlock", "ActionSingleBlock"]

    @register_to_config
    def __init__(
        self,
        backbone_config: dict | None = None,
        action_dim: int = 8,
        proprio_dim: int | None = 8,
        action_hidden_dim: int = 1024,
        action_mlp_ratio: float = 4.0,
        action_chunk: int = 16,
        target_offset: int = 16,
        edit_timestep: float = 0.0,
        prefix_shares_target_timestep: bool = True,
        image_shift: float = 5.0,
        action_shift: float = 5.0,
        image_loss_weight: float = 0.5,
        action_loss_weight: float = 1.0,
        loss_weighting: str = "bell",
        goal_readout_pixels: int = 0,
    ) -> None:
        super().__init__()
        if loss_weighting not in ("bell", "uniform"):
            raise ValueError(f"loss_weighting must be 'bell' or 'uniform', got {loss_weighting!r}")
        if action_chunk < 1 or target_offset < 1:
            raise ValueError(f"action_chunk and target_offset must be positive, got {action_chunk}, {target_offset}")
        self.backbone = Flux2Transformer2DModel(**dict(FLUX2_KLEIN_4B if backbone_config is None else backbone_config))
        bb = self.backbone.config
        self.action_expert = ImageWAMActionExpert(
            action_dim=action_dim, dim=action_hidden_dim, num_layers=bb.num_layers, num_single_layers=bb.num_single_layers,
            heads=bb.num_attention_heads, head_dim=bb.attention_head_dim, mlp_ratio=action_mlp_ratio,
            timestep_channels=bb.timestep_guidance_channels, eps=bb.eps,
        )
        self.proprio_encoder = None if proprio_dim is None else nn.Linear(proprio_dim, bb.joint_attention_dim)
        inner = bb.num_attention_heads * bb.attention_head_dim
        self.goal_readout = nn.Sequential(nn.LayerNorm(inner), nn.Linear(inner, goal_readout_pixels)) if goal_readout_pixels else None
        if not next(self.backbone.parameters()).is_meta:  # on `meta` (from_flux2, from_pretrained) it comes later
            self.init_action_expert_from_backbone()

    # ---- construction and loading ----------------------------------------------------------------

    def init_action_expert_from_backbone(self) -> dict[str, list[str]]:
        """(Re)initialise the expert from the backbone's current weights; returns what was copied,
        resized and left fresh (see ``init_expert_from_backbone``)."""
        return init_expert_from_backbone(self.action_expert, self.backbone)

    @classmethod
    def from_flux2(
        cls,
        path: str | os.PathLike,
        subfolder: str | None = "transformer",
        torch_dtype: torch.dtype = torch.float32,
        **kwargs,
    ) -> ImageWAMTransformer:
        """Load a diffusers ``Flux2Transformer2DModel`` folder (e.g. FLUX.2-klein-base-4B's
        ``transformer/``) from a local path as the editing backbone, and build the action expert from
        it; ``kwargs`` are this class's other arguments. The log says which expert weights were
        copied, interpolated and left fresh (``model.expert_init_report``)."""
        backbone = Flux2Transformer2DModel.from_pretrained(
            str(path), subfolder=subfolder, torch_dtype=torch_dtype, local_files_only=True
        )
        config = {key: value for key, value in backbone.config.items() if not key.startswith("_")}
        with torch.device("meta"):
            model = cls(backbone_config=config, **kwargs)
        model.backbone = backbone
        device = next(backbone.parameters()).device
        for name, child in model.named_children():
            if name != "backbone" and child is not None:
                child.to_empty(device=device)
                for module in child.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
        model.to(torch_dtype)
        model.expert_init_report = model.init_action_expert_from_backbone()
        report = model.expert_init_report
        logger.info(
            "loaded FLUX.2 transformer from %s; action expert: %d weights copied, %d interpolated, fresh: %s",
            path, len(report["copied"]), len(report["resized"]), ", ".join(report["fresh"]),
        )
        return model

    # ---- shapes and checks -----------------------------------------------------------------------

    @property
    def num_double_layers(self) -> int:
        return len(self.backbone.transformer_blocks)

    @property
    def num_single_layers(self) -> int:
        return len(self.backbone.single_transformer_blocks)

    def _check_action(self, action: Tensor, batch: int) -> None:
        chunk, dim = self.config.action_chunk, self.config.action_dim
        if action.ndim != 3 or action.shape[1] != chunk or action.shape[2] != dim:
            if action.ndim == 3 and action.shape[2] == dim:
                raise ValueError(f"an action chunk has {chunk} steps in this model, got {action.shape[1]}")
            raise ValueError(f"actions must be (B, chunk={chunk}, action_dim={dim}), got {tuple(action.shape)}")
        if action.shape[0] != batch:
            raise ValueError(f"actions have batch {action.shape[0]}, the observation has {batch}")

    def _check_tokens(self, tokens: Tensor, grid: tuple[int, int], what: str) -> None:
        channels = self.backbone.config.in_channels
        if tokens.ndim != 3 or tokens.shape[2] != channels or tokens.shape[1] != grid[0] * grid[1]:
            raise ValueError(
                f"{what} tokens must be (B, {grid[0]}×{grid[1]}, {channels}) for grid {tuple(grid)}, got {tuple(tokens.shape)}"
            )

    def _timesteps(self, t: Tensor | float, batch: int, device) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float32, device=device)
        return t.expand(batch) if t.ndim == 0 else t

    # ---- embeddings --------------------------------------------------------------------------------

    def prefix_context(self, text: Tensor, text_mask: Tensor | None, proprio: Tensor | None) -> tuple[Tensor, Tensor]:
        """Text embeddings (B, L, joint_attention_dim) and their mask → the context stream's input with
        the proprio token placed right after the valid text tokens (B, L + 1, ·), and its validity."""
        batch, length, width = text.shape
        if width != self.backbone.config.joint_attention_dim:
            raise ValueError(f"text embeddings must be {self.backbone.config.joint_attention_dim} wide, got {width}")
        valid = torch.ones(batch, length, dtype=torch.bool, device=text.device) if text_mask is None else text_mask.bool()
        if self.proprio_encoder is None:
            if proprio is not None:
                raise ValueError("this model has no proprio token (proprio_dim=None); pass proprio=None")
            return text, valid
        if proprio is None:
            raise ValueError(f"this model takes a proprio state of {self.config.proprio_dim} values; got proprio=None")
        if proprio.shape != (batch, self.config.proprio_dim):
            raise ValueError(f"proprio must be (B={batch}, {self.config.proprio_dim}), got {tuple(proprio.shape)}")
        token = self.proprio_encoder(proprio.to(self.proprio_encoder.weight.dtype)).to(text.dtype)
        counts = valid.sum(dim=1)
        destination = torch.where(valid, valid.cumsum(1) - 1, counts[:, None] + (~valid).cumsum(1))
        context = text.new_zeros(batch, length + 1, width).scatter(1, destination[..., None].expand(-1, -1, width), text)
        positions = torch.arange(length + 1, device=text.device)
        at_proprio = (positions[None, :] == counts[:, None])[..., None]
        context = torch.where(at_proprio, token[:, None, :], context)
        return context, positions[None, :] <= counts[:, None]

    def _backbone_temb(self, t: Tensor, dtype: torch.dtype) -> Tensor:
        return self.backbone.time_guidance_embed(t.to(dtype) * 1000.0, None)

    def _rotary(self, ids: Tensor) -> Tensor:
        """The backbone's own rotary embedding of (L, 4) position ids, as complex factors (L, D/2):
        ``pos_embed`` gives cos and sin repeated for each (real, imaginary) pair."""
        cos, sin = self.backbone.pos_embed(ids)
        return torch.complex(cos[:, ::2].float(), sin[:, ::2].float())

    # ---- the full masked forward (training) ---------------------------------------------------------

    def forward(
        self,
        current: Tensor,
        grid: tuple[int, int],
        text: Tensor,
        target: Tensor | None,
        target_timestep: Tensor | float | None = None,
        action: Tensor | None = None,
        action_timestep: Tensor | float | None = None,
        text_mask: Tensor | None = None,
        proprio: Tensor | None = None,
        attention_mask_override: Tensor | None = None,
    ) -> ImageWAMOutput:
        """One pass over ``[text | current | target | action]`` with the ``TOKEN_LAYOUT`` mask.

        current, target: packed latent tokens (B, h·w, C) of the current and the noisy target image
        (grid = (h, w)); text: (B, L, joint_attention_dim); action: the noisy chunk
        (B, action_chunk, action_dim); timesteps in [0, 1], (B,) or scalars. ``target`` or ``action``
        may be None to leave its segment out. Returns the velocities of the target and the action.
        ``attention_mask_override`` (B, L, L) replaces the layout mask (an all-True mask with no action
        reproduces the plain FLUX.2 forward, which a test uses).
        """
        batch, device = current.shape[0], current.device
        self._check_tokens(current, grid, "current image")
        if target is not None:
            self._check_tokens(target, grid, "target image")
            if target_timestep is None:
                raise ValueError("a target needs its target_timestep")
        if action is not None:
            self._check_action(action, batch)
            if action_timestep is None:
                raise ValueError("an action chunk needs its action_timestep")
        bb, expert = self.backbone, self.action_expert
        dtype = bb.x_embedder.weight.dtype

        context, valid = self.prefix_context(text.to(dtype), text_mask, proprio)
        n_text, n_current = context.shape[1], current.shape[1]
        n_target = 0 if target is None else target.shape[1]
        n_action = 0 if action is None else action.shape[1]
        lengths = {"text": n_text, "current": n_current, "target": n_target, "action": n_action}
        total = sum(lengths.values())
        if attention_mask_override is None:
            mask = attention_mask(lengths, valid)
        elif attention_mask_override.shape[-2:] != (total, total):
            raise ValueError(f"attention_mask_override must be (B, {total}, {total}), got {tuple(attention_mask_override.shape)}")
        else:
            mask = attention_mask_override.bool()

        # Timestep embeddings (see the module's table); the prefix's is the target's own object when shared.
        temb_prefix = temb_target = None
        if target is not None:
            temb_target = self._backbone_temb(self._timesteps(target_timestep, batch, device), dtype)
            if self.config.prefix_shares_target_timestep:
                temb_prefix = temb_target
        if temb_prefix is None:
            temb_prefix = self._backbone_temb(self._timesteps(self.config.edit_timestep, batch, device), dtype)
        mod_txt = bb.double_stream_modulation_txt(temb_prefix)
        mod_prefix_img, mod_prefix_single = bb.double_stream_modulation_img(temb_prefix), bb.single_stream_modulation(temb_prefix)
        if temb_target is None or temb_prefix is temb_target:
            mod_target_img, mod_target_single = mod_prefix_img, mod_prefix_single
        else:
            mod_target_img, mod_target_single = bb.double_stream_modulation_img(temb_target), bb.single_stream_modulation(temb_target)
        mod_img = _per_token([(mod_prefix_img, n_current), (mod_target_img, n_target)])
        mod_single = _per_token([(mod_prefix_single, n_text + n_current), (mod_target_single, n_target)])

        images = current if target is None else torch.cat([current, target], dim=1)
        txt, img = bb.context_embedder(context), bb.x_embedder(images.to(dtype))
        ids = [text_ids(n_text, device), image_ids(grid, CURRENT_TIME, device)]
        if target is not None:
            ids.append(image_ids(grid, TARGET_TIME, device))
        rotary = self._rotary(torch.cat(ids))

        act = None
        if action is not None:
            act = expert.action_encoder(action.to(dtype))
            temb_action = expert.embed_time(self._timesteps(action_timestep, batch, device).to(dtype))
            mod_action_double = expert.double_stream_modulation_img(temb_action)
            mod_action_single = expert.single_stream_modulation(temb_action)
            rotary_action = self._rotary(action_ids(n_action, device))

        for index, block in enumerate(bb.transformer_blocks):
            q_txt, k_txt, v_txt = _context_qkv(block, txt, mod_txt)
            q_img, k_img, v_img = _image_qkv(block, img, mod_img)
            q = _rope(torch.cat([q_txt, q_img], 1), rotary)
            k = _rope(torch.cat([k_txt, k_img], 1), rotary)
            v = torch.cat([v_txt, v_img], 1)
            if act is not None:
                a_block = expert.transformer_blocks[index]
                q_act, k_act, v_act = _image_qkv(a_block, act, mod_action_double)
                q = torch.cat([q, _rope(q_act, rotary_action)], 1)
                k = torch.cat([k, _rope(k_act, rotary_action)], 1)
                v = torch.cat([v, v_act], 1)
            out = _attend(q, k, v, mask)
            txt_out, img_out, act_out = out.split([n_text, img.shape[1], n_action], dim=1)
            txt, img = _context_post(block, txt, txt_out, mod_txt), _image_post(block, img, img_out, mod_img)
            if act is not None:
                act = _image_post(a_block, act, act_out, mod_action_double)

        stream = torch.cat([txt, img], dim=1)
        for index, block in enumerate(bb.single_transformer_blocks):
            q, k, v, mlp = _single_qkv(block, stream, mod_single)
            q, k = _rope(q, rotary), _rope(k, rotary)
            if act is not None:
                a_block = expert.single_transformer_blocks[index]
                q_act, k_act, v_act, mlp_act = _single_qkv(a_block, act, mod_action_single)
                q = torch.cat([q, _rope(q_act, rotary_action)], 1)
                k = torch.cat([k, _rope(k_act, rotary_action)], 1)
                v = torch.cat([v, v_act], 1)
            out = _attend(q, k, v, mask)
            stream_out, act_out = out.split([stream.shape[1], n_action], dim=1)
            stream = _single_post(block, stream, stream_out, mlp, mod_single)
            if act is not None:
                act = _single_post(a_block, act, act_out, mlp_act, mod_action_single)

        target_velocity = None
        if target is not None:
            target_velocity = bb.proj_out(bb.norm_out(stream[:, n_text + n_current :], temb_target))
        action_velocity = None if act is None else expert.head(act, temb_action)
        goal_logits = None if self.goal_readout is None else self.goal_readout(stream[:, n_text : n_text + n_current])
        return ImageWAMOutput(target=target_velocity, action=action_velocity, goal_logits=goal_logits)

    # ---- training -----------------------------------------------------------------------------------

    def flow_loss(
        self,
        current: Tensor,
        grid: tuple[int, int],
        text: Tensor,
        target: Tensor,
        actions: Tensor,
        text_mask: Tensor | None = None,
        proprio: Tensor | None = None,
        generator: torch.Generator | None = None,
        has_actions: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Flow matching on the clean target tokens and the clean (normalised) action chunk, with
        independent shifted timesteps: ``loss = 0.5 · image + 1.0 · action`` (the config's weights).
        ``has_actions`` (B,) bool leaves samples without actions out of the action loss (their chunk
        is still fed, as noise-only input). Returns ``loss``, ``image_loss`` and ``action_loss`` (each
        already weighted by its timestep) and, with a goal readout, its ``goal_logits`` (not in ``loss``)."""
        batch, device = current.shape[0], current.device
        self._check_action(actions, batch)
        config = self.config
        t_image = sample_timesteps(batch, config.image_shift, generator).to(device)
        t_action = sample_timesteps(batch, config.action_shift, generator).to(device)
        noise_image = torch.randn(target.shape, generator=generator).to(device, target.dtype)
        noise_action = torch.randn(actions.shape, generator=generator).to(device, actions.dtype)
        noisy_target = (1 - t_image[:, None, None]) * target + t_image[:, None, None] * noise_image
        noisy_action = (1 - t_action[:, None, None]) * actions + t_action[:, None, None] * noise_action
        # Without the editing objective (image weight 0, the no-editing ablation) the target segment is
        # left out: nothing attends to it, so the cache the expert reads is shaped by the action loss alone.
        editing = config.image_loss_weight > 0
        out = self(current, grid, text, noisy_target if editing else None, t_image, noisy_action, t_action, text_mask=text_mask, proprio=proprio)
        if editing:
            image_error = (out.target.float() - (noise_image - target).float()).pow(2).flatten(1).mean(1)
        else:
            image_error = torch.zeros(batch, device=device)
        action_error = (out.action.float() - (noise_action - actions).float()).pow(2).flatten(1).mean(1)
        if config.loss_weighting == "bell":
            image_error = image_error * _bell_weight(t_image, config.image_shift)
            action_error = action_error * _bell_weight(t_action, config.action_shift)
        image_loss = image_error.mean()
        if has_actions is None:
            action_loss = action_error.mean()
        else:
            keep = has_actions.to(device=action_error.device, dtype=action_error.dtype)
            action_loss = (action_error * keep).sum() / keep.sum().clamp(min=1)
        loss = config.image_loss_weight * image_loss + config.action_loss_weight * action_loss
        losses = {"loss": loss, "image_loss": image_loss, "action_loss": action_loss}
        return losses if out.goal_logits is None else {**losses, "goal_logits": out.goal_logits}

    # ---- inference: the prefix cache and the action expert alone -------------------------------------

    def fill_cache(
        self,
        current: Tensor,
        grid: tuple[int, int],
        text: Tensor,
        text_mask: Tensor | None = None,
        proprio: Tensor | None = None,
        readout: bool = False,
    ) -> ImageWAMCache:
        """One backbone pass over the prefix ``[text | current]`` only, at ``edit_timestep``; every
        layer's prefix keys/values go into a ``Flux2KVCache``. No target is drawn. With ``readout`` (a
        model with a goal readout), the last layer runs to the end too and the cache carries the
        ``goal_logits`` the full forward gives (the prefix attends only to itself)."""
        if readout and self.goal_readout is None:
            raise ValueError("this model has no goal readout (goal_readout_pixels = 0)")
        batch, device = current.shape[0], current.device
        self._check_tokens(current, grid, "current image")
        bb = self.backbone
        dtype = bb.x_embedder.weight.dtype
        context, valid = self.prefix_context(text.to(dtype), text_mask, proprio)
        n_text = context.shape[1]
        mask = attention_mask({"text": n_text, "current": current.shape[1]}, valid)
        temb = self._backbone_temb(self._timesteps(self.config.edit_timestep, batch, device), dtype)
        mod_txt, mod_img = bb.double_stream_modulation_txt(temb), bb.double_stream_modulation_img(temb)
        mod_single = bb.single_stream_modulation(temb)
        rotary = self._rotary(torch.cat([text_ids(n_text, device), image_ids(grid, CURRENT_TIME, device)]))
        cache = Flux2KVCache(self.num_double_layers, self.num_single_layers)
        cache.num_ref_tokens = n_text + current.shape[1]

        txt, img = bb.context_embedder(context), bb.x_embedder(current.to(dtype))
        for index, block in enumerate(bb.transformer_blocks):
            q_txt, k_txt, v_txt = _context_qkv(block, txt, mod_txt)
            q_img, k_img, v_img = _image_qkv(block, img, mod_img)
            q = _rope(torch.cat([q_txt, q_img], 1), rotary)
            k = _rope(torch.cat([k_txt, k_img], 1), rotary)
            v = torch.cat([v_txt, v_img], 1)
            cache.get_double(index).store(k, v)
            txt_out, img_out = _attend(q, k, v, mask).split([n_text, img.shape[1]], dim=1)
            txt, img = _context_post(block, txt, txt_out, mod_txt), _image_post(block, img, img_out, mod_img)
        stream = torch.cat([txt, img], dim=1)
        last = self.num_single_layers - 1
        for index, block in enumerate(bb.single_transformer_blocks):
            q, k, v, mlp = _single_qkv(block, stream, mod_single)
            q, k = _rope(q, rotary), _rope(k, rotary)
            cache.get_single(index).store(k, v)
            if index < last or readout:  # the prefix's outputs after the last layer feed only the readout
                stream = _single_post(block, stream, _attend(q, k, v, mask), mlp, mod_single)
        goal_logits = self.goal_readout(stream[:, n_text:]) if readout else None
        return ImageWAMCache(kv=cache, key_valid=valid_prefix(valid, current.shape[1]), edit_timestep=self.config.edit_timestep,
                             goal_logits=goal_logits)

    def _check_cache(self, cache: ImageWAMCache | None, batch: int) -> None:
        if cache is None:
            raise ValueError(
                "no editing cache: the action expert reads the backbone's prefix keys/values; run fill_cache(...) first"
            )
        if not isinstance(cache, ImageWAMCache):
            raise TypeError(f"expected the ImageWAMCache that fill_cache returns, got {type(cache).__name__}")
        kv = cache.kv
        if len(kv.double_block_caches) != self.num_double_layers or len(kv.single_block_caches) != self.num_single_layers:
            raise ValueError(
                f"the cache has {len(kv.double_block_caches)} + {len(kv.single_block_caches)} layers, this model "
                f"{self.num_double_layers} + {self.num_single_layers}; it was filled by another model"
            )
        if any(layer.k_ref is None for layer in kv.double_block_caches + kv.single_block_caches):
            raise ValueError("the editing cache is empty (not populated); run fill_cache(...) first")
        if cache.batch_size != batch:
            raise ValueError(f"the cache holds a batch of {cache.batch_size}, the actions {batch}")

    def action_velocity(self, cache: ImageWAMCache | None, action: Tensor, timestep: Tensor | float) -> Tensor:
        """The action expert alone: noisy chunk (B, chunk, action_dim) at ``timestep`` → velocity,
        attending in each layer to the cached prefix keys/values and to its own."""
        self._check_cache(cache, action.shape[0])
        self._check_action(action, action.shape[0])
        conditioning = self._expert_conditioning(self._timesteps(timestep, action.shape[0], action.device)[None])
        return self._expert_velocity(self._expert_context(cache, action.shape[1]), action, conditioning[0])

    def _expert_context(self, cache: ImageWAMCache, n_action: int) -> dict:
        """What every Euler step of the expert reads unchanged: the chunk's rotary embedding and, per
        layer, key/value buffers (B, heads, prefix + chunk, D) holding the cached prefix, whose chunk
        part each step overwrites — no concatenation per step. Keys every row can see need no mask:
        padded text keys shared by the whole batch (always so for one observation) are dropped, and
        the mask is kept only where rows differ."""
        batch, device = cache.batch_size, cache.key_valid.device
        valid = cache.key_valid
        shared = valid.all(0)
        keep = shared if bool((valid == shared).all()) else None  # the same keys valid in every row
        drop_padding = keep is not None and not bool(keep.all())
        layers = [cache.kv.get_double(i).get() for i in range(self.num_double_layers)]
        layers += [cache.kv.get_single(i).get() for i in range(self.num_single_layers)]
        buffers = []
        for k, v in layers:
            if drop_padding:
                k, v = k[:, keep], v[:, keep]
            prefix = k.shape[1]
            k_all = k.new_empty(batch, k.shape[2], prefix + n_action, k.shape[3])
            v_all = v.new_empty(batch, v.shape[2], prefix + n_action, v.shape[3])
            k_all[:, :, :prefix], v_all[:, :, :prefix] = k.transpose(1, 2), v.transpose(1, 2)
            buffers.append((k_all, v_all))
        mask = None
        if keep is None:
            chunk_keys = torch.ones(batch, n_action, n_action, dtype=torch.bool, device=device)
            mask = torch.cat([valid[:, None, :].expand(-1, n_action, -1), chunk_keys], dim=2)[:, None]
        return {"mask": mask, "rotary": self._rotary(action_ids(n_action, device)), "kv": buffers}

    def _expert_conditioning(self, timesteps: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per step of (steps, B) timesteps: the expert's time embedding and its double / single
        modulations, computed for all steps in one batch (they do not depend on the actions)."""
        expert = self.action_expert
        steps, batch = timesteps.shape
        temb = expert.embed_time(timesteps.flatten().to(expert.action_encoder.weight.dtype))
        mod_double, mod_single = expert.double_stream_modulation_img(temb), expert.single_stream_modulation(temb)
        return list(zip(temb.split(batch), mod_double.split(batch), mod_single.split(batch)))

    def _expert_velocity(self, context: dict, action: Tensor, conditioning: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        expert = self.action_expert
        dtype = expert.action_encoder.weight.dtype
        temb, mod_double, mod_single = conditioning
        rotary, buffers, mask = context["rotary"], context["kv"], context["mask"]

        def attend(index: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            k_all, v_all = buffers[index]
            chunk = k.shape[1]
            k_all[:, :, -chunk:], v_all[:, :, -chunk:] = _rope(k, rotary).transpose(1, 2), v.transpose(1, 2)
            out = F.scaled_dot_product_attention(_rope(q, rotary).transpose(1, 2), k_all, v_all, attn_mask=mask)
            return out.transpose(1, 2).flatten(2).to(q.dtype)

        act = expert.action_encoder(action.to(dtype))
        for index, block in enumerate(expert.transformer_blocks):
            q, k, v = _image_qkv(block, act, mod_double)
            act = _image_post(block, act, attend(index, q, k, v), mod_double)
        for index, block in enumerate(expert.single_transformer_blocks, start=len(expert.transformer_blocks)):
            q, k, v, mlp = _single_qkv(block, act, mod_single)
            act = _single_post(block, act, attend(index, q, k, v), mlp, mod_single)
        return expert.head(act, temb)

    def sample_actions(
        self,
        cache: ImageWAMCache | None,
        num_steps: int = 10,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Euler integration of the action flow from noise (t = 1) to the chunk (t = 0) on the shifted
        schedule, reading only the cache: (B, action_chunk, action_dim) normalised actions."""
        if cache is None:
            self._check_cache(cache, 0)
        if num_steps < 1:
            raise ValueError(f"num_steps must be positive, got {num_steps}")
        device = cache.key_valid.device
        shape = (cache.batch_size, self.config.action_chunk, self.config.action_dim)
        x = torch.randn(shape, generator=generator).to(device) if noise is None else noise.to(device)
        sigmas = shift_timesteps(torch.linspace(1.0, 0.0, num_steps + 1), self.config.action_shift).tolist()
        self._check_cache(cache, shape[0])
        context = self._expert_context(cache, shape[1])  # read once, used by every step
        conditioning = self._expert_conditioning(torch.tensor(sigmas[:-1], device=device)[:, None].expand(-1, shape[0]))
        for sigma, sigma_next, step in zip(sigmas[:-1], sigmas[1:], conditioning):
            x = x + (sigma_next - sigma) * self._expert_velocity(context, x, step).to(x.dtype)
        return x

    def sample_target(
        self,
        current: Tensor,
        grid: tuple[int, int],
        text: Tensor,
        text_mask: Tensor | None = None,
        proprio: Tensor | None = None,
        num_steps: int = 20,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Denoise the edited target tokens (B, h·w, C) with the backbone alone (for people to look at;
        control never needs it). Each step runs the masked forward without the action segment."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be positive, got {num_steps}")
        x = torch.randn(current.shape, generator=generator).to(current.device, current.dtype)
        sigmas = shift_timesteps(torch.linspace(1.0, 0.0, num_steps + 1), self.config.image_shift).tolist()
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
            velocity = self(current, grid, text, x, sigma, text_mask=text_mask, proprio=proprio).target
            x = x + (sigma_next - sigma) * velocity.to(x.dtype)
        return x


def valid_prefix(text_valid: Tensor, n_current: int) -> Tensor:
    """Which prefix keys are real: the text's validity, then every current-image token."""
    ones = torch.ones(text_valid.shape[0], n_current, dtype=torch.bool, device=text_valid.device)
    return torch.cat([text_valid.bool(), ones], dim=1)


# ---------------------------------------------------------------------------------------------------
# Pixels: views tiled into one image, a latent codec, the transformer.
# ---------------------------------------------------------------------------------------------------


class Flux2VAECodec(LatentCodec):
    """FLUX.2's VAE (diffusers ``AutoencoderKLFlux2``), frozen, for single images: latents are the
    posterior mode, patchified 2 × 2 and normalised by the VAE's batch-norm statistics, exactly as
    diffusers' Flux2 pipelines do, so ``channels = 4 · latent_channels`` (128) and
    ``spatial_factor = 2 · 2^(levels − 1)`` (16). Frames are encoded one by one (``temporal_factor = 1``)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        config = vae.config
        self.channels = 4 * config.latent_channels
        self.spatial_factor = 2 ** (len(config.block_out_channels) - 1) * 2
        self.temporal_factor = 1

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, subfolder: str | None = "vae", dtype: torch.dtype = torch.float32) -> Flux2VAECodec:
        from diffusers import AutoencoderKLFlux2

        return cls(AutoencoderKLFlux2.from_pretrained(str(path), subfolder=subfolder, torch_dtype=dtype, local_files_only=True))

    def train(self, mode: bool = True) -> Flux2VAECodec:
        super().train(mode)
        self.vae.eval()
        return self

    def latent_frames(self, frames: int) -> int:
        if frames < 1:
            raise ValueError(f"a video needs at least one frame, got {frames}")
        return frames

    def _statistics(self, like: Tensor) -> tuple[Tensor, Tensor]:
        bn = self.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(like.device, torch.float32)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + self.vae.config.batch_norm_eps).to(like.device, torch.float32)
        return mean, std

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        self._check_video(video)
        frames = rearrange(video, "b c t h w -> (b t) c h w").to(self.vae.dtype)
        z = self.vae.encode(frames).latent_dist.mode().float()
        z = rearrange(z, "n c (h p) (w q) -> n (c p q) h w", p=2, q=2)
        mean, std = self._statistics(z)
        return rearrange((z - mean) / std, "(b t) c h w -> b c t h w", b=video.shape[0])

    def decode(self, latents: Tensor) -> Tensor:
        self._check_latents(latents)
        z = rearrange(latents.float(), "b c t h w -> (b t) c h w")
        mean, std = self._statistics(z)
        z = rearrange(z * std + mean, "n (c p q) h w -> n c (h p) (w q)", p=2, q=2)
        images = self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1.0, 1.0)
        return rearrange(images, "(b t) c h w -> b c t h w", b=latents.shape[0])


class ImageWAM(nn.Module):
    """Views in pixels → actions: the views (B, V, 3, H, W) in [-1, 1] are tiled into one image
    (``view_layout``), encoded by ``codec`` into packed latent tokens, and handed to the transformer.

    Text comes as embeddings (B, L, joint_attention_dim) with a mask (the caller owns the text encoder);
    proprio as (B, proprio_dim) and actions as normalised chunks (B, action_chunk, action_dim).
    """

    def __init__(self, transformer: ImageWAMTransformer, codec: LatentCodec, num_views: int, view_layout: str = "horizontal"):
        super().__init__()
        if view_layout not in VIEW_LAYOUTS:
            raise ValueError(f"unknown view layout {view_layout!r}; known: {', '.join(VIEW_LAYOUTS)}")
        if codec.channels != transformer.backbone.config.in_channels:
            raise ValueError(
                f"the codec gives {codec.channels} latent channels, the backbone takes {transformer.backbone.config.in_channels}"
            )
        self.transformer = transformer
        self.codec = codec
        self.num_views = num_views
        self.view_layout = view_layout

    def encode_views(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Views (B, V, 3, H, W) → tokens (B, h·w, C) and the token grid (h, w)."""
        tiled = tile_views(images, self.num_views, self.view_layout)
        latents = self.codec.encode(tiled.unsqueeze(2))[:, :, 0]
        return pack_latents(latents), (latents.shape[-2], latents.shape[-1])

    def decode_views(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """Tokens → views (B, V, 3, H, W) in [-1, 1]."""
        image = self.codec.decode(unpack_latents(tokens, grid).unsqueeze(2))[:, :, 0]
        return untile_views(image, self.num_views, self.view_layout)

    def loss(
        self,
        current: Tensor,
        target: Tensor,
        text: Tensor,
        actions: Tensor,
        text_mask: Tensor | None = None,
        proprio: Tensor | None = None,
        generator: torch.Generator | None = None,
        has_actions: Tensor | None = None,
        goal_pixels: Tensor | None = None,
        goal_valid: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The training loss (``ImageWAMTransformer.flow_loss``) from the current and target views; for a
        model with a goal readout, also ``goal_readout`` and ``goal_hit`` (``goal_readout.goal_readout_loss``)
        against ``goal_pixels`` (B, V) with ``goal_valid`` (B, V). The caller weights the readout into the loss."""
        current_tokens, grid = self.encode_views(current)
        target_tokens, _ = self.encode_views(target)
        losses = self.transformer.flow_loss(
            current_tokens, grid, text, target_tokens, actions, text_mask, proprio, generator, has_actions
        )
        logits = losses.pop("goal_logits", None)
        if goal_pixels is None or logits is None:
            return losses
        return {**losses, **goal_readout_loss(self.goal_readout_maps(logits, grid), goal_pixels, goal_valid)}

    def goal_readout_maps(self, logits: Tensor, grid: tuple[int, int]) -> Tensor:
        """Per-token readout logits (B, h·w, f²) → one logit per pixel of every view (B, V, H, W), with
        f = the codec's pixels per token side (a fixed order within the token: the head learns it)."""
        factor = self.codec.spatial_factor
        if logits.shape[-1] != factor * factor:
            raise ValueError(f"the goal readout gives {logits.shape[-1]} logits per token, the codec covers {factor}² pixels")
        image = rearrange(unpack_latents(logits, grid), "b (p q) h w -> b 1 (h p) (w q)", p=factor, q=factor)
        return untile_views(image, self.num_views, self.view_layout)[:, :, 0]

    def fill_cache(self, current: Tensor, text: Tensor, text_mask: Tensor | None = None, proprio: Tensor | None = None) -> ImageWAMCache:
        tokens, grid = self.encode_views(current)
        return self.transformer.fill_cache(tokens, grid, text, text_mask, proprio)

    def fill_cache_with_readout(
        self, current: Tensor, text: Tensor, text_mask: Tensor | None = None, proprio: Tensor | None = None
    ) -> tuple[ImageWAMCache, Tensor]:
        """The cache and, from the same prefix pass, the goal readout as log-probabilities over each
        view's pixels (B, V, H, W): where the end effector will be at the target frame."""
        tokens, grid = self.encode_views(current)
        cache = self.transformer.fill_cache(tokens, grid, text, text_mask, proprio, readout=True)
        maps = self.goal_readout_maps(cache.goal_logits, grid)
        return cache, maps.flatten(2).log_softmax(-1).view_as(maps)

    def sample_actions(self, cache: ImageWAMCache | None, num_steps: int = 10, generator: torch.Generator | None = None) -> Tensor:
        return self.transformer.sample_actions(cache, num_steps, generator)

    def predict_actions(
        self,
        current: Tensor,
        text: Tensor,
        text_mask: Tensor | None = None,
        proprio: Tensor | None = None,
        num_steps: int = 10,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One prefix pass, then ``num_steps`` Euler steps of the expert: (B, chunk, action_dim)."""
        return self.sample_actions(self.fill_cache(current, text, text_mask, proprio), num_steps, generator)

    def decode_target(
        self,
        current: Tensor,
        text: Tensor,
        text_mask: Tensor | None = None,
        proprio: Tensor | None = None,
        num_steps: int = 20,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The edited target views (B, V, 3, H, W) in [-1, 1], for people to look at."""
        tokens, grid = self.encode_views(current)
        target = self.transformer.sample_target(tokens, grid, text, text_mask, proprio, num_steps, generator)
        return self.decode_views(target, grid)
