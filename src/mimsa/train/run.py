"""One run, top to bottom: config → data → model → trainer → outputs in a run directory.

A run directory holds config.yaml, history.jsonl, metrics.json, predictions.csv,
model.safetensors + model.json, and while unfinished resume.pt (the weights of a frozen
pretrained text encoder are left out of both; see train/checkpoint.py). A multi-seed run holds
one such directory per seed (seed-1111, ...) plus summary.csv and summary.md.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mimsa import config as config_mod
from mimsa.atomic import atomic_write_text
from mimsa.data.corruptions import Augmentation
from mimsa.data.dataset import MultimodalDataset
from mimsa.data.registry import load_dataset
from mimsa.encoders.builder import TextSpec, prepare_text
from mimsa.eval.aggregate import write_summary
from mimsa.models.base import InputSpec, create_model
from mimsa.objectives.base import create_objective
from mimsa.objectives.penalty_config import apply_penalty
from mimsa.train.checkpoint import (
    RESUME,
    frozen_encoders,
    load_checkpoint,
    load_model_state,
    load_objective_state,
    load_resume_state,
)
from mimsa.train.display import QuietDisplay
from mimsa.train.seeding import seed_everything
from mimsa.train.trainer import FitResult, Trainer

CONFIG = "config.yaml"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"


class RunError(RuntimeError):
    """A run directory is in a state that forbids the request (e.g. would overwrite results)."""


def prepare_data(cfg: dict, saved_text: TextSpec | None = None
                 ) -> tuple[MultimodalDataset, InputSpec]:
    """Return the dataset (with text ids attached if needed) and the model's `InputSpec`."""
    data = cfg["data"]
    dataset = load_dataset(data["name"], data["root"], nan_policy=data["nan_policy"],
                           seed=data["synthetic_seed"], sizes=data.get("synthetic_sizes"),
                           trust_pickle=data["trust_pickle"])
    available = dataset.modalities
    wanted = data["modalities"] or available
    unknown = [m for m in wanted if m not in "tav"]
    missing = [m for m in wanted if m not in available]
    if unknown or missing:
        raise ValueError(f"data.modalities '{wanted}': {dataset.name} offers '{available}' "
                         f"(use a subset of t, a, v)")
    modalities = "".join(m for m in "tav" if m in wanted)
    if "t" in modalities:
        text = prepare_text(dataset, cfg["encoder"], saved_text)
    else:
        text = TextSpec()
    dims = dataset.feature_dims()
    return dataset, InputSpec(modalities, dims, text, dict(cfg["encoder"]))


def build_model(cfg: dict, spec: InputSpec) -> tuple[nn.Module, nn.ModuleDict]:
    """Return (model, objectives) for `cfg`; the objectives read the model's reps.

    A `penalty` section adds its dependency objective (the critic is built after the model,
    so the model's initialisation does not change)."""
    cfg = apply_penalty(cfg)
    options = {k: v for k, v in cfg["model"].items() if k != "name"}
    model = create_model(cfg["model"]["name"], spec, **options)
    objectives = nn.ModuleDict()
    if cfg.get("objectives"):
        reps_dims = reps_sizes(model, spec)
        for name, options in cfg["objectives"].items():
            if options is None or options.get("enabled", True):
                opts = {k: v for k, v in (options or {}).items() if k != "enabled"}
                objectives[name] = create_objective(name, spec, reps_dims, **opts)
    return model, objectives


def reps_sizes(model: nn.Module, spec: InputSpec) -> dict[str, int]:
    """Return the width of each entry of the model's reps (read from its declared dims)."""
    sizes = getattr(model, "reps_dims", None)
    if sizes is None:
        raise ValueError(f"model '{model.model_name}' does not declare reps_dims; objectives "
                         f"need the sizes of its representations")
    return dict(sizes)


def check_run_dir(run_dir: Path, resume: bool) -> dict | None:
    """Return the resume state to continue from (or None); refuse to overwrite results."""
    finished = (run_dir / METRICS).is_file()
    interrupted = (run_dir / RESUME).is_file()
    if resume:
        if not (run_dir / CONFIG).is_file():
            raise RunError(f"{run_dir}: nothing to resume (no {CONFIG}); start it without "
                           f"--resume")
        return load_resume_state(run_dir)
    if finished or interrupted:
        what = "a finished run" if finished else "an interrupted run (use --resume)"
        raise RunError(f"{run_dir} already holds {what}; choose another --out")
    return None


def train_run(cfg: dict, run_dir: Path, *, resume: bool = False,
              display: QuietDisplay | None = None,
              on_epoch_end: Callable[[int], None] | None = None) -> dict:
    """Train one seed into `run_dir`; return its metrics.json content.

    With `resume`, the run continues from its last finished epoch using the config saved in
    `run_dir`; a finished run is returned as it is.
    """
    run_dir = Path(run_dir)
    if resume and (run_dir / METRICS).is_file() and not (run_dir / RESUME).is_file():
        return json.loads((run_dir / METRICS).read_text())
    saved = check_run_dir(run_dir, resume)
    if resume:
        cfg = config_mod.load_yaml(run_dir / CONFIG)
    if cfg["train"].get("threads"):
        torch.set_num_threads(int(cfg["train"]["threads"]))
    seed_everything(int(cfg["seed"]))
    dataset, spec = prepare_data(cfg)
    run_cfg = apply_penalty(cfg)  # config.yaml keeps the compact `penalty` section
    model, objectives = build_model(run_cfg, spec)
    augment = Augmentation.from_config(cfg["data"].get("augment"), int(cfg["seed"]))
    if augment is not None:
        augment = augment.bind(dataset, spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG, config_mod.dump(cfg))
    checkpoint_spec = {"model": cfg["model"]["name"], "model_config": cfg["model"],
                       "inputs": spec.to_dict(), "dataset": dataset.name,
                       "objectives": list(objectives), "seed": cfg["seed"],
                       "frozen_encoders": frozen_encoders(model)}
    trainer = Trainer(model, objectives, dataset, run_cfg, checkpoint_spec, run_dir,
                      modalities=spec.modalities, pad_id=spec.text.pad_id, display=display,
                      on_epoch_end=on_epoch_end, augment=augment)
    result = trainer.fit(resume=saved)
    metrics = write_outputs(run_dir, cfg, dataset, result)
    (run_dir / RESUME).unlink(missing_ok=True)
    return metrics


def write_outputs(run_dir: Path, cfg: dict, dataset: MultimodalDataset,
                  result: FitResult) -> dict:
    """Write metrics.json and predictions.csv; return the metrics dict."""
    metrics = {"valid": result.metrics["valid"], "test": result.metrics["test"],
               "best_epoch": result.best_epoch, "seed": cfg["seed"],
               "protocol": cfg.get("protocol", "clean")}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "label", "prediction", "split"])
    for split, preds in result.predictions.items():
        for i, p in zip(dataset.indices(split), preds, strict=True):
            writer.writerow([dataset.ids[i], f"{dataset.labels[i]:.6g}", f"{p:.6f}", split])
    atomic_write_text(run_dir / PREDICTIONS, buffer.getvalue())
    atomic_write_text(run_dir / METRICS, json.dumps(metrics, indent=2, allow_nan=True))
    return metrics


def train_seeds(cfg: dict, seeds: list[int], out_dir: Path, *, resume: bool = False,
                display: QuietDisplay | None = None) -> dict[int, dict]:
    """Train one run per seed under out_dir/seed-<s>; write summary.csv/.md; return metrics.

    With `resume`, finished seeds are kept and an interrupted one continues.
    """
    out_dir = Path(out_dir)
    results: dict[int, dict] = {}
    for seed in seeds:
        run_dir = out_dir / f"seed-{seed}"
        seed_cfg = {**cfg, "seed": int(seed)}
        seed_resume = resume and (run_dir / CONFIG).is_file()
        results[seed] = train_run(seed_cfg, run_dir, resume=seed_resume, display=display)
    write_summary(out_dir, results, title=f"{cfg['model']['name']} on {cfg['data']['name']}",
                  protocol=cfg.get("protocol", "clean"))
    return results


def load_run(run_dir: Path) -> tuple[dict, nn.Module, MultimodalDataset, InputSpec]:
    """Return (config, trained model in eval mode, dataset, input spec) of a finished run.

    The trained objectives (e.g. a dependency critic) are attached as `model.objectives`.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RunError(f"{run_dir} is not a mimsa run directory (no {CONFIG})")
    cfg = config_mod.load_yaml(run_dir / CONFIG)
    state, spec_json = load_checkpoint(run_dir)
    saved = InputSpec.from_dict(spec_json["inputs"])
    cfg["data"]["modalities"] = saved.modalities
    dataset, spec = prepare_data(cfg, saved_text=saved.text)
    model, objectives = build_model(cfg, spec)
    load_model_state(model, state, spec_json.get("frozen_encoders") or {}, str(run_dir))
    objective_state = load_objective_state(run_dir)
    if objective_state:
        objectives.load_state_dict(objective_state)
    model.objectives = objectives
    model.eval()
    return cfg, model, dataset, spec


def evaluate_run(run_dir: Path, transform=None) -> dict[str, dict[str, float]]:
    """Return valid and test metrics of a finished run's selected checkpoint.

    `transform(batch) -> batch` is applied before the model; one with a `bind(dataset, spec)`
    method (e.g. `mimsa.eval.drop.ModalityDrop`) is first bound to the run's data.
    """
    from mimsa.eval.evaluate import predict, score

    cfg, model, dataset, spec = load_run(run_dir)
    if callable(getattr(transform, "bind", None)):
        transform = transform.bind(dataset, spec)
    out = {}
    for split in ("valid", "test"):
        index = dataset.indices(split)
        preds = predict(model, dataset, index, modalities=spec.modalities,
                        batch_size=int(cfg["data"]["eval_batch_size"]),
                        pad_id=spec.text.pad_id, transform=transform)
        out[split] = score(dataset.labels[index], preds)
    return out
