"""The three uses, measured in one run (issue: the uses): closed-loop control, labelling, augmentation.

    python tools/bench_uses.py --model runs/sim_cpu --baseline runs/baseline_sim_cpu --episodes 50

Given a trained Action Images run and a baseline run (both `action-images fit`, same data, same
budget), on seeded simulator episodes no training saw:
- success per task, closed loop (replanning every `--replan-every` steps), open loop (the paper's
  protocol: one generation executed whole), and the baseline; zero-shot: the held-out tasks and the
  camera placements of `configs/splits/sim_zero_shot.yaml`;
- policy latency per control step (a replanning step) for the `joint` and the `policy` canvas, and
  against the number of sampling steps;
- labelling (`action-images label`) of held-out episodes with their poses hidden: position error and
  gripper accuracy;
- augmentation (`action-images augment`) throughput; the success of a baseline trained on real +
  augmented episodes against real alone is `tools/bench_augment.py`'s (its figures are kept here).
Writes benchmarks/results/uses.json (or `--out`) and, unless `--no-markdown`, the "uses" section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import evaluate_checkpoint, load_policy, success_markdown  # noqa: E402
from action_images.policy import ActionImagesPolicy  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from tools.benchlib import RESULTS, augment_with, last_checkpoint, machine_line, median_ms, run_minutes, update_section, write_json  # noqa: E402

AUGMENT_THROUGHPUT = ("augment_episodes_per_s", "augment_frames_per_s")  # this script's own augment_* figures
SPLIT = Path(__file__).resolve().parent.parent / "configs" / "splits" / "sim_zero_shot.yaml"


def evaluated(out: Path, resume: bool, checkpoint: Path, label: str, tasks: list[str], episodes: int, **options) -> dict:
    """`evaluate_checkpoint`, or with `resume` the table a previous run left under `out` for exactly the same
    checkpoint (path and modification time), tasks, episodes and options — so a bench cut off after its
    success tables (the bulk of its time) picks up where it stopped."""
    record = {"checkpoint": str(checkpoint), "checkpoint_mtime": checkpoint.stat().st_mtime, "tasks": list(tasks),
              "episodes": episodes, **options}
    record_path, table_path = out / f"{label}_made_by.json", out / f"{label}_success.json"
    if resume and record_path.exists() and table_path.exists() and json.loads(record_path.read_text()) == record:
        Console().print(f"[green]reusing {table_path} (same checkpoint, tasks, episodes and options)")
        return json.loads(table_path.read_text())
    record_path.unlink(missing_ok=True)
    table = evaluate_checkpoint(checkpoint, label, tasks, episodes, out, **options)
    write_json(record_path, record)
    return table


def canvas_policy(checkpoint: Path, mode: str, steps: int) -> ActionImagesPolicy:
    """A policy replanning every step on `mode`'s canvas. A model trained on the policy canvas alone never
    learned to draw RGB, so `load_policy` refuses it the joint canvas; its cost does not depend on what
    the weights learned, so the cost of the joint canvas is measured on the same weights all the same."""
    policy = load_policy(checkpoint, cameras=None, mode="policy", replan_every=1, steps=steps)
    if mode == "policy":
        return policy
    return ActionImagesPolicy(policy.pipeline, policy.cameras, num_frames=policy.num_frames, stride=policy.stride,
                              image_size=policy.image_size, mode=mode, replan_every=1, steps=steps)


def policy_latency(checkpoint: Path, console: Console) -> dict[str, float]:
    """Seconds per replanning control step: one generation + decoding + targets, on a live observation."""
    env = make_env("pick_place", image_size=128)
    observation, _ = env.reset(seed=123)
    figures = {}
    for mode in ("joint", "policy"):
        policy = canvas_policy(checkpoint, mode, steps=10)
        figures[f"policy_step_latency_s_{mode}"] = median_ms(lambda: policy.select_action(observation), repeats=5) / 1000
    for steps in (1, 5, 10, 20):
        policy = load_policy(checkpoint, cameras=None, mode="policy", replan_every=1, steps=steps)
        figures[f"policy_step_latency_s_policy_{steps}_steps"] = median_ms(lambda: policy.select_action(observation), repeats=3) / 1000
    figures["policy_step_latency_s"] = figures["policy_step_latency_s_policy"]
    figures["policy_canvas_cost_ratio"] = figures["policy_step_latency_s_policy"] / figures["policy_step_latency_s_joint"]
    env.close()
    console.print(f"latency per replanning step: joint {figures['policy_step_latency_s_joint']:.3f} s, policy {figures['policy_step_latency_s_policy']:.3f} s")
    return figures


def held_out_dataset(out: Path, tasks: list[str], episodes: int, seed: int) -> Path:
    """A small dataset of unseen seeds, collected with the real command."""
    path = out / "held_out_data"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "action_images.cli", "collect", "--task", *tasks, "--episodes", str(episodes),
                        "--out", str(path), "--workers", "2", "--seed", str(seed)], check=True)
    return path


def label_figures(checkpoint: Path, data: Path, out: Path, steps: int = 10) -> dict[str, float]:
    """`action-images label` of `data` (poses hidden but the first) → error against its recorded poses."""
    from action_images.evaluate import training_clip
    from action_images.label import label_dataset, load_pipeline

    target = out / "labelled"
    shutil.rmtree(target, ignore_errors=True)
    summary = label_dataset(load_pipeline(checkpoint), data, target, steps=steps, **training_clip(checkpoint))
    return {
        "label_pos_err_cm": summary["position_error_cm_median"], "label_rot_err_deg": summary["rotation_error_deg_median"],
        "label_gripper_accuracy": summary["gripper_accuracy"], "label_frames_per_s": summary["frames_per_s"],
        "label_confident_fraction": summary["confident_fraction"],
    }


def augment_figures(checkpoint: Path, data: Path, out: Path, per_episode: int) -> dict[str, float]:
    summary = augment_with(checkpoint, data, out / "augmented", per_episode=per_episode)
    return {key: summary[key.removeprefix("augment_")] for key in AUGMENT_THROUGHPUT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/sim_cpu"), help="the Action Images run folder")
    parser.add_argument("--baseline", type=Path, default=Path("runs/baseline_sim_cpu"), help="the baseline run folder")
    parser.add_argument("--tasks", nargs="+", default=["reach", "push", "pick_place"])
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task and policy (default 50)")
    parser.add_argument("--replan-every", type=int, default=3, help="closed-loop replanning period, control steps (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps (default 10)")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="our policy's classifier-free guidance (default 1: none)")
    parser.add_argument("--candidates", type=int, default=1, help="our policy's plans per generation, best by its goal readout (default 1)")
    parser.add_argument("--keep-plan", action="store_true", help="our policy keeps its plan at a replan unless a new one scores higher")
    parser.add_argument("--labeller", type=Path, default=None,
                        help="the run that labels (default: --model); e.g. a v2a-only run of configs/labeller_sim_cpu.yaml")
    parser.add_argument("--label-episodes", type=int, default=5, help="held-out episodes per task to label (default 5)")
    parser.add_argument("--augment-per-episode", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/uses"), help="videos, tables and datasets")
    parser.add_argument("--results", type=Path, default=None, help="results JSON (default: benchmarks/results/uses.json)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse success tables a previous run left in --out for the same checkpoint, tasks, episodes and options")
    parser.add_argument("--no-markdown", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    console = Console()
    torch.manual_seed(0)
    start = time.perf_counter()
    split = yaml.safe_load(SPLIT.read_text())
    model, baseline = last_checkpoint(args.model), last_checkpoint(args.baseline)
    args.out.mkdir(parents=True, exist_ok=True)
    horizon = None  # open loop: the whole generated horizon
    ours = {"steps": args.steps, "guidance_scale": args.guidance_scale, "candidates": args.candidates, "keep_plan": args.keep_plan}

    run = lambda checkpoint, label, tasks, **options: evaluated(args.out, args.resume, checkpoint, label, list(tasks), args.episodes, **options)  # noqa: E731
    tables = {
        "ours, closed loop": run(model, "closed", args.tasks, replan_every=args.replan_every, **ours),
        "ours, open loop": run(model, "open", args.tasks, replan_every=horizon, **ours),
        "baseline": run(baseline, "baseline", args.tasks, replan_every=args.replan_every, steps=args.steps),
    }
    zero_shot = {
        "ours, unseen tasks": run(model, "zeroshot_tasks", split["held_out_tasks"], replan_every=args.replan_every, **ours),
        "ours, unseen camera placements": run(model, "zeroshot_cameras", args.tasks, replan_every=args.replan_every,
                                              camera_jitter=split["held_out_camera_jitter"], **ours),
        "baseline, unseen tasks": run(baseline, "baseline_zeroshot_tasks", split["held_out_tasks"], replan_every=args.replan_every, steps=args.steps),
    }
    figures: dict[str, float] = {"episodes_per_task": args.episodes, "replan_every": args.replan_every, "sample_steps": args.steps,
                                 "guidance_scale": args.guidance_scale, "candidates": args.candidates, "keep_plan": float(args.keep_plan)}
    for key, table in (("closed", tables["ours, closed loop"]), ("open", tables["ours, open loop"]), ("baseline", tables["baseline"]),
                       ("zeroshot", zero_shot["ours, unseen tasks"]), ("zeroshot_cameras", zero_shot["ours, unseen camera placements"])):
        for task, row in table.items():
            figures[f"success_{key}_{task}"] = row["success"]
    figures["train_minutes"] = run_minutes(args.model)
    figures["baseline_train_minutes"] = run_minutes(args.baseline)
    results = args.results or RESULTS / "uses.json"
    # the gain needs two more trainings: tools/bench_augment.py measures it and merges its `augment_*` figures into
    # this file; keep them (read before the first save below overwrites the file), but not an earlier throughput
    earlier = json.loads(results.read_text()) if results.exists() else {}
    figures |= {key: value for key, value in earlier.items() if key.startswith("augment_") and key not in AUGMENT_THROUGHPUT}
    figures.setdefault("augment_success_gain", float("nan"))
    save = lambda: write_json(results, figures)  # noqa: E731
    save()  # the success tables took most of the time: keep them whatever comes next
    figures.update(policy_latency(model, console))

    data = held_out_dataset(args.out, args.tasks, args.label_episodes, seed=split["held_out_seed"])
    draws_rgb = torch.load(model, map_location="cpu", weights_only=True)["hyper_parameters"].get("canvas", "joint") != "policy"
    labeller = last_checkpoint(args.labeller) if args.labeller else model
    if args.labeller or draws_rgb:
        figures.update(label_figures(labeller, data, args.out))
    else:  # v2a and a2v need the joint canvas, which a policy-canvas model never trained on
        console.print(f"[yellow]{args.model} was trained on the policy canvas alone: no labelling (pass --labeller RUN) and no augmentation")
    if draws_rgb:
        figures.update(augment_figures(model, data, args.out, args.augment_per_episode))
    figures["uses_minutes"] = (time.perf_counter() - start) / 60
    path = save()
    (args.out / "tables.md").write_text(success_markdown(tables) + "\n\nZero-shot:\n\n" + success_markdown(zero_shot) + "\n")
    console.print(success_markdown(tables))
    console.print(success_markdown(zero_shot))
    console.print(f"wrote {path}")
    if not args.no_markdown:
        update_section("uses", section(args, tables, zero_shot, figures))


def section(args, tables: dict, zero_shot: dict, figures: dict) -> str:
    rows = [
        ("policy latency per replanning step, joint / policy canvas", f"{figures['policy_step_latency_s_joint']:.3f} / {figures['policy_step_latency_s_policy']:.3f} s "
         f"(policy = {figures['policy_canvas_cost_ratio']:.2f}× joint)"),
        ("policy canvas latency, 1 / 5 / 10 / 20 sampling steps", " / ".join(f"{figures[f'policy_step_latency_s_policy_{s}_steps']:.3f}" for s in (1, 5, 10, 20)) + " s"),
        ("labelling: position error median, rotation median, gripper", f"{figures['label_pos_err_cm']:.2f} cm, {figures['label_rot_err_deg']:.1f}°, "
         f"{figures['label_gripper_accuracy']:.0%}" if "label_pos_err_cm" in figures else "not measured (a policy-canvas model; pass --labeller)"),
        ("labelling throughput", f"{figures['label_frames_per_s']:.1f} frames/s" if "label_frames_per_s" in figures else "—"),
        ("augmentation throughput", f"{figures['augment_episodes_per_s']:.2f} episodes/s, {figures['augment_frames_per_s']:.1f} frames/s"
         if "augment_episodes_per_s" in figures else "not measured (a policy-canvas model draws no RGB)"),
        ("training minutes, ours / baseline", f"{figures['train_minutes']:.0f} / {figures['baseline_train_minutes']:.0f}"),
    ]
    table = "\n".join(["| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])
    return f"""## The uses: control, labelling, augmentation

Command: `python tools/bench_uses.py --model {args.model} --baseline {args.baseline} --episodes {args.episodes} --steps {args.steps} \
--guidance-scale {args.guidance_scale:g} --candidates {args.candidates}{" --keep-plan" if args.keep_plan else ""}{f" --labeller {args.labeller}" if args.labeller else ""}`, on {machine_line()}.
Results: `benchmarks/results/uses.json`; episode videos (real views, imagined RGB, imagined action images) in `{args.out}/videos/`.
Seeded episodes from seed 100000 (collection uses 0…); closed loop replans every {args.replan_every} control steps, open loop
executes each generation whole (the paper's protocol); {args.steps} Euler steps; our policy with guidance {args.guidance_scale:g} and the best of
{args.candidates} plan(s) by its goal readout{", keeping its plan unless a new one scores higher" if args.keep_plan else ""} (the baseline has neither). Cells: success [95 % Wilson interval].

{success_markdown(tables)}

Zero-shot (`configs/splits/sim_zero_shot.yaml`: tasks and camera placements no training episode had):

{success_markdown(zero_shot)}

{table}
"""


if __name__ == "__main__":
    main()
