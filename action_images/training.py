"""What every trainable model of the project shares (Action Images, the baseline, ImageWAM): checkpoints
that carry the data's normalisation statistics and the random state, so a resumed run is the same run,
and AdamW with linear warm-up, then cosine decay to 10 % over `max_steps` (constant when None), or over the
trainer's `max_time` with the hyper-parameter `lr_schedule: time`.

A subclass sets `self.normalization_stats` (usually from its data module in `setup`) and has the
hyper-parameters `lr`, `weight_decay`, `warmup_steps` and `max_steps` (and optionally `lr_schedule`).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer
from torch import Tensor


def stats_to_checkpoint(stats: dict[str, dict[str, Tensor]] | None) -> dict[str, dict[str, list]]:
    """A data module's `normalization_stats()` → plain lists (loadable with `weights_only=True`).
    Missing statistics are an error, never a silent pass."""
    if stats is None:
        raise ValueError("normalisation statistics are missing: train with a data module that provides them")
    return {key: {name: value.tolist() for name, value in entry.items()} for key, entry in stats.items()}


def stats_from_checkpoint(checkpoint: dict) -> dict[str, dict[str, Tensor]]:
    """The inverse of `stats_to_checkpoint`, read from a checkpoint dict; raises when absent."""
    stored = checkpoint.get("normalization_stats")
    if stored is None:
        raise ValueError("this checkpoint holds no normalisation statistics")
    return {key: {name: torch.tensor(value) for name, value in entry.items()} for key, entry in stored.items()}


class TrainingModule(L.LightningModule):
    normalization_stats: dict[str, dict[str, Tensor]] | None = None

    def noise_device(self, generator: torch.Generator | None) -> torch.device:
        """Random numbers are drawn where the generator lives (the model's device without one), so a
        CPU generator gives the same sample on any device."""
        return generator.device if generator is not None else self.device

    def randn(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        return torch.randn(shape, generator=generator, device=self.noise_device(generator)).to(self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["normalization_stats"] = stats_to_checkpoint(self.normalization_stats)
        # The random state drives modes, timesteps and noise: with it, a resumed run is the same run.
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.normalization_stats = stats_from_checkpoint(checkpoint)
        self._resume_rng_state = checkpoint.get("torch_rng_state")

    def on_train_batch_start(self, batch: dict, batch_index: int) -> None:
        # Restored here, not on load: starting the loaders after the load draws random numbers too.
        state = getattr(self, "_resume_rng_state", None)
        if state is not None:
            torch.set_rng_state(state)
            self._resume_rng_state = None

    def _schedule_timer(self) -> Timer | None:
        """Lightning's `Timer` when the learning rate follows wall time (`lr_schedule: time`), else None."""
        schedule = self.hparams.get("lr_schedule", "steps")
        if schedule not in ("steps", "time"):
            raise ValueError(f"lr_schedule must be 'steps' or 'time', got {schedule!r}")
        if schedule == "steps":
            return None
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        if timer is None:
            raise ValueError("lr_schedule 'time' decays over the trainer's max_time: set trainer.max_time (e.g. 00:00:55:00)")
        return timer

    def configure_optimizers(self):
        parameters = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warmup, total = self.hparams.warmup_steps, self.hparams.max_steps
        timer = self._schedule_timer()

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if timer is not None:
                elapsed = timer.time_elapsed("train")
                progress = min(1.0, elapsed / max(1e-9, elapsed + timer.time_remaining("train")))
            elif total is None:
                return 1.0
            else:
                progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
