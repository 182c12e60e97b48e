"""Score each sample by how strongly its modalities depend on each other (`mimsa dependency`).

A run trained with a mutual-dependency penalty (`--set penalty.kind=kl|js|wasserstein`) holds a
trained critic T (objectives/critic.py). T(u) on a sample's aligned reps u = (z_t, z_a, z_v) is
high when the critic finds the combination typical of the joint distribution (the modalities
agree) and low when it looks like modalities drawn independently (they disagree, or one carries
nothing). Scores are comparable within one run only; their scale depends on the estimator.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mimsa.atomic import atomic_write_text
from mimsa.data.batch import iterate_batches
from mimsa.errors import ConfigError, RunError
from mimsa.objectives.critic import DependencyObjective
from mimsa.train.device import module_device

SPLITS = ("train", "valid", "test")
COLUMNS = ("id", "label", "prediction", "score", "text")


@dataclass
class DependencyRow:
    """One scored sample."""

    id: str
    label: float
    prediction: float
    score: float
    text: str


def find_critic(model: nn.Module, run_dir: Path | str = "") -> DependencyObjective:
    """Return the trained dependency objective attached to `model` by `load_run`."""
    objectives = getattr(model, "objectives", None) or {}
    found = [o for o in objectives.values() if isinstance(o, DependencyObjective)]
    if not found:
        raise RunError(f"{run_dir}: this run has no dependency critic; train with --set "
                       f"penalty.kind=kl|js|wasserstein to get one")
    return found[0]


@torch.no_grad()
def score_split(model: nn.Module, critic: DependencyObjective, dataset, split: str, *,
                modalities: str, batch_size: int = 128, pad_id: int = 0
                ) -> list[DependencyRow]:
    """Return one row per sample of `split` (dataset order): label, prediction, critic score."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
    model.eval()
    critic.eval()
    rows = []
    index = dataset.indices(split)
    device = module_device(model)
    for batch in iterate_batches(dataset, index, batch_size, modalities=modalities,
                                 pad_id=pad_id):
        output = model(batch.to(device))
        scores = critic.score(output.reps).double().cpu().tolist()
        preds = output.prediction.double().cpu().tolist()
        labels = batch.labels.double().cpu().tolist()
        texts = batch.text or [""] * len(batch)
        rows += [DependencyRow(*values) for values in
                 zip(batch.ids, labels, preds, scores, texts, strict=True)]
    return rows


def write_rows(rows: list[DependencyRow], path: Path) -> Path:
    """Write `rows` as CSV (id, label, prediction, score, text) atomically; return `path`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.id, f"{r.label:.6g}", f"{r.prediction:.6f}", f"{r.score:.6f}",
                         r.text])
    return atomic_write_text(path, buffer.getvalue())


def extremes(rows: list[DependencyRow], top: int
             ) -> tuple[list[DependencyRow], list[DependencyRow]]:
    """Return (the `top` highest-scoring rows, the `top` lowest-scoring rows)."""
    ordered = sorted(rows, key=lambda r: r.score, reverse=True)
    top = max(0, int(top))
    return ordered[:top], ordered[::-1][:top]


def dependency_report(run_dir: Path, split: str = "test", out: Path | None = None
                      ) -> tuple[list[DependencyRow], Path, str]:
    """Score `split` of the finished run `run_dir` with its critic; write the CSV.

    Returns (rows, CSV path, the critic's objective name). The CSV goes to `out`, by default
    RUN_DIR/dependency_<split>.csv.
    """
    from mimsa.train.run import CONFIG, load_run

    run_dir = Path(run_dir)
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
    if not (run_dir / CONFIG).is_file():
        seeds = sorted(p.name for p in run_dir.glob("seed-*") if (p / CONFIG).is_file())
        if seeds:
            raise RunError(f"{run_dir} holds several seeds; pass one of them, e.g. "
                           f"{run_dir / seeds[0]}")
    cfg, model, dataset, spec = load_run(run_dir)
    critic = find_critic(model, run_dir)
    name = next(k for k, o in model.objectives.items() if o is critic)
    rows = score_split(model, critic, dataset, split, modalities=spec.modalities,
                       batch_size=int(cfg["data"]["eval_batch_size"]), pad_id=spec.text.pad_id)
    path = write_rows(rows, Path(out) if out else run_dir / f"dependency_{split}.csv")
    return rows, path, name
