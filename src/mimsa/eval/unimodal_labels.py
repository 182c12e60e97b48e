"""The unimodal labels a Self-MM run generated (objective `ulgm`), written for inspection.

`mimsa evaluate RUN` calls `write_unimodal_labels(RUN)`: for a run trained with `ulgm` it writes
RUN/unimodal_labels.csv, one row per training sample (dataset order) with columns
id, y_m, then y_t, y_a, y_v for the labelled spaces — the label memory of the selected
checkpoint (the epoch the run kept), as saved in objectives.safetensors.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mimsa import config as config_mod
from mimsa.atomic import atomic_write_text
from mimsa.train.run import CONFIG, load_run

LABELS_CSV = "unimodal_labels.csv"
OBJECTIVE = "ulgm"


def has_label_generation(run_dir: Path) -> bool:
    """Return True when the run's config.yaml attaches the `ulgm` objective (not disabled)."""
    objectives = config_mod.load_yaml(Path(run_dir) / CONFIG).get("objectives") or {}
    if OBJECTIVE not in objectives:
        return False
    return bool((objectives[OBJECTIVE] or {}).get("enabled", True))


def labels_csv(ids: list[str], columns: dict[str, object]) -> str:
    """Return the CSV text: header id + the column names, then one row per id (values %.6g)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", *columns])
    for row, sid in enumerate(ids):
        writer.writerow([sid, *(f"{float(values[row]) + 0.0:.6g}" for values in columns.values())])
    return buffer.getvalue()


def write_unimodal_labels(run_dir: Path) -> Path | None:
    """Write RUN/unimodal_labels.csv for a finished run trained with `ulgm`; return its path,
    or None (nothing loaded, nothing written) when the run has no such objective.

    Raises RunError (one line) when the run cannot be loaded (see `load_run`)."""
    run_dir = Path(run_dir)
    if not has_label_generation(run_dir):
        return None
    _, model, _, _ = load_run(run_dir)
    ids, columns = model.objectives[OBJECTIVE].table()
    path = run_dir / LABELS_CSV
    atomic_write_text(path, labels_csv(ids, columns))
    return path
