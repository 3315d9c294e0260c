# Session 17: success tables of the comparison's runs, under the comparison's --out, for `bench_imagewam.py --reuse-success`.
import sys
from pathlib import Path
sys.path.insert(0, ".")
import torch
from action_images.evaluate import evaluate_checkpoint
from tools.benchlib import last_checkpoint
out = Path("benchmarks/results/imagewam_comparison")
tasks = ["reach", "push", "pick_place"]
jobs = {
    "imagewam": ("runs/imagewam_readout_s1_long", {"steps": 10}),
    "imagewam_anchor": ("runs/imagewam_readout_s1_long", {"steps": 10, "anchor": True}),
    "imagewam_best_anchor": ("runs/imagewam_readout_s1_long", {"steps": 10, "candidates": 8, "anchor": True}),
    "actionimages_policy": ("runs/cmp_actionimages", {"mode": "policy", "steps": 2, "guidance_scale": 2, "candidates": 4, "keep_plan": True}),
    "imagewam_nocache": ("runs/cmp_imagewam_nocache", {"steps": 10}),
    "imagewam_nocache_anchor": ("runs/cmp_imagewam_nocache", {"steps": 10, "anchor": True}),
}
torch.manual_seed(0)
for key in sys.argv[1:]:
    run, options = jobs[key]
    table = evaluate_checkpoint(last_checkpoint(Path(run)), key, tasks, 50, out, replan_every=3, **options)
    print(key, {task: row["success"] for task, row in table.items()}, flush=True)
