"""Benchmark of the data layer: collection throughput, data-loader throughput against the training
step it feeds, and the simulator's figures (expert success, calibration) from `bench_sim.py`.

    python tools/bench_data.py [--episodes 100]

Writes benchmarks/results/data.json and the "data" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.collect import CollectConfig, collect  # noqa: E402
from action_images.module import ActionImagesModule  # noqa: E402
from datamodules.datamodule import RobotDataModule  # noqa: E402
from tools.benchlib import RESULTS, ROOT, machine_line, markdown_table, median_ms, update_section, write_results  # noqa: E402

# The default CPU clip (the `sim_cpu` data shape): 3 views, current + 4 future frames 3 apart, 32².
CLIP = dict(num_frames=5, stride=3, image_size=32)
BATCH = 16


def loader_throughput(dataset: Path, workers: int, batches: int = 40, frame_cache: Path | None = None) -> dict[str, float]:
    """Samples per second over two passes of `batches`: the first decodes episodes, the second
    reads the per-worker cache, as every epoch after the first does. With `frame_cache`, the decoded
    frames are built once first (`build_s`) and both passes read them memory-mapped."""
    module = RobotDataModule([str(dataset)], batch_size=BATCH, num_workers=workers, val_fraction=0.0, frame_cache=frame_cache and str(frame_cache), **CLIP)
    figures = {}
    start = time.perf_counter()
    module.prepare_data()
    figures["build_s"] = time.perf_counter() - start
    loader = module.train_dataloader()
    iterator = iter(loader)
    for name in ("first_pass", "warm"):
        start = time.perf_counter()
        for _ in range(batches):
            try:
                next(iterator)
            except StopIteration:
                iterator = iter(loader)
                next(iterator)
        figures[name] = batches * BATCH / (time.perf_counter() - start)
    del iterator
    return figures


def sim_cpu_step(dataset: Path, steps: int = 10) -> dict[str, float]:
    """Samples per second consumed by the `sim_cpu` training step (configs/sim_cpu.yaml: model, batch
    and clip shape) on this dataset, both cores, data already in memory: eager, and with `model.compile`
    (the same weights; its first step, the compile, timed apart)."""
    config = yaml.safe_load((ROOT / "configs" / "sim_cpu.yaml").read_text())
    data = RobotDataModule(**{**config["data"], "datasets": [str(dataset)], "num_workers": 0, "val_fraction": 0.0, "frame_cache": None})
    model = ActionImagesModule(**config["model"], instructions=data.instructions())
    batch = next(iter(data.train_dataloader()))
    batch_size = config["data"]["batch_size"]
    figures = {"train_samples_per_s": batch_size / training_step_seconds(model, batch, steps)}
    compiled = ActionImagesModule(**{**config["model"], "compile": True}, instructions=data.instructions())
    compiled.load_state_dict(model.state_dict())
    start = time.perf_counter()
    training_step_seconds(compiled, batch, repeats=1)  # the compile (its warm-up steps included)
    figures["compile_s"] = time.perf_counter() - start
    figures["train_samples_per_s_compiled"] = batch_size / training_step_seconds(compiled, batch, steps)
    return figures


def training_step_seconds(model: ActionImagesModule, batch: dict, repeats: int = 10) -> float:
    """Median seconds of one optimisation step (loss, backward, AdamW) on `batch`."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss, *_ = model.diffusion_loss(batch, model.sample_modes(batch["has_actions"]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return median_ms(step, repeats=repeats, warmup=2) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="pick_place episodes to collect (default 100)")
    args = parser.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        console.print(f"collect: {args.episodes} pick_place episodes, 128², 3 cameras, 2 workers")
        dataset = work / "pick_place"
        summary = collect(CollectConfig(tasks=("pick_place",), episodes=args.episodes, out=dataset, workers=2))
        console.print("loader: 0 and 2 workers")
        loader = {workers: loader_throughput(dataset, workers) for workers in (0, 2)}
        console.print("loader: 2 workers reading the decoded-frame cache")
        cached = loader_throughput(dataset, 2, frame_cache=work / "frame_cache")
        console.print("training step: sim_cpu")
        step = sim_cpu_step(dataset)
        train_samples_per_s = step["train_samples_per_s"]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    sim_path = RESULTS / "sim.json"
    sim = json.loads(sim_path.read_text()) if sim_path.exists() else {}
    figures = {
        **{key: value for key, value in sim.items() if key.startswith(("expert_success_", "calibration_hit_rate"))},
        f"collect_pick_place_{args.episodes}_s": summary["seconds"],
        "collect_episodes_per_minute": 60 * args.episodes / summary["seconds"],
        "collect_episodes_per_minute_per_core": 60 * args.episodes / summary["seconds"] / 2,
        "loader_samples_per_s": loader[2]["warm"],
        "loader_samples_per_s_first_pass": loader[2]["first_pass"],
        "loader_samples_per_s_0_workers": loader[0]["warm"],
        "loader_samples_per_s_0_workers_first_pass": loader[0]["first_pass"],
        "loader_samples_per_s_frame_cache": cached["warm"],
        "frame_cache_build_s": cached["build_s"],
        "train_samples_per_s": train_samples_per_s,
        "train_samples_per_s_compiled": step["train_samples_per_s_compiled"],
        "train_compile_speedup": step["train_samples_per_s_compiled"] / train_samples_per_s,
        "train_compile_s": step["compile_s"],
        "loader_over_train": loader[2]["warm"] / train_samples_per_s,
        "loader_frame_cache_over_train": cached["warm"] / train_samples_per_s,
    }
    path = write_results("data", figures)

    experts = [[key.removeprefix("expert_success_"), f"{100 * value:.0f} %"] for key, value in sorted(sim.items()) if key.startswith("expert_success_")]
    calibration = [
        ["worst camera" if key == "calibration_hit_rate" else key.removeprefix("calibration_hit_rate_"), f"{100 * value:.1f} %"]
        for key, value in sorted(sim.items()) if key.startswith("calibration_hit_rate")
    ]
    markdown = f"""
## Data: simulator, collection, loader

Command: `make bench` (this section: `python tools/bench_sim.py && python tools/bench_data.py --episodes {args.episodes}`),
on {machine_line()}. Results: `benchmarks/results/data.json` (and `sim.json`).

Scripted experts over 100 seeds each (`tools/bench_sim.py`):

{markdown_table(["task", "success"], experts) if experts else "(run tools/bench_sim.py)"}

Calibration: the end-effector position projected with the recorded calibration lands within 2 px of a
gripper pixel of MuJoCo's segmentation render (the gripper mask includes an 8 mm marker at the end-effector
point, drawn in segmentation only: the point itself sits between the open fingers, so against hand and
finger geometry alone the rates are lower — `calibration_gripper_only_*` in `sim.json`; frames where an
object hides the point are counted apart):

{markdown_table(["camera", "frames hit"], calibration) if calibration else "(run tools/bench_sim.py)"}

Collection and loading (the default CPU clip: 3 views × 5 frames, stride 3, 32², batch {BATCH}):

{markdown_table(["what", "figure"], [
    [f"collect {args.episodes} pick_place episodes, 128², 3 cameras, 2 workers", f"{summary['seconds']:.1f} s ({figures['collect_episodes_per_minute']:.0f} episodes/min, {figures['collect_episodes_per_minute_per_core']:.0f} per core)"],
    ["loader, 2 workers, first pass (decodes each episode once)", f"{loader[2]['first_pass']:.0f} samples/s"],
    ["loader, 2 workers, later epochs (episodes cached per worker)", f"{loader[2]['warm']:.0f} samples/s"],
    ["loader, 0 workers, first pass / later", f"{loader[0]['first_pass']:.0f} / {loader[0]['warm']:.0f} samples/s"],
    [f"decoded-frame cache (`data.frame_cache`): built once for {args.episodes} episodes", f"{cached['build_s']:.1f} s"],
    ["loader, 2 workers, reading the decoded-frame cache", f"{cached['warm']:.0f} samples/s ({figures['loader_frame_cache_over_train']:.1f}× the training step)"],
    ["training step consumption (configs/sim_cpu.yaml: model, batch, clip)", f"{train_samples_per_s:.0f} samples/s"],
    ["loader ÷ training step", f"{figures['loader_over_train']:.1f}×"],
    ["training step compiled (`model.compile`): consumption, against eager; the compile", f"{step['train_samples_per_s_compiled']:.0f} samples/s ({figures['train_compile_speedup']:.2f}×); {step['compile_s']:.0f} s"],
])}

Loader and step are measured one after the other, each with both cores.
"""
    update_section("data", markdown)
    console.print(markdown)
    console.print(f"wrote {path} and BENCHMARKS.md")


if __name__ == "__main__":
    main()
