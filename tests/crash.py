"""A callback that kills the training process abruptly, as a machine failure would (tests only)."""

import os

import lightning as L


class CrashAtStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        if trainer.global_step >= self.step:
            os._exit(3)  # no clean-up, no final checkpoint
