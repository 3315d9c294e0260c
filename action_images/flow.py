"""Rectified flow / flow matching (SPEC §5), written once for training and sampling.

x_t = (1 − t)·x_0 + t·ε with t ∈ [0, 1] (t = 1 is pure noise); the velocity is v = ε − x_0.
The network may predict the velocity (the reference) or x_0 (which learns sparse action images
faster on small CPU configs, SPEC §10); `to_velocity` turns either into what the Euler scheduler
steps with. Timesteps are shifted as in Wan: t' = s·t / (1 + (s − 1)·t) (s = 5 at 512²), which spends
more training on noisy timesteps. The network sees 1000·t, as diffusers' Wan pipelines pass it.
"""

from __future__ import annotations

from enum import Enum

import torch

TIMESTEP_SCALE = 1000.0


class Prediction(str, Enum):
    VELOCITY = "velocity"
    X0 = "x0"

    @classmethod
    def parse(cls, value: "str | Prediction") -> "Prediction":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown prediction {value!r}; known: {', '.join(p.value for p in cls)}") from None


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * t / (1 + (shift - 1) * t)


def sample_timesteps(batch: int, shift: float, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Training timesteps in (0, 1): uniform, then Wan's shift."""
    t = torch.rand(batch, generator=generator, device=device).clamp(1e-4, 1 - 1e-4)
    return shift_timesteps(t, shift)


def add_noise(clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.reshape(-1, *([1] * (clean.ndim - 1)))
    return (1 - t) * clean + t * noise


def training_target(clean: torch.Tensor, noise: torch.Tensor, prediction: Prediction) -> torch.Tensor:
    return clean if prediction is Prediction.X0 else noise - clean


def to_velocity(output: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor, prediction: Prediction) -> torch.Tensor:
    """The velocity ε − x_0 implied by the network's output at x_t."""
    if prediction is Prediction.VELOCITY:
        return output
    t = t.reshape(-1, *([1] * (noisy.ndim - 1))).clamp(min=1e-4)
    return (noisy - output) / t


def to_clean(output: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor, prediction: Prediction) -> torch.Tensor:
    """The x_0 implied by the network's output at x_t."""
    if prediction is Prediction.X0:
        return output
    t = t.reshape(-1, *([1] * (noisy.ndim - 1)))
    return noisy - t * output
