"""Evaluate a trained model on held-out episodes and measure its costs (issue: the model).

    action-images collect --task reach push pick_place --episodes 100 --out data/sim --workers 2
    action-images fit --config configs/sim_cpu.yaml                        # ≤ 60 minutes on 2 cores
    python tools/bench_model.py --run runs/sim_cpu --config configs/sim_cpu.yaml

Held-out episodes are the data module's validation split (by episode). For clips starting every few
frames of each held-out episode:
- `joint`: from the first RGB and action frame of every view, generate the future; decode the last
  generated action frame; compare with the recorded end-effector pose. Baselines on the same clips:
  no motion (the current pose) and the mean trajectory (the training clips' mean displacement applied
  from the current pose);
- `v2a`: label every frame of the clip's RGB; per-frame position error;
- `a2v`: generate future RGB from all action frames; PSNR against the recording, and the PSNR of
  repeating the first frame.
Costs: a training step of the config (batch as configured), peak memory, the loader, sampling
latency per mode and against the number of steps, and FLOPs per generation (torch.utils.flop_counter).
Writes benchmarks/results/model.json, a training-curve PNG and the "model" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from lightning.fabric.utilities.apply_func import move_data_to_device
from rich.console import Console
from rich.progress import track
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.canvas import Mode  # noqa: E402
from action_images.evaluate import CLIP_KEYS, checkpoint_clip, resolve_device  # noqa: E402
from action_images.module import ActionImagesModule  # noqa: E402
from datamodules.datamodule import RobotDataModule  # noqa: E402
from rendering.cameras import Cameras  # noqa: E402
from rendering.decoder import decode_action_images  # noqa: E402
from rendering.rotations import geodesic_angle  # noqa: E402
from tools.benchlib import RESULTS, machine_line, markdown_table, median_ms, metric_points, plot_axes, save_plot, step_costs, update_section, write_results  # noqa: E402

EVAL_BATCH = 8


def latest(run: Path, pattern: str, required: bool = True) -> Path | None:
    found = sorted(run.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found and required:
        raise FileNotFoundError(f"{run}: nothing matches {pattern}")
    return found[-1] if found else None


def held_out_config(config: Path, stored: dict, **overrides) -> dict:
    """The data block of `config` at the clip shape of a loaded checkpoint (`stored`): held-out episodes come
    from the config, the clip shape from the checkpoint, so a run trained at another image size or stride
    (e.g. `--data.image_size 64`) is judged on the clips it was made for."""
    trained_clip = checkpoint_clip(stored)
    return {**yaml.safe_load(config.read_text())["data"], **{k: trained_clip[k] for k in CLIP_KEYS if k in trained_clip}, **overrides}


def held_out_batches(data: RobotDataModule, every: int) -> list[dict]:
    """Clips of the validation episodes starting every `every` frames, batched."""
    clips = data.val_set.datasets[0]
    indices = [i for i in range(len(clips)) if clips.locate(i)[1] % every == 0]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(clips, indices), batch_size=EVAL_BATCH)
    return list(loader)


def pooled_psnr(squared_errors: torch.Tensor) -> float:
    """PSNR of the mean of per-image squared errors: the PSNR of all held-out pixels together. Averaging
    per-image PSNRs instead lets the clips past an episode's end, where nothing moves and repeating the
    first frame is exact (100 dB), dominate the repeat baseline."""
    return (10 * torch.log10(1 / squared_errors.mean().clamp(min=1e-10))).item()


def evaluate(model: ActionImagesModule, batches: list[dict], mean_displacement: torch.Tensor, steps: int,
             modes: list[Mode] = (Mode.JOINT, Mode.V2A, Mode.A2V)) -> dict[str, float]:
    """Held-out figures of the generating `modes` (`joint` and `policy`: the future from the first
    frames; `v2a`: labels of every frame; `a2v`: future RGB) and the no-motion / mean-trajectory baselines."""
    collected: dict[str, list[torch.Tensor]] = {}

    def add(key: str, value: torch.Tensor) -> None:
        collected.setdefault(key, []).append(value.detach().flatten().float().cpu())

    for index, batch in enumerate(track(batches, description="held-out clips", transient=True)):
        on_model = move_data_to_device(batch, model.device)  # the model generates there; the decoder and figures stay on the CPU
        generator = torch.Generator().manual_seed(index)
        height, width = batch["rgb"].shape[-2:]
        cameras = Cameras(batch["intrinsics"], batch["extrinsics"], height, width)
        final, current = batch["positions"][:, -1], batch["positions"][:, 0]
        add("no_motion_cm", (current - final).norm(dim=-1) * 100)
        add("mean_trajectory_cm", (current + mean_displacement - final).norm(dim=-1) * 100)
        for frame in range(1, batch["positions"].shape[1]):
            add(f"frame{frame}_no_motion_cm", (current - batch["positions"][:, frame]).norm(dim=-1) * 100)

        for mode in (m for m in (Mode.JOINT, Mode.POLICY) if m in modes):  # control: predict the future
            name = mode.value
            decoded = decode_action_images(model.generate(on_model, mode, steps=steps, generator=generator)["action_images"].cpu(), cameras)
            add(f"{name}_pos_cm", (decoded.positions[:, -1] - final).norm(dim=-1) * 100)
            add(f"{name}_rot_deg", torch.rad2deg(geodesic_angle(decoded.rotations[:, -1], batch["rotations"][:, -1])))
            add(f"{name}_gripper", decoded.gripper_open[:, -1] == (batch["gripper"][:, -1] > 0.5))
            add(f"{name}_confident", decoded.confidence[:, -1])
            for frame in range(1, batch["positions"].shape[1]):  # how the error grows with the horizon
                add(f"frame{frame}_{name}_pos_cm", (decoded.positions[:, frame] - batch["positions"][:, frame]).norm(dim=-1) * 100)

        if Mode.V2A in modes:
            v2a = model.generate(on_model, Mode.V2A, steps=steps, generator=generator)
            labelled = decode_action_images(v2a["action_images"].cpu(), cameras)
            v2a_cm = (labelled.positions - batch["positions"]).norm(dim=-1) * 100
            add("v2a_pos_cm", v2a_cm[:, 1:])
            for frame in range(1, v2a_cm.shape[1]):
                add(f"frame{frame}_v2a_pos_cm", v2a_cm[:, frame])

        if Mode.A2V in modes:
            a2v = model.generate(on_model, Mode.A2V, steps=steps, generator=generator)
            future, truth = a2v["rgb"][:, :, 1:].cpu(), batch["rgb"][:, :, 1:]
            add("a2v_mse", (future - truth).square().flatten(3).mean(3))
            add("repeat_mse", (batch["rgb"][:, :, :1] - truth).square().flatten(3).mean(3))

    figures = {}
    for key, parts in collected.items():
        values = torch.cat(parts)
        finite = values[torch.isfinite(values)]
        if key.endswith("_mse"):
            figures[key.replace("_mse", "_psnr")] = pooled_psnr(values)
        elif key.endswith(("_cm", "_deg")):
            figures[f"{key}_median"] = finite.median().item() if finite.numel() else math.nan
            figures[f"{key}_p90"] = finite.quantile(0.9).item() if finite.numel() else math.nan
            figures[f"{key}_undecoded"] = 1 - finite.numel() / max(1, values.numel())
        else:
            figures[key] = values.mean().item()
    return figures


def mean_training_displacement(data: RobotDataModule, limit: int = 2000) -> torch.Tensor:
    clips = data.train_set.datasets[0]
    picks = np.linspace(0, len(clips) - 1, min(limit, len(clips))).astype(int)
    moves = []
    for i in picks:
        episode, start = clips.locate(int(i))
        poses = clips.source.poses(episode)
        frames = np.minimum(start + clips.config.stride * np.arange(clips.config.num_frames), len(poses) - 1)
        moves.append(poses[frames[-1], :3] - poses[frames[0], :3])
    return torch.from_numpy(np.mean(moves, 0)).float()


def costs(model: ActionImagesModule, batch: dict, data_batch_size: int) -> dict[str, float]:
    from tools.bench_data import training_step_seconds

    batch = move_data_to_device(batch, model.device)
    figures: dict[str, float] = {"train_step_s": training_step_seconds(model, batch)}
    figures["train_samples_per_s"] = data_batch_size / figures["train_step_s"]
    model.eval()
    one = {k: (v[:1] if torch.is_tensor(v) or isinstance(v, list) else v) for k, v in batch.items()}
    for mode in (Mode.JOINT, Mode.POLICY):
        figures[f"sample_latency_s_{mode.value}"] = median_ms(lambda: model.generate(one, mode, steps=10), repeats=3) / 1000
        counter = FlopCounterMode(display=False)
        with counter:
            model.generate(one, mode, steps=10)
        figures[f"gflops_{mode.value}"] = counter.get_total_flops() / 1e9
    for mode in (Mode.JOINT, Mode.POLICY):
        for steps in (1, 2, 3, 5, 10, 20):
            figures[f"sample_latency_s_{mode.value}_{steps}_steps"] = median_ms(lambda: model.generate(one, mode, steps=steps), repeats=3) / 1000
    figures["peak_memory_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if model.device.type == "cuda":
        figures["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(model.device) / 2**30
    return figures


def control_step_costs(model: ActionImagesModule, data_config: dict, repeats: int = 15) -> dict[str, float]:
    """Seconds and GFLOPs of one replanning control step (a live simulator observation → targets:
    resize, render the current pose, generate, decode) for `joint` at 10 Euler steps and the `policy`
    canvas at 1–10, timed interleaved (`tools.benchlib.step_costs`)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from action_images.pipeline import ActionImagesPipeline
    from action_images.policy import ActionImagesPolicy
    from action_images.sim import make_env

    pipeline = ActionImagesPipeline(model, FlowMatchEulerDiscreteScheduler(shift=model.hparams.timestep_shift))
    env = make_env("reach", image_size=128)
    observation, _ = env.reset(seed=100_000)
    clip = dict(num_frames=data_config["num_frames"], stride=data_config["stride"], image_size=data_config["image_size"])
    settings = [("joint", 10), *(("policy", steps) for steps in (10, 5, 3, 2, 1))]
    policies = {f"{mode}_{steps}": ActionImagesPolicy(pipeline, env.camera_names, mode=mode, steps=steps, **clip) for mode, steps in settings}
    costs = step_costs(policies, observation, repeats)
    env.close()
    figures = {}
    for key, (seconds, gflops) in costs.items():
        figures[f"control_step_s_{key}_steps"] = seconds
        figures[f"control_step_gflops_{key}_steps"] = gflops
        figures[f"control_step_ratio_{key}_steps_vs_joint_10"] = seconds / costs["joint_10"][0]
    return figures


def training_curve(metrics: Path, out: Path) -> None:
    train, val = metric_points(metrics, "train/loss"), metric_points(metrics, "val/loss")
    figure, axis = plot_axes()
    if train:
        steps, losses = zip(*train)
        window = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axis.plot(steps[window - 1 :], smooth, label="train loss (running mean)")
    if val:
        axis.plot(*zip(*val), "o-", label="validation loss")
    axis.set_yscale("log")
    save_plot(figure, axis, out, "step", "flow-matching loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/sim_cpu"), help="the training run's folder")
    parser.add_argument("--config", type=Path, default=Path("configs/sim_cpu.yaml"))
    parser.add_argument("--every", type=int, default=4, help="a held-out clip every N frames (default 4)")
    parser.add_argument("--steps", type=int, default=10, help="Euler steps (default 10)")
    parser.add_argument("--results", default="model",
                        help="name of the results JSON in benchmarks/results (default: model; BENCHMARKS.md's model section is written only for it)")
    parser.add_argument("--device", default="auto", help="where the model runs: cpu, cuda … (default: auto, the first GPU if there is one)")
    parser.add_argument("--step-sweep", type=int, nargs="*", default=[1, 2, 3, 5, 10],
                        help="also measure every generating mode's figure (final-position error, v2a error, a2v PSNR) at these Euler step counts, on a quarter of the clips")
    args = parser.parse_args()
    console = Console()
    torch.manual_seed(0)

    checkpoint = latest(args.run, "**/last.ckpt")
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    step = stored["global_step"]
    data_config = held_out_config(args.config, stored)
    data = RobotDataModule(**{**data_config, "num_workers": 0})
    data.setup()
    model = ActionImagesModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval().to(resolve_device(args.device))
    metrics = latest(args.run, "**/metrics.csv", required=False)  # absent when TensorBoard logged the run
    train_minutes = (checkpoint.stat().st_mtime - (checkpoint.parents[1] / "hparams.yaml").stat().st_mtime) / 60

    batches = held_out_batches(data, args.every)
    modes = model.trained_modes
    console.print(f"evaluating {checkpoint} (step {step}, modes {[m.value for m in modes]}) on {sum(len(b['instruction']) for b in batches)} held-out clips")
    quality = evaluate(model, batches, mean_training_displacement(data), args.steps, modes)
    sweep = {}
    for steps in args.step_sweep:  # the sampling lever: every generating mode's figure against Euler steps
        some = evaluate(model, batches[::4], torch.zeros(3), steps, modes)
        sweep.update({f"{m.value}_final_pos_err_cm_{steps}_steps": some[f"{m.value}_pos_cm_median"] for m in modes if m in (Mode.JOINT, Mode.POLICY)})
        if "v2a_pos_cm_median" in some:
            sweep[f"v2a_pos_err_cm_{steps}_steps"] = some["v2a_pos_cm_median"]
        if "a2v_psnr" in some:  # fewer steps land nearer the posterior mean: blurrier, higher PSNR
            sweep[f"a2v_psnr_db_{steps}_steps"] = some["a2v_psnr"]
            sweep[f"a2v_psnr_repeat_first_frame_db_{steps}_steps"] = some["repeat_psnr"]
    train_batch = next(iter(data.train_dataloader()))
    cost = costs(model, train_batch, data_config["batch_size"])
    cost.update(control_step_costs(model, data_config))
    from tools.bench_data import loader_throughput

    loader = loader_throughput(Path(data_config["datasets"][0]), workers=2, frame_cache=data_config.get("frame_cache"))["warm"]

    frames = data_config["num_frames"]
    figures = {
        "train_minutes": train_minutes,
        "train_steps": step,
        "modes": [m.value for m in modes],
        **cost,
        "loader_samples_per_s": loader,
        "baseline_no_motion_final_pos_err_cm": quality["no_motion_cm_median"],
        "baseline_mean_trajectory_final_pos_err_cm": quality["mean_trajectory_cm_median"],
        "no_motion_cm_per_frame": [quality[f"frame{k}_no_motion_cm_median"] for k in range(1, frames)],
        "held_out_clips": sum(len(b["instruction"]) for b in batches),
        "sample_steps": args.steps,
        **sweep,
    }
    for name in ("joint", "policy"):
        if f"{name}_pos_cm_median" in quality:
            figures.update({
                f"{name}_final_pos_err_cm": quality[f"{name}_pos_cm_median"],
                f"{name}_final_pos_err_cm_p90": quality[f"{name}_pos_cm_p90"],
                f"{name}_final_rot_err_deg": quality[f"{name}_rot_deg_median"],
                f"{name}_gripper_accuracy": quality[f"{name}_gripper"],
                f"{name}_confident": quality[f"{name}_confident"],
                f"{name}_pos_cm_per_frame": [quality[f"frame{k}_{name}_pos_cm_median"] for k in range(1, frames)],
            })
    if "v2a_pos_cm_median" in quality:
        figures["v2a_pos_err_cm"] = quality["v2a_pos_cm_median"]
        figures["v2a_pos_cm_per_frame"] = [quality[f"frame{k}_v2a_pos_cm_median"] for k in range(1, frames)]
    if "a2v_psnr" in quality:
        figures["a2v_psnr_db"], figures["a2v_psnr_repeat_first_frame_db"] = quality["a2v_psnr"], quality["repeat_psnr"]
    write_results(args.results, figures)
    if metrics is not None:
        training_curve(metrics, RESULTS / f"{args.results}_training_curve.png")
    samples = sorted((args.run / "samples").glob("step_*"))
    if samples:
        shutil.copytree(samples[-1], RESULTS / f"{args.results}_samples", dirs_exist_ok=True)
    if args.results != "model":
        console.print(figures)
        return
    rows = [
        ["joint: final position error, median (p90)", f"{figures['joint_final_pos_err_cm']:.2f} cm ({figures['joint_final_pos_err_cm_p90']:.2f})"],
        ["joint: final rotation error, median", f"{figures['joint_final_rot_err_deg']:.1f}°"],
        ["joint: gripper state correct", f"{100 * figures['joint_gripper_accuracy']:.0f} %"],
        ["baseline: no motion", f"{figures['baseline_no_motion_final_pos_err_cm']:.2f} cm"],
        ["baseline: mean trajectory", f"{figures['baseline_mean_trajectory_final_pos_err_cm']:.2f} cm"],
        ["v2a (labelling): per-frame position error, median", f"{figures['v2a_pos_err_cm']:.2f} cm"],
        ["a2v: PSNR of generated RGB / repeating the first frame", f"{figures['a2v_psnr_db']:.2f} / {figures['a2v_psnr_repeat_first_frame_db']:.2f} dB"],
        ["training", f"{figures['train_minutes']:.0f} min, {step} steps, {figures['train_step_s']:.2f} s/step"],
        ["data: loader / training step consumption", f"{loader:.0f} / {figures['train_samples_per_s']:.0f} samples/s ({loader / figures['train_samples_per_s']:.1f}×)"],
        ["peak memory (this process)", f"{figures['peak_memory_gb']:.2f} GB"],
        ["sampling latency, 10 steps: joint / policy canvas", f"{figures['sample_latency_s_joint']:.3f} / {figures['sample_latency_s_policy']:.3f} s"],
        ["sampling latency, joint, 1 / 5 / 10 / 20 steps", " / ".join(f"{figures[f'sample_latency_s_joint_{s}_steps']:.3f}" for s in (1, 5, 10, 20)) + " s"],
        ["GFLOPs per generation, joint / policy", f"{figures['gflops_joint']:.2f} / {figures['gflops_policy']:.2f}"],
    ]
    markdown = f"""
## The model: `sim_cpu`

Commands: `action-images collect --task reach push pick_place --episodes 100 --out data/sim --workers 2`,
`action-images fit --config configs/sim_cpu.yaml`, then
`python tools/bench_model.py --run {args.run} --config {args.config}`; on {machine_line()}.
Results: `benchmarks/results/model.json`, the training curve `benchmarks/results/model_training_curve.png`,
sample videos (RGB | action images | overlay, rows; views side by side) in `benchmarks/results/model_samples/`.

Held-out episodes: the validation split by episode ({figures['held_out_clips']} clips, one every {args.every} frames),
{args.steps} Euler steps, decoded by `rendering.decode_action_images`.

{markdown_table(["figure", "value"], rows)}

![training curve](benchmarks/results/model_training_curve.png)
"""
    update_section("model", markdown)
    console.print(markdown)


if __name__ == "__main__":
    main()
