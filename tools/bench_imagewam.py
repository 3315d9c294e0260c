"""ImageWAM against Action Images on the same data, budget and episodes (issue: the second backbone).

    python tools/bench_imagewam.py --actionimages runs/sim_cpu --imagewam runs/imagewam_sim_cpu \\
        --nocache runs/imagewam_noedit_sim_cpu --baseline runs/baseline_sim_cpu --episodes 50

    # Action Images trained on the policy canvas (--actionimages) and on the joint canvas (--joint) with one
    # recipe, both evaluated at their best inference settings; the joint canvas's default sampler is the cost reference
    python tools/bench_imagewam.py --actionimages runs/cmp_actionimages --joint runs/cmp_actionimages_joint \\
        --imagewam runs/imagewam_readout_s1_long --nocache runs/cmp_imagewam_nocache --baseline runs/cmp_baseline \\
        --episodes 50 --actionimages-options '{"steps": 2, "guidance_scale": 2, "candidates": 4, "keep_plan": true}'

(The trainings: `benchmarks/results/imagewam_comparison_train.sh`.) Every run is an `action-images fit` on the
same dataset within the same minutes. On the same seeded
simulator episodes (seed 100000…, unseen by collection), closed loop, replanning every
`--replan-every` control steps:
- Action Images with the `joint` canvas (RGB and action images generated together) and with the
  `policy` canvas (action images only);
- ImageWAM (one prefix pass fills the editing cache, then the action expert's Euler steps);
- ImageWAM without the editing objective (`--nocache`: trained with image weight 0, so the cache the
  expert reads was shaped by the action loss alone — what the paper's claim rests on);
- the baseline chunk policy.
Per replanning control step, on one live observation: latency (median) and FLOPs of one action chunk
(`torch.utils.flop_counter`), as ratios to Action Images `joint`.
Writes benchmarks/results/imagewam.json (or `--results`) and, unless `--no-markdown`, the "imagewam"
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.evaluate import evaluate_checkpoint, load_policy, success_markdown  # noqa: E402
from action_images.sim import make_env  # noqa: E402
from tools.benchlib import RESULTS, last_checkpoint, step_costs, machine_line, metric_points, plot_axes, run_minutes, save_plot, update_section, write_json, write_results  # noqa: E402


@functools.cache
def hyper_parameters(run: Path) -> dict:
    """The hyper-parameters saved in a run's last checkpoint."""
    return torch.load(last_checkpoint(run), map_location="cpu", weights_only=True)["hyper_parameters"]


def position_error_curves(runs: dict[str, Path], out: Path) -> None:
    """Validation position error (mean over the chunk, EMA weights) against training step, one line per run."""
    figure, axis = plot_axes()
    for label, run in runs.items():
        metrics = sorted(Path(run).glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
        points = metric_points(metrics[-1], "val/position_error", scale=100) if metrics else []
        if points:
            axis.plot(*zip(*points), "o-", label=f"{label} ({run_minutes(run):.0f} min)")
    save_plot(figure, axis, out, "training step", "held-out chunk position error (cm)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actionimages", type=Path, default=Path("runs/sim_cpu"), help="the Action Images run folder")
    parser.add_argument("--imagewam", type=Path, default=Path("runs/imagewam_sim_cpu"), help="the ImageWAM run folder")
    parser.add_argument("--nocache", type=Path, default=Path("runs/imagewam_noedit_sim_cpu"),
                        help="ImageWAM trained without the editing objective (--model.init_args.transformer.image_loss_weight 0)")
    parser.add_argument("--baseline", type=Path, default=Path("runs/baseline_sim_cpu"), help="the baseline run folder")
    parser.add_argument("--joint", type=Path, default=None,
                        help="the joint-trained Action Images run, evaluated on the joint canvas and the reference of every "
                             "cost ratio (default: --actionimages). Needed when --actionimages was trained on the policy canvas "
                             "alone, which cannot draw RGB; train it on the same data and minutes")
    parser.add_argument("--actionimages-options", type=json.loads, default={},
                        help='JSON of the Action Images policies\' inference settings, in success and cost, e.g. '
                             '\'{"steps": 2, "guidance_scale": 2, "candidates": 4, "keep_plan": true}\' (default: --steps, no guidance)')
    parser.add_argument("--tasks", nargs="+", default=["reach", "push", "pick_place"])
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task and policy (default 50)")
    parser.add_argument("--replan-every", type=int, default=3, help="closed-loop replanning period, control steps (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="Euler steps of the chunk models and of the joint cost reference (default 10); Action Images' own in --actionimages-options")
    parser.add_argument("--repeats", type=int, default=60, help="timed rounds of the interleaved latencies (default 60)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/imagewam"), help="videos and tables")
    parser.add_argument("--results", type=Path, default=None, help="results JSON (default: benchmarks/results/imagewam.json)")
    parser.add_argument("--best-of", type=int, default=8,
                        help="chunks the readout chooses among in the 'best of K, anchored' ImageWAM policy (default 8)")
    parser.add_argument("--no-markdown", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--reuse-success", action="store_true",
                        help="read each policy's success table an earlier run wrote under --out (`<key>_success.json`) "
                             "and evaluate only the policies that have none")
    parser.add_argument("--costs-only", action="store_true",
                        help="measure latency and FLOPs only, no success, into benchmarks/results/imagewam_costs.json (or "
                             "--results) and BENCHMARKS.md's 'imagewam_costs' section; neither depends on the weights, so "
                             "runs of a few steps with the configs' architectures do")
    args = parser.parse_args()
    console = Console()
    torch.manual_seed(0)
    canvas = hyper_parameters(args.actionimages).get("canvas", "joint")
    joint_run = args.joint or args.actionimages
    if hyper_parameters(joint_run).get("canvas", "joint") == "policy":
        parser.error(f"{joint_run} was trained on the policy canvas alone and cannot draw RGB: name a joint-trained run "
                     "of the same architecture with --joint")
    runs = {
        "actionimages": (joint_run, {"mode": "joint"}),  # the reference of every ratio: the default sampler, cost only
        "actionimages_joint": (joint_run, {**args.actionimages_options, "mode": "joint"}),
        "actionimages_policy": (args.actionimages, {**args.actionimages_options, "mode": "policy"}),
        "imagewam": (args.imagewam, {}),
        "imagewam_nocache": (args.nocache, {}),
        "baseline": (args.baseline, {}),
    }
    labels = {
        "actionimages": f"Action Images, joint, {args.steps} steps (reference)", "actionimages_joint": "Action Images, joint",
        "actionimages_policy": "Action Images, policy canvas", "imagewam": "ImageWAM",
        "imagewam_nocache": "ImageWAM, no editing", "baseline": "baseline",
    }
    if hyper_parameters(args.imagewam).get("goal_readout_weight"):
        # an ImageWAM with a goal readout also runs as the policies that read it (`ChunkPolicy` anchor / candidates)
        runs["imagewam_anchor"] = (args.imagewam, {"anchor": True})
        runs["imagewam_best_anchor"] = (args.imagewam, {"candidates": args.best_of, "anchor": True})
        labels["imagewam_anchor"] = "ImageWAM, chunk end anchored on its readout"
        labels["imagewam_best_anchor"] = f"ImageWAM, best of {args.best_of} chunks by its readout, anchored"
    if hyper_parameters(args.nocache).get("goal_readout_weight") and not args.costs_only:  # the ablation of the anchored policy too
        runs["imagewam_nocache_anchor"] = (args.nocache, {"anchor": True})
        labels["imagewam_nocache_anchor"] = "ImageWAM, no editing, anchored"
    checkpoints = {key: last_checkpoint(run) for key, (run, _) in runs.items()}

    figures: dict[str, float] = {"episodes_per_task": args.episodes, "replan_every": args.replan_every, "sample_steps": args.steps}
    if "imagewam_best_anchor" in runs:
        figures["best_of"] = args.best_of
    env = make_env("pick_place", image_size=128)
    observation, _ = env.reset(seed=123)
    env.close()
    for _, options in runs.values():
        options.setdefault("steps", args.steps)
    policies = {key: load_policy(checkpoints[key], cameras=None, replan_every=1, **options) for key, (_, options) in runs.items()}
    for key, (seconds, gflops) in step_costs(policies, observation, args.repeats).items():
        figures[f"step_latency_s_{key}"], figures[f"gflops_per_chunk_{key}"] = seconds, gflops
        console.print(f"{labels[key]}: {seconds:.4f} s, {gflops:.3f} GFLOPs per chunk")
    for key in runs:
        figures[f"latency_ratio_{key}_vs_joint"] = figures[f"step_latency_s_{key}"] / figures["step_latency_s_actionimages"]
        figures[f"flops_ratio_{key}_vs_joint"] = figures[f"gflops_per_chunk_{key}"] / figures["gflops_per_chunk_actionimages"]
    figures["latency_ratio_vs_joint"] = figures["latency_ratio_imagewam_vs_joint"]
    figures["flops_ratio_vs_joint"] = figures["flops_ratio_imagewam_vs_joint"]
    if args.costs_only:
        del figures["episodes_per_task"], figures["replan_every"]
        path = write_json(args.results or RESULTS / "imagewam_costs.json", figures)
        console.print(f"wrote {path}")
        if not args.no_markdown:
            update_section("imagewam_costs", costs_section(args, figures, labels))
        return
    trained = {"actionimages": args.actionimages, "actionimages_joint": joint_run, "imagewam": args.imagewam,
               "imagewam_nocache": args.nocache, "baseline": args.baseline}
    figures.update({f"train_minutes_{name}": run_minutes(run) for name, run in trained.items()})
    figures["train_minutes"] = figures["train_minutes_imagewam"]

    figures["actionimages_canvas"] = canvas
    figures["actionimages_options"] = json.dumps(runs["actionimages_policy"][1], sort_keys=True)
    tables = {}
    for key, (run, options) in runs.items():
        if key == "actionimages":
            continue  # the cost reference only; the joint canvas's success is "actionimages_joint"'s
        saved = args.out / f"{key}_success.json"
        if args.reuse_success and saved.exists():
            tables[labels[key]] = json.loads(saved.read_text())
            console.print(f"{labels[key]}: success read from {saved}")
        else:
            tables[labels[key]] = evaluate_checkpoint(checkpoints[key], key, args.tasks, args.episodes, args.out,
                                                      replan_every=args.replan_every, **options)
        for task, row in tables[labels[key]].items():
            figures[f"success_{key}_{task}"] = row["success"]
    for task in args.tasks:  # Action Images as trained: the canvas of --actionimages
        figures[f"success_actionimages_{task}"] = figures[f"success_actionimages_{'policy' if canvas == 'policy' else 'joint'}_{task}"]
    curve_labels: dict[Path, str] = {}  # one curve per training run
    for key in ("actionimages_joint", "actionimages_policy", "imagewam", "imagewam_nocache", "baseline"):
        curve_labels.setdefault(runs[key][0], labels[key])
    position_error_curves({label: run for run, label in curve_labels.items()}, (args.results or RESULTS / "imagewam.json").with_name("imagewam_position_error.png"))
    path = write_results("imagewam", figures) if args.results is None else write_json(args.results, figures)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tables.md").write_text(success_markdown(tables) + "\n")
    console.print(success_markdown(tables))
    console.print(f"wrote {path}")
    if not args.no_markdown:
        update_section("imagewam", section(args, tables, figures, labels, runs))


def cost_rows(figures: dict, labels: dict) -> list[str]:
    return [
        f"{figures[f'step_latency_s_{key}'] * 1000:.1f} ms ({figures[f'latency_ratio_{key}_vs_joint']:.2f}×) | "
        f"{figures[f'gflops_per_chunk_{key}']:.3f} ({figures[f'flops_ratio_{key}_vs_joint']:.2f}×) |"
        for key in labels
    ]


def costs_section(args, figures: dict, labels: dict) -> str:
    rows = [f"| {label} | {row}" for label, row in zip(labels.values(), cost_rows(figures, labels))]
    return f"""## Cost per control step: ImageWAM against Action Images

Command: `python tools/bench_imagewam.py --costs-only --actionimages {args.actionimages} --imagewam {args.imagewam} \
--nocache {args.nocache} --baseline {args.baseline} --steps {args.steps} --best-of {args.best_of}`, on {machine_line()}. Results:
`benchmarks/results/imagewam_costs.json`. One replanning control step on one live observation (views → one action
chunk, {args.steps} sampling / Euler steps for every model; latency median of {args.repeats} interleaved rounds; FLOPs
by `torch.utils.flop_counter`), ratios to Action Images `joint` in the same run. Cost does not depend on the weights:
the runs only need the configs' architectures.

| policy | latency per step | GFLOPs per chunk |
|---|---|---|
{chr(10).join(rows)}
"""


def run_datasets(run: Path) -> str:
    """The datasets a run's `action-images fit` trained on, from the config Lightning saved beside its logs."""
    import yaml

    configs = sorted(Path(run).glob("**/config.yaml"), key=lambda p: p.stat().st_mtime)
    return ", ".join(f"`{d}`" for d in yaml.safe_load(configs[-1].read_text())["data"]["datasets"]) if configs else "unknown data"


def section(args, tables: dict, figures: dict, labels: dict, runs: dict) -> str:
    minutes = {key: run_minutes(run) for key, (run, _) in runs.items()}  # a variant: its run's
    rows = [f"| {label} | {minutes[key]:.0f} | {row}" for (key, label), row in zip(labels.items(), cost_rows(figures, labels))]
    joint_note = (f"Action Images' policy canvas and joint canvas are two trainings of one recipe (`{args.actionimages}`, "
                  f"`{args.joint}`); `success_actionimages_*` in the JSON is the {figures['actionimages_canvas']} canvas's."
                  if args.joint else "")
    reuse_note = (" Success tables already under `--out` were read, not re-evaluated (`--reuse-success`); the evaluation "
                  "is deterministic, so the command above reproduces them." if args.reuse_success else "")
    return f"""## ImageWAM against Action Images

Command: `python tools/bench_imagewam.py --actionimages {args.actionimages} --imagewam {args.imagewam} --nocache {args.nocache} \\
--baseline {args.baseline}{f' --joint {args.joint}' if args.joint else ''} --episodes {args.episodes} \\
--actionimages-options '{json.dumps(args.actionimages_options)}' --best-of {args.best_of} --out {args.out}`, on {machine_line()}.{reuse_note}
Results: `benchmarks/results/imagewam.json`; episode videos in `{args.out}/videos/`. Every model was trained by one
`action-images fit` of at most 60 minutes on the same data ({run_datasets(args.imagewam)}); the same seeded episodes
(from seed 100000) for every policy, closed loop, replanning every {args.replan_every} control steps; the chunk models
take {args.steps} Euler steps, Action Images `{figures["actionimages_options"]}`. "No editing" is ImageWAM trained with
image weight 0: its expert reads a cache that learned from the action loss alone. {joint_note}
Cells: success [95 % Wilson interval].

{success_markdown(tables)}

Cost of one replanning control step on one live observation (views → one action chunk, each policy at the settings it
was evaluated with; latency median of {args.repeats} interleaved rounds; FLOPs by `torch.utils.flop_counter`), ratios
to Action Images `joint` ({args.steps} steps) in the same run:

| policy | training minutes | latency per step | GFLOPs per chunk |
|---|---|---|---|
{chr(10).join(rows)}

Held-out chunk position error during training (validation split, mean over the chunk's waypoints) of the
trained runs:

![position error](benchmarks/results/imagewam_position_error.png)
"""


if __name__ == "__main__":
    main()
