"""Shared plumbing of the benchmark scripts: timing, result files and BENCHMARKS.md sections."""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"

HEADER = """# Benchmarks

Every figure below is written by a script; the command that produced each section is given with it.
`make bench` reruns them all. Ratios are against baselines measured in the same run, because this
machine is noisy.
"""


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The plan-sampling options of the diagnostics, defaulting to the evaluations' (`action-images eval
    --steps 2 --guidance-scale 2 --candidates 4`)."""
    parser.add_argument("--steps", type=int, default=2, help="Euler steps (default 2)")
    parser.add_argument("--guidance-scale", type=float, default=2.0, help="classifier-free guidance (default 2)")
    parser.add_argument("--candidates", type=int, default=4, help="plans drawn, the best by the goal readout kept (default 4)")


def sampling_options(args: argparse.Namespace) -> dict:
    """`load_policy` keyword arguments from `add_sampling_arguments`' options."""
    return {"steps": args.steps, "guidance_scale": args.guidance_scale, "candidates": args.candidates}


def last_checkpoint(run: Path) -> Path:
    found = sorted(Path(run).glob("**/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no last.ckpt under {run}: train it first (action-images fit)")
    return found[-1]


def fit_command(config: str, out: Path, datasets: list[Path], minutes: int, steps: int, frame_cache: Path) -> list[str]:
    """`action-images fit` of `config` on `datasets` into `out`, stopped by `minutes` or `steps`, whichever comes first."""
    command = [
        str(Path(sys.executable).parent / "action-images"), "fit", "--config", config,
        "--data.datasets", "[" + ", ".join(str(d) for d in datasets) + "]", "--data.frame_cache", str(frame_cache),
        "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
        "--trainer.max_time", f"00:00:{minutes:02d}:00", "--trainer.max_steps", str(steps), "--model.init_args.max_steps", str(steps),
        "--trainer.val_check_interval", str(max(1, steps // 4)),
    ]
    if "baseline" not in config:
        command += ["--model.init_args.samples_dir", str(out / "samples")]
    return command


def augment_with(checkpoint: Path, data: Path, target: Path, **options) -> dict:
    """`action-images augment` of `data` into a fresh `target` by the model at `checkpoint`, on the clip shape it
    was trained on; `options` go to `augment_dataset` (per_episode, include_source, seed, ...)."""
    import shutil

    from action_images.augment import augment_dataset
    from action_images.evaluate import training_clip
    from action_images.label import load_pipeline

    shutil.rmtree(target, ignore_errors=True)
    return augment_dataset(load_pipeline(checkpoint), data, target, **training_clip(checkpoint), **options)


def run_minutes(run: Path) -> float:
    """Wall-clock minutes of a training run: from its hparams file to its last checkpoint."""
    checkpoint = last_checkpoint(run)
    hparams = sorted(Path(run).glob("**/hparams.yaml"), key=lambda p: p.stat().st_mtime)
    return (checkpoint.stat().st_mtime - hparams[-1].stat().st_mtime) / 60 if hparams else float("nan")


def metric_points(metrics: Path, key: str, scale: float = 1.0) -> list[tuple[int, float]]:
    """(step, value × scale) of every row of a Lightning CSVLogger `metrics.csv` that logged `key`."""
    with open(metrics) as handle:
        return [(int(row["step"]), scale * float(row[key])) for row in csv.DictReader(handle) if row.get(key)]


def plot_axes():
    """A figure and axis of the benchmark plots' size, drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 3.5))


def save_plot(figure, axis, out: Path, xlabel: str, ylabel: str) -> None:
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)


def median_ms(function: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median milliseconds of `function()`; GPU work is waited for (kernels launch asynchronously)."""
    synchronize = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def machine_line() -> str:
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}{gpu}"
    )


def write_results(name: str, figures: dict[str, float]) -> Path:
    return write_json(RESULTS / f"{name}.json", figures)


def write_json(path: Path, figures: dict[str, float]) -> Path:
    """Atomically, sorted, NaN as null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    # Strict JSON has no NaN: a figure that could not be measured is null.
    clean = {key: (None if isinstance(value, float) and not math.isfinite(value) else value) for key, value in figures.items()}
    temporary.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
    return path


def update_section(name: str, markdown: str) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md, leaving the others as they are."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    temporary = BENCHMARKS_MD.with_suffix(".md.tmp")
    temporary.write_text(text)
    temporary.replace(BENCHMARKS_MD)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def step_costs(policies: dict[str, object], observation: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """{key: (seconds, GFLOPs)} of one replanning control step (views → one action chunk → per-step
    targets) per policy. Timings are interleaved — one plan of each policy in turn, `repeats` rounds,
    median — so every ratio compares policies under the same load on this noisy machine."""
    flops = {}
    for key, policy in policies.items():
        policy.reset()
        with FlopCounterMode(display=False) as counter:
            policy.plan(observation)
        flops[key] = counter.get_total_flops() / 1e9
        policy.plan(observation)  # warm-up
    times: dict[str, list[float]] = {key: [] for key in policies}
    for _ in range(repeats):
        for key, policy in policies.items():
            start = time.perf_counter()
            policy.plan(observation)
            times[key].append(time.perf_counter() - start)
    return {key: (statistics.median(times[key]), flops[key]) for key in policies}
