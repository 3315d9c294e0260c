"""Does a model plan the gripper the demonstrations hold? Per task, on held-out clips, how often each planned future
frame decodes to the demonstrated gripper state, split by that state, and how the clips that close, open or stay
closed (carrying the cube) end.

    python tools/diagnose_gripper.py --run runs/ai_s20

Plans as `action-images eval` does (the canvas the model was trained on, 2 Euler steps, guidance 2) from the held-out
episodes of `--dataset` (the validation split of `configs/sim_cpu.yaml`'s data block, the clip shape of the
checkpoint), a clip every `--every` frames. A model without a bias gets both states about as often right; one that
plans "open" where the demonstration keeps the fingers closed drops what it carries. `--threshold` decodes "open"
above another openness than the decoder's 0.5 (1 = B's full gripper background).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.canvas import Mode  # noqa: E402
from action_images.module import ActionImagesModule  # noqa: E402
from action_images.sim import task_of_instruction  # noqa: E402
from datamodules.datamodule import RobotDataModule  # noqa: E402
from rendering.cameras import Cameras  # noqa: E402
from rendering.decoder import decode_action_images  # noqa: E402
from tools.bench_model import held_out_batches, held_out_config  # noqa: E402
from tools.benchlib import last_checkpoint  # noqa: E402

GRIPPER_TASKS = ("pick_place", "stack", "turn")  # the tasks whose demonstrations open and close the fingers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="an Action Images training run (its last.ckpt)")
    parser.add_argument("--dataset", default="data/sim_3000s", help="whose validation episodes to plan from (default data/sim_3000s)")
    parser.add_argument("--every", type=int, default=4, help="a held-out clip every N frames (default 4)")
    parser.add_argument("--steps", type=int, default=2, help="Euler steps (default 2)")
    parser.add_argument("--guidance-scale", type=float, default=2.0, help="classifier-free guidance (default 2)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decoded openness above which a frame reads open (default 0.5)")
    args = parser.parse_args()

    checkpoint = last_checkpoint(args.run)
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data = RobotDataModule(**held_out_config(Path("configs/sim_cpu.yaml"), stored, datasets=[args.dataset], num_workers=0))
    data.setup()
    model = ActionImagesModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    mode = Mode.POLICY if Mode.POLICY in model.trained_modes else Mode.JOINT

    confusion: dict[str, np.ndarray] = {}  # task → [[closed→closed, closed→open], [open→closed, open→open]] over future frames
    ends: dict[str, list[bool]] = {"closes": [], "opens": [], "stays closed": []}  # gripper-task clips: last frame right?
    carrying: list[np.ndarray] = []  # decoded openness per frame of the clips that stay closed
    for index, batch in enumerate(held_out_batches(data, args.every)):
        out = model.generate(batch, mode, steps=args.steps, guidance_scale=args.guidance_scale, generator=torch.Generator().manual_seed(index))
        height, width = batch["rgb"].shape[-2:]
        decoded = decode_action_images(out["action_images"], Cameras(batch["intrinsics"], batch["extrinsics"], height, width))
        planned_open, truly_open = decoded.gripper > args.threshold, batch["gripper"] > 0.5
        for j, instruction in enumerate(batch["instruction"]):
            task = task_of_instruction(instruction) or "other"
            table = confusion.setdefault(task, np.zeros((2, 2), dtype=int))
            np.add.at(table, (truly_open[j, 1:].long().numpy(), planned_open[j, 1:].long().numpy()), 1)
            if task not in GRIPPER_TASKS:
                continue
            right_at_end = bool(planned_open[j, -1] == truly_open[j, -1])
            if truly_open[j, 0] and not truly_open[j, -1]:
                ends["closes"].append(right_at_end)
            elif not truly_open[j, 0] and truly_open[j, -1]:
                ends["opens"].append(right_at_end)
            elif not truly_open[j].any():
                ends["stays closed"].append(right_at_end)
                carrying.append(decoded.gripper[j].numpy())

    print(f"{checkpoint} ({mode.value} canvas, {args.steps} steps, guidance {args.guidance_scale}, open above {args.threshold})")
    print("| task | closed frames planned closed | open frames planned open |")
    print("|---|---|---|")
    for task, table in sorted(confusion.items()):
        recall = [f"{100 * table[s, s] / table[s].sum():.0f} % (n={table[s].sum()})" if table[s].sum() else "—" for s in (0, 1)]
        print(f"| {task} | {recall[0]} | {recall[1]} |")
    print("\nclips of " + ", ".join(GRIPPER_TASKS) + " whose last frame is planned right:")
    for kind, right in ends.items():
        print(f"  {kind}: {100 * np.mean(right):.0f} % (n={len(right)})" if right else f"  {kind}: —")
    if carrying:
        print("openness planned while carrying (true: 0), median per frame:", " ".join(f"{v:.2f}" for v in np.median(carrying, 0)))


if __name__ == "__main__":
    main()
