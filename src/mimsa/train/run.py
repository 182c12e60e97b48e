"""One run, top to bottom: config → data → model → trainer → outputs in a run directory.

A run directory holds config.yaml, history.jsonl, metrics.json, predictions.csv,
model.safetensors + model.json, and while unfinished resume.pt (the weights of a frozen
pretrained text encoder are left out of both; see train/checkpoint.py). A multi-seed run holds
one such directory per seed (seed-1111, ...) plus summary.csv and summary.md.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mimsa import config as config_mod
from mimsa.atomic import atomic_write_text, remove_stale_temporaries
from mimsa.data.corruptions import Augmentation
from mimsa.data.dataset import MultimodalDataset
from mimsa.data.registry import load_dataset
from mimsa.data.scaling import apply_scaling, fit_scaling, scaled_fields
from mimsa.encoders.builder import AUTO_CHOICES, TextSpec, prepare_text, text_words
from mimsa.encoders.cache import EncoderCache
from mimsa.encoders.text import share_cache
from mimsa.errors import ConfigError, DataError, RunError
from mimsa.models.base import InputSpec, check_model_options, create_model
from mimsa.objectives.base import check_objective_options, create_objective, list_objectives
from mimsa.objectives.penalty_config import apply_penalty
from mimsa.train.checkpoint import (
    RESUME,
    SPEC,
    frozen_encoders,
    load_checkpoint,
    load_model_state,
    load_objective_state,
    load_resume_state,
    read_spec,
)
from mimsa.train.device import resolve_device, use_device
from mimsa.train.display import QuietDisplay
from mimsa.train.inputs import (
    check_data_fingerprint,
    check_inputs,
    data_fingerprint,
    input_record,
    saved_input_spec,
)
from mimsa.train.lock import LOCK, run_lock, writer
from mimsa.train.seeding import seed_everything
from mimsa.train.trainer import (
    FitResult,
    Stage,
    Trainer,
    apply_term_weights,
    check_stage_terms,
)

CONFIG = "config.yaml"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"


def prepare_data(cfg: dict, saved_text: TextSpec | None = None,
                 cache: EncoderCache | None = None, saved_scaling: dict | None = None,
                 where: str = "") -> tuple[MultimodalDataset, InputSpec]:
    """Return the dataset (with text ids attached if needed) and the model's `InputSpec`.

    With `data.standardize`, the feature fields the run reads are standardised with
    `saved_scaling` (a trained run's recorded statistics; `where` names the run in errors) or,
    when it is None, with statistics fitted on the train split (`standardize`).

    Raises:
        ConfigError: data.modalities asks for what the dataset does not offer.
        DataError: the dataset cannot be read (see `load_dataset`).
        RunError: the recorded statistics do not match the config or the data."""
    data = cfg["data"]
    dataset = load_dataset(data["name"], data["root"], nan_policy=data["nan_policy"],
                           seed=data["synthetic_seed"], sizes=data.get("synthetic_sizes"),
                           trust_pickle=data["trust_pickle"],
                           cross_split_duplicates=data["cross_split_duplicates"])
    available = dataset.modalities
    wanted = data["modalities"] or available
    unknown = [m for m in wanted if m not in "tav"]
    missing = [m for m in wanted if m not in available]
    if unknown or missing:
        raise ConfigError(f"data.modalities '{wanted}': {dataset.name} offers '{available}' "
                         f"(use a subset of t, a, v)")
    modalities = "".join(m for m in "tav" if m in wanted)
    if "t" in modalities:
        text = prepare_text(dataset, cfg["encoder"], saved_text, cache, data.get("context"))
    else:
        text = TextSpec()
    scaling = standardize(dataset, modalities, text.kind, bool(data.get("standardize")),
                          saved_scaling, where)
    dims = dataset.feature_dims()
    return dataset, InputSpec(modalities, dims, text, dict(cfg["encoder"]), scaling)


def standardize(dataset: MultimodalDataset, modalities: str, text_kind: str, wanted: bool,
                saved: dict | None, where: str) -> dict:
    """Standardise the feature fields a run reads (`mimsa.data.scaling`) and return the
    statistics used ({} when off): fitted on the train split when `saved` is None (training),
    else the run's recorded ones (`saved`, model.json's `inputs.scaling`).

    Raises:
        RunError: the run's config.yaml (`wanted`) and model.json (`saved`) disagree about
            which fields were standardised, or the recorded statistics do not fit the data.
    """
    fields = scaled_fields(dataset, modalities, text_kind) if wanted else []
    if saved is None:
        if wanted and not fields:
            warnings.warn(f"data.standardize: the run reads no feature field (modalities "
                          f"'{modalities}', text from '{text_kind}'), so nothing is "
                          f"standardised", UserWarning, stacklevel=3)
        saved = fit_scaling(dataset, fields) if fields else {}
    elif sorted(saved) != sorted(fields):
        raise RunError(f"{where}: config.yaml says data.standardize={str(wanted).lower()} "
                       f"(fields {', '.join(fields) or 'none'}) but model.json records "
                       f"statistics for {', '.join(sorted(saved)) or 'none'}; restore both "
                       f"files from a copy of the run, or re-train")
    apply_scaling(dataset, saved, where or dataset.name)
    return saved


def build_model(cfg: dict, spec: InputSpec) -> tuple[nn.Module, nn.ModuleDict]:
    """Return (model, objectives) for `cfg`; the objectives read the model's reps.

    A `penalty` section adds its dependency objective (the critic is built after the model,
    so the model's initialisation does not change)."""
    cfg = apply_penalty(cfg)
    options = {k: v for k, v in cfg["model"].items() if k != "name"}
    model = create_model(cfg["model"]["name"], spec, **options)
    objectives = nn.ModuleDict()
    if cfg.get("objectives"):
        reps_dims = dict(model.reps_dims)  # declared by the Model contract
        for name, options in cfg["objectives"].items():
            if options is None or options.get("enabled", True):
                opts = {k: v for k, v in (options or {}).items() if k != "enabled"}
                objectives[name] = create_objective(name, spec, reps_dims, **opts)
    return model, objectives


def read_run_config(run_dir: Path) -> dict:
    """Return the checked config.yaml of a run; a damaged one is a one-line `RunError`."""
    path = run_dir / CONFIG
    try:
        return config_mod.check_values(config_mod.load_yaml(path))
    except ConfigError as err:
        raise RunError(f"{path} is not a usable run configuration ({err}); the run directory "
                       f"is damaged: re-run training") from None


def check_run_config(cfg: dict) -> None:
    """Check what the schema cannot: the model's and objectives' options against their
    constructors (names and types), the device (a GPU torch can see), the penalty section, the
    stages and term weights. Raises
    `ConfigError` (one line) before anything is loaded or written."""
    options = {k: v for k, v in cfg["model"].items() if k != "name"}
    check_model_options(cfg["model"]["name"], options)
    resolve_device(cfg["train"].get("device", "auto"))
    run_cfg = apply_penalty(cfg)
    for name, opts in (run_cfg.get("objectives") or {}).items():
        check_objective_options(name, {k: v for k, v in (opts or {}).items() if k != "enabled"})
    train = run_cfg["train"]
    named = {t for s in train["stages"] for step in (s.get("steps") or [s])
             for t in (step.get("terms") or {"task": 1.0})}
    for name in run_cfg.get("objectives") or {}:
        if not named & set(list_objectives()[name].terms):
            raise ConfigError(f"objectives.{name} is configured but no stage uses its term(s) "
                              f"{', '.join(list_objectives()[name].terms)}, so it would change "
                              f"nothing; add a term to train.stages (with its weight) or drop "
                              f"objectives.{name}")
    stages = apply_term_weights([Stage.from_config(s) for s in train["stages"]],
                                train["term_weights"])
    check_stage_terms(stages, [t for name in run_cfg.get("objectives") or {}
                               for t in list_objectives()[name].terms])


def check_run_dir(run_dir: Path, resume: bool, check_writer: bool = True) -> None:
    """Refuse (one-line `RunError`) a run directory that cannot take this start: a path that
    is a file, a run with results (without `resume`), nothing to resume (with it)."""
    if str(run_dir) in ("", "."):
        raise RunError("--out is the current folder; give a run directory, e.g. --out runs/x")
    for parent in (run_dir, *run_dir.parents):
        if parent.exists() and not parent.is_dir():
            raise RunError(f"--out {run_dir}: {parent} is a file, not a folder; choose another "
                           f"--out")
    busy = writer(run_dir) if check_writer else None
    if busy is not None:
        raise RunError(f"{run_dir} is being written by another mimsa process{busy}; wait "
                       f"for it to finish or choose another --out")
    if resume:
        if not (run_dir / CONFIG).is_file():
            raise RunError(f"{run_dir}: nothing to resume (no {CONFIG}); start it without "
                           f"--resume")
        return
    finished, interrupted = (run_dir / METRICS).is_file(), (run_dir / RESUME).is_file()
    if finished or interrupted:
        what = "a finished run" if finished else "an interrupted run (use --resume)"
        raise RunError(f"{run_dir} already holds {what}; choose another --out")
    others = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK) \
        if run_dir.is_dir() else []
    if others:
        raise RunError(f"--out {run_dir} is a folder that already holds other files "
                       f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); a run "
                       f"writes into an empty or new folder: choose another --out")


# Settings that may change when a run resumes: they do not change what the finished epochs
# computed. Any other difference between the given and the saved settings is refused.
RESUME_MAY_CHANGE = {
    "train.epochs": "a larger budget continues training (a smaller one than the epochs "
                    "already run is refused)",
    "train.patience": "early stopping from the next epoch on",
    "train.threads": "CPU threads",
    "train.device": "where the next epochs run (the finished ones stay as they were computed)",
    "data.root": "where the data live (the data must be the same; see the data fingerprint)",
}


def reconcile_resume(saved: dict, given: dict[str, Any], run_dir: Path
                     ) -> tuple[dict, list[str]]:
    """Return (config to resume with, notes on applied changes) from the run's saved config
    and the settings the user gave explicitly now ({dotted key: value}).

    Raises `RunError` listing every given setting that differs from the saved one, except the
    documented few in `RESUME_MAY_CHANGE`, which are applied and reported."""
    cfg = copy.deepcopy(saved)
    refused, notes = [], []
    for key, value in given.items():
        old = _get_path(saved, key)
        if old == value:
            continue
        if key in RESUME_MAY_CHANGE:
            if key == "train.epochs" and int(value) < int(old):
                refused.append(f"{key}: saved {old}, given {value} (may only grow)")
                continue
            train = saved.get("train") or {}
            if key == "train.epochs" and (train.get("warmup") or train.get("decay") == "linear"):
                # the schedule spans the budget: another budget moves every later step's rate
                refused.append(f"{key}: saved {old}, given {value} (the learning-rate "
                               f"schedule, train.warmup/train.decay, spans the saved budget)")
                continue
            _set_path(cfg, key, value)
            notes.append(f"{key}: {old} -> {value} ({RESUME_MAY_CHANGE[key]})")
        else:
            refused.append(f"{key}: saved {_short(old)}, given {_short(value)}")
    if refused:
        raise RunError(f"{run_dir}: --resume continues the saved run with its saved settings; "
                       f"these differ: {'; '.join(refused)} (drop them, or start a new run "
                       f"with another --out; may change: {', '.join(RESUME_MAY_CHANGE)})")
    return cfg, notes


def _get_path(cfg: dict, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set_path(cfg: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def train_run(cfg: dict, run_dir: Path, *, resume: bool = False,
              display: QuietDisplay | None = None,
              on_epoch_end: Callable[[int, dict], None] | None = None,
              cache: EncoderCache | None = None,
              given: dict[str, Any] | None = None, score_test: bool = True) -> dict:
    """Train one seed into `run_dir`; return its metrics.json content.

    `cache` keeps tokenizers, token ids and a frozen text encoder's states; a fresh one is made
    when none is given (`train_seeds` passes one to all its seeds).

    With `resume`, the run continues from its last finished epoch using the config saved in
    `run_dir`; `given` ({dotted key: value}, the settings the user gave explicitly) is compared
    with it first (`reconcile_resume`). A finished run is returned as it is.

    `on_epoch_end(epoch, row)` is called after each epoch with its history row (see
    `Trainer`). With `score_test=False` the test split is never predicted or scored (tuning):
    metrics.json has `"test": null`, predictions.csv holds train and valid only, and
    `protocol: legacy` is refused (`ConfigError`).

    Everything is checked (config, data, model, objectives, stages) before the run directory
    is created; a start that fails before its first epoch is saved removes what it created.
    One process writes a run directory at a time (`mimsa.train.lock.run_lock`).
    Raises `ConfigError`, `DataError`, `RunError`, `TrainingError` (all `MimsaError`).
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    if not resume:
        check_run_config(cfg)
    notes: list[str] = []
    if resume:
        saved_cfg = read_run_config(run_dir)
        if (run_dir / METRICS).is_file() and not (run_dir / RESUME).is_file():
            _, changes = reconcile_resume(saved_cfg, given or {}, run_dir)
            if changes:
                raise RunError(f"{run_dir} is a finished run: {'; '.join(changes)} cannot "
                               f"apply to it (a finished run keeps no resume state); start a "
                               f"new run with another --out")
            return json.loads((run_dir / METRICS).read_text())
        cfg, notes = reconcile_resume(saved_cfg, given or {}, run_dir)
        cfg = config_mod.check_values(cfg)
        check_run_config(cfg)
    if cfg["train"].get("threads"):
        torch.set_num_threads(int(cfg["train"]["threads"]))
    device = resolve_device(cfg["train"].get("device", "auto"))
    use_device(device)
    seed_everything(int(cfg["seed"]))
    cache = cache if cache is not None else EncoderCache()
    saved_spec = read_spec(run_dir) if resume and (run_dir / SPEC).is_file() else None
    saved_scaling = None if saved_spec is None else saved_input_spec(
        saved_spec, str(run_dir)).scaling  # resume with the statistics it trained with
    dataset, spec = prepare_data(cfg, cache=cache, saved_scaling=saved_scaling,
                                 where=str(run_dir))
    check_splits(dataset, score_test)
    if saved_spec is not None:  # the data must be those the run trained on
        check_inputs(saved_spec["inputs"], spec, str(run_dir), dataset)
        check_data_fingerprint(saved_spec.get("data_fingerprint"),
                               data_fingerprint(dataset, spec.modalities), str(run_dir),
                               strict=True)
    run_cfg = apply_penalty(cfg)  # config.yaml keeps the compact `penalty` section
    model, objectives = build_model(run_cfg, spec)
    for objective in objectives.values():
        objective.bind(dataset)
    model.to(device)
    objectives.to(device)
    share_cache(model, cache)
    augment = Augmentation.from_config(cfg["data"].get("augment"), int(cfg["seed"]))
    if augment is not None:
        augment = augment.bind(dataset, spec, text_words(spec.text, cache))
    checkpoint_spec = {"model": cfg["model"]["name"], "model_config": cfg["model"],
                       "inputs": input_record(spec, dataset), "dataset": dataset.name,
                       "data_fingerprint": data_fingerprint(dataset, spec.modalities),
                       "objectives": list(objectives), "seed": cfg["seed"],
                       "frozen_encoders": frozen_encoders(model)}
    trainer = Trainer(model, objectives, dataset, run_cfg, checkpoint_spec, run_dir,
                      modalities=spec.modalities, pad_id=spec.text.pad_id, display=display,
                      on_epoch_end=on_epoch_end, augment=augment, score_test=score_test)
    created = _first_missing(run_dir)
    with run_lock(run_dir):  # creates the directory
        try:
            remove_stale_temporaries(run_dir)
            # again, under the lock: another writer may have finished it meanwhile
            check_run_dir(run_dir, resume, check_writer=False)
            saved = load_resume_state(run_dir) if resume else None
            atomic_write_text(run_dir / CONFIG, config_mod.dump(cfg))
            for note in notes:
                (display or QuietDisplay()).note(f"{run_dir}: resumed with {note}")
            if cfg["encoder"]["name"] == "auto" and spec.text.source in AUTO_CHOICES \
                    and not resume:
                (display or QuietDisplay()).note(
                    f"text encoder: encoder.name=auto picked '{spec.text.source}' for "
                    f"{dataset.name} ({AUTO_CHOICES[spec.text.source]}); set encoder.name to "
                    f"choose another")
            result = trainer.fit(resume=saved)
        except BaseException:
            if created is not None and not resume and not _has_progress(run_dir):
                _remove_created(run_dir, created)
            raise
        metrics = write_outputs(run_dir, cfg, dataset, result)
        (run_dir / RESUME).unlink(missing_ok=True)
    return metrics


def check_splits(dataset: MultimodalDataset, score_test: bool = True) -> None:
    """Raise DataError when a split training needs is empty: train (to learn), valid (to
    select the checkpoint on) and, unless the run never scores it, test."""
    needed = ("train", "valid", "test") if score_test else ("train", "valid")
    empty = [split for split in needed if len(dataset.indices(split)) == 0]
    if empty:
        raise DataError(f"{dataset.card.source or dataset.name}: the {empty[0]} split is empty; "
                        f"a run needs samples in {', '.join(needed)} (give the dataset a "
                        f"'{empty[0]}' split)")


def _first_missing(path: Path) -> Path | None:
    """Return the topmost ancestor of `path` (or `path`) that does not exist yet, else None."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _has_progress(run_dir: Path) -> bool:
    """Return True when the run directory holds a finished epoch or results worth keeping."""
    return (run_dir / RESUME).is_file() or (run_dir / METRICS).is_file()


def _remove_created(run_dir: Path, created: Path) -> None:
    """Remove the run directory this failed start created, then its parents up to `created`
    while they are empty (the lock file goes with the directory)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:
        if parent == created.parent or not parent.is_relative_to(created):
            break
        try:
            parent.rmdir()
        except OSError:
            break


def write_outputs(run_dir: Path, cfg: dict, dataset: MultimodalDataset,
                  result: FitResult) -> dict:
    """Write metrics.json and predictions.csv; return the metrics dict (`"test": None` when
    the run did not score test; `"device"`: every device its epochs ran on, in order of first
    use, from the history rows, e.g. "cuda:0 (NVIDIA H200), cpu" for a run moved on resume)."""
    devices = dict.fromkeys(str(row["device"]) for row in result.history if row.get("device"))
    metrics = {"valid": result.metrics["valid"], "test": result.metrics.get("test"),
               "best_epoch": result.best_epoch, "seed": cfg["seed"],
               "protocol": cfg.get("protocol", "clean"), "device": ", ".join(devices) or "cpu"}
    if cfg["data"].get("context"):  # results with context are never read as single-utterance
        metrics["context"] = dict(cfg["data"]["context"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "label", "prediction", "split"])
    for split, preds in result.predictions.items():
        for i, p in zip(dataset.indices(split), preds, strict=True):
            # + 0.0 turns -0.0 into 0, so the file has no "-0" (after rounding to 6 places)
            writer.writerow([dataset.ids[i], f"{dataset.labels[i] + 0.0:.6g}",
                             f"{round(float(p), 6) + 0.0:.6f}", split])
    atomic_write_text(run_dir / PREDICTIONS, buffer.getvalue())
    atomic_write_text(run_dir / METRICS, json.dumps(metrics, indent=2, allow_nan=True))
    return metrics


def train_seeds(cfg: dict, seeds: list[int], out_dir: Path, *, resume: bool = False,
                display: QuietDisplay | None = None,
                cache: EncoderCache | None = None,
                given: dict[str, Any] | None = None) -> dict[int, dict]:
    """Train one run per seed under out_dir/seed-<s>; return {seed: metrics}.

    With `resume`, finished seeds are kept and an interrupted one continues (`given`: see
    `train_run`); seeds without a run directory yet start. The seeds share
    one `EncoderCache` (`cache`, else a fresh one), so a frozen text encoder encodes each
    transcript once for all of them. The summary (summary.csv/.md) is written by the caller:
    `mimsa.eval.aggregate.write_seed_summary`.
    """
    out_dir = Path(out_dir)
    cache = cache if cache is not None else EncoderCache()
    results: dict[int, dict] = {}
    for seed in seeds:
        run_dir = out_dir / f"seed-{seed}"
        seed_cfg = {**cfg, "seed": int(seed)}
        seed_resume = resume and (run_dir / CONFIG).is_file()
        results[seed] = train_run(seed_cfg, run_dir, resume=seed_resume, display=display,
                                  cache=cache, given=given)
    return results


def load_run(run_dir: Path, cache: EncoderCache | None = None
             ) -> tuple[dict, nn.Module, MultimodalDataset, InputSpec]:
    """Return (config, trained model in eval mode, dataset, input spec) of a finished run.

    `cache` (e.g. one shared by the seeds of a multi-seed run) keeps tokenizers, token ids and
    a frozen encoder's states and weight digests between loads.

    The trained objectives (e.g. a dependency critic) are attached as `model.objectives`.
    Before the model is built, the data are compared with those the run was trained on
    (`mimsa.train.inputs`): a difference in modalities, dims or text encoder is refused, other
    data (fingerprint, provenance) are a one-line warning. Raises `RunError` (one line) for
    that and for a missing, damaged or edited checkpoint file.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RunError(f"{run_dir} is not a mimsa run directory (no {CONFIG})")
    if not (run_dir / METRICS).is_file():
        raise RunError(f"{run_dir} is not finished (no {METRICS}); finish it with mimsa train "
                       f"--out {run_dir} --resume, then evaluate it")
    cfg = read_run_config(run_dir)
    state, spec_json = load_checkpoint(run_dir)  # checks model.json and the weights' sha256
    where = str(run_dir)
    saved = saved_input_spec(spec_json, where)
    cfg["data"]["modalities"] = saved.modalities
    try:
        dataset, spec = prepare_data(cfg, saved_text=saved.text, cache=cache,
                                     saved_scaling=saved.scaling, where=where)
    except ConfigError as err:  # the data no longer offer what the run was trained on
        raise RunError(f"{where}: the run was trained on modalities '{saved.modalities}' and "
                       f"its data no longer fit ({err}); evaluate it with the data it was "
                       f"trained on") from None
    check_inputs(spec_json["inputs"], spec, where, dataset)  # before the model is built
    if spec_json.get("data_fingerprint"):
        check_data_fingerprint(spec_json["data_fingerprint"],
                               data_fingerprint(dataset, spec.modalities), where)
    model, objectives = build_model(cfg, spec)
    for objective in objectives.values():
        objective.bind(dataset)
    if cache is not None:
        share_cache(model, cache)
    load_model_state(model, state, spec_json.get("frozen_encoders") or {}, where)
    objective_state = load_objective_state(run_dir, spec_json)
    if objective_state:
        load_model_state(objectives, objective_state, {}, where)
    model.objectives = objectives
    model.eval()
    return cfg, model, dataset, spec
