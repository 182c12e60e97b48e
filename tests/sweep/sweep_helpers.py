"""Tiny grids for the sweep tests: synthetic data, 64/32/32 samples, 2 epochs, about a second a
run."""

from __future__ import annotations

import json
from pathlib import Path

TINY_GRID = """\
models: [late_fusion, text_only]
datasets: [synthetic]
seeds: [1, 2]
sets:
  - "data.synthetic_sizes={train: 64, valid: 32, test: 32}"
  - train.epochs=2
"""


def write(path: Path, text: str) -> Path:
    """Write `text` to `path` and return the path."""
    path.write_text(text, encoding="utf-8")
    return path


def bad_data_grid(folder: Path) -> Path:
    """Return a grid of one run whose dataset exists (so the plan accepts it) but cannot be
    read: it fails when training starts."""
    data = write(folder / "broken.csv", "this is not a dataset\n\x00\x01")
    return write(folder / "bad.yaml", f"models: [late_fusion]\ndatasets: {{broken: {data}}}\n"
                                      f"seeds: [1]\n")


def seed_metrics(out: Path) -> dict[str, dict]:
    """Return {"<run>/<seed dir>": metrics.json content} of every finished seed under `out`."""
    return {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
            for p in sorted(Path(out).glob("*/seed-*/metrics.json"))}
