"""Training the model through Lightning on a tiny config: the objective, modes, sampling, checkpoints."""


import copy as copy_module
import shutil

import lightning as L
import pytest
import torch
from synthetic_data import write_synthetic_dataset

from action_images.canvas import Mode
from action_images.module import ActionImagesModule
from datamodules.datamodule import RobotDataModule

TINY_TRANSFORMER = dict(patch_size=[2, 2, 2], num_attention_heads=2, attention_head_dim=8, ffn_dim=32, num_layers=2, freq_dim=16, rope_max_seq_len=64, num_slot_ids=4)


def tiny_module(**overrides) -> ActionImagesModule:
    options = dict(
        transformer=TINY_TRANSFORMER, codec={"name": "patch", "patch": 4}, text_encoder={"name": "vocabulary", "dim": 12, "max_length": 8},
        order="given_first", prediction="x0", timestep_shift=1.0, action_loss_weight=10.0, lr=3e-3, warmup_steps=5, sample_steps=3,
    )
    options.update(overrides)
    return ActionImagesModule(**options)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("module") / "data"
    write_synthetic_dataset(root, (9, 8, 10, 7), size=16)
    return root


def data_module(dataset, **overrides) -> RobotDataModule:
    options = dict(num_frames=3, stride=2, batch_size=4, num_workers=0, val_fraction=0.25)
    options.update(overrides)
    return RobotDataModule([str(dataset)], **options)


def trainer(tmp_path, **overrides) -> L.Trainer:
    options = dict(
        accelerator="cpu", devices=1, max_steps=30, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(tmp_path), limit_val_batches=1, val_check_interval=10, check_val_every_n_epoch=None,
        enable_checkpointing=False,
    )
    options.update(overrides)
    return L.Trainer(**options)


def test_the_learning_rate_decays_over_steps_or_over_max_time(dataset, tmp_path):
    by_steps = tiny_module(max_steps=30)
    trainer(tmp_path, limit_val_batches=0).fit(by_steps, data_module(dataset))
    assert by_steps.optimizers().param_groups[0]["lr"] == pytest.approx(0.1 * 3e-3)  # the cosine's floor at max_steps
    by_time = tiny_module(lr_schedule="time")  # no max_steps: by steps the rate would stay at its peak
    run = trainer(tmp_path, max_steps=100_000, max_time={"seconds": 4}, limit_val_batches=0)
    run.fit(by_time, data_module(dataset))
    assert run.global_step > 30 and by_time.optimizers().param_groups[0]["lr"] < 0.2 * 3e-3  # decayed by the time it stopped
    with pytest.raises(ValueError, match="max_time"):
        trainer(tmp_path, limit_val_batches=0).fit(tiny_module(lr_schedule="time"), data_module(dataset))
    with pytest.raises(ValueError, match="lr_schedule"):
        trainer(tmp_path, limit_val_batches=0).fit(tiny_module(lr_schedule="epochs"), data_module(dataset))


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
def test_the_compiled_training_step_is_the_eager_step(dataset):
    data = data_module(dataset)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    eager = tiny_module(instructions=data.instructions())
    compiled = tiny_module(instructions=data.instructions(), compile=True)
    compiled.load_state_dict(eager.state_dict())
    losses, grads = [], []
    for module in (eager, compiled):
        module.train()
        torch.manual_seed(3)
        loss, *_ = module.diffusion_loss(batch, [Mode.JOINT] * len(batch["instruction"]))
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in module.transformer.parameters() if p.grad is not None]))
    assert compiled.transformer_forward() is not compiled.transformer  # the training step ran compiled
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-5)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints hold the plain module's weights
    copy = copy_module.deepcopy(compiled)  # as the EMA callback copies it: the copy must not run the original's weights
    assert copy.transformer_forward() is not compiled.transformer_forward()
    compiled.eval()
    assert compiled.transformer_forward() is compiled.transformer  # validation and sampling stay eager


def test_a_few_steps_lower_the_loss(dataset, tmp_path):
    torch.manual_seed(0)
    module, data = tiny_module(), data_module(dataset)
    fit = trainer(tmp_path, max_steps=1)
    fit.fit(module, data)  # builds the vocabulary from the dataset's instructions
    batch = next(iter(data.train_dataloader()))
    generator = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    modes = [Mode.JOINT] * 4
    module.eval()
    with torch.no_grad():
        before, *_ = module.diffusion_loss(batch, modes, generator())
    module.train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for _ in range(25):
        loss, *_ = module.diffusion_loss(batch, modes, generator())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        after, *_ = module.diffusion_loss(batch, modes, generator())
    assert after < 0.7 * before


def test_balanced_emphasis_weighs_both_gripper_states_alike(dataset):
    from rendering.renderer import render_action_images
    from action_images.roundtrip import demo_cameras, sample_trajectory

    positions, rotations, _ = sample_trajectory(2)
    cameras = demo_cameras(views=2, size=16)
    images = {state: render_action_images(positions, rotations, torch.full((2,), float(state)), cameras) for state in (0, 1)}
    images = {state: image.permute(1, 0, 2, 3, 4)[None] for state, image in images.items()}  # (1, V, T, 3, H, W)
    data = data_module(dataset)
    data.setup()
    balanced = tiny_module(action_loss_on="balanced", instructions=data.instructions())
    open_weight, closed_weight = (balanced.action_emphasis_latents(images[state]) for state in (1, 0))
    torch.testing.assert_close(open_weight, closed_weight)  # the gripper's state changes no weight
    intensity = {state: ((balanced.encode_segments(image) + 1) / 2).clamp(0, 1) for state, image in images.items()}  # what "intensity" weighs by
    torch.testing.assert_close(open_weight, intensity[1])  # an open frame weighs as under "intensity" …
    assert intensity[1].sum() > 1.3 * intensity[0].sum()  # … where a closed one weighed less
    batch = next(iter(data.train_dataloader()))
    loss, *_ = balanced.diffusion_loss(batch, [Mode.JOINT] * len(batch["instruction"]), torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="balanced"):
        tiny_module(action_loss_on="gripper")


def test_near_close_emphasis_lifts_only_closed_frames_near_an_open_one(dataset):
    from rendering.renderer import render_action_images
    from action_images.module import closed_near_open
    from rendering.renderer import GRIPPER_BACKGROUND
    from action_images.roundtrip import demo_cameras, sample_trajectory

    positions, rotations, _ = sample_trajectory(6)
    cameras = demo_cameras(views=2, size=16)
    gripper = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # opens for two frames, then closes
    images = render_action_images(positions, rotations, gripper, cameras)[None]  # (1, V, T, 3, H, W)
    lifted = closed_near_open(images[:, :, :, 2], window=2)
    assert lifted.tolist() == [[[False, False, True, True, False, False]] * 2]
    data = data_module(dataset)
    data.setup()
    near_close = tiny_module(action_loss_on="near_close", action_loss_close_window=2, instructions=data.instructions())
    weight = near_close.action_emphasis_latents(images)
    intensity = ((near_close.encode_segments(images) + 1) / 2).clamp(0, 1)
    as_open = ((near_close.encode_segments(torch.cat([images[..., :2, :, :], images[..., 2:, :, :].clamp(min=GRIPPER_BACKGROUND)], -3)) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(weight[:, :, :, [0, 1, 4, 5]], intensity[:, :, :, [0, 1, 4, 5]])  # as "intensity" away from the close
    torch.testing.assert_close(weight[:, :, :, [2, 3]], as_open[:, :, :, [2, 3]])  # as if open just after it
    assert weight[:, :, :, 2].sum() > 1.3 * intensity[:, :, :, 2].sum()
    batch = next(iter(data.train_dataloader()))
    loss, *_ = near_close.diffusion_loss(batch, [Mode.JOINT] * len(batch["instruction"]), torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)


def test_gripper_episodes_emphasis_is_balanced_only_where_the_episode_opens_the_gripper(dataset):
    from rendering.renderer import render_action_images
    from action_images.roundtrip import demo_cameras, sample_trajectory

    positions, rotations, _ = sample_trajectory(4)
    images = render_action_images(positions, rotations, torch.zeros(4), demo_cameras(views=2, size=16))[None].repeat(2, 1, 1, 1, 1, 1)
    data = data_module(dataset)
    data.setup()
    module = tiny_module(action_loss_on="gripper_episodes", instructions=data.instructions())
    weight = module.action_emphasis_latents(images, torch.tensor([True, False]))  # two closed clips: a carry, a push
    intensity = ((module.encode_segments(images) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(weight[1], intensity[1])  # an episode whose gripper never opens: as "intensity"
    assert weight[0].sum() > 1.3 * intensity[0].sum()  # the carry weighs its closed background as if open
    with pytest.raises(ValueError, match="gripper_opens"):
        module.action_emphasis_latents(images)
    batch = next(iter(data.train_dataloader()))
    clip_opens = (batch["gripper"][:, 1:] > 0.5).any(-1)  # after the clip's first frame, so after the episode's
    assert batch["gripper_opens"].dtype == torch.bool and bool((batch["gripper_opens"] | ~clip_opens).all())  # a clip that opens is of an episode that does
    loss, *_ = module.diffusion_loss(batch, [Mode.JOINT] * len(batch["instruction"]), torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)


def test_mode_mix_and_per_mode_losses(dataset):
    module = tiny_module(mode_mix={"joint": 0.5, "a2v": 0.25, "v2a": 0.25})
    data = data_module(dataset)
    fit = trainer(None, max_steps=1)
    fit.fit(module, data)
    modes = module.sample_modes(torch.tensor([True] * 200 + [False] * 20))
    assert set(modes[:200]) == {Mode.JOINT, Mode.A2V, Mode.V2A} and set(modes[200:]) == {Mode.VIDEO}
    batch = next(iter(data.train_dataloader()))
    loss, per_mode, _ = module.diffusion_loss(batch, [Mode.JOINT, Mode.A2V, Mode.V2A, Mode.VIDEO])
    assert set(per_mode) == {Mode.JOINT, Mode.A2V, Mode.V2A, Mode.VIDEO} and torch.isfinite(loss)


def test_policy_batches_in_the_mode_mix(dataset):
    """`policy` in the mix trains whole batches on the short canvas, so one model serves both canvases."""
    module = tiny_module(mode_mix={"joint": 0.5, "policy": 0.5})
    data = data_module(dataset)
    trainer(None, max_steps=1).fit(module, data)
    torch.manual_seed(0)
    draws = [module.sample_modes(torch.tensor([True, True, False])) for _ in range(100)]
    assert all(set(d) == {Mode.POLICY} or Mode.POLICY not in d for d in draws)  # a batch is one canvas
    assert 30 < sum(d[0] is Mode.POLICY for d in draws) < 70 and [Mode.JOINT, Mode.JOINT, Mode.VIDEO] in draws
    batch = next(iter(data.train_dataloader()))
    loss, per_mode, _ = module.diffusion_loss(batch, [Mode.POLICY] * len(batch["instruction"]))
    assert set(per_mode) == {Mode.POLICY} and torch.isfinite(loss)
    with pytest.raises(ValueError, match="one batch has one canvas"):
        module.diffusion_loss(batch, [Mode.POLICY, Mode.JOINT, Mode.JOINT, Mode.JOINT])
    with pytest.raises(ValueError, match="non-negative weights"):
        tiny_module(mode_mix={"joint": 1.0, "v2a": -0.5})


def test_generation_keeps_given_frames_and_fills_the_rest(dataset):
    module = tiny_module()
    data = data_module(dataset)
    trainer(None, max_steps=1).fit(module, data)
    batch = next(iter(data.val_dataloader()))
    out = module.generate(batch, Mode.JOINT, steps=2, generator=torch.Generator().manual_seed(0))
    assert out["rgb"].shape == batch["rgb"].shape and out["action_images"].shape == batch["action_images"].shape
    # The first RGB and action frames are given: they come back (through the exact patch codec) unchanged.
    assert torch.allclose(out["rgb"][:, :, 0], batch["rgb"][:, :, 0], atol=1e-5)
    assert torch.allclose(out["action_images"][:, :, 0], batch["action_images"][:, :, 0], atol=1e-5)
    a2v = module.generate(batch, Mode.A2V, steps=2)
    assert torch.allclose(a2v["action_images"], batch["action_images"], atol=1e-5)
    policy = tiny_module(canvas="policy")
    trainer(None, max_steps=1).fit(policy, data)
    short = policy.generate(batch, Mode.POLICY, steps=2)
    assert short["rgb"].shape[2] == 1 and short["action_images"].shape == batch["action_images"].shape


def test_checkpoint_holds_statistics_and_vocabulary(dataset, tmp_path):
    module, data = tiny_module(), data_module(dataset)
    fit = trainer(tmp_path, max_steps=2, enable_checkpointing=True)
    fit.fit(module, data)
    path = tmp_path / "model.ckpt"
    fit.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint["normalization_stats"]) == {"observation.state", "action"}
    restored = ActionImagesModule.load_from_checkpoint(path, weights_only=True)
    assert restored.text_encoder.config == module.text_encoder.config
    for name, value in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name


@pytest.mark.parametrize("canvas", ["joint", "policy"])
def test_validation_logs_the_decoded_position_error(dataset, tmp_path, canvas):
    torch.manual_seed(0)
    module, data = tiny_module(canvas=canvas), data_module(dataset)
    fit = trainer(tmp_path, max_steps=2, val_check_interval=2)
    fit.fit(module, data)
    metrics = fit.callback_metrics
    assert {"val/loss", "val/undecoded"} <= set(metrics)
    # An untrained model's action frames may decode to nothing; when they decode, the error is in metres.
    assert 0 <= metrics["val/undecoded"] <= 1
    if metrics["val/undecoded"] < 1:
        assert 0 < metrics["val/position_error"] < 10


@pytest.mark.parametrize(("canvas", "mix", "mode"), [
    ("joint", None, Mode.JOINT), ("policy", None, Mode.POLICY), ("joint", {"v2a": 1.0}, Mode.V2A),
    ("joint", {"joint": 0.1, "v2a": 0.9}, Mode.JOINT), ("joint", {"a2v": 0.5, "video": 0.5}, Mode.JOINT),
])
def test_validation_decodes_the_mode_the_model_is_for(canvas, mix, mode):
    """A labeller trained on `v2a` alone is validated in `v2a`, not in the `joint` mode it never saw."""
    assert tiny_module(canvas=canvas, mode_mix=mix).validation_mode() is mode


def test_goal_readout_learns_where_the_end_effector_goes(dataset):
    """The auxiliary readout: per-pixel logits of the given first frame, scored against the projected
    end-effector at the clip's last frame; it lowers with training and adds no layer when off."""
    assert not any(name.startswith("transformer.goal_readout") for name, _ in tiny_module().named_parameters())
    torch.manual_seed(0)
    module, data = tiny_module(goal_readout_weight=1.0), data_module(dataset)
    trainer(None, max_steps=1).fit(module, data)
    batch = next(iter(data.train_dataloader()))
    generator = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    modes = [Mode.JOINT] * len(batch["instruction"])
    _, _, before = module.diffusion_loss(batch, modes, generator())
    assert set(before) == {"goal_readout", "goal_hit"} and torch.isfinite(before["goal_readout"])
    # A chance-level readout scores about log(H·W): 16² pixels here.
    assert abs(before["goal_readout"].item() - torch.log(torch.tensor(256.0)).item()) < 1.5
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for _ in range(30):
        loss, _, terms = module.diffusion_loss(batch, modes, generator())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _, _, after = module.diffusion_loss(batch, modes, generator())
    assert after["goal_readout"] < 0.5 * before["goal_readout"]
    out = module.generate(batch, Mode.JOINT, steps=2, generator=torch.Generator().manual_seed(0))  # sampling ignores it
    read = module.generate(batch, Mode.JOINT, steps=2, generator=torch.Generator().manual_seed(0), return_readout=True)
    assert torch.equal(read["action_images"], out["action_images"])  # reading it out changes nothing generated
    height, width = batch["rgb"].shape[-2:]
    assert read["goal_readout"].shape == (len(modes), batch["rgb"].shape[1], height, width)
    assert torch.allclose(read["goal_readout"].exp().sum((-1, -2)), torch.ones(()), atol=1e-4)  # a distribution per view
    with pytest.raises(ValueError, match="without a goal readout"):
        tiny_module().generate(batch, Mode.JOINT, steps=1, return_readout=True)
    module.hparams.goal_readout_min_noise = 1.0  # no training noise level reaches 1: nothing is scored
    _, _, unscored = module.diffusion_loss(batch, modes, generator())
    assert unscored["goal_readout"] == 0 and unscored["goal_hit"].isnan()
    assert out["action_images"].shape == batch["action_images"].shape


def test_mixed_precision_keeps_the_camera_geometry_in_fp32(dataset, tmp_path):
    """Under bf16 autocast (the GPU configs' precision) RᵀR rounds to ~4e-3 and rigid-transform checks
    fail: the camera conditioning and the validation's decoder must run in fp32 — here on the CPU's autocast."""
    torch.manual_seed(0)
    module, data = tiny_module(), data_module(dataset)
    fit = trainer(tmp_path, max_steps=2, val_check_interval=2, precision="bf16-mixed")
    fit.fit(module, data)
    assert torch.isfinite(fit.callback_metrics["train/loss"]) and "val/undecoded" in fit.callback_metrics


def test_observation_dropout_guides_on_the_scene(dataset):
    """With observation dropout the unconditional pass sees neither prompt nor observation: at guidance 0
    (the unconditional prediction alone) the plan cannot depend on the first RGB frame; a text-only
    model's unconditional pass still reads it. Dropped samples train without it too."""
    data = data_module(dataset)
    batch = next(iter(data.val_dataloader()))
    repainted = {**batch, "rgb": batch["rgb"].clone()}
    repainted["rgb"][:, :, 0] = torch.rand_like(repainted["rgb"][:, :, 0])

    def plan(module, clip):
        return module.generate(clip, Mode.POLICY, steps=2, guidance_scale=0.0, generator=torch.Generator().manual_seed(0))["action_images"]

    def loss(module, clip):
        return module.diffusion_loss(clip, [Mode.POLICY] * len(clip["instruction"]), torch.Generator().manual_seed(0))[0]

    for dropout, reads_scene in ((1.0, False), (0.0, True)):
        torch.manual_seed(0)
        module = tiny_module(canvas="policy", observation_dropout=dropout, goal_readout_weight=0.1)
        trainer(None, max_steps=1).fit(module, data)
        module.eval()
        assert torch.allclose(plan(module, batch), plan(module, repainted), atol=1e-6) != reads_scene
        assert torch.allclose(loss(module, batch), loss(module, repainted), atol=1e-6) != reads_scene
        if dropout:  # asked to guide on the instruction alone, its unconditional pass keeps the observation
            text_only = lambda clip: module.generate(clip, Mode.POLICY, steps=2, guidance_scale=0.0, guide_observation=False,  # noqa: E731
                                                     generator=torch.Generator().manual_seed(0))["action_images"]
            assert not torch.allclose(text_only(batch), text_only(repainted), atol=1e-6)
        else:
            with pytest.raises(ValueError, match="observation_dropout"):
                module.generate(batch, Mode.POLICY, steps=1, guidance_scale=2.0, guide_observation=True)
