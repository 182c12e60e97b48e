"""Checkpoints: weights as safetensors plus a JSON spec; the resume state of a run.

A frozen pretrained text encoder loaded from a folder (a `TextEncoder` that is `reloadable`)
is left out of both: its weights are the folder's, rebuilt with the model, so a run stores only
what it trained. The spec records each such encoder's folder and weights sha256
(`frozen_encoders`), and `load_model_state` refuses a model whose rebuilt weights differ.

model.json also records the sha256 of the files it describes (`weights_sha256`,
`objectives_sha256`); loading refuses weights that do not match (edited, copied from another
run, or cut by an interrupted save). Runs saved before these keys existed load unchecked.
The three files are written together (`atomic_write_files`): a failed save, a full disk
included, leaves the previous checkpoint whole.

Every unreadable file (empty, truncated, not JSON, keys missing) is a one-line `RunError`
naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from mimsa.atomic import atomic_write, atomic_write_files
from mimsa.errors import RunError

WEIGHTS = "model.safetensors"
OBJECTIVE_WEIGHTS = "objectives.safetensors"
SPEC = "model.json"
RESUME = "resume.pt"
#: model.json keys that loading needs, and the keys its "inputs" entry needs.
SPEC_KEYS = ("model", "inputs")
INPUT_KEYS = ("modalities", "dims")
_RETRAIN = "restore it from a copy of the run, or re-run training"


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
    in `frozen` (see `frozen_encoders`), whose rebuilt weights must have the saved sha256.

    Raises:
        RunError: a key is missing or unexpected, a tensor has another shape than the model's
            (one line naming the first; never torch's multi-line size-mismatch text), or a
            frozen encoder's rebuilt weights differ from the saved digest.
    """
    current_state = model.state_dict()
    for key, tensor in state.items():
        if key in current_state and tuple(current_state[key].shape) != tuple(tensor.shape):
            raise RunError(f"{where}: the saved weights do not fit the model built now: {key} "
                           f"has shape {list(tensor.shape)} in the checkpoint but "
                           f"{list(current_state[key].shape)} in the model (model.json edited "
                           f"or the data changed); evaluate with the run's own data and "
                           f"model.json, or re-run training")
    result = model.load_state_dict(state, strict=False)
    unexplained = [k for k in result.missing_keys if not k.startswith(tuple(frozen))]
    if result.unexpected_keys or unexplained:
        names = ", ".join([*unexplained[:3], *result.unexpected_keys[:3]])
        raise RunError(f"{where}: the saved weights do not fit the model ({names} ...); the "
                       f"checkpoint belongs to another model or version, re-run training")
    current = frozen_encoders(model)
    for prefix, saved in frozen.items():
        if current.get(prefix, {}).get("sha256") != saved["sha256"]:
            raise RunError(f"{where}: trained with the frozen text encoder from "
                           f"{saved['weights']} (weights sha256 {saved['sha256'][:12]}), but "
                           f"the encoder built now has other weights; install the encoder "
                           f"the run used")


def save_checkpoint(run_dir: Path, state: dict[str, torch.Tensor], spec: dict,
                    objectives: dict[str, torch.Tensor] | None = None) -> None:
    """Write `state` to model.safetensors, the objectives' networks (critics, predictors) to
    objectives.safetensors when they have any, and `spec` (model, config, inputs) plus the
    files' sha256 (`weights_sha256`, `objectives_sha256`) to model.json, all together.

    Raises:
        RunError: the disk is full (the previous checkpoint is kept whole).
    """
    run_dir = Path(run_dir)
    weights = safetensors_save(state)
    record = {**spec, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    files = [(run_dir / WEIGHTS, weights)]
    if objectives:
        objective_weights = safetensors_save(objectives)
        record["objectives_sha256"] = hashlib.sha256(objective_weights).hexdigest()
        files.append((run_dir / OBJECTIVE_WEIGHTS, objective_weights))
    files.append((run_dir / SPEC, json.dumps(record, indent=2).encode("utf-8")))
    atomic_write_files([(path, _bytes_writer(data)) for path, data in files])


def read_spec(run_dir: Path) -> dict:
    """Return the checked content of `run_dir`/model.json.

    Raises:
        RunError: the file is missing, is not JSON, or lacks a key loading needs.
    """
    path = Path(run_dir) / SPEC
    if not path.is_file():
        raise RunError(f"{run_dir}: no {SPEC}; is this a finished mimsa run?")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise RunError(f"{path}: not a text file ({err.reason}); {_RETRAIN}") from err
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); "
                       f"{_RETRAIN}") from err
    if not isinstance(spec, dict):
        raise RunError(f"{path}: holds a JSON {type(spec).__name__}, not an object; {_RETRAIN}")
    for key in SPEC_KEYS:
        if key not in spec:
            raise RunError(f"{path}: lacks the key '{key}'; {_RETRAIN}")
    inputs = spec["inputs"]
    if not isinstance(inputs, dict):
        raise RunError(f"{path}: key 'inputs' is not an object; {_RETRAIN}")
    for key in INPUT_KEYS:
        if key not in inputs:
            raise RunError(f"{path}: lacks the key 'inputs.{key}'; {_RETRAIN}")
    dims = inputs["dims"]
    if not isinstance(dims, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in dims.values()):
        raise RunError(f"{path}: key 'inputs.dims' must map fields to positive integers, got "
                       f"{dims!r}; {_RETRAIN}")
    if not isinstance(inputs.get("text", {}), dict):
        raise RunError(f"{path}: key 'inputs.text' is not an object; {_RETRAIN}")
    return spec


def read_weights(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Return the tensors of the safetensors file `path`, checked against `sha256` (the digest
    model.json recorded; None for runs saved before digests were recorded).

    Raises:
        RunError: the file is missing, empty, not a safetensors file (e.g. truncated), or its
            sha256 differs from the recorded one.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise RunError(f"{path.parent}: no {path.name}; is this a finished mimsa run?") from err
    if not data:
        raise RunError(f"{path}: the file is empty (0 bytes); {_RETRAIN}")
    try:
        state = safetensors_load(data)
    except Exception as err:  # safetensors raises its own SafetensorError (an Exception)
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise RunError(f"{path}: not a readable safetensors file, truncated or damaged "
                       f"({detail}); {_RETRAIN}") from err
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise RunError(f"{path}: its sha256 differs from the one in {SPEC} (the file was "
                       f"edited, copied from another run, or cut by an interrupted save); "
                       f"{_RETRAIN}")
    return state


def load_objective_state(run_dir: Path, spec: dict | None = None) -> dict[str, torch.Tensor]:
    """Return the saved objectives' state ({} when the run had none), checked against the
    sha256 in `spec` (model.json) when it records one.

    Raises:
        RunError: as `read_weights`; or model.json records objectives whose file is missing.
    """
    path = Path(run_dir) / OBJECTIVE_WEIGHTS
    digest = (spec or {}).get("objectives_sha256")
    if not path.is_file() and not digest:
        return {}
    return read_weights(path, digest)


def load_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state dict, spec) saved by `save_checkpoint` in `run_dir`; the weights are
    checked against the sha256 in the spec (when recorded).

    Raises:
        RunError: a file is missing or unreadable (see `read_spec`, `read_weights`).
    """
    run_dir = Path(run_dir)
    if not (run_dir / WEIGHTS).is_file():
        raise RunError(f"{run_dir}: no {WEIGHTS}; is this a finished mimsa run?")
    spec = read_spec(run_dir)
    return read_weights(run_dir / WEIGHTS, spec.get("weights_sha256")), spec


def save_resume_state(run_dir: Path, state: dict) -> None:
    """Write the resume state (weights, optimisers, RNG, early-stopping, history) atomically.

    Raises:
        RunError: the disk is full (the previous resume.pt is kept).
    """
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a Python file keeps ENOSPC an OSError
            torch.save(state, handle)

    atomic_write(Path(run_dir) / RESUME, write)


def load_resume_state(run_dir: Path) -> dict | None:
    """Return the resume state of `run_dir`, or None when the run has none.

    Raises:
        RunError: resume.pt is empty, truncated or not a resume state.
    """
    path = Path(run_dir) / RESUME
    if not path.is_file():
        return None
    if path.stat().st_size == 0:
        raise RunError(f"{path} is empty (0 bytes); delete it to restart the run from scratch")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # a truncated file raises one of several pickle/zip errors
        raise RunError(f"{path} is unreadable ({type(err).__name__}: truncated or damaged); "
                       f"delete it to restart the run from scratch") from err
    if not isinstance(state, dict) or "epoch" not in state:
        raise RunError(f"{path} is not a mimsa resume state; delete it to restart the run "
                       f"from scratch")
    return state


def _bytes_writer(data: bytes):
    """Return a `write(tmp)` callback for `atomic_write_files` that writes `data`."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    return write
