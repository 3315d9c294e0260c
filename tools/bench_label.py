"""Labelling accuracy (issue: the uses, `action-images label`) on held-out episodes, against sampling steps.

    action-images fit --config configs/labeller_sim_cpu.yaml          # ≤ 60 minutes on 2 cores
    python tools/bench_label.py --run runs/labeller_sim_cpu

Collects `--episodes` episodes per task with the seeds of held-out datasets (`held_out_seed` of
`configs/splits/sim_zero_shot.yaml`: no training or evaluation episode has them), then labels them with
the real command's code path (`label_dataset`: sliding `v2a` windows stitched from each episode's
first pose, every other recorded pose hidden until the end) once per number of sampling steps.
Reports the median per-frame position and rotation error, the gripper accuracy (open/closed), the
share of confidently decoded frames and the throughput. Writes benchmarks/results/label.json (or
`--results`) and, unless `--no-markdown`, the "label" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.bench_uses import SPLIT, held_out_dataset, label_figures  # noqa: E402
from tools.benchlib import RESULTS, last_checkpoint, machine_line, markdown_table, run_minutes, update_section, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/labeller_sim_cpu"), help="the labelling model's run folder")
    parser.add_argument("--tasks", nargs="+", default=["reach", "push", "pick_place"])
    parser.add_argument("--episodes", type=int, default=20, help="held-out episodes per task (default 20)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10], help="sampling steps to try (default 1 2 5 10)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/label"), help="the held-out and labelled datasets")
    parser.add_argument("--results", type=Path, default=None, help="results JSON (default: benchmarks/results/label.json)")
    parser.add_argument("--no-markdown", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    console = Console()
    checkpoint = last_checkpoint(args.run)
    split = yaml.safe_load(SPLIT.read_text())
    data = held_out_dataset(args.out, args.tasks, args.episodes, seed=split["held_out_seed"])

    figures: dict[str, float] = {"episodes_per_task": args.episodes, "train_minutes": run_minutes(args.run)}
    for steps in args.steps:
        for key, value in label_figures(checkpoint, data, args.out, steps=steps).items():
            figures[f"{key}_{steps}_steps"] = value
        console.print(f"{steps} steps: {figures[f'label_pos_err_cm_{steps}_steps']:.2f} cm, "
                      f"gripper {figures[f'label_gripper_accuracy_{steps}_steps']:.1%}")
    best = max(args.steps)  # the headline: the most steps tried
    for key in ("label_pos_err_cm", "label_rot_err_deg", "label_gripper_accuracy", "label_frames_per_s", "label_confident_fraction"):
        figures[key] = figures[f"{key}_{best}_steps"]
    path = write_json(args.results or RESULTS / "label.json", figures)
    console.print(f"wrote {path}")
    if not args.no_markdown:
        update_section("label", section(args, figures))


def section(args, figures: dict) -> str:
    rows = [[f"{steps}", f"{figures[f'label_pos_err_cm_{steps}_steps']:.2f} cm", f"{figures[f'label_rot_err_deg_{steps}_steps']:.1f}°",
             f"{figures[f'label_gripper_accuracy_{steps}_steps']:.1%}", f"{figures[f'label_confident_fraction_{steps}_steps']:.1%}",
             f"{figures[f'label_frames_per_s_{steps}_steps']:.0f}"] for steps in args.steps]
    table = markdown_table(["sampling steps", "position error, median", "rotation error, median", "gripper", "confident frames", "frames/s"], rows)
    return f"""## Labelling

Command: `python tools/bench_label.py --run {args.run} --episodes {args.episodes}`, on {machine_line()}.
The model: `action-images fit --config configs/labeller_sim_cpu.yaml` ({figures['train_minutes']:.0f} minutes of training).
Held out: {args.episodes} episodes per task ({', '.join(args.tasks)}) collected with the held-out seeds (`configs/splits/sim_zero_shot.yaml`),
labelled by `action-images label`'s code path from each episode's first pose, every other pose hidden; errors over frames ≥ 1.
Results: `benchmarks/results/label.json`. Targets (issue 6): position ≤ 1.5 cm, gripper ≥ 90 %.

{table}
"""


if __name__ == "__main__":
    main()
