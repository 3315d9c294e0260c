"""A training sampler that resumes exactly: same order, same position, on one process or many.

Each epoch's order is a permutation seeded by (seed, epoch), split across ranks like
`DistributedSampler` (rank r takes every world-size-th index, after padding to equal shares). After
a restart mid-epoch, the first `skip` samples of this rank's share are skipped, so the run goes on
with the very batches it would have seen. Lightning calls `set_epoch` at each epoch; set the trainer's
`use_distributed_sampler: false` so that it uses this sampler as it is.

With `weights`, an epoch is instead `size` draws with replacement, each index drawn in proportion to its
weight (e.g. 1 / episode length, so that every episode is drawn equally often), seeded the same way.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 weights: torch.Tensor | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        if weights is not None and (weights.shape != (size,) or not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0):
            raise ValueError(f"sampling weights must be {size} finite non-negative numbers, not all zero")
        self.size, self.seed, self.rank, self.world_size, self.shuffle = size, seed, rank, world_size, shuffle
        self.weights = weights
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0  # skipping applies to the epoch that was interrupted only
        self.epoch = epoch

    def resume(self, epoch: int, samples_done: int) -> None:
        """Continue `epoch` after this rank has already consumed `samples_done` samples of it."""
        self.epoch, self.skip = epoch, samples_done

    def epoch_order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights.double(), self.size, replacement=True, generator=generator).tolist()
        elif self.shuffle:
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        order += order[: total - len(order)]  # pad so that every rank gets the same number
        return order[self.rank : total : self.world_size]

    @property
    def per_rank(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __iter__(self):
        order = self.epoch_order()[self.skip :]
        self.skip = 0
        return iter(order)

    def __len__(self) -> int:
        # The length of a whole epoch, also while resuming one: Lightning counts the batches it has
        # already done into the epoch and reads this before the position is restored.
        return self.per_rank


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position Lightning saves in checkpoints and restores (its `state_dict` /
    `load_state_dict` interface). `progress()` returns (epoch, batches of this epoch done)."""

    def __init__(self, *args, progress: Callable[[], tuple[int, int]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler):
            raise ValueError("ResumableDataLoader needs a ResumableSampler")
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.progress()
        return {"epoch": epoch, "samples_done": batches * self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume(state["epoch"], state["samples_done"])
