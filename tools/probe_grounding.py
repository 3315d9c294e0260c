"""Can the instruction be read from these frames at all? A supervised probe, not a policy.

    python tools/probe_grounding.py --dataset data/reach_1000 --starts-only --minutes 2 --results probe_reach_starts_32

A small convolutional network whose layers the instruction modulates (FiLM over a bag of its words)
learns to point at the pixel where the end effector is at the end of a training clip, from the clip's
first frame of every view: the task of the model's goal readout (`ActionImagesModule(goal_readout_weight=
...)`). It trains for the same time once with the instruction and once with it blanked, on the same
clips and in the same clip shape as training, and reports on held-out episodes the share of views read
out within 1.5 px. Where the two are far apart, the pixels show which object the instruction names, and a
generator that ignores its instruction fails for another reason than its input. Writes
`benchmarks/results/grounding/<results>.json`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import track
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from action_images.goal_readout import last_pose_pixels, pixel_hits  # noqa: E402
from datamodules.datamodule import RobotDataModule  # noqa: E402
from tools.benchlib import RESULTS, write_json  # noqa: E402


class FilmPointer(nn.Module):
    """Per-view convolutions at full resolution, each modulated by the instruction, → per-pixel logits."""

    def __init__(self, vocabulary: int, width: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, width, 3, padding=1)] + [nn.Conv2d(width, width, 3, padding=1) for _ in range(layers - 1)])
        self.film = nn.Linear(vocabulary, 2 * width * layers)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, frames: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """frames (B, V, 3, H, W), bag of words (B, vocabulary) → logits (B, V, H·W)."""
        batch, views = frames.shape[:2]
        film = self.film(words).view(batch, 2 * len(self.convs), -1, 1, 1).repeat_interleave(views, 0)
        hidden = frames.flatten(0, 1)
        for index, conv in enumerate(self.convs):
            hidden = torch.relu(conv(hidden) * (1 + film[:, 2 * index]) + film[:, 2 * index + 1])
        return self.out(hidden).view(batch, views, -1)


def bag_of_words(instructions: list[str], vocabulary: dict[str, int], blank: bool) -> torch.Tensor:
    words = torch.zeros(len(instructions), len(vocabulary))
    if not blank:
        for row, instruction in enumerate(instructions):
            words[row, [vocabulary[w] for w in instruction.lower().split() if w in vocabulary]] = 1.0
    return words


@torch.no_grad()
def gather(dataset, count: int, seed: int) -> dict:
    """First frames (N, V, 3, H, W), target pixels and their validity (N, V), and instructions of up to
    `count` clips drawn from `dataset`, held in memory so that the probes train at full speed."""
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    frames, targets, valids, instructions = [], [], [], []
    for start in track(range(0, len(indices), 64), description="gathering clips"):
        batch = torch.utils.data.default_collate([dataset[i] for i in indices[start : start + 64]])
        target, valid = last_pose_pixels(batch)
        frames.append(batch["rgb"][:, :, 0])
        targets.append(target)
        valids.append(valid)
        instructions.extend(batch["instruction"])
    return {"frames": torch.cat(frames), "target": torch.cat(targets), "valid": torch.cat(valids), "instruction": instructions}


def train_and_score(train: dict, held_out: dict, vocabulary: dict[str, int], blank: bool, seconds: float) -> dict:
    torch.manual_seed(0)
    model = FilmPointer(len(vocabulary))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    words = bag_of_words(train["instruction"], vocabulary, blank)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        rows = torch.randint(0, len(words), (32,))
        valid = train["valid"][rows]
        logits = model(train["frames"][rows], words[rows])
        loss = F.cross_entropy(logits[valid], train["target"][rows][valid])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    with torch.no_grad():
        logits = model(held_out["frames"], bag_of_words(held_out["instruction"], vocabulary, blank))
        valid = held_out["valid"]
        hits = pixel_hits(logits[valid], held_out["target"][valid], held_out["frames"].shape[-1]).item()
    return {"steps": steps, "held_out_views": int(valid.sum()), "within_1_5px": hits}


def episode_starts(datasets: torch.utils.data.ConcatDataset) -> torch.utils.data.Subset:
    """The clips of a data module's split that start an episode."""
    starts, offset = [], 0
    for dataset in datasets.datasets:
        starts.extend(offset + int(s) for s in dataset.starts[:-1])
        offset += len(dataset)
    return torch.utils.data.Subset(datasets, starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", required=True, help="a LeRobot dataset (repeat for several)")
    parser.add_argument("--image-size", type=int, default=32, help="square frames, as in training (default 32)")
    parser.add_argument("--num-frames", type=int, default=5, help="clip length, as in training (default 5)")
    parser.add_argument("--stride", type=int, default=3, help="clip stride, as in training (default 3)")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time of each probe (default 3)")
    parser.add_argument("--clips", type=int, default=4000, help="training clips held in memory (default 4000)")
    parser.add_argument("--starts-only", action="store_true", help="only clips that start an episode (where the instruction decides)")
    parser.add_argument("--frame-cache", default="data/cache", help="decoded-frame cache (default data/cache)")
    parser.add_argument("--results", required=True, help="name of the JSON file under benchmarks/results/grounding/")
    args = parser.parse_args()
    data = RobotDataModule(args.dataset, num_frames=args.num_frames, stride=args.stride, image_size=args.image_size,
                           batch_size=32, num_workers=0, frame_cache=args.frame_cache)
    data.prepare_data()
    vocabulary = {w: i for i, w in enumerate(sorted({w for text in data.instructions() for w in text.lower().split()}))}  # sets the data up
    train_set, held_out_set = data.train_set, data.val_set
    if args.starts_only:
        train_set, held_out_set = (episode_starts(d) for d in (train_set, held_out_set))
    train, held_out = gather(train_set, args.clips, seed=0), gather(held_out_set, args.clips // 4, seed=1)
    figures = {"datasets": args.dataset, "image_size": args.image_size, "minutes_each": args.minutes, "starts_only": args.starts_only}
    for name, blank in (("instruction", False), ("blank", True)):
        scores = train_and_score(train, held_out, vocabulary, blank, args.minutes * 60)
        figures.update({f"{name}_{key}": value for key, value in scores.items()})
        print(f"{name:>11}: {scores['steps']} steps; held-out views read out within 1.5 px: {scores['within_1_5px']:.1%} of {scores['held_out_views']}")
    write_json(RESULTS / "grounding" / f"{args.results}.json", figures)


if __name__ == "__main__":
    main()
