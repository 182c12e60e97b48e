"""Readers: one module per community on-disk format, each turning files into a validated
`MultimodalDataset` and nothing else.

Every reader module exposes `NAME`, `detect(path) -> bool` and
`read(path, *, trust_pickle=False, nan_policy="error", cross_split_duplicates="error")
-> MultimodalDataset`. `read_path` picks the reader by name or by detection.

Rules every reader keeps (helpers in `_common`): bytes are decoded as UTF-8, and text that is
only latin-1 is decoded so and named in a warning; CSV files may carry a byte-order mark and
CRLF line ends; a length field past the end of its array, negative or fractional is refused;
an id in two splits is refused, or dropped from the later split with
cross_split_duplicates="drop"; every error is one line naming the file, key and sample.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from mimsa.data.dataset import (
    CrossSplitPolicy,
    DataError,
    MultimodalDataset,
    NanPolicy,
    check_cross_split_policy,
)
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
              nan_policy: NanPolicy = "error",
              cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset at `path`, read with the reader `format` (detected when None).

    An unknown format name raises DataError listing the valid ones; a path no reader
    recognises raises DataError too. A `.pkl` whose name matches no reader is opened (safely)
    once and dispatched on its keys. `cross_split_duplicates` ("error" | "drop") says what
    to do with an id found in two splits (see `MultimodalDataset`).
    """
    path = Path(path)
    options = {"trust_pickle": trust_pickle, "nan_policy": nan_policy,
               "cross_split_duplicates": check_cross_split_policy(cross_split_duplicates)}
    if format is not None:
        if format not in READERS:
            raise DataError(f"unknown data format '{format}'; valid formats: "
                            f"{', '.join(formats())}")
        if not path.exists():
            raise DataError(f"{path}: file or folder not found")
        return READERS[format].read(path, **options)
    if not path.exists():
        raise DataError(f"{path}: file or folder not found")
    name = detect_format(path)
    if name is not None:
        return READERS[name].read(path, **options)
    if path.is_file() and path.suffix.lower() == ".pkl":
        return _read_unnamed_pickle(path, **options)
    raise DataError(f"{path}: cannot tell the data format; pass --format with one of "
                    f"{', '.join(formats())}")


def _read_unnamed_pickle(path: Path, trust_pickle: bool, nan_policy: NanPolicy,
                         cross_split_duplicates: CrossSplitPolicy = "error"
                         ) -> MultimodalDataset:
    """Return the dataset of a pickle whose file name matches no reader, told by its keys."""
    obj = load_pickle(path, trust=trust_pickle)
    for module in (mmsa, mult):
        if module.looks_like(obj):
            return module.from_object(obj, path, nan_policy, cross_split_duplicates)
    raise DataError(f"{path}: pickle layout not recognised (expected MMSA or MulT splits "
                    f"'train'/'valid'/'test'); pass --format with one of {', '.join(formats())}")


__all__ = ["READERS", "detect_format", "formats", "read_path"]
