"""The canvas: how per-view RGB and action latents are laid out on the transformer's time axis, and
which latent frames each mode gives (clean) or generates.

This docstring is the single written-down reference of the layout (SPEC §1, §5); a test checks that
the tables below are what the code produces.

Each view contributes an RGB segment and an action segment of ``frames`` latent frames each. They are
concatenated along the latent time axis, view-major. The reference order, ``"segments"``, for
2 views × 3 latent frames (``CanvasLayout(views=2, frames=3)``), with the given frames of the three
modes that use this full layout:

| position | view | kind | frame | joint | a2v | v2a |
|---|---|---|---|---|---|---|
| 0 | 0 | rgb | 0 | given | given | given |
| 1 | 0 | rgb | 1 | gen | gen | given |
| 2 | 0 | rgb | 2 | gen | gen | given |
| 3 | 0 | action | 0 | given | given | given |
| 4 | 0 | action | 1 | gen | given | gen |
| 5 | 0 | action | 2 | gen | given | gen |
| 6 | 1 | rgb | 0 | given | given | given |
| 7 | 1 | rgb | 1 | gen | gen | given |
| 8 | 1 | rgb | 2 | gen | gen | given |
| 9 | 1 | action | 0 | given | given | given |
| 10 | 1 | action | 1 | gen | given | gen |
| 11 | 1 | action | 2 | gen | given | gen |

The ``"given_first"`` order puts each view's two first frames next to each other, so that a temporal
patch of 2 packs them into one token whose timestep is 0 (SPEC §10, the recipe that learns in
minutes). The ``policy`` canvas (``short=True``) keeps only each view's first RGB latent, here in the
``"given_first"`` order, where ``patch_t=2`` gives per view one given token group and one generated:

| position | view | kind | frame | policy |
|---|---|---|---|---|
| 0 | 0 | rgb | 0 | given |
| 1 | 0 | action | 0 | given |
| 2 | 0 | action | 1 | gen |
| 3 | 0 | action | 2 | gen |
| 4 | 1 | rgb | 0 | given |
| 5 | 1 | action | 0 | given |
| 6 | 1 | action | 1 | gen |
| 7 | 1 | action | 2 | gen |

The five modes, per segment frame (— : the frame is not on that mode's canvas):

| segment frame | joint | a2v | v2a | video | policy |
|---|---|---|---|---|---|
| RGB 0 | given | given | given | given | given |
| RGB 1.. | gen | gen | given | gen | — |
| ACTION 0 | given | given | given | — | given |
| ACTION 1.. | gen | given | gen | — | gen |

``joint``, ``a2v`` and ``v2a`` need the full layout, ``video`` a layout without action segments
(``actions=False``) and ``policy`` the short one; any other pairing is a ValueError, so a mode never
silently means something else on a canvas it was not made for. ``CanvasLayout.for_mode`` builds the
right layout for a mode.

Tokens: diffusers' ``WanTransformer3DModel`` patchifies the canvas ``(B, C, length, h, w)`` with a
Conv3d of kernel ``(patch_t, patch_h, patch_w)`` and flattens t-major, then h, then w, so token
``i`` belongs to temporal group ``i // tokens_per_frame``. Given tokens get timestep 0, generated ones
the sample's timestep; a temporal patch mixing both is refused, as its token would need two timesteps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

ORDERS = ("segments", "given_first")


class Mode(enum.Enum):
    """What the model is asked to do; only the given/generated split of the canvas differs (SPEC §1)."""

    JOINT = "joint"
    A2V = "a2v"
    V2A = "v2a"
    VIDEO = "video"
    POLICY = "policy"

    @classmethod
    def parse(cls, name: str | Mode) -> Mode:
        """The mode named ``name`` (its value, any case), for configs and the command line."""
        if isinstance(name, Mode):
            return name
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            known = ", ".join(mode.value for mode in cls)
            raise ValueError(f"unknown mode {name!r}; the modes are: {known}") from None


class SegmentKind(enum.Enum):
    RGB = "rgb"
    ACTION = "action"


@dataclass(frozen=True)
class Slot:
    """One latent frame of the canvas: which view and segment it comes from, and where it sits."""

    view: int
    kind: SegmentKind
    frame: int  # latent frame index within its segment
    position: int  # index on the canvas time axis


def _is_given(mode: Mode, kind: SegmentKind, frame: int) -> bool:
    """SPEC §1's table of modes, for one segment frame; the layout checks beforehand that the frame
    exists on the mode's canvas."""
    first = frame == 0
    rgb = kind is SegmentKind.RGB
    if mode is Mode.JOINT or mode is Mode.POLICY:
        return first
    if mode is Mode.A2V:
        return first or not rgb
    if mode is Mode.V2A:
        return first or rgb
    if mode is Mode.VIDEO:
        return first  # only RGB frames exist on a video canvas
    raise AssertionError(mode)


@dataclass(frozen=True)
class CanvasLayout:
    """The slots of one canvas. Immutable and hashable; its index tables are computed once."""

    views: int
    frames: int  # latent frames per segment (T_l), the same for RGB and action segments
    short: bool = False  # the `policy` canvas: each view's RGB segment keeps only its first latent frame
    actions: bool = True  # False: the `video` canvas, no action segments at all
    order: str = "segments"  # see the module docstring

    def __post_init__(self):
        if self.views < 1 or self.frames < 1:
            raise ValueError(
                f"a canvas needs at least one view and one frame, got views={self.views}, frames={self.frames}"
            )
        if self.order not in ORDERS:
            raise ValueError(f"unknown canvas order {self.order!r}; the orders are: {', '.join(ORDERS)}")
        if self.short and not self.actions:
            raise ValueError("a short (policy) canvas needs action segments: without them it holds only given frames")

    @classmethod
    def for_mode(cls, mode: Mode, views: int, frames: int, order: str = "segments") -> CanvasLayout:
        """The layout ``mode`` runs on: full for joint/a2v/v2a, no actions for video, short for policy."""
        return cls(views, frames, short=mode is Mode.POLICY, actions=mode is not Mode.VIDEO, order=order)

    # ---- the table --------------------------------------------------------------------------------

    @property
    def rgb_frames(self) -> int:
        """RGB latent frames per view on this canvas."""
        return 1 if self.short else self.frames

    @property
    def action_frames(self) -> int:
        """Action latent frames per view on this canvas."""
        return self.frames if self.actions else 0

    @cached_property
    def slots(self) -> tuple[Slot, ...]:
        """Every latent frame of the canvas, in canvas order (view-major)."""
        rgb = [(SegmentKind.RGB, frame) for frame in range(self.rgb_frames)]
        action = [(SegmentKind.ACTION, frame) for frame in range(self.action_frames)]
        if self.order == "segments":
            per_view = rgb + action
        else:  # given_first: the first frame of each segment, then the rest of each segment
            per_view = rgb[:1] + action[:1] + rgb[1:] + action[1:]
        entries = [(view, kind, frame) for view in range(self.views) for kind, frame in per_view]
        return tuple(Slot(view, kind, frame, position) for position, (view, kind, frame) in enumerate(entries))

    @property
    def length(self) -> int:
        """Latent frames on the canvas."""
        return self.views * (self.rgb_frames + self.action_frames)

    def slot_ids(self) -> Tensor:
        """long (length,): ``view * 2 + (0 RGB, 1 ACTION)``, to index an optional learned segment/view
        embedding (the reference adds none and relies on RoPE over the packed time axis)."""
        ids = [slot.view * 2 + (slot.kind is SegmentKind.ACTION) for slot in self.slots]
        return torch.tensor(ids, dtype=torch.long)

    def first_frame_positions(self) -> Tensor:
        """long (length,): for each slot, the canvas position of frame 0 of the same view and kind —
        where a model that predicts the change from the first frame finds what it adds to."""
        first = {(slot.view, slot.kind): slot.position for slot in self.slots if slot.frame == 0}
        return torch.tensor([first[(slot.view, slot.kind)] for slot in self.slots], dtype=torch.long)

    def table(self, modes: tuple[Mode, ...] = ()) -> str:
        """The slots as a markdown table (position, view, kind, frame), with a given/gen column per mode."""
        masks = [self.given(mode).tolist() for mode in modes]
        header = ["position", "view", "kind", "frame", *(mode.value for mode in modes)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for slot in self.slots:
            marks = ["given" if mask[slot.position] else "gen" for mask in masks]
            cells = [str(slot.position), str(slot.view), slot.kind.value, str(slot.frame), *marks]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    # ---- packing ----------------------------------------------------------------------------------
    # Packing is one gather: both segment kinds are flattened view-major into one "source" time axis
    # [all RGB frames | all action frames], and each slot names the source frame it shows. The slots
    # cover the source exactly once, so unpacking is the gather by the inverse permutation.

    @cached_property
    def _source_index(self) -> Tensor:
        rgb_total = self.views * self.rgb_frames
        return torch.tensor(
            [
                slot.view * self.rgb_frames + slot.frame
                if slot.kind is SegmentKind.RGB
                else rgb_total + slot.view * self.action_frames + slot.frame
                for slot in self.slots
            ],
            dtype=torch.long,
        )

    @cached_property
    def _canvas_index(self) -> Tensor:
        return torch.argsort(self._source_index)

    def pack(self, rgb: Tensor, actions: Tensor | None) -> Tensor:
        """rgb (B, V, C, T, h, w) and actions (B, V, C, T, h, w), or None on a layout without actions
        → canvas (B, C, length, h, w). On a short layout rgb may hold 1 or all T frames; only frame 0
        is used, so callers can pass the same clip to every mode."""
        self._check_segment("rgb", rgb, allowed_frames={1, self.frames} if self.short else {self.frames})
        if self.short:
            rgb = rgb[:, :, :, :1]
        segments = [rgb]
        if self.actions:
            if actions is None:
                raise ValueError("this canvas has action segments, but actions is None")
            self._check_segment("actions", actions, allowed_frames={self.frames})
            if actions.shape[:3] != rgb.shape[:3] or actions.shape[4:] != rgb.shape[4:]:
                raise ValueError(
                    f"rgb {tuple(rgb.shape)} and actions {tuple(actions.shape)} must agree in batch, views, "
                    "channels and latent size"
                )
            segments.append(actions)
        elif actions is not None:
            raise ValueError("this canvas has no action segments (actions=False), but actions were given")
        # (B, V, C, T, h, w) → (B, C, V·T, h, w), view-major, then RGB before actions on one source axis
        source = torch.cat([segment.transpose(1, 2).flatten(2, 3) for segment in segments], dim=2)
        return source.index_select(2, self._source_index.to(source.device))

    def unpack(self, canvas: Tensor) -> tuple[Tensor, Tensor | None]:
        """canvas (B, C, length, h, w) → rgb (B, V, C, T_rgb, h, w) (T_rgb = 1 when short) and
        actions (B, V, C, T, h, w), or None on a layout without actions."""
        self._check_canvas("canvas", canvas)
        source = canvas.index_select(2, self._canvas_index.to(canvas.device))
        rgb_total = self.views * self.rgb_frames

        def segment(flat: Tensor, frames: int) -> Tensor:  # (B, C, V·T, h, w) → (B, V, C, T, h, w)
            return flat.unflatten(2, (self.views, frames)).transpose(1, 2)

        rgb = segment(source[:, :, :rgb_total], self.rgb_frames)
        actions = segment(source[:, :, rgb_total:], self.action_frames) if self.actions else None
        return rgb, actions

    # ---- modes ------------------------------------------------------------------------------------

    def given(self, mode: Mode) -> Tensor:
        """bool (length,): True where ``mode`` gives the latent frame clean, False where it is generated."""
        self._check_mode(mode)
        return torch.tensor([_is_given(mode, slot.kind, slot.frame) for slot in self.slots], dtype=torch.bool)

    def token_given(self, mode: Mode, patch_t: int, tokens_per_frame: int) -> Tensor:
        """bool (length // patch_t · tokens_per_frame,): the frame mask in the transformer's token order
        (t-major, then h, then w), for temporal patch ``patch_t`` and ``tokens_per_frame`` spatial
        patches per latent frame."""
        if patch_t < 1 or tokens_per_frame < 1:
            raise ValueError(f"patch_t and tokens_per_frame must be positive, got {patch_t} and {tokens_per_frame}")
        if self.length % patch_t:
            raise ValueError(f"canvas length {self.length} is not divisible by the temporal patch {patch_t}")
        groups = self.given(mode).view(-1, patch_t)  # (length // patch_t, patch_t)
        mixed = (groups.any(dim=1) & ~groups.all(dim=1)).nonzero().flatten().tolist()
        if mixed:
            positions = [list(range(g * patch_t, (g + 1) * patch_t)) for g in mixed]
            raise ValueError(
                f"mode {mode.value!r} with temporal patch {patch_t} mixes given and generated latent frames in one "
                f"token (canvas positions {positions}), which would need two timesteps; use patch_t=1 or "
                "a layout order that aligns the given frames to patches (e.g. order='given_first')"
            )
        return groups[:, 0].repeat_interleave(tokens_per_frame)

    def token_timesteps(self, mode: Mode, timestep: Tensor, patch_t: int, tokens_per_frame: int) -> Tensor:
        """timestep (B,) → (B, seq_len): 0 on given tokens, the sample's timestep on generated ones —
        the per-token timestep that diffusers' Wan transformer accepts."""
        if timestep.ndim != 1:
            raise ValueError(f"timestep must be (batch,), got shape {tuple(timestep.shape)}")
        given = self.token_given(mode, patch_t, tokens_per_frame).to(timestep.device)
        return torch.where(given, torch.zeros((), dtype=timestep.dtype, device=timestep.device), timestep[:, None])

    def replace_given(self, canvas: Tensor, clean: Tensor, mode: Mode) -> Tensor:
        """``canvas`` (B, C, length, h, w) with its given frames taken from ``clean`` (same shape);
        generated frames are left as they are. Returns a new tensor."""
        self._check_canvas("canvas", canvas)
        if clean.shape != canvas.shape:
            raise ValueError(f"clean {tuple(clean.shape)} must have the canvas's shape {tuple(canvas.shape)}")
        given = self.given(mode).to(canvas.device)
        return torch.where(given[:, None, None], clean, canvas)  # broadcasts over (length, h, w)

    # ---- checks -----------------------------------------------------------------------------------

    def _check_mode(self, mode: Mode) -> None:
        if not isinstance(mode, Mode):
            raise TypeError(f"mode must be a Mode (use Mode.parse for names), got {mode!r}")
        needs = CanvasLayout.for_mode(mode, self.views, self.frames, self.order)
        if (self.short, self.actions) != (needs.short, needs.actions):
            raise ValueError(
                f"mode {mode.value!r} cannot run on the {self._describe()} canvas {self!r}; it needs the "
                f"{needs._describe()} one (CanvasLayout.for_mode)"
            )

    def _describe(self) -> str:
        return "short (policy)" if self.short else "full" if self.actions else "video (no actions)"

    def _check_segment(self, name: str, segment: Tensor, allowed_frames: set[int]) -> None:
        if segment.ndim != 6:
            raise ValueError(f"{name} must be (B, V, C, T, h, w), got shape {tuple(segment.shape)}")
        if segment.shape[1] != self.views:
            raise ValueError(f"{name} has {segment.shape[1]} views, the canvas {self.views}")
        if segment.shape[3] not in allowed_frames:
            expected = " or ".join(str(f) for f in sorted(allowed_frames))
            raise ValueError(f"{name} has {segment.shape[3]} latent frames, the canvas expects {expected}")

    def _check_canvas(self, name: str, canvas: Tensor) -> None:
        if canvas.ndim != 5:
            raise ValueError(f"{name} must be (B, C, length, h, w), got shape {tuple(canvas.shape)}")
        if canvas.shape[2] != self.length:
            raise ValueError(f"{name} has {canvas.shape[2]} latent frames, the canvas {self.length}")
