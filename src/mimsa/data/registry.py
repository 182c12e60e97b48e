"""Datasets by name: `@register_dataset("name")` on a loader, `load_dataset(name, ...)`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mimsa.data.dataset import MultimodalDataset


@dataclass
class DatasetEntry:
    """A registered dataset: its loader and a one-line summary shown before loading."""

    name: str
    loader: Callable[..., MultimodalDataset]
    summary: str
    needs_data_root: bool


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, summary: str, needs_data_root: bool = True):
    """Register a loader `fn(data_root: Path, **options) -> MultimodalDataset` under `name`."""

    def wrap(fn: Callable[..., MultimodalDataset]) -> Callable[..., MultimodalDataset]:
        if name in _DATASETS:
            raise ValueError(f"dataset '{name}' is registered twice")
        _DATASETS[name] = DatasetEntry(name, fn, summary, needs_data_root)
        return fn

    return wrap


def list_datasets() -> list[DatasetEntry]:
    """Return the registered datasets, sorted by name (the embedded default first)."""
    _import_builtin()
    return sorted(_DATASETS.values(), key=lambda e: (e.name != "synthetic", e.name))


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """Return the data root: the argument, else $MIMSA_DATA, else the user cache directory."""
    if data_root:
        return Path(data_root).expanduser()
    if os.environ.get("MIMSA_DATA"):
        return Path(os.environ["MIMSA_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mimsa" / "data"


def load_dataset(name: str, data_root: str | Path | None = None, **options) -> MultimodalDataset:
    """Return the registered dataset `name`, loaded with `options` (e.g. nan_policy, seed)."""
    _import_builtin()
    if name not in _DATASETS:
        valid = ", ".join(sorted(_DATASETS))
        raise KeyError(f"unknown dataset '{name}'; registered datasets: {valid}")
    entry = _DATASETS[name]
    return entry.loader(resolve_data_root(data_root), **options)


def _import_builtin() -> None:
    # Importing the module runs its @register_dataset decorators.
    import mimsa.data.builtin  # noqa: F401
