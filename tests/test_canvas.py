"""The canvas: slot table, pack/unpack, the given frames of each mode, per-token timesteps."""

from __future__ import annotations

import itertools
import re

import pytest
import torch
import torch.nn.functional as F

import action_images.canvas as canvas_module
from action_images.canvas import CanvasLayout, Mode, SegmentKind, Slot

ORDERS = ("segments", "given_first")
VIEWS = (1, 2, 3)
FRAMES = (1, 2, 3, 4)

# SPEC §1, written out independently of the module: (RGB 0, RGB 1.., ACTION 0, ACTION 1..) given?
RULES = {
    Mode.JOINT: (True, False, True, False),
    Mode.A2V: (True, False, True, True),
    Mode.V2A: (True, True, True, False),
    Mode.VIDEO: (True, False, None, None),  # no action segments
    Mode.POLICY: (True, None, True, False),  # no RGB frames after the first
}


def rule(mode: Mode, slot: Slot) -> bool:
    index = (0 if slot.kind is SegmentKind.RGB else 2) + (slot.frame > 0)
    given = RULES[mode][index]
    assert given is not None, f"{slot} should not be on a {mode.value} canvas"
    return given


def all_layouts():
    for mode, order, views, frames in itertools.product(Mode, ORDERS, VIEWS, FRAMES):
        yield mode, CanvasLayout.for_mode(mode, views, frames, order)


def segments(layout: CanvasLayout, batch=2, channels=3, size=(2, 3)):
    rgb = torch.randn(batch, layout.views, channels, layout.frames, *size)
    actions = torch.randn(batch, layout.views, channels, layout.frames, *size) if layout.actions else None
    return rgb, actions


# ---- the slot table ---------------------------------------------------------------------------------


def test_slot_order_of_each_layout():
    def kinds_and_frames(layout):
        return [(s.view, s.kind.value[0], s.frame) for s in layout.slots]

    full = CanvasLayout(views=2, frames=2)
    assert kinds_and_frames(full) == [
        (0, "r", 0), (0, "r", 1), (0, "a", 0), (0, "a", 1),
        (1, "r", 0), (1, "r", 1), (1, "a", 0), (1, "a", 1),
    ]  # fmt: skip
    given_first = CanvasLayout(views=1, frames=3, order="given_first")
    assert kinds_and_frames(given_first) == [
        (0, "r", 0), (0, "a", 0), (0, "r", 1), (0, "r", 2), (0, "a", 1), (0, "a", 2),
    ]  # fmt: skip
    policy = CanvasLayout.for_mode(Mode.POLICY, views=2, frames=2)
    assert kinds_and_frames(policy) == [(0, "r", 0), (0, "a", 0), (0, "a", 1), (1, "r", 0), (1, "a", 0), (1, "a", 1)]
    video = CanvasLayout.for_mode(Mode.VIDEO, views=2, frames=2, order="given_first")
    assert kinds_and_frames(video) == [(0, "r", 0), (0, "r", 1), (1, "r", 0), (1, "r", 1)]

    for _, layout in all_layouts():
        assert [s.position for s in layout.slots] == list(range(layout.length))
        assert len(set((s.view, s.kind, s.frame) for s in layout.slots)) == layout.length


def test_slot_ids_name_view_and_kind():
    layout = CanvasLayout(views=2, frames=2, order="given_first")
    assert layout.slot_ids().tolist() == [0, 1, 0, 1, 2, 3, 2, 3]
    assert layout.slot_ids().dtype == torch.long


def test_docstring_tables_are_what_the_code_produces():
    """The module docstring is the written reference of the layout; it must not drift from the code."""
    doc = canvas_module.__doc__
    assert CanvasLayout(views=2, frames=3).table((Mode.JOINT, Mode.A2V, Mode.V2A)) in doc
    assert CanvasLayout.for_mode(Mode.POLICY, 2, 3, order="given_first").table((Mode.POLICY,)) in doc


def test_table_lists_every_slot():
    table = CanvasLayout(views=1, frames=2).table()
    assert table.splitlines() == [
        "| position | view | kind | frame |",
        "|---|---|---|---|",
        "| 0 | 0 | rgb | 0 |",
        "| 1 | 0 | rgb | 1 |",
        "| 2 | 0 | action | 0 |",
        "| 3 | 0 | action | 1 |",
    ]


# ---- pack / unpack ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.value)
@pytest.mark.parametrize("order", ORDERS)
def test_pack_puts_each_slot_in_place_and_unpack_inverts_it(mode, order):
    for views, frames in itertools.product(VIEWS, FRAMES):
        layout = CanvasLayout.for_mode(mode, views, frames, order)
        rgb, actions = segments(layout)
        canvas = layout.pack(rgb, actions)
        assert canvas.shape == (2, 3, layout.length, 2, 3)
        for slot in layout.slots:
            source = rgb if slot.kind is SegmentKind.RGB else actions
            assert torch.equal(canvas[:, :, slot.position], source[:, slot.view, :, slot.frame])

        rgb_back, actions_back = layout.unpack(canvas)
        assert torch.equal(rgb_back, rgb[:, :, :, :1] if layout.short else rgb)
        if layout.actions:
            assert torch.equal(actions_back, actions)
        else:
            assert actions_back is None
        assert torch.equal(layout.pack(rgb_back, actions_back), canvas)


def test_short_layout_packs_the_first_rgb_frame_only():
    layout = CanvasLayout.for_mode(Mode.POLICY, views=2, frames=3)
    rgb, actions = segments(layout)
    assert torch.equal(layout.pack(rgb, actions), layout.pack(rgb[:, :, :, :1], actions))


def test_pack_and_unpack_refuse_wrong_inputs():
    layout = CanvasLayout(views=2, frames=3)
    rgb, actions = segments(layout)
    with pytest.raises(ValueError, match="3 views, the canvas 2"):
        layout.pack(torch.randn(2, 3, 3, 3, 2, 3), actions)
    with pytest.raises(ValueError, match="rgb has 1 latent frames, the canvas expects 3"):
        layout.pack(rgb[:, :, :, :1], actions)  # only a short layout takes one RGB frame
    with pytest.raises(ValueError, match="actions is None"):
        layout.pack(rgb, None)
    with pytest.raises(ValueError, match="must agree"):
        layout.pack(rgb, actions[:, :, :2])
    with pytest.raises(ValueError, match=r"\(B, V, C, T, h, w\)"):
        layout.pack(rgb[0], actions)
    with pytest.raises(ValueError, match="no action segments"):
        CanvasLayout.for_mode(Mode.VIDEO, 2, 3).pack(rgb, actions)
    with pytest.raises(ValueError, match="11 latent frames, the canvas 12"):
        layout.unpack(torch.randn(2, 3, 11, 2, 3))


def test_layout_refuses_impossible_shapes():
    with pytest.raises(ValueError, match="unknown canvas order"):
        CanvasLayout(2, 3, order="interleaved")
    with pytest.raises(ValueError, match="at least one view"):
        CanvasLayout(0, 3)
    with pytest.raises(ValueError, match="needs action segments"):
        CanvasLayout(2, 3, short=True, actions=False)


# ---- modes ------------------------------------------------------------------------------------------


def test_given_marks_exactly_the_slots_of_each_mode():
    for mode, layout in all_layouts():
        given = layout.given(mode)
        assert given.dtype == torch.bool and given.shape == (layout.length,)
        assert given.tolist() == [rule(mode, slot) for slot in layout.slots], (mode, layout)


@pytest.mark.parametrize(
    ("mode", "layout"),
    [
        (Mode.A2V, CanvasLayout(2, 3, actions=False)),
        (Mode.V2A, CanvasLayout(2, 3, actions=False)),
        (Mode.VIDEO, CanvasLayout(2, 3)),
        (Mode.JOINT, CanvasLayout(2, 3, short=True)),
        (Mode.POLICY, CanvasLayout(2, 3)),
    ],
    ids=lambda x: x.value if isinstance(x, Mode) else None,
)
def test_a_mode_on_a_layout_it_cannot_express_is_refused(mode, layout):
    with pytest.raises(ValueError, match=rf"mode '{mode.value}' cannot run on the .* {re.escape(repr(layout))}"):
        layout.given(mode)


def test_mode_parse():
    assert Mode.parse("joint") is Mode.JOINT
    assert Mode.parse(" A2V ") is Mode.A2V
    assert Mode.parse(Mode.POLICY) is Mode.POLICY
    with pytest.raises(ValueError, match="unknown mode 'jiont'; the modes are: joint, a2v, v2a, video, policy"):
        Mode.parse("jiont")
    with pytest.raises(TypeError, match="Mode.parse"):
        CanvasLayout(1, 2).given("joint")


def test_replace_given_writes_exactly_the_given_frames():
    for mode, layout in all_layouts():
        noisy = torch.randn(2, 3, layout.length, 2, 2)
        clean = torch.randn(2, 3, layout.length, 2, 2)
        out = layout.replace_given(noisy, clean, mode)
        given = layout.given(mode)
        assert torch.equal(out[:, :, given], clean[:, :, given])
        assert torch.equal(out[:, :, ~given], noisy[:, :, ~given])
    with pytest.raises(ValueError, match="canvas's shape"):
        layout.replace_given(noisy, clean[:1], mode)


# ---- tokens -----------------------------------------------------------------------------------------


def wan_patchify(frame_values: torch.Tensor, patch: tuple[int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """What WanTransformer3DModel does to a canvas (Conv3d with stride = kernel = patch, then
    flatten(2)), applied to a one-channel canvas that holds one value per latent frame: per token, the
    mean over its patch."""
    canvas = frame_values.float()[None, None, :, None, None].expand(1, 1, -1, *size)
    kernel = torch.full((1, 1, *patch), 1.0 / (patch[0] * patch[1] * patch[2]))
    return F.conv3d(canvas, kernel, stride=patch).flatten(2)[0, 0]


@pytest.mark.parametrize(
    ("mode", "order", "patch"),
    [
        (Mode.JOINT, "segments", (1, 8, 8)),
        (Mode.A2V, "segments", (1, 8, 8)),
        (Mode.VIDEO, "segments", (1, 4, 4)),
        (Mode.JOINT, "given_first", (2, 8, 8)),
        (Mode.A2V, "given_first", (2, 8, 8)),
        (Mode.POLICY, "given_first", (2, 4, 4)),
    ],
)
def test_token_given_follows_the_wan_token_order(mode, order, patch):
    layout = CanvasLayout.for_mode(mode, views=2, frames=3, order=order)
    size = (16, 24)
    tokens_per_frame = (size[0] // patch[1]) * (size[1] // patch[2])
    token_given = layout.token_given(mode, patch[0], tokens_per_frame)
    assert token_given.shape == (layout.length // patch[0] * tokens_per_frame,)
    expected = wan_patchify(layout.given(mode), patch, size)
    assert token_given.tolist() == (expected == 1).tolist()
    assert ((expected == 0) | (expected == 1)).all()  # no token mixes given and generated frames


def test_token_timesteps_are_zero_on_given_tokens_and_the_sample_timestep_elsewhere():
    layout = CanvasLayout.for_mode(Mode.JOINT, views=2, frames=3)
    timestep = torch.tensor([0.25, 0.9])
    timesteps = layout.token_timesteps(Mode.JOINT, timestep, patch_t=1, tokens_per_frame=4)
    token_given = layout.token_given(Mode.JOINT, 1, 4)
    assert timesteps.shape == (2, layout.length * 4) and timesteps.dtype == timestep.dtype
    assert (timesteps[:, token_given] == 0).all()
    assert torch.equal(timesteps[:, ~token_given], timestep[:, None].expand(2, int((~token_given).sum())))
    with pytest.raises(ValueError, match=r"timestep must be \(batch,\)"):
        layout.token_timesteps(Mode.JOINT, timestep[:, None], 1, 4)


def test_given_first_policy_canvas_puts_the_given_pair_in_one_token():
    layout = CanvasLayout.for_mode(Mode.POLICY, views=2, frames=3, order="given_first")  # per view [r0 a0 | a1 a2]
    tokens_per_frame = 3
    given_pair, generated_pair = [True] * tokens_per_frame, [False] * tokens_per_frame
    assert layout.token_given(Mode.POLICY, 2, tokens_per_frame).tolist() == (given_pair + generated_pair) * 2
    timesteps = layout.token_timesteps(Mode.POLICY, torch.tensor([0.5]), 2, tokens_per_frame)
    assert timesteps.tolist() == [([0.0] * tokens_per_frame + [0.5] * tokens_per_frame) * 2]


def test_a_temporal_patch_that_mixes_given_and_generated_frames_is_refused():
    layout = CanvasLayout.for_mode(Mode.JOINT, views=2, frames=3)  # per view [r0 r1 | r2 a0 | a1 a2]
    with pytest.raises(ValueError, match="mixes given and generated latent frames"):
        layout.token_given(Mode.JOINT, patch_t=2, tokens_per_frame=4)
    with pytest.raises(ValueError, match="length 12 is not divisible by the temporal patch 5"):
        layout.token_given(Mode.JOINT, patch_t=5, tokens_per_frame=4)


def test_wan_transformer_accepts_the_token_timesteps():
    """The per-token timesteps have exactly the sequence length diffusers' Wan transformer makes."""
    diffusers = pytest.importorskip("diffusers")
    model = diffusers.WanTransformer3DModel(
        patch_size=(2, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
        text_dim=16, freq_dim=16, ffn_dim=16, num_layers=1, rope_max_seq_len=32,
    )  # fmt: skip
    layout = CanvasLayout.for_mode(Mode.POLICY, views=2, frames=3, order="given_first")
    rgb, actions = segments(layout, batch=2, channels=4, size=(4, 4))
    canvas = layout.pack(rgb, actions)
    timesteps = layout.token_timesteps(Mode.POLICY, torch.tensor([300.0, 700.0]), patch_t=2, tokens_per_frame=4)
    with torch.no_grad():
        out = model(canvas, timestep=timesteps, encoder_hidden_states=torch.randn(2, 5, 16), return_dict=False)[0]
    assert out.shape == canvas.shape
