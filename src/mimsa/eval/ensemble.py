"""The seed ensemble of a multi-seed run: the mean of its seeds' predictions, scored.

    ŷ_ens(i) = (1/S) Σ_s ŷ_s(i)     over the S finished seeds' predictions.csv, per sample i

and the usual metrics (`mimsa.metrics.score`) of ŷ_ens against the labels, on valid and test.
Each seed's checkpoint was selected on validation by its own run; nothing here is chosen
or tuned, so the ensemble's test score is still reported once. It is several models, not one:
report it as its own labelled row, never as a single-model result (`mimsa ensemble` says so).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimsa.atomic import atomic_write_text
from mimsa.errors import RunError
from mimsa.eval.compare import aligned_predictions, read_run
from mimsa.metrics import score

SPLITS = ("valid", "test")


@dataclass
class Ensemble:
    """What `seed_ensemble` computed: the run, its seeds, the run's protocol ("legacy" when
    its checkpoints were chosen with test) and context, and per split the metrics of the mean
    prediction, the sample ids, labels [N] and mean predictions [N]."""

    run: Path
    seeds: list[int]
    metrics: dict[str, dict[str, float]]
    protocol: str = "clean"
    context: dict | None = None
    ids: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)

    def record(self) -> dict:
        """Return the JSON-serialisable summary (run, seeds, metrics per split)."""
        return {"run": str(self.run), "seeds": self.seeds, "kind": "seed ensemble (mean of "
                f"{len(self.seeds)} seeds' predictions)", "protocol": self.protocol,
                "context": self.context, "metrics": self.metrics}


def seed_ensemble(run_dir: Path) -> Ensemble:
    """Return the ensemble of the finished seeds of the multi-seed run `run_dir`.

    Raises:
        RunError: `run_dir` is missing, a file, holds fewer than two finished seeds, or a
            finished seed has no predictions.csv.
        DataError: the seeds' predictions cover other samples or other labels (names the
            file and the first differing sample), or hold a non-finite value.
    """
    run = read_run(Path(run_dir), "valid", ["MAE"])  # every finished seed has valid
    seeds = sorted(run.metrics)
    if len(seeds) < 2:
        raise RunError(f"{run_dir}: an ensemble needs two or more finished seeds; this run "
                       f"has {len(seeds)} (train it with --seeds 1111 1112 1113 1114 1115)")
    missing = [s for s in seeds if s not in run.predictions]
    if missing:
        raise RunError(f"{run_dir}: seed {missing[0]} has no predictions.csv; re-run it, or "
                       f"leave it out of the run folder")
    first = json.loads((run.predictions[seeds[0]].parent / "metrics.json").read_text())
    ensemble = Ensemble(Path(run_dir), seeds, {}, protocol=first.get("protocol", "clean"),
                        context=first.get("context"))
    files = {(0, seed): run.predictions[seed] for seed in seeds}
    present = _splits(run.predictions[seeds[0]])
    for split in (s for s in SPLITS if s in present):  # a tuning trial's runs have no test
        ids, labels, per_seed = aligned_predictions(files, split)
        mean = np.mean(np.stack([per_seed[(0, seed)] for seed in seeds]), axis=0)
        ensemble.metrics[split] = score(labels, mean)
        ensemble.ids[split], ensemble.labels[split] = ids, labels
        ensemble.predictions[split] = mean
    return ensemble


def _splits(path: Path) -> set[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row.get("split", "") for row in csv.DictReader(handle)}


def write_ensemble(ensemble: Ensemble, out: Path) -> Path:
    """Write `ensemble.record()` as JSON to `out` atomically; return `out`."""
    return atomic_write_text(out, json.dumps(ensemble.record(), indent=2) + "\n")
