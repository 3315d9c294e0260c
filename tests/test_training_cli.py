"""`action-images fit` is a real LightningCLI run: a config file, checkpoints, exact resumption, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from synthetic_data import write_synthetic_dataset

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "data"
    write_synthetic_dataset(root, (9, 8, 10, 7, 9), size=16)
    return root


def write_config(folder: Path, dataset: Path, max_steps: int, callbacks: list[dict] = ()) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": max_steps, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "num_sanity_val_steps": 0, "limit_val_batches": 0, "use_distributed_sampler": False,
            "default_root_dir": str(folder),
            "callbacks": [
                {"class_path": "action_images.callbacks.FinalStepCheckpoint", "init_args": {"dirpath": str(folder / "checkpoints"), "save_last": True, "every_n_train_steps": 4, "save_top_k": -1}},
                {"class_path": "action_images.callbacks.BatchRecorder", "init_args": {"folder": str(folder / "record")}},
                *callbacks,
            ],
        },
        "model": {
            "transformer": {"patch_size": [2, 2, 2], "num_attention_heads": 2, "attention_head_dim": 8, "ffn_dim": 32, "num_layers": 2, "freq_dim": 16, "rope_max_seq_len": 64},
            "codec": {"name": "patch", "patch": 4},
            "text_encoder": {"name": "vocabulary", "dim": 12, "max_length": 8},
            "order": "given_first", "prediction": "x0", "timestep_shift": 1.0, "lr": 1e-3, "warmup_steps": 2,
        },
        "data": {"datasets": [str(dataset)], "num_frames": 3, "stride": 2, "batch_size": 4, "num_workers": 0, "val_fraction": 0.2},
    }
    path = folder / "config.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args, expect_ok=True):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "action_images.cli", *map(str, args)], capture_output=True, text=True, timeout=600, env=env)
    if expect_ok:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def records(folder: Path, rank: int = 0) -> list[dict]:
    return [json.loads(line) for line in (folder / "record" / f"rank{rank}.jsonl").read_text().splitlines()]


def steps(rows):
    return {row["step"]: row["samples"] for row in rows if "samples" in row}


def test_a_run_killed_mid_epoch_resumes_exactly(dataset, tmp_path):
    whole = tmp_path / "whole"
    run_cli("fit", "--config", write_config(whole, dataset, max_steps=10))
    # saved every 4 steps, yet last.ckpt holds the final step 10, not step 8
    assert torch.load(whole / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 10

    broken = tmp_path / "broken"
    crash = {"class_path": "crash.CrashAtStep", "init_args": {"step": 6}}
    result = run_cli("fit", "--config", write_config(broken, dataset, max_steps=10, callbacks=[crash]), expect_ok=False)
    assert result.returncode == 3  # killed after step 6; the last checkpoint is from step 4, mid-epoch
    run_cli("fit", "--config", write_config(broken, dataset, max_steps=10), "--ckpt_path", broken / "checkpoints" / "last.ckpt")

    expected, resumed = steps(records(whole)), steps(records(broken))
    assert resumed[4] == expected[4] and all(resumed[s] == expected[s] for s in range(4, 10))  # same data order
    end_whole, end_resumed = records(whole)[-1], records(broken)[-1]
    assert end_whole["step"] == end_resumed["step"] == 10
    assert end_resumed["weights_sum"] == pytest.approx(end_whole["weights_sum"], rel=1e-6)
    assert end_resumed["first"] == pytest.approx(end_whole["first"], rel=1e-5, abs=1e-7)


def test_ddp_on_two_cpu_processes(dataset, tmp_path):
    folder = tmp_path / "ddp"
    run_cli("fit", "--config", write_config(folder, dataset, max_steps=4), "--trainer.strategy", "ddp", "--trainer.devices", "2")
    rank0, rank1 = records(folder, 0), records(folder, 1)
    for step, samples in steps(rank0).items():
        assert not {tuple(s) for s in samples} & {tuple(s) for s in steps(rank1)[step]}  # ranks see different samples
    assert rank0[-1]["weights_sum"] == rank1[-1]["weights_sum"] and rank0[-1]["first"] == rank1[-1]["first"]


def test_help_lists_the_model_and_data_options():
    result = run_cli("fit", "--help")
    assert "--model CONFIG | CLASS_PATH_OR_NAME" in result.stdout and "--data.datasets" in result.stdout
    # any LightningModule is chosen by class path; each lists its own options
    assert "--model.codec" in run_cli("fit", "--model.help", "ActionImagesModule").stdout
    assert "--model.chunk" in run_cli("fit", "--model.help", "action_images.baseline.BaselinePolicyModule").stdout
