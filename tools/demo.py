"""`make demo`: the whole job end to end on the embedded simulator, in about 20 minutes on 2 cores (19.3 measured, plus a minute of setup on a fresh clone).

    collect  → simulated demonstrations (reach, push, pick_place) as a LeRobot v3.0 dataset
    fit      → Action Images (configs/sim_cpu.yaml) through the Lightning CLI, on a short budget
    fit      → the flow-matching baseline (configs/baseline_sim_cpu.yaml), the same budget
    uses     → closed-loop and open-loop control, the baseline, zero-shot, labelling and augmentation
               (tools/bench_uses.py, few episodes)
    report   → demo_output/REPORT.md with the tables, training curves and contact sheets

Every step runs the real command line in a subprocess, shows its progress, and leaves its outputs
under demo_output/. The budget is short on purpose (the acceptance runs of BENCHMARKS.md train for
up to an hour); the report states it beside its figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.benchlib import fit_command  # noqa: E402


def run(console: Console, title: str, command: list[str]) -> float:
    console.rule(title)
    console.print(" ".join(command), style="dim", markup=False)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return (time.perf_counter() - start) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--episodes", type=int, default=60, help="demonstrations per task (default 60)")
    parser.add_argument("--train-minutes", type=int, default=14, help="training budget of each model, minutes (default 14)")
    parser.add_argument("--train-steps", type=int, default=2000, help="step budget of each model (default 2000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes per task and policy (default 10)")
    parser.add_argument("--benchmarks", action="store_true", help="also copy the report into BENCHMARKS.md (section 'demo')")
    parser.add_argument("--report-only", action="store_true", help="run nothing: use the report already in --out (with --benchmarks)")
    args = parser.parse_args()
    console, start = Console(), time.perf_counter()
    out = (ROOT / args.out).resolve() if not args.out.is_absolute() else args.out
    if args.report_only:
        if args.benchmarks:
            benchmarks_section(out / "REPORT.md")
        return
    out.mkdir(parents=True, exist_ok=True)
    cli = str(Path(sys.executable).parent / "action-images")
    minutes = {}

    data = out / "data"
    for stale in (data, out / "frame_cache"):  # a new collection makes the old decoded frames stale
        shutil.rmtree(stale, ignore_errors=True)
    minutes["collect"] = run(console, "1/5 collect demonstrations", [cli, "collect", "--task", "reach", "push", "pick_place",
                                                                      "--episodes", str(args.episodes), "--out", str(data), "--workers", "2"])
    for name, config in (("model", "configs/sim_cpu.yaml"), ("baseline", "configs/baseline_sim_cpu.yaml")):
        folder = out / "runs" / name
        shutil.rmtree(folder, ignore_errors=True)
        step = "2/5 train Action Images" if name == "model" else "3/5 train the baseline"
        minutes[f"fit_{name}"] = run(console, f"{step} ({args.train_minutes} min budget)", fit_command(config, folder, [data], args.train_minutes, args.train_steps, frame_cache=out / "frame_cache"))
    uses = out / "uses"
    minutes["uses"] = run(console, "4/5 control, labelling, augmentation", [
        sys.executable, "tools/bench_uses.py", "--model", str(out / "runs" / "model"), "--baseline", str(out / "runs" / "baseline"),
        "--episodes", str(args.eval_episodes), "--label-episodes", "3", "--out", str(uses), "--results", str(out / "uses.json"), "--no-markdown",
    ])
    console.rule("5/5 report")
    report = write_report(out, args, minutes, (time.perf_counter() - start) / 60)
    console.print(f"wrote {report}")
    if args.benchmarks:
        benchmarks_section(report)


def benchmarks_section(report: Path) -> None:
    """The report's text (pictures left out) as the "demo" section of BENCHMARKS.md."""
    from tools.benchlib import machine_line, update_section

    if not report.exists():
        raise FileNotFoundError(f"no demo report at {report}: run `make demo` first")
    body = ["#" + line if line.startswith("## ") else line for line in report.read_text().splitlines()[1:] if not line.startswith("![")]
    update_section("demo", "\n".join([
        "## `make demo` (short budget, the whole job)", "",
        "Command: `make demo` (`action-images roundtrip`, then `python tools/demo.py`), then `python tools/demo.py --report-only --benchmarks`",
        f"copies its report (`demo_output/REPORT.md`) here; on {machine_line()}.", *body,
    ]))


def write_report(out: Path, args, minutes: dict[str, float], total: float) -> Path:
    from action_images.viz import visualize
    from tools.bench_model import training_curve

    figures = json.loads((out / "uses.json").read_text())
    figures["demo_minutes"] = total
    (out / "uses.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    pictures = []
    for name in ("model", "baseline"):
        metrics = sorted((out / "runs" / name).glob("**/metrics.csv"))
        if metrics:
            training_curve(metrics[-1], out / f"training_curve_{name}.png")
            pictures.append(f"![{name} training curve](training_curve_{name}.png)")
    video, sheet = visualize(out / "uses" / "labelled", 0, out / "labelled_episode.mp4")
    shutil.copy(out / "uses" / "augmented" / "preview.png", out / "augmented_preview.png")
    timings = " · ".join(f"{k} {v:.1f} min" for k, v in minutes.items())
    tables = (out / "uses" / "tables.md").read_text()
    report = f"""# Action Images demo report

Budget: {args.episodes} demonstrations per task; each model trained for at most {args.train_minutes} minutes
({args.train_steps} steps) on 2 CPU cores — a much shorter schedule than the 60-minute acceptance runs in
BENCHMARKS.md, so expect far lower success here. {args.eval_episodes} evaluation episodes per task and policy.
Total: {total:.1f} minutes ({timings}).

## Control (success [95 % interval])

{tables}

## Labelling and augmentation

| figure | value |
|---|---|
| labelling: position error median (poses hidden) | {figures['label_pos_err_cm']:.2f} cm |
| labelling: gripper accuracy | {figures['label_gripper_accuracy']:.0%} |
| augmentation | {figures['augment_episodes_per_s']:.2f} episodes/s |
| policy latency per replanning step, joint / policy canvas | {figures['policy_step_latency_s_joint']:.3f} / {figures['policy_step_latency_s_policy']:.3f} s |

A labelled episode (action images of the labels over the video): `labelled_episode.mp4`, contact sheet:

![labelled episode]({Path(sheet).relative_to(out)})

Generated episodes (augmentation, action images over the generated RGB):

![augmented](augmented_preview.png)

## Training

{chr(10).join(pictures)}

Episode videos (real views, imagined RGB, imagined action images): `uses/videos/`.
"""
    path = out / "REPORT.md"
    path.write_text(report)
    return path


if __name__ == "__main__":
    main()
