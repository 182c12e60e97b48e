"""The objective contract and registry.

An objective is a small `nn.Module` that reads a model's `ModelOutput.reps` (never the model)
and returns named loss terms; a training stage weights and sums the terms it names. Its own
parameters (critics, predictors) are stepped by the optimizer it names in `optimizer`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.models.base import InputSpec, ModelOutput

_OBJECTIVES: dict[str, type[nn.Module]] = {}


class Objective(nn.Module):
    """Base class: `forward(output, batch) -> {term name: scalar tensor}`."""

    optimizer: str = "main"

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def register_objective(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make the objective constructible by `create_objective(name, ...)`."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _OBJECTIVES:
            raise ValueError(f"objective '{name}' is registered twice")
        _OBJECTIVES[name] = cls
        return cls

    return wrap


def list_objectives() -> dict[str, type[nn.Module]]:
    """Return the registered objectives by name."""
    import mimsa.objectives.zoo  # noqa: F401  (registers the built-in objectives)

    return dict(sorted(_OBJECTIVES.items()))


def create_objective(name: str, spec: InputSpec, reps_dims: dict[str, int],
                     **options) -> nn.Module:
    """Return objective `name` for a model whose reps have sizes `reps_dims`."""
    if name not in list_objectives():
        valid = ", ".join(_OBJECTIVES) or "(none registered)"
        raise KeyError(f"unknown objective '{name}'; registered objectives: {valid}")
    return _OBJECTIVES[name](spec, reps_dims, **options)
