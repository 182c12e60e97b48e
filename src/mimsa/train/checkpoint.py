"""Checkpoints: weights as safetensors plus a JSON spec; the resume state of a run.

A frozen pretrained text encoder loaded from a folder (a `TextEncoder` that is `reloadable`)
is left out of both: its weights are the folder's, rebuilt with the model, so a run stores only
what it trained. The spec records each such encoder's folder and weights sha256
(`frozen_encoders`), and `load_model_state` refuses a model whose rebuilt weights differ.
"""

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


def to_cpu_state(module: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Return a detached, contiguous CPU copy of `module.state_dict()` without the keys that
    start with a prefix in `skip`."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()
            if not k.startswith(skip)}


def frozen_encoders(model: nn.Module) -> dict[str, dict[str, str]]:
    """Return {state-dict prefix: {"weights": folder, "sha256": digest}} for every frozen text
    encoder of `model` whose weights come from a folder: the weights checkpoints leave out."""
    from mimsa.encoders.text import TextEncoder

    return {(f"{name}." if name else "") + "pretrained.": {"weights": str(module.weights_dir),
                                                          "sha256": module.weights_sha256()}
            for name, module in model.named_modules()
            if isinstance(module, TextEncoder) and module.reloadable}


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor],
                     frozen: dict[str, dict[str, str]], where: str) -> None:
    """Load `state` into `model`. Keys absent from `state` must belong to the frozen encoders
    in `frozen` (see `frozen_encoders`), whose rebuilt weights must have the saved sha256."""
    result = model.load_state_dict(state, strict=False)
    unexplained = [k for k in result.missing_keys if not k.startswith(tuple(frozen))]
    if result.unexpected_keys or unexplained:
        names = ", ".join([*unexplained[:3], *result.unexpected_keys[:3]])
        raise ValueError(f"{where}: the saved weights do not fit the model ({names} ...); the "
                         f"checkpoint belongs to another model or version, re-run training")
    current = frozen_encoders(model)
    for prefix, saved in frozen.items():
        if current.get(prefix, {}).get("sha256") != saved["sha256"]:
            raise ValueError(f"{where}: trained with the frozen text encoder from "
                             f"{saved['weights']} (weights sha256 {saved['sha256'][:12]}), but "
                             f"the encoder built now has other weights; install the encoder "
                             f"the run used")


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
