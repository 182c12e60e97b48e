"""Datasets by name: `@register_dataset("name")` on a loader, `load_dataset(name, ...)`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mimsa.data.dataset import CrossSplitPolicy, MultimodalDataset, check_cross_split_policy
from mimsa.errors import ConfigError, ContractError


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
            raise ContractError(f"dataset '{name}' is registered twice")
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


def load_dataset(name_or_path: str | Path, data_root: str | Path | None = None,
                 trust_pickle: bool = False, cross_split_duplicates: CrossSplitPolicy = "error",
                 **options) -> MultimodalDataset:
    """Return a dataset by registered name, or read from an existing file or folder.

    A registered name wins; otherwise an existing path is read with `readers.read_path`
    (options `format` and `nan_policy` apply; `trust_pickle` allows arbitrary pickles).
    `cross_split_duplicates` is "error" (an id in two splits raises DataError) or "drop"
    (it is dropped from the later split and counted in the card); a loader of a registered
    dataset receives it as an option. An unknown name raises KeyError listing the registered
    datasets; a bad policy raises ConfigError.
    """
    _import_builtin()
    policy = check_cross_split_policy(cross_split_duplicates)
    name = str(name_or_path)
    if name in _DATASETS:
        entry = _DATASETS[name]
        return entry.loader(resolve_data_root(data_root), cross_split_duplicates=policy,
                            **options)
    path = Path(name).expanduser()
    if path.exists():
        from mimsa.data.readers import read_path

        return read_path(path, format=options.get("format"), trust_pickle=trust_pickle,
                         nan_policy=options.get("nan_policy", "error"),
                         cross_split_duplicates=policy)
    valid = ", ".join(sorted(_DATASETS))
    raise ConfigError(f"unknown dataset '{name}' and no such file or folder; registered "
                   f"datasets: {valid}")


def _import_builtin() -> None:
    # Importing the module runs its @register_dataset decorators.
    import mimsa.data.builtin  # noqa: F401
