"""Lightning callbacks of the project."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch


class BatchRecorder(L.Callback):
    """Writes, per rank, which samples each training step used and a checksum of the weights at the
    end, as JSON lines in `folder/rank<r>.jsonl` — to check data order, resumption and DDP."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def _write(self, trainer: L.Trainer, record: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"rank{trainer.global_rank}.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_train_batch_start(self, trainer, module, batch, batch_index) -> None:
        samples = [[int(e), int(f)] for e, f in zip(batch["episode_index"], batch["frame_index"][:, 0])]
        self._write(trainer, {"step": trainer.global_step, "samples": samples})

    def on_train_end(self, trainer, module) -> None:
        total = sum(float(p.detach().double().sum()) for p in module.parameters())
        self._write(trainer, {"step": trainer.global_step, "weights_sum": total, "first": [float(x) for x in next(module.parameters()).flatten()[:4]]})
