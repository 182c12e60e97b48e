"""Checkpoints: weights as safetensors plus a JSON spec; the resume state of a run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mimsa.atomic import atomic_write, atomic_write_text

WEIGHTS = "model.safetensors"
OBJECTIVE_WEIGHTS = "objectives.safetensors"
SPEC = "model.json"
RESUME = "resume.pt"


def to_cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Return a detached, contiguous CPU copy of `module.state_dict()`."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(run_dir: Path, state: dict[str, torch.Tensor], spec: dict,
                    objectives: dict[str, torch.Tensor] | None = None) -> None:
    """Write `state` to model.safetensors, the objectives' networks (critics, predictors) to
    objectives.safetensors when they have any, and `spec` (model, config, inputs) to model.json."""
    atomic_write(run_dir / WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    if objectives:
        atomic_write(run_dir / OBJECTIVE_WEIGHTS, lambda tmp: save_file(objectives, str(tmp)))
    atomic_write_text(run_dir / SPEC, json.dumps(spec, indent=2))


def load_objective_state(run_dir: Path) -> dict[str, torch.Tensor]:
    """Return the saved objectives' state ({} when the run had none)."""
    path = run_dir / OBJECTIVE_WEIGHTS
    return load_file(str(path)) if path.is_file() else {}


def load_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state dict, spec) saved by `save_checkpoint` in `run_dir`."""
    for name in (WEIGHTS, SPEC):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: no {name}; is this a finished mimsa run?")
    try:
        spec = json.loads((run_dir / SPEC).read_text())
        state = load_file(str(run_dir / WEIGHTS))
    except (OSError, ValueError) as err:  # safetensors raises its own error subclass of these
        raise ValueError(f"{run_dir}: the checkpoint is unreadable ({err}); "
                         f"re-run training") from err
    return state, spec


def save_resume_state(run_dir: Path, state: dict) -> None:
    """Write the resume state (weights, optimisers, RNG, early-stopping, history) atomically."""
    atomic_write(run_dir / RESUME, lambda tmp: torch.save(state, tmp))


def load_resume_state(run_dir: Path) -> dict | None:
    """Return the resume state of `run_dir`, or None when the run has none."""
    path = run_dir / RESUME
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:  # a truncated file raises one of several pickle/zip errors
        raise ValueError(f"{path} is unreadable ({type(err).__name__}); delete it to restart "
                         f"the run from scratch") from err
