"""The Lightning data module: datasets on disk → clips → batches, split by episode.

Episodes, never frames, are split between training and validation, so no validation clip shares an
episode with a training clip. Normalisation statistics come from the datasets' `meta/stats.json` and
travel with the model; a statistic that is missing is an error, never a silent pass-through.
"""

from __future__ import annotations

import math

import re
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader

from datamodules.clips import ClipConfig, ClipDataset, EpisodeSource
from datamodules.frame_cache import open_frame_cache
from datamodules.lerobot_reader import LeRobotDataset
from datamodules.rlbench import RLBenchDataset
from datamodules.sampling import ResumableDataLoader, ResumableSampler
from datamodules.schema import ACTION_KEY, STATE_KEY


def open_source(path: str | Path) -> EpisodeSource:
    """A LeRobot dataset (meta/info.json) or the processed RLBench layout."""
    path = Path(path)
    if (path / "meta" / "info.json").exists():
        return LeRobotDataset(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    return RLBenchDataset(path)


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A reproducible split by episode; at least one validation episode when asked for any."""
    order = np.random.default_rng(seed).permutation(num_episodes)
    count = int(round(val_fraction * num_episodes))
    if val_fraction > 0 and num_episodes > 1:
        count = min(max(count, 1), num_episodes - 1)
    return sorted(order[count:].tolist()), sorted(order[:count].tolist())


class RobotDataModule(L.LightningDataModule):
    """Clips of one or more datasets.

    Args:
        datasets: paths of LeRobot (v3.0 / v2.1) datasets or processed RLBench folders.
        num_frames, stride, cameras, image_size: the clip shape (see `datamodules.clips.ClipConfig`).
        batch_size, num_workers: the loaders; workers decode video in parallel processes.
        val_fraction, split_seed: the share of episodes held out for validation, and its seed.
        frame_cache: a directory for decoded frames (`datamodules.frame_cache`): each dataset is decoded
            once at the clip's image size and memory-mapped by every later run; None decodes in the
            workers. Worth it from a few hundred episodes on.
        balance: how training draws clips. "clips": every clip once per epoch, so long episodes weigh
            more; "episodes": every episode equally often (clips drawn with replacement, weighted by one
            over their episode's length), so short tasks and the starts of episodes, where the
            instruction decides what happens, are seen as often as the rest.
        start_weight, start_frames: clips that begin in an episode's first `start_frames` frames are drawn
            `start_weight` times as often as the episode's other clips (1: not at all more). The approach
            (from home, or from a near start: `collect --start-near`) is a few frames of each episode, and
            where a closed-loop policy goes wrong first.
        instructions_matching: a regular expression: only episodes whose instruction it finds
            (`re.search`) are trained and validated on, e.g. `"push|slide"` for the simulator's push
            episodes. The split by episode is made first, so the selected episodes keep their side.
    """

    def __init__(
        self,
        datasets: list[str],
        num_frames: int = 5,
        stride: int = 4,
        cameras: list[str] | None = None,
        image_size: int | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        frame_cache: str | None = None,
        balance: str = "clips",
        instructions_matching: str | None = None,
        start_weight: float = 1.0,
        start_frames: int = 6,
    ) -> None:
        super().__init__()
        if balance not in ("clips", "episodes"):
            raise ValueError(f"balance must be 'clips' or 'episodes', got {balance!r}")
        if not (math.isfinite(start_weight) and start_weight > 0) or start_frames < 0:
            raise ValueError(f"start_weight must be > 0 and start_frames ≥ 0, got {start_weight} and {start_frames}")
        self.balance = balance
        self.start_weight, self.start_frames = float(start_weight), int(start_frames)
        try:
            self.selection = re.compile(instructions_matching) if instructions_matching else None
        except re.error as error:
            raise ValueError(f"instructions_matching {instructions_matching!r} is not a regular expression: {error}") from None
        self.save_hyperparameters()
        self.paths = [Path(p) for p in ([datasets] if isinstance(datasets, (str, Path)) else datasets)]
        self.clip = ClipConfig(num_frames=num_frames, stride=stride, cameras=tuple(cameras) if cameras else None, image_size=image_size)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.frame_cache = frame_cache
        self.sources: list[EpisodeSource] = []
        self.train_set: ConcatDataset | None = None
        self.val_set: ConcatDataset | None = None

    def prepare_data(self) -> None:
        """Builds missing frame caches once (Lightning calls this on one process per machine)."""
        if self.frame_cache is not None:
            for path in self.paths:
                open_frame_cache(ClipDataset(open_source(path), config=self.clip), self.frame_cache, workers=max(self.num_workers, 1))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.sources = [open_source(path) for path in self.paths]
        train, val = [], []
        for source in self.sources:
            train_episodes, val_episodes = (self.selected(source, episodes) for episodes in split_episodes(source.num_episodes, self.val_fraction, self.split_seed))
            if not train_episodes:
                continue  # no training episode of this dataset is selected (instructions_matching)
            datasets = [ClipDataset(source, train_episodes, self.clip)]
            if val_episodes:
                datasets.append(ClipDataset(source, val_episodes, self.clip))
            if self.frame_cache is not None:
                decoded = open_frame_cache(datasets[0], self.frame_cache, workers=max(self.num_workers, 1))
                for dataset in datasets:
                    dataset.decoded = decoded
            train.append(datasets[0])
            val.extend(datasets[1:])
        if not train:
            raise ValueError(f"no training episode of {', '.join(map(str, self.paths))} has an instruction matching {self.selection.pattern!r}")
        self.train_set = ConcatDataset(train)
        self.val_set = ConcatDataset(val) if val else None

    def selected(self, source: EpisodeSource, episodes: list[int]) -> list[int]:
        """The episodes among `episodes` whose instruction `instructions_matching` finds (all without one)."""
        return [e for e in episodes if self.selection is None or self.selection.search(source.instruction(e))]

    def instructions(self) -> list[str]:
        """Every instruction of the selected episodes, sorted and once each."""
        self.setup()
        return sorted({source.instruction(e) for source in self.sources for e in self.selected(source, range(source.num_episodes))})

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled per epoch, split across ranks, and resumable mid-epoch (see `datamodules.sampling`;
        the trainer's `use_distributed_sampler` must be false)."""
        self.setup()
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = ResumableSampler(len(self.train_set), seed=self.split_seed, rank=rank, world_size=world_size, weights=self.clip_weights())

        def progress() -> tuple[int, int]:
            return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

        return ResumableDataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=True,
            progress=progress,
        )

    def clip_weights(self) -> torch.Tensor | None:
        """Per training clip, its sampling weight: one over its episode's length (`balance="episodes"`) or one,
        times `start_weight` for the clips in an episode's first `start_frames` frames; None when all are equal."""
        if self.balance == "clips" and self.start_weight == 1.0:
            return None
        weights = []
        for dataset in self.train_set.datasets:
            for n in np.diff(dataset.starts).astype(int):
                episode = torch.full((n,), 1.0 / n if self.balance == "episodes" else 1.0)
                episode[: self.start_frames] *= self.start_weight
                weights.append(episode)
        return torch.cat(weights)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        if self.val_set is None:
            raise ValueError("no validation episodes: set val_fraction > 0 with at least two episodes")
        return self._loader(self.val_set, shuffle=False)

    def normalization_stats(self, keys: tuple[str, ...] = (STATE_KEY, ACTION_KEY)) -> dict[str, dict[str, torch.Tensor]]:
        """mean / std / min / max of pose features over the datasets (first dataset's stats when
        there is one; datasets must agree on the feature). Missing statistics raise."""
        self.setup()
        stats: dict[str, dict[str, torch.Tensor]] = {}
        for key in keys:
            for source in self.sources:
                recorded = getattr(source, "stats", None)
                if recorded is None:  # a layout without stats.json: compute from the poses
                    recorded = {key: _pose_stats(source, key)}
                if key not in recorded:
                    raise KeyError(f"normalisation statistics for {key!r} are missing in {getattr(source, 'root', source)}")
                entry = recorded[key]
                missing = [s for s in ("mean", "std", "min", "max") if s not in entry]
                if missing:
                    raise KeyError(f"statistics {missing} of {key!r} are missing in {getattr(source, 'root', source)}")
                stats.setdefault(key, {s: torch.tensor(entry[s], dtype=torch.float32) for s in ("mean", "std", "min", "max")})
        return stats


def _pose_stats(source: EpisodeSource, key: str) -> dict[str, list[float]]:
    values = np.concatenate([source.poses(e, key) for e in range(source.num_episodes)])
    return {"mean": values.mean(0).tolist(), "std": values.std(0).tolist(), "min": values.min(0).tolist(), "max": values.max(0).tolist()}
