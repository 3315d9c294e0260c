"""The inference pipeline: export from a checkpoint, save/load, every mode, decoded 7-DoF output."""

import lightning as L
import pytest
import torch
from synthetic_data import write_synthetic_dataset
from test_module import data_module, tiny_module

from action_images.cli import main
from action_images.pipeline import ActionImagesPipeline
from rendering.cameras import Cameras


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    write_synthetic_dataset(folder / "data", (9, 8, 10, 7), size=16)
    module, data = tiny_module(), data_module(folder / "data")
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(folder), limit_val_batches=0)
    trainer.fit(module, data)
    trainer.save_checkpoint(folder / "model.ckpt")
    data.setup()
    return folder / "model.ckpt", next(iter(data.val_dataloader()))


def test_export_save_and_load_round_trip(checkpoint, tmp_path):
    path, batch = checkpoint
    assert main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "pipe")]) == 0
    for name in ("model.safetensors", "config.json", "normalization_stats.json", "README.md", "scheduler/scheduler_config.json"):
        assert (tmp_path / "pipe" / name).exists(), name
    first, second = ActionImagesPipeline.from_checkpoint(path), ActionImagesPipeline.from_pretrained(tmp_path / "pipe")
    for name, value in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], value), name
    assert second.model.normalization_stats["action"]["mean"].shape == (8,)


def test_fused_projections_generate_the_same_and_save_unfused(checkpoint, tmp_path):
    """The policy's fused q/k/v projections are exact, and a fused pipeline saves the weights a
    training checkpoint has (no fused copies)."""
    path, batch = checkpoint
    pipeline = ActionImagesPipeline.from_checkpoint(path)
    cameras = Cameras(batch["intrinsics"], batch["extrinsics"], 16, 16)
    poses = torch.cat([batch["positions"], torch.tensor([[1.0, 0, 0, 0]]).expand(*batch["positions"].shape[:2], 4), batch["gripper"][..., None]], -1)

    def generate():
        return pipeline(mode="joint", images=batch["rgb"], cameras=cameras, actions=poses, prompt=list(batch["instruction"]),
                        num_inference_steps=2, generator=torch.Generator().manual_seed(0)).action_images

    before = generate()
    pipeline.fuse_qkv_projections()
    assert any(getattr(m, "fused_projections", False) for m in pipeline.model.modules())
    torch.testing.assert_close(generate(), before, atol=1e-5, rtol=1e-4)
    pipeline.save_pretrained(tmp_path / "pipe")
    loaded = ActionImagesPipeline.from_pretrained(tmp_path / "pipe")
    assert set(loaded.model.state_dict()) == set(ActionImagesPipeline.from_checkpoint(path).model.state_dict())


@pytest.mark.parametrize("mode", ["joint", "a2v", "v2a", "policy", "video"])
def test_every_mode_generates_and_decodes(checkpoint, mode):
    path, batch = checkpoint
    pipeline = ActionImagesPipeline.from_checkpoint(path)
    if mode == "policy":
        pipeline.model.canvas_kind = pipeline.model.canvas_kind.POLICY
    cameras = Cameras(batch["intrinsics"], batch["extrinsics"], 16, 16)
    poses = torch.cat([batch["positions"], torch.tensor([[1.0, 0, 0, 0]]).expand(*batch["positions"].shape[:2], 4), batch["gripper"][..., None]], -1)
    out = pipeline(mode=mode, images=batch["rgb"], cameras=cameras, actions=None if mode == "video" else poses, prompt=list(batch["instruction"]), num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.rgb.shape[:2] == batch["rgb"].shape[:2]
    if mode == "video":
        assert out.action_images is None and out.decoded is None
    else:
        assert out.action_images.shape == batch["action_images"].shape
        assert out.decoded.positions.shape == (len(batch["rgb"]), batch["rgb"].shape[2], 3)
        assert out.decoded.confidence.dtype == torch.bool


def test_missing_pose_and_bad_shapes_are_clear_errors(checkpoint):
    path, batch = checkpoint
    pipeline = ActionImagesPipeline.from_checkpoint(path)
    cameras = Cameras(batch["intrinsics"], batch["extrinsics"], 16, 16)
    with pytest.raises(ValueError, match="needs the current end-effector pose"):
        pipeline(mode="joint", images=batch["rgb"], cameras=cameras)
    with pytest.raises(ValueError, match=r"images must be \(B, V, T, 3, H, W\)"):
        pipeline(mode="joint", images=batch["rgb"][0], cameras=cameras)
    with pytest.raises(FileNotFoundError, match="not an Action Images pipeline folder"):
        ActionImagesPipeline.from_pretrained(path.parent / "nothing")
