"""The baseline policy: a multi-view flow-matching action-chunk model, trained and run like the main one."""

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from synthetic_data import write_synthetic_dataset

from action_images.baseline import BaselinePolicyModule
from action_images.chunks import chunk_poses, chunk_targets
from action_images.policy import ChunkPolicy as BaselinePolicy
from action_images.observation import interpolate_waypoints
from datamodules.datamodule import RobotDataModule
from rendering.rotations import to_matrix

INSTRUCTIONS = ["push the cube", "reach the cube"]
TINY = dict(image_size=16, views=2, chunk=2, hidden=32, layers=1, heads=2, text_dim=8, text_length=6, lr=3e-3, warmup_steps=2, sample_steps=3)


@pytest.fixture(autouse=True)
def _one_thread():
    """Models this small run faster on one thread, and far faster than two fighting for busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_module(**overrides) -> BaselinePolicyModule:
    return BaselinePolicyModule(**{**TINY, "instructions": INSTRUCTIONS, **overrides})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline") / "data"
    write_synthetic_dataset(root, (9, 8, 10, 7), size=16)
    return root


def data_module(dataset) -> RobotDataModule:
    return RobotDataModule([str(dataset)], num_frames=3, stride=2, batch_size=4, num_workers=0, val_fraction=0.25)


def current_pose(batch_size: int) -> torch.Tensor:
    return torch.tensor([[0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0]]).expand(batch_size, 8).clone()  # pointing down, open


def test_predict_chunk_gives_absolute_poses():
    module = tiny_module()
    chunk = module.predict_chunk(torch.rand(3, 2, 3, 16, 16), current_pose(3), ["reach the cube"] * 3, generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (3, 2, 8) and torch.isfinite(chunk).all()
    assert torch.allclose(chunk[..., 3:7].norm(dim=-1), torch.ones(3, 2), atol=1e-5) and (chunk[..., 6] >= 0).all()  # unit xyzw, qw ≥ 0
    assert ((chunk[..., 7] >= 0) & (chunk[..., 7] <= 1)).all()


def test_chunk_encoding_round_trip():
    positions = torch.tensor([[[0.4, 0.0, 0.3], [0.42, 0.01, 0.28], [0.45, 0.0, 0.25]]])
    rotations = to_matrix(torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0.1], [0.8, 0, 0.2, 0.2]]), "quat_xyzw")[None]
    gripper = torch.tensor([[1.0, 1.0, 0.0]])
    targets = chunk_targets(positions, rotations, gripper)
    assert targets.shape == (1, 2, 10) and targets[..., :3].abs().max() < 2  # displacements scaled to O(1)
    back = chunk_poses(targets, positions[:, 0])
    assert torch.allclose(back.positions, positions[:, 1:], atol=1e-6) and torch.allclose(back.rotations, rotations[:, 1:], atol=1e-5)
    assert torch.equal(back.gripper, gripper[:, 1:])


def test_interpolation_between_waypoints():
    current = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    quarter_turn = [0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]  # 90° about z
    waypoints = torch.tensor([[0.3, 0.0, 0.0, *quarter_turn, 0.2], [0.3, 0.3, 0.0, *quarter_turn, 0.9]])
    targets = interpolate_waypoints(current, waypoints, stride=3)
    assert targets.shape == (6, 8)
    assert torch.allclose(targets[[2, 5]], torch.cat([waypoints[:, :7], torch.tensor([[0.0], [1.0]])], 1), atol=1e-6)  # ends on waypoints
    assert torch.allclose(targets[:3, 0], torch.tensor([0.1, 0.2, 0.3]))  # linear positions
    angle_of_first = 2 * torch.atan2(targets[0, 5], targets[0, 6])
    assert angle_of_first == pytest.approx(math.pi / 6, abs=1e-5)  # slerp: a third of the turn
    assert targets[:, 7].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # the segment's end gripper, thresholded


def test_a_few_steps_lower_the_loss(dataset):
    data = data_module(dataset)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    module = tiny_module(instructions=data.instructions())
    generator = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    before = module.flow_matching_loss(batch, generator()).item()
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for _ in range(10):
        loss = module.flow_matching_loss(batch, generator())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert module.flow_matching_loss(batch, generator()).item() < 0.5 * before


def test_samples_without_actions_are_left_out_of_the_loss(dataset):
    data = data_module(dataset)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    module = tiny_module(instructions=data.instructions())
    batch["has_actions"] = torch.tensor([True, True, False, False])
    loss = module.flow_matching_loss(batch, torch.Generator().manual_seed(0))
    batch["positions"][2:] += 5.0  # nonsense where there are no actions changes nothing
    assert module.flow_matching_loss(batch, torch.Generator().manual_seed(0)) == loss
    batch["has_actions"] = torch.zeros(4, dtype=torch.bool)
    assert module.flow_matching_loss(batch).item() == 0.0


def test_checkpoint_round_trip_keeps_statistics_and_predictions(dataset, tmp_path):
    module, data = BaselinePolicyModule(**TINY), data_module(dataset)  # no instructions: `setup` reads them
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, limit_val_batches=1, num_sanity_val_steps=0, val_check_interval=2, check_val_every_n_epoch=None,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, data)
    assert {"train/loss", "val/loss", "val/position_error"} <= set(trainer.callback_metrics)
    path = tmp_path / "baseline.ckpt"
    trainer.save_checkpoint(path)
    loaded = BaselinePolicyModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert loaded.hparams.instructions == INSTRUCTIONS
    for key, entry in data.normalization_stats().items():
        for name, value in entry.items():
            assert torch.allclose(loaded.normalization_stats[key][name], value)
    rgb, pose = torch.rand(2, 2, 3, 16, 16), current_pose(2)
    expected = module.predict_chunk(rgb, pose, INSTRUCTIONS, generator=torch.Generator().manual_seed(3))
    assert torch.equal(loaded.predict_chunk(rgb, pose, INSTRUCTIONS, generator=torch.Generator().manual_seed(3)), expected)
    policy = BaselinePolicy.from_checkpoint(path, cameras=["front", "side"], stride=2)
    assert policy.module.normalization_stats is not None and not policy.module.training

    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["normalization_stats"]
    torch.save(checkpoint, tmp_path / "no_stats.ckpt")
    with pytest.raises(ValueError, match="normalisation statistics"):
        BaselinePolicyModule.load_from_checkpoint(tmp_path / "no_stats.ckpt", map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match="normalisation statistics"):
        tiny_module().on_save_checkpoint({})  # never trained with a data module: nothing to save


@pytest.fixture(scope="module")
def env():
    from action_images.sim import make_env

    environment = make_env("reach", image_size=64)
    yield environment
    environment.close()


def test_policy_in_the_simulator_replans_every_n_steps(env):
    module = tiny_module(image_size=16, views=3)
    calls = []
    predict = module.predict_chunk
    module.predict_chunk = lambda *args, **kwargs: calls.append(1) or predict(*args, **kwargs)
    policy = BaselinePolicy(module, ["front", "left", "right"], stride=2, replan_every=3)
    obs, _ = env.reset(seed=0)
    policy.reset()
    actions = []
    for step in range(7):
        action = policy.select_action(obs)
        assert action.shape == (8,) and action.dtype == np.float32 and np.isfinite(action).all()
        assert action[7] in (0.0, 1.0)
        actions.append(action)
        obs, *_ = env.step(action)
        assert len(calls) == step // 3 + 1  # plans at steps 0, 3, 6
    policy.reset()
    assert np.array_equal(policy.select_action(env.reset(seed=0)[0]), actions[0])  # reset restarts the noise
    assert BaselinePolicy(module, ["front", "left", "right"], stride=2).replan_every == 4  # default: the whole chunk


def test_bad_input_is_a_clear_error(dataset):
    module = tiny_module()
    pose = current_pose(1)
    with pytest.raises(ValueError, match="2 views"):
        module.predict_chunk(torch.rand(1, 3, 3, 16, 16), pose, ["reach the cube"])
    with pytest.raises(ValueError, match="finite"):
        module.predict_chunk(torch.rand(1, 2, 3, 16, 16), torch.full((1, 8), float("nan")), ["reach the cube"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        module.predict_chunk(torch.rand(1, 2, 3, 16, 16) * 255, pose, ["reach the cube"])
    with pytest.raises(ValueError, match="list of 1 strings"):
        module.predict_chunk(torch.rand(1, 2, 3, 16, 16), pose, "reach the cube")
    with pytest.raises(ValueError, match="trained on 2 views"):
        BaselinePolicy(module, ["front", "left", "right"])
    with pytest.raises(ValueError, match="replan_every"):
        BaselinePolicy(module, ["front", "left"], stride=2, replan_every=5)
    with pytest.raises(ValueError, match="num_frames = chunk"):
        data = RobotDataModule([str(dataset)], num_frames=4, stride=2, batch_size=2, num_workers=0)
        data.setup()
        module.flow_matching_loss(next(iter(data.train_dataloader())))
    with pytest.raises(ValueError, match="multiple of 8"):
        BaselinePolicyModule(image_size=20)


def test_config_builds_the_baseline_for_its_data():
    path = Path(__file__).parent.parent / "configs" / "baseline_sim_cpu.yaml"
    config = yaml.safe_load(path.read_text())
    # test_configs parses every config against the classes; here: the model fits its data
    assert config["model"]["class_path"] == "action_images.baseline.BaselinePolicyModule"
    model, data = config["model"]["init_args"], config["data"]
    assert model["chunk"] == data["num_frames"] - 1 and model["image_size"] == data["image_size"]
    with torch.device("meta"):
        parameters = sum(p.numel() for p in BaselinePolicyModule(**model, instructions=INSTRUCTIONS).parameters())
    assert 2e6 < parameters < 8e6  # a small model, like the CPU Action Images config
