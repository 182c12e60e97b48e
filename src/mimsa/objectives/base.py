"""The objective contract and registry.

An objective is a small `nn.Module` that reads a model's `ModelOutput.reps` (never the model)
and returns named loss terms; a training stage weights and sums the terms it names. Its own
parameters (critics, predictors) are stepped by the optimizer it names in `optimizer`.
Registration checks the declared contract (see `Objective`) and fails at import with a
`ContractError` naming what is missing; options given in the configuration
(`objectives.<name>.<option>`) are checked against the constructor's signature and type hints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.data.dataset import MultimodalDataset
from mimsa.errors import ConfigError, ContractError
from mimsa.models.base import (
    InputSpec,
    ModelOutput,
    build_with_options,
    check_options,
    check_options_signature,
    signature_options,
)

_OBJECTIVES: dict[str, type[Objective]] = {}


class Objective(nn.Module):
    """The contract of every registered objective.

    Construction: `Objective(spec: InputSpec, reps_dims: dict[str, int], **options)`, every
    option with a default and a type hint; `reps_dims` gives the width D of each entry of the
    model's reps, so the objective sizes its networks without seeing the model.

    Declared members:
      terms: tuple[str, ...]     the names of the loss terms `forward` returns; a training step
                                 whose terms include none of them does not run the objective
      optimizer: str             the optimizer that steps the objective's own parameters
                                 ("main" = with the model; any other name gets its own Adam,
                                 configured by `train.optimizers.<name>`)
      forward(output, batch) -> {term: scalar tensor}
                                 output.reps {key: [B, D]}, batch.labels [B]
      reset() -> None            called by the trainer at the start of every epoch (e.g. to
                                 empty a memory of past batches); the default does nothing
      bind(dataset) -> None      called once by the run code right after construction, before
                                 any saved state is loaded, with the run's MultimodalDataset (an
                                 objective with per-sample state, e.g. a label memory keyed by
                                 sample id, sizes its buffers here from the train split); the
                                 default does nothing
    Everything an objective must keep across epochs lives in its state_dict (parameters and
    buffers), so checkpoints and `--resume` restore it exactly.
    """

    terms: ClassVar[tuple[str, ...]] = ()
    optimizer: ClassVar[str] = "main"

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def reset(self) -> None:
        """Called at the start of every epoch; override to clear per-epoch state."""

    def bind(self, dataset: MultimodalDataset) -> None:
        """Called once after construction with the run's dataset; override to size per-sample
        state (see the class docstring)."""


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: make the objective constructible by `create_objective(name, ...)`.

    Raises `ContractError` (at import) when the class breaks the `Objective` contract."""

    def wrap(cls: type[Objective]) -> type[Objective]:
        if name in _OBJECTIVES:
            raise ContractError(f"objective '{name}' is registered twice")
        check_objective_class(name, cls)
        _OBJECTIVES[name] = cls
        return cls

    return wrap


def check_objective_class(name: str, cls: type) -> None:
    """Raise `ContractError` naming the first member of the `Objective` contract `cls` lacks."""
    where = f"objective '{name}' ({cls.__module__}.{cls.__qualname__})"
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ContractError(f"{where} must subclass mimsa.objectives.base.Objective")
    if cls.forward is Objective.forward:
        raise ContractError(f"{where} does not define forward(output, batch) -> {{term: loss}}")
    terms = cls.terms
    if not terms or isinstance(terms, str) or not all(isinstance(t, str) for t in terms):
        raise ContractError(f"{where} must declare terms, a tuple of the term names forward "
                            f"returns (e.g. terms = ('nce',))")
    if not isinstance(cls.optimizer, str) or not cls.optimizer:
        raise ContractError(f"{where} must declare optimizer, the name of the optimizer that "
                            f"steps its parameters ('main' = with the model)")
    check_options_signature(where, cls.__init__, ("self", "spec", "reps_dims"))


def list_objectives() -> dict[str, type[Objective]]:
    """Return the registered objectives by name."""
    import mimsa.objectives.zoo  # noqa: F401  (registers the built-in objectives)

    return dict(sorted(_OBJECTIVES.items()))


def _get(name: str) -> type[Objective]:
    objectives = list_objectives()
    if name not in objectives:
        valid = ", ".join(objectives) or "(none registered)"
        raise ConfigError(f"unknown objective '{name}' (objectives.{name}); registered "
                          f"objectives: {valid}")
    return objectives[name]


def objective_options(name: str) -> dict[str, object]:
    """Return the keyword options of objective `name` with their defaults."""
    return signature_options(_get(name).__init__, 3)


def check_objective_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return the options of objective `name` checked and converted to their hinted types;
    raise `ConfigError` (one line) on an unknown option, listing the valid ones with their
    defaults, or on a value of the wrong type."""
    return check_options(f"objective '{name}'", f"objectives.{name}", _get(name).__init__, 3,
                         options)


def create_objective(name: str, spec: InputSpec, reps_dims: dict[str, int],
                     **options) -> Objective:
    """Return objective `name` for a model whose reps have sizes `reps_dims`."""
    cls = _get(name)
    checked = check_objective_options(name, options)
    return build_with_options(f"objective '{name}'", f"objectives.{name}",
                              lambda: cls(spec, reps_dims, **checked), checked)
