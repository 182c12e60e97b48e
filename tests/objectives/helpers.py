"""Correlated Gaussians with a known mutual information, and a stand-in model output."""

from __future__ import annotations

import math

import torch

from mimsa.models.base import InputSpec, ModelOutput

SPEC = InputSpec("tav", {})


def correlated_gaussians(n: int, d: int, rho: float, generator: torch.Generator
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return x, y ~ N(0, I_d) with corr(x_i, y_i) = rho per dimension."""
    x = torch.randn(n, d, generator=generator)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=generator)
    return x, y


def true_mi(d: int, rho: float) -> float:
    """Return I(X; Y) = -d/2 log(1 - rho²) in nats for `correlated_gaussians`."""
    return -d / 2 * math.log(1 - rho**2)


def output(**reps: torch.Tensor) -> ModelOutput:
    """Return a ModelOutput carrying `reps` (the prediction is a zero per sample)."""
    n = next(iter(reps.values())).shape[0]
    return ModelOutput(torch.zeros(n), dict(reps))
