"""ImageWAM: the token layout and mask, the cache path, loading a FLUX.2 backbone, training, bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
from diffusers.models.transformers.transformer_flux2 import Flux2KVCache

from action_images.codecs import PatchCodec
from action_images.imagewam_module import ImageWAMModule
from action_images.imagewam import (
    FLUX2_KLEIN_4B,
    SEGMENTS,
    Flux2VAECodec,
    TOKEN_LAYOUT,
    ImageWAM,
    ImageWAMCache,
    ImageWAMTransformer,
    attention_mask,
    image_ids,
    text_ids,
    tile_views,
    untile_views,
)

# A FLUX.2 transformer small enough for the CPU: 1 double + 2 single blocks, 2 heads × 16.
TINY = dict(
    patch_size=1, in_channels=12, num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=24, timestep_guidance_channels=32, mlp_ratio=3.0, axes_dims_rope=(4, 4, 4, 4),
    rope_theta=2000, eps=1e-6, guidance_embeds=False,
)
GRID = (4, 8)  # 2 views of 8 × 8 pixels, tiled side by side, patch codec 2 → 4 × 8 tokens of 12 channels
CHUNK, ACTION_DIM, PROPRIO_DIM = 4, 8, 8


def make_model(**overrides) -> ImageWAMTransformer:
    arguments = dict(
        backbone_config=TINY, action_dim=ACTION_DIM, proprio_dim=PROPRIO_DIM, action_hidden_dim=16,
        action_chunk=CHUNK, target_offset=4,
    )
    arguments.update(overrides)
    return ImageWAMTransformer(**arguments).eval()


def make_inputs(batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n = GRID[0] * GRID[1]
    text = torch.randn(batch, 5, TINY["joint_attention_dim"], generator=generator)
    text_mask = torch.ones(batch, 5, dtype=torch.bool)
    text_mask[0, 3:] = False  # the first prompt is padded
    text = text * text_mask[..., None]
    return dict(
        current=torch.randn(batch, n, 12, generator=generator),
        target=torch.randn(batch, n, 12, generator=generator),
        text=text,
        text_mask=text_mask,
        proprio=torch.randn(batch, PROPRIO_DIM, generator=generator),
        action=torch.randn(batch, CHUNK, ACTION_DIM, generator=generator),
    )


def test_mask_is_the_layout_table():
    assert SEGMENTS == ("text", "current", "target", "action")
    allowed = {segment.name: set(segment.attends_to) for segment in TOKEN_LAYOUT}
    assert allowed == {
        "text": {"text", "current"},
        "current": {"text", "current"},
        "target": {"text", "current", "target"},
        "action": {"text", "current", "action"},
    }
    lengths = dict(text=3, current=4, target=5, action=2)
    valid = torch.tensor([[True, True, False]])
    mask = attention_mask(lengths, valid)[0]
    starts = {"text": 0, "current": 3, "target": 7, "action": 12}
    assert mask.shape == (14, 14)
    for row, row_length in lengths.items():
        for column, column_length in lengths.items():
            block = mask[starts[row] : starts[row] + row_length, starts[column] : starts[column] + column_length]
            expected = torch.full_like(block, column in allowed[row])
            if column == "text":
                expected &= valid[0][None, :]  # the padded text token is nobody's key
            assert torch.equal(block, expected), (row, column)
    assert not mask[12:, 7:12].any(), "actions must never attend to the noisy target"
    assert not mask[:7, 7:].any(), "the prefix attends only to itself"


def test_backbone_path_is_diffusers_flux2():
    """With the mask lifted and no action segment, the layer loop computes exactly FLUX.2's forward."""
    model = make_model(proprio_dim=None)
    inputs = make_inputs()
    n = inputs["current"].shape[1]
    t = torch.tensor([0.3, 0.8])
    total = inputs["text"].shape[1] + 2 * n
    with torch.no_grad():
        ours = model(
            inputs["current"], GRID, inputs["text"], inputs["target"], t,
            attention_mask_override=torch.ones(2, total, total, dtype=torch.bool),
        ).target
        reference = model.backbone(
            hidden_states=torch.cat([inputs["current"], inputs["target"]], dim=1),
            encoder_hidden_states=inputs["text"],
            timestep=t,
            img_ids=torch.cat([image_ids(GRID, 10.0), image_ids(GRID, 0.0)]),
            txt_ids=text_ids(inputs["text"].shape[1]),
            return_dict=False,
        )[0][:, n:]
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shared", [True, False])
def test_noisy_target_never_changes_the_action(shared):
    model = make_model(prefix_shares_target_timestep=shared)
    inputs = make_inputs()
    other_target = torch.randn_like(inputs["target"])
    t_target, t_action = torch.tensor([0.4, 0.9]), torch.tensor([0.2, 0.6])
    common = dict(text_mask=inputs["text_mask"], proprio=inputs["proprio"])
    with torch.no_grad():
        first = model(inputs["current"], GRID, inputs["text"], inputs["target"], t_target, inputs["action"], t_action, **common)
        second = model(inputs["current"], GRID, inputs["text"], other_target, t_target, inputs["action"], t_action, **common)
    torch.testing.assert_close(first.action, second.action, atol=1e-6, rtol=0)
    assert not torch.allclose(first.target, second.target), "the target itself must respond to its input"
    if not shared:  # the prefix is modulated at edit_timestep: the target's timestep does not reach actions either
        with torch.no_grad():
            third = model(inputs["current"], GRID, inputs["text"], inputs["target"], torch.tensor([0.1, 0.5]), inputs["action"], t_action, **common)
        torch.testing.assert_close(first.action, third.action, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shared, edit_timestep", [(True, 0.0), (True, 0.3), (False, 0.0)])
def test_cached_action_path_equals_the_full_masked_forward(shared, edit_timestep):
    model = make_model(prefix_shares_target_timestep=shared, edit_timestep=edit_timestep)
    inputs = make_inputs()
    # With a shared timestep the full forward is the cache's situation when the target sits at edit_timestep.
    t_target = torch.full((2,), edit_timestep) if shared else torch.tensor([0.45, 0.95])
    t_action = torch.tensor([0.25, 0.7])
    common = dict(text_mask=inputs["text_mask"], proprio=inputs["proprio"])
    with torch.no_grad():
        full = model(inputs["current"], GRID, inputs["text"], inputs["target"], t_target, inputs["action"], t_action, **common).action
        cache = model.fill_cache(inputs["current"], GRID, inputs["text"], **common)
        cached = model.action_velocity(cache, inputs["action"], t_action)
    assert cache.kv.num_ref_tokens == inputs["text"].shape[1] + 1 + inputs["current"].shape[1]  # text + proprio + image
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("rows", ["one padded observation", "padding shared by the batch"])
def test_cached_path_without_a_mask_where_every_row_sees_the_same_keys(rows):
    """The expert drops padded text keys that no row can see and attends without a mask — exactly."""
    model = make_model(edit_timestep=0.3)
    inputs = make_inputs()
    if rows == "one padded observation":
        inputs = {k: v[:1] for k, v in inputs.items()}
    else:
        inputs["text_mask"][:, 3:] = False
        inputs["text"] = inputs["text"] * inputs["text_mask"][..., None]
    batch = inputs["action"].shape[0]
    t_action = torch.tensor([0.25, 0.7])[:batch]
    common = dict(text_mask=inputs["text_mask"], proprio=inputs["proprio"])
    with torch.no_grad():
        full = model(inputs["current"], GRID, inputs["text"], inputs["target"], torch.full((batch,), 0.3), inputs["action"], t_action, **common).action
        cache = model.fill_cache(inputs["current"], GRID, inputs["text"], **common)
        assert model._expert_context(cache, CHUNK)["mask"] is None
        cached = model.action_velocity(cache, inputs["action"], t_action)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


def test_sampling_reads_only_the_cache():
    model = make_model()
    inputs = make_inputs()
    with torch.no_grad():
        cache = model.fill_cache(inputs["current"], GRID, inputs["text"], inputs["text_mask"], inputs["proprio"])
        first = model.sample_actions(cache, num_steps=3, generator=torch.Generator().manual_seed(1))
        second = model.sample_actions(cache, num_steps=3, generator=torch.Generator().manual_seed(1))
    assert first.shape == (2, CHUNK, ACTION_DIM) and torch.isfinite(first).all()
    torch.testing.assert_close(first, second)


def test_fused_projections_change_nothing_but_the_matrix_multiplies():
    """What the policy runs (q/k/v fused per attention) gives the cache, the velocity and the sampled
    chunk of the unfused model, and leaves the separate weights for training."""
    model = make_model(edit_timestep=0.3)
    inputs = make_inputs()
    args = (inputs["current"], GRID, inputs["text"], inputs["text_mask"], inputs["proprio"])
    with torch.no_grad():
        cache = model.fill_cache(*args)
        velocity = model.action_velocity(cache, inputs["action"], torch.tensor([0.25, 0.7]))
        chunk = model.sample_actions(cache, num_steps=3, generator=torch.Generator().manual_seed(1))
        model.fuse_qkv_projections()
        fused = [m for m in model.modules() if getattr(m, "fused_projections", False)]
        assert len(fused) == 2 * TINY["num_layers"]  # the backbone's double block and the expert's
        cache_fused = model.fill_cache(*args)
        torch.testing.assert_close(model.action_velocity(cache_fused, inputs["action"], torch.tensor([0.25, 0.7])), velocity, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model.sample_actions(cache_fused, num_steps=3, generator=torch.Generator().manual_seed(1)), chunk, atol=1e-5, rtol=1e-4)
    assert model.backbone.transformer_blocks[0].attn.to_q.weight.requires_grad


def test_expert_starts_from_the_backbone():
    # Same width and MLP ratio as the backbone: the expert's image stream is the backbone's, copied.
    same = make_model(action_hidden_dim=32, action_mlp_ratio=3.0)
    expert, backbone = same.action_expert, same.backbone
    for name in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.norm_q", "ff.linear_in", "ff.linear_out"):
        ours = expert.transformer_blocks[0].get_submodule(name).weight
        theirs = backbone.transformer_blocks[0].get_submodule(name).weight
        assert torch.equal(ours, theirs), name
    assert torch.equal(
        expert.single_transformer_blocks[1].attn.to_qkv_mlp_proj.weight, backbone.single_transformer_blocks[1].attn.to_qkv_mlp_proj.weight
    )
    assert torch.equal(expert.double_stream_modulation_img.linear.weight, backbone.double_stream_modulation_img.linear.weight)
    # Narrower (16 of 32, MLP ratio 4): same heads and head dimension, weights interpolated, head fresh.
    narrow = make_model()
    report = narrow.init_action_expert_from_backbone()
    block = narrow.action_expert.transformer_blocks[0]
    assert block.attn.heads == 2 and block.attn.head_dim == 16 and block.attn.to_q.weight.shape == (32, 16)
    assert narrow.action_expert.single_transformer_blocks[0].attn.to_qkv_mlp_proj.weight.shape == (3 * 32 + 2 * 64, 16)
    assert "transformer_blocks.0.attn.norm_q.weight" in report["copied"]
    assert "transformer_blocks.0.attn.to_q.weight" in report["resized"]
    assert "single_transformer_blocks.0.attn.to_qkv_mlp_proj.weight" in report["resized"]
    assert {"action_encoder.weight", "proj_out.weight", "norm_out.linear.weight"} <= set(report["fresh"])
    # Packed blocks are resized separately: the query rows of the single block are the backbone's query
    # rows, interpolated along the input axis and scaled by √(32 / 16).
    source = narrow.backbone.single_transformer_blocks[0].attn.to_qkv_mlp_proj.weight[:32]
    ours = narrow.action_expert.single_transformer_blocks[0].attn.to_qkv_mlp_proj.weight[:32]
    torch.testing.assert_close(ours[:, 0], source[:, 0] * 2**0.5)
    torch.testing.assert_close(ours[:, -1], source[:, -1] * 2**0.5)


def test_loads_a_saved_flux2_transformer(tmp_path):
    torch.manual_seed(1)
    saved = Flux2Transformer2DModel(**TINY)
    saved.save_pretrained(tmp_path / "transformer")
    model = ImageWAMTransformer.from_flux2(
        tmp_path, subfolder="transformer", action_dim=ACTION_DIM, proprio_dim=PROPRIO_DIM, action_hidden_dim=16, action_chunk=CHUNK
    ).eval()
    for (name, ours), (_, theirs) in zip(model.backbone.state_dict().items(), saved.state_dict().items()):
        assert torch.equal(ours, theirs), name
    report = model.expert_init_report
    assert "action_encoder.weight" in report["fresh"] and report["copied"] and report["resized"]
    assert torch.equal(model.action_expert.transformer_blocks[0].attn.norm_k.weight, saved.transformer_blocks[0].attn.norm_k.weight)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    inputs = make_inputs()
    with torch.no_grad():
        cache = model.fill_cache(inputs["current"], GRID, inputs["text"], inputs["text_mask"], inputs["proprio"])
        actions = model.sample_actions(cache, num_steps=2)
    assert actions.shape == (2, CHUNK, ACTION_DIM) and torch.isfinite(actions).all()


def test_whole_model_round_trips_through_save_pretrained(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path / "imagewam")
    loaded = ImageWAMTransformer.from_pretrained(tmp_path / "imagewam").eval()
    assert loaded.config.action_chunk == CHUNK and loaded.config.backbone_config["num_single_layers"] == 2
    for (name, ours), (_, theirs) in zip(loaded.state_dict().items(), model.state_dict().items()):
        assert torch.equal(ours, theirs), name


def make_wam(**overrides) -> ImageWAM:
    return ImageWAM(make_model(**overrides), PatchCodec(patch=2), num_views=2)


def view_batch(batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    views = lambda: torch.rand(batch, 2, 3, 8, 8, generator=generator) * 2 - 1  # noqa: E731
    inputs = make_inputs(batch, seed)
    return dict(current=views(), target=views(), text=inputs["text"], text_mask=inputs["text_mask"],
                proprio=inputs["proprio"], actions=inputs["action"])


def test_a_few_training_steps_lower_the_loss():
    wam = make_wam().train()
    batch = view_batch()
    optimiser = torch.optim.Adam(wam.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = wam.loss(**batch, generator=torch.Generator().manual_seed(0))  # the same noise and timesteps each step
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        losses.append(out["loss"].item())
    assert set(out) == {"loss", "image_loss", "action_loss"}
    torch.testing.assert_close(out["loss"], 0.5 * out["image_loss"] + 1.0 * out["action_loss"])
    assert losses[-1] < 0.6 * losses[0], losses


def test_without_the_editing_objective_the_target_is_left_out():
    """The no-editing ablation (image weight 0): no image loss, and the backbone's output layer never
    sees a gradient, because no target segment is run; the action loss alone shapes the cache."""
    wam = make_wam(image_loss_weight=0.0).train()
    out = wam.loss(**view_batch(), generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert out["image_loss"].item() == 0.0 and out["loss"].item() == out["action_loss"].item() > 0
    assert wam.transformer.backbone.proj_out.weight.grad is None
    assert wam.transformer.backbone.transformer_blocks[0].attn.to_k.weight.grad.abs().sum() > 0  # the cache does learn


def test_goal_readout_maps_each_token_to_its_own_pixels():
    """A token's readout logits land on the pixels that token covers, in its own view, and nowhere else."""
    wam = make_wam(goal_readout_pixels=4)  # patch codec 2: 2 × 2 pixels per token
    for row, column in [(0, 0), (1, 3), (3, 4), (2, 7)]:
        logits = torch.zeros(1, GRID[0] * GRID[1], 4)
        logits[0, row * GRID[1] + column] = torch.arange(1.0, 5.0)
        maps = wam.goal_readout_maps(logits, GRID)  # (1, 2 views, 8, 8)
        view, local = divmod(column, GRID[1] // 2)
        block = maps[0, view, 2 * row : 2 * row + 2, 2 * local : 2 * local + 2]
        assert sorted(block.flatten().tolist()) == [1.0, 2.0, 3.0, 4.0]
        assert maps.abs().sum() == block.abs().sum()


def test_goal_readout_reads_the_prefix_only_and_learns():
    """The readout of the current image never sees the noisy target (the answer cannot leak), is not
    part of the flow loss, and a few steps teach it where the end effector goes."""
    wam = make_wam(goal_readout_pixels=4).train()
    inputs = make_inputs()
    grid_tokens = dict(current=inputs["current"], grid=GRID, text=inputs["text"], text_mask=inputs["text_mask"], proprio=inputs["proprio"])
    first = wam.transformer(**grid_tokens, target=inputs["target"], target_timestep=0.7, action=inputs["action"], action_timestep=0.5)
    other = wam.transformer(**grid_tokens, target=torch.randn_like(inputs["target"]), target_timestep=0.7, action=inputs["action"], action_timestep=0.5)
    torch.testing.assert_close(first.goal_logits, other.goal_logits)
    assert first.goal_logits.shape == (2, GRID[0] * GRID[1], 4)

    batch = {**view_batch(), "goal_pixels": torch.tensor([[5, 40], [63, 0]]), "goal_valid": torch.tensor([[True, True], [True, False]])}
    optimiser = torch.optim.Adam(wam.parameters(), lr=3e-3)
    readout = []
    for _ in range(20):
        out = wam.loss(**batch, generator=torch.Generator().manual_seed(0))
        optimiser.zero_grad()
        out["goal_readout"].backward()
        optimiser.step()
        readout.append(out["goal_readout"].item())
    torch.testing.assert_close(out["loss"], 0.5 * out["image_loss"] + 1.0 * out["action_loss"])
    assert readout[-1] < 0.5 * readout[0], readout
    assert wam.transformer.backbone.transformer_blocks[0].attn.to_k.weight.grad.abs().sum() > 0  # it shapes the cache
    assert out["goal_hit"].item() == 1.0
    assert set(wam.loss(**view_batch())) == {"loss", "image_loss", "action_loss"}  # no goals given: flow losses only


def test_cache_carries_the_readout_of_the_full_forward_and_repeats_row_by_row():
    """With `readout`, the prefix pass gives the goal logits the full forward gives (the prefix attends
    only to itself), and a cache repeated for several samples gives each copy its own row's actions."""
    model = make_model(goal_readout_pixels=4)
    inputs = make_inputs()
    prefix = dict(current=inputs["current"], grid=GRID, text=inputs["text"], text_mask=inputs["text_mask"], proprio=inputs["proprio"])
    full = model(**prefix, target=inputs["target"], target_timestep=0.0, action=inputs["action"], action_timestep=0.5)
    cache = model.fill_cache(**prefix, readout=True)
    torch.testing.assert_close(cache.goal_logits, full.goal_logits)
    assert model.fill_cache(**prefix).goal_logits is None
    with pytest.raises(ValueError, match="no goal readout"):
        make_model().fill_cache(**prefix, readout=True)

    repeated = cache.repeat(3)
    assert repeated.batch_size == 6 and torch.equal(repeated.goal_logits[3], cache.goal_logits[1])
    noise = torch.randn(2, CHUNK, ACTION_DIM, generator=torch.Generator().manual_seed(0))
    once = model.sample_actions(cache, 2, noise=noise)
    thrice = model.sample_actions(repeated, 2, noise=noise.repeat_interleave(3, 0))
    torch.testing.assert_close(thrice.view(2, 3, CHUNK, ACTION_DIM), once[:, None].expand(2, 3, CHUNK, ACTION_DIM))


def test_readout_point_triangulates_where_the_views_point():
    """A readout peaked at a point's projection in every view names that point; one view is not enough,
    and anchoring a chunk moves its end there, its earlier waypoints by their share."""
    from action_images.goal_readout import anchor_chunk, readout_point
    from rendering.cameras import Cameras
    from rendering.synthetic import random_rig

    rig = random_rig(1, views=3, size=32, seed=5)
    cameras = Cameras(rig.cameras.intrinsics[0], rig.cameras.extrinsics[0], 32, 32)  # three views, batch (V, 1)
    goal = rig.positions[0, :1]  # (1, 3)
    pixels, _ = cameras.project(goal[None, None].expand(3, 1, 1, 3))  # (V, 1, 1, 2), sub-pixel
    grid = cameras.pixel_grid()
    log_probs = (-((grid[None] - pixels[:, 0, 0][:, None]) ** 2).sum(-1) / (2 * 0.6**2)).log_softmax(-1).view(3, 32, 32)
    point, views = readout_point(log_probs, cameras)
    assert views == 3 and (point - goal[0]).norm() < 0.01, (point, goal)

    flat = torch.full((2, 32 * 32), -float(np.log(32 * 32)))  # two views with no opinion
    point, views = readout_point(torch.cat([log_probs[:1], flat.view(2, 32, 32)]), cameras)
    assert views == 1 and point.isnan().all()

    chunk = torch.tensor([[0.1, 0.0, 0.2, 0, 0, 0, 1, 1.0], [0.2, 0.0, 0.2, 0, 0, 0, 1, 1.0]])
    moved = anchor_chunk(chunk, torch.tensor([0.2, 0.1, 0.3]))
    torch.testing.assert_close(moved[1, :3], torch.tensor([0.2, 0.1, 0.3]))
    torch.testing.assert_close(moved[0, :3], torch.tensor([0.1, 0.05, 0.25]))
    assert torch.equal(moved[:, 3:], chunk[:, 3:])  # orientation and gripper as sampled


def test_views_are_tiled_into_one_image():
    views = torch.arange(2 * 3 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 3, 4, 5)
    wide = tile_views(views, 3, "horizontal")
    assert wide.shape == (2, 3, 4, 15) and torch.equal(wide[..., 5:10], views[:, 1])
    tall = tile_views(views, 3, "vertical")
    assert tall.shape == (2, 3, 12, 5) and torch.equal(tall[:, :, 8:], views[:, 2])
    assert torch.equal(untile_views(wide, 3, "horizontal"), views)
    assert torch.equal(untile_views(tall, 3, "vertical"), views)
    wam = make_wam()
    tokens, grid = wam.encode_views(view_batch()["current"])
    assert grid == GRID and tokens.shape == (2, 32, 12)


def test_inference_in_pixels_and_the_edited_target():
    wam = make_wam().eval()
    batch = view_batch()
    with torch.no_grad():
        actions = wam.predict_actions(batch["current"], batch["text"], batch["text_mask"], batch["proprio"], num_steps=2)
        edited = wam.decode_target(batch["current"], batch["text"], batch["text_mask"], batch["proprio"], num_steps=2)
    assert actions.shape == (2, CHUNK, ACTION_DIM)
    assert edited.shape == (2, 2, 3, 8, 8) and edited.abs().max() <= 1


def test_bad_input_is_a_clear_error():
    model = make_model()
    inputs = make_inputs()
    with pytest.raises(ValueError, match="fill_cache"):
        model.action_velocity(None, inputs["action"], 0.5)
    with pytest.raises(ValueError, match="fill_cache"):
        model.sample_actions(None)
    empty = ImageWAMCache(kv=Flux2KVCache(1, 2), key_valid=torch.ones(2, 38, dtype=torch.bool), edit_timestep=0.0)
    with pytest.raises(ValueError, match="empty"):
        model.action_velocity(empty, inputs["action"], 0.5)
    with torch.no_grad():
        cache = model.fill_cache(inputs["current"], GRID, inputs["text"], inputs["text_mask"], inputs["proprio"])
    with pytest.raises(ValueError, match="chunk has 4 steps.*got 5"):
        model.action_velocity(cache, torch.randn(2, 5, ACTION_DIM), 0.5)
    with pytest.raises(ValueError, match="chunk has 4 steps.*got 16"):
        model.flow_loss(inputs["current"], GRID, inputs["text"], inputs["target"], torch.randn(2, 16, ACTION_DIM),
                        inputs["text_mask"], inputs["proprio"])
    with pytest.raises(ValueError, match="proprio"):
        model.fill_cache(inputs["current"], GRID, inputs["text"], inputs["text_mask"], None)
    wam = make_wam()
    with pytest.raises(ValueError, match="takes 2 views.*got 3"):
        wam.encode_views(torch.zeros(2, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="codec gives"):
        ImageWAM(model, PatchCodec(patch=4), num_views=2)


def test_paper_scale_on_the_meta_device():
    """FLUX.2 klein 4B as the editing backbone; the expert at the reference's width 1024 (MLP ratio 4)."""
    with torch.device("meta"):
        model = ImageWAMTransformer(backbone_config=FLUX2_KLEIN_4B, action_dim=8, proprio_dim=8)
    backbone = sum(p.numel() for p in model.backbone.parameters())
    expert = sum(p.numel() for p in model.action_expert.parameters())
    assert 3.8e9 < backbone < 3.95e9, backbone  # klein 4B's transformer: 3.88 B
    assert 0.62e9 < expert < 0.66e9, expert  # the reference's ~642 M action expert
    assert len(model.action_expert.transformer_blocks) == 5 and len(model.action_expert.single_transformer_blocks) == 20
    attention = model.action_expert.single_transformer_blocks[0].attn
    assert (attention.heads, attention.head_dim, attention.query_dim) == (24, 128, 1024)
    assert model.config.action_chunk == 16 and model.config.target_offset == 16


KLEIN_CONFIG = Path(__file__).parent.parent / "configs" / "imagewam_flux2_klein_4b.yaml"


def test_paper_scale_config_matches_the_reference_on_the_meta_device():
    """configs/imagewam_flux2_klein_4b.yaml: the expert the config asks for, on klein 4B, is the reference's."""
    config = yaml.safe_load(KLEIN_CONFIG.read_text())
    options, data = config["model"]["init_args"], config["data"]
    expert_options = {k: v for k, v in options["transformer"].items() if k not in ("pretrained", "subfolder")}
    with torch.device("meta"):
        model = ImageWAMTransformer(backbone_config=FLUX2_KLEIN_4B, action_dim=10, proprio_dim=10, **expert_options)
    assert 3.8e9 < sum(p.numel() for p in model.backbone.parameters()) < 3.95e9
    assert 0.62e9 < sum(p.numel() for p in model.action_expert.parameters()) < 0.66e9
    assert options["chunk"] == 16 == data["num_frames"] - 1 and options["target_offset"] == 16 == options["chunk"] * data["stride"]
    assert options["views"] == len(data["cameras"]) and options["image_size"] == data["image_size"]
    assert config["trainer"]["precision"].startswith("bf16")


def test_paper_scale_config_loads_its_transformer_and_vae_from_a_local_folder(tmp_path):
    """The klein config's own model arguments, pointed at a tiny saved FLUX.2 transformer and VAE: the
    same code path a user with the klein-4B folder runs."""
    tiny = {**TINY, "in_channels": 16}  # the tiny VAE's 4 latent channels, 2 × 2-patchified
    Flux2Transformer2DModel(**tiny).save_pretrained(tmp_path / "transformer")
    AutoencoderKLFlux2(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
        layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32,
    ).save_pretrained(tmp_path / "vae")
    options = yaml.safe_load(KLEIN_CONFIG.read_text())["model"]["init_args"]
    options["transformer"]["pretrained"] = str(tmp_path)
    options["transformer"]["action_hidden_dim"] = 16
    options["codec"]["path"] = str(tmp_path)
    options["image_size"] = 16
    module = ImageWAMModule(**options, instructions=["touch the red target"])
    assert isinstance(module.model.codec, Flux2VAECodec) and module.transformer.config.action_chunk == 16
    saved = Flux2Transformer2DModel.from_pretrained(tmp_path / "transformer")
    for (name, ours), (_, theirs) in zip(module.transformer.backbone.state_dict().items(), saved.state_dict().items()):
        assert torch.equal(ours, theirs), name
    with torch.no_grad():
        tokens, grid = module.model.encode_views(torch.rand(1, 2, 3, 16, 16) * 2 - 1)
        text, mask = module.encode_text(["touch the red target"])
        actions = module.model.sample_actions(module.transformer.fill_cache(tokens, grid, text, mask, torch.zeros(1, 10)), num_steps=2)
    assert actions.shape == (1, 16, 10) and torch.isfinite(actions).all()


def test_flux2_vae_codec_loads_from_a_local_folder(tmp_path):
    """The paper-scale codec: FLUX.2's VAE, 2 × 2-patchified and batch-norm normalised latents."""
    vae = AutoencoderKLFlux2(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
        layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32,
    )
    vae.bn.running_mean.uniform_(-1, 1)
    vae.bn.running_var.uniform_(0.5, 2)
    vae.save_pretrained(tmp_path / "vae")
    codec = Flux2VAECodec.from_pretrained(tmp_path, subfolder="vae")
    assert (codec.channels, codec.spatial_factor, codec.temporal_factor) == (16, 4, 1)
    assert torch.equal(codec.vae.bn.running_var, vae.bn.running_var)
    video = torch.rand(2, 3, 1, 16, 24) * 2 - 1
    latents = codec.encode(video)
    assert latents.shape == (2, 16, 1, 4, 6)
    raw = vae.encode(video[:, :, 0]).latent_dist.mode()
    patched = raw.reshape(2, 4, 4, 2, 6, 2).permute(0, 1, 3, 5, 2, 4).reshape(2, 16, 4, 6)  # diffusers' _patchify_latents
    expected = (patched - vae.bn.running_mean.view(1, -1, 1, 1)) / (vae.bn.running_var.view(1, -1, 1, 1) + 1e-4).sqrt()
    torch.testing.assert_close(latents[:, :, 0], expected, atol=1e-5, rtol=1e-4)
    decoded = codec.decode(latents)
    assert decoded.shape == video.shape and decoded.abs().max() <= 1
    with torch.no_grad():
        reference = vae.decode(
            (expected * (vae.bn.running_var.view(1, -1, 1, 1) + 1e-4).sqrt() + vae.bn.running_mean.view(1, -1, 1, 1))
            .reshape(2, 4, 2, 2, 4, 6).permute(0, 1, 4, 2, 5, 3).reshape(2, 4, 8, 12)  # diffusers' _unpatchify_latents
        ).sample.clamp(-1, 1)
    torch.testing.assert_close(decoded[:, :, 0], reference, atol=1e-5, rtol=1e-4)


# --- the Lightning module, on the project's data ------------------------------------------------------
MODULE_TRANSFORMER = dict(backbone_config={k: v for k, v in TINY.items() if k != "in_channels"}, action_hidden_dim=16)
MODULE_TINY = dict(transformer=MODULE_TRANSFORMER, codec={"name": "patch", "patch": 4}, image_size=16, views=2, chunk=2,
                   target_offset=4, text_length=6, lr=3e-3, warmup_steps=2, sample_steps=3)
MODULE_INSTRUCTIONS = ["push the cube", "reach the cube"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from synthetic_data import write_synthetic_dataset

    root = tmp_path_factory.mktemp("imagewam") / "data"
    write_synthetic_dataset(root, (9, 8, 10, 7), size=16)
    return root


def data_module(dataset):
    from datamodules.datamodule import RobotDataModule

    return RobotDataModule([str(dataset)], num_frames=3, stride=2, batch_size=4, num_workers=0, val_fraction=0.25)


def current_pose(batch_size):
    return torch.tensor([[0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0]]).expand(batch_size, 8).clone()


def test_module_trains_on_clips(dataset):
    from action_images.imagewam_module import ImageWAMModule

    data = data_module(dataset)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    module = ImageWAMModule(**MODULE_TINY, instructions=data.instructions())
    generator = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    before = module.losses(batch, generator())["loss"].item()
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for _ in range(15):
        loss = module.losses(batch, generator())["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert module.losses(batch, generator())["loss"].item() < 0.6 * before
    batch["has_actions"] = torch.zeros(4, dtype=torch.bool)
    assert module.losses(batch, generator())["action_loss"].item() == 0.0
    with pytest.raises(ValueError, match="num_frames = chunk"):
        ImageWAMModule(**{**MODULE_TINY, "chunk": 3}, instructions=MODULE_INSTRUCTIONS).losses(batch)


def test_module_goal_readout_is_weighted_into_the_loss(dataset):
    from action_images.imagewam_module import ImageWAMModule

    data = data_module(dataset)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    module = ImageWAMModule(**MODULE_TINY, goal_readout_weight=0.25, instructions=data.instructions())
    losses = module.losses(batch, torch.Generator().manual_seed(1))
    flow = 0.5 * losses["image_loss"] + 1.0 * losses["action_loss"]
    torch.testing.assert_close(losses["loss"], flow + 0.25 * losses["goal_readout"])
    assert losses["goal_readout"].item() > 0 and 0.0 <= losses["goal_hit"].item() <= 1.0
    assert "goal_readout" not in ImageWAMModule(**MODULE_TINY, instructions=data.instructions()).losses(batch)


def test_module_checkpoint_round_trip(dataset, tmp_path):
    import lightning as L

    from action_images.imagewam_module import ImageWAMModule

    module, data = ImageWAMModule(**MODULE_TINY), data_module(dataset)  # no instructions: `setup` reads them
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, limit_val_batches=1, num_sanity_val_steps=0, val_check_interval=2, check_val_every_n_epoch=None,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, data)
    assert {"train/loss", "val/loss", "val/position_error"} <= set(trainer.callback_metrics)
    path = tmp_path / "imagewam.ckpt"
    trainer.save_checkpoint(path)
    loaded = ImageWAMModule.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    module.eval()
    assert loaded.hparams.instructions == MODULE_INSTRUCTIONS and loaded.normalization_stats is not None
    rgb, pose = torch.rand(2, 2, 3, 16, 16), current_pose(2)
    expected = module.predict_chunk(rgb, pose, MODULE_INSTRUCTIONS, generator=torch.Generator().manual_seed(3))
    chunk = loaded.predict_chunk(rgb, pose, MODULE_INSTRUCTIONS, generator=torch.Generator().manual_seed(3))
    assert torch.equal(chunk, expected) and chunk.shape == (2, 2, 8)
    assert torch.allclose(chunk[..., 3:7].norm(dim=-1), torch.ones(2, 2), atol=1e-5)
    edited = loaded.edited_target(rgb, pose, MODULE_INSTRUCTIONS, steps=2)
    assert edited.shape == rgb.shape and edited.min() >= 0 and edited.max() <= 1
    with pytest.raises(ValueError, match="2 views"):
        loaded.predict_chunk(torch.rand(1, 3, 3, 16, 16), current_pose(1), ["reach the cube"])

    # the same checkpoint plugs into the evaluation harness beside the other policies
    from action_images.evaluate import load_policy
    from action_images.policy import ChunkPolicy
    from action_images.sim import make_env

    policy = load_policy(path, cameras=["front", "left"], replan_every=2, steps=2, num_frames=3, stride=2, image_size=16)
    assert isinstance(policy, ChunkPolicy) and policy.horizon == 4
    with pytest.raises(ValueError, match="no classifier-free guidance"):
        load_policy(path, cameras=["front", "left"], guidance_scale=2.0, num_frames=3, stride=2, image_size=16)
    env = make_env("reach", image_size=32, cameras=("front", "left"))
    observation, _ = env.reset(seed=0)
    action = policy.select_action(observation)
    assert action.shape == (8,) and np.isfinite(action).all()
    with pytest.raises(ValueError, match="goal readout"):
        load_policy(path, cameras=["front", "left"], candidates=4, num_frames=3, stride=2, image_size=16)


def test_module_samples_chunks_from_one_prefix_pass_and_the_policy_uses_its_readout():
    from action_images.imagewam_module import ImageWAMModule
    from action_images.policy import ChunkPolicy
    from action_images.sim import make_env

    module = ImageWAMModule(**MODULE_TINY, goal_readout_weight=0.1, instructions=MODULE_INSTRUCTIONS).eval()
    rgb, pose = torch.rand(2, 2, 3, 16, 16), current_pose(2)
    chunks, readout = module.predict_chunks(rgb, pose, MODULE_INSTRUCTIONS, samples=3, generator=torch.Generator().manual_seed(0))
    assert chunks.shape == (2, 3, 2, 8) and readout.shape == (2, 2, 16, 16)
    torch.testing.assert_close(readout.exp().flatten(2).sum(-1), torch.ones(2, 2))
    assert not torch.equal(chunks[:, 0], chunks[:, 1])  # independent samples
    with pytest.raises(ValueError, match="without a goal readout"):
        ImageWAMModule(**MODULE_TINY, instructions=MODULE_INSTRUCTIONS).predict_chunks(rgb, pose, MODULE_INSTRUCTIONS, samples=2)

    env = make_env("reach", image_size=32, cameras=("front", "left"))
    observation, _ = env.reset(seed=0)
    chosen = ChunkPolicy(module, ["front", "left"], stride=2, candidates=4, anchor=True)
    plain = ChunkPolicy(module, ["front", "left"], stride=2)
    for policy in (chosen, plain):
        action = policy.select_action(observation)
        assert action.shape == (8,) and np.isfinite(action).all()
    with pytest.raises(ValueError, match="candidates must be"):
        ChunkPolicy(module, ["front", "left"], stride=2, candidates=0)


def test_cpu_config_builds_imagewam_for_its_data():
    from pathlib import Path

    import yaml

    from action_images.imagewam_module import ImageWAMModule

    path = Path(__file__).parent.parent / "configs" / "imagewam_sim_cpu.yaml"
    config = yaml.safe_load(path.read_text())
    # test_configs parses every config against the classes; here: the model fits its data
    assert config["model"]["class_path"] == "action_images.imagewam_module.ImageWAMModule"
    model, data = config["model"]["init_args"], config["data"]
    assert model["chunk"] == data["num_frames"] - 1 and model["image_size"] == data["image_size"]
    assert model["target_offset"] == (data["num_frames"] - 1) * data["stride"]
    module = ImageWAMModule(**model, instructions=MODULE_INSTRUCTIONS)
    parameters = sum(p.numel() for p in module.parameters())
    assert 1e6 < parameters < 8e6, parameters  # a small model, like the other CPU configs
    assert module.transformer.backbone.config.in_channels == 192  # 8 × 8 patches of RGB
    assert module.transformer.goal_readout is not None and not module.transformer.config.prefix_shares_target_timestep
