"""Lightning callbacks of the project."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


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


class FinalStepCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that also writes `last.ckpt` after the final training step.

    Lightning 2.6 skips the end-of-training `last.ckpt` once any earlier one was written, so a run
    stopped by `max_time` (or by a `max_steps` that `every_n_train_steps` does not divide) would keep
    only the state of its last periodic save and lose the steps after it. Checkpoint callbacks run
    after the `Timer` in each hook, and before weight averaging replaces the weights at the end of
    training, so this saves the final step's raw and averaged weights alike — resumable exactly.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        final = trainer.should_stop or 0 < trainer.max_steps <= trainer.global_step
        if self.save_last and final and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
