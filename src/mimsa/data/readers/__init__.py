"""Readers: one module per community on-disk format, each turning files into a validated
`MultimodalDataset` and nothing else.

Every reader module exposes `NAME`, `detect(path) -> bool` and
`read(path, *, trust_pickle=False, nan_policy="error") -> MultimodalDataset`.
`read_path` picks the reader by name or by detection.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from mimsa.data.dataset import DataError, MultimodalDataset, NanPolicy
from mimsa.data.readers import csd, mimsa, mmim, mmsa, mmsa_fet, mult
from mimsa.data.safe_pickle import load_pickle

# Detection order matters: folders are tried most specific first (a CSD folder may also hold
# the label.csv that makes it look like an MMSA-FET folder).
READERS: dict[str, ModuleType] = {m.NAME: m for m in (mimsa, mmim, csd, mmsa_fet, mmsa, mult)}


def formats() -> list[str]:
    """Return the names of the supported formats."""
    return sorted(READERS)


def detect_format(path: str | Path) -> str | None:
    """Return the name of the format `path` is recognised as, or None."""
    path = Path(path)
    for name, module in READERS.items():
        if module.detect(path):
            return name
    return None


def read_path(path: str | Path, format: str | None = None, trust_pickle: bool = False,
              nan_policy: NanPolicy = "error") -> MultimodalDataset:
    """Return the dataset at `path`, read with the reader `format` (detected when None).

    An unknown format name raises DataError listing the valid ones; a path no reader
    recognises raises DataError too. A `.pkl` whose name matches no reader is opened (safely)
    once and dispatched on its keys.
    """
    path = Path(path)
    if format is not None:
        if format not in READERS:
            raise DataError(f"unknown data format '{format}'; valid formats: "
                            f"{', '.join(formats())}")
        if not path.exists():
            raise DataError(f"{path}: file or folder not found")
        return READERS[format].read(path, trust_pickle=trust_pickle, nan_policy=nan_policy)
    if not path.exists():
        raise DataError(f"{path}: file or folder not found")
    name = detect_format(path)
    if name is not None:
        return READERS[name].read(path, trust_pickle=trust_pickle, nan_policy=nan_policy)
    if path.is_file() and path.suffix.lower() == ".pkl":
        return _read_unnamed_pickle(path, trust_pickle, nan_policy)
    raise DataError(f"{path}: cannot tell the data format; pass --format with one of "
                    f"{', '.join(formats())}")


def _read_unnamed_pickle(path: Path, trust_pickle: bool, nan_policy: NanPolicy
                         ) -> MultimodalDataset:
    """Return the dataset of a pickle whose file name matches no reader, told by its keys."""
    obj = load_pickle(path, trust=trust_pickle)
    for module in (mmsa, mult):
        if module.looks_like(obj):
            return module.from_object(obj, path, nan_policy)
    raise DataError(f"{path}: pickle layout not recognised (expected MMSA or MulT splits "
                    f"'train'/'valid'/'test'); pass --format with one of {', '.join(formats())}")


__all__ = ["READERS", "detect_format", "formats", "read_path"]
