"""Small helpers shared by the readers: key lookup, row checks, splits, ids, assembly.

Every helper raises `DataError` with one line that names the file, the key and, where there
is one, the sample; numpy/h5py exceptions never escape raw.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimsa.data.dataset import SPLITS, DataError, DatasetCard, MultimodalDataset, NanPolicy

SPLIT_ALIASES = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid",
                 "validation": "valid", "test": "test"}


def require(mapping: Any, key: str, path: Path | str, where: str = "") -> Any:
    """Return `mapping[key]`; a missing key (or a non-mapping) raises a one-line DataError."""
    place = f" of {where}" if where else ""
    if not isinstance(mapping, Mapping):
        raise DataError(f"{path}: expected a dict{place} holding '{key}', found "
                        f"{type(mapping).__name__}")
    if key not in mapping:
        keys = ", ".join(sorted(map(str, mapping))) or "none"
        raise DataError(f"{path}: missing key '{key}'{place} (keys present: {keys})")
    return mapping[key]


def as_array(value: Any, path: Path | str, key: str, ndim: int | Sequence[int] | None = None,
             dtype: Any = None) -> np.ndarray:
    """Return `value` as a numpy array, checking its number of dimensions when `ndim` is given."""
    try:
        arr = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: key '{key}' cannot be read as an array "
                        f"({_one_line(exc)})") from exc
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and arr.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise DataError(f"{path}: key '{key}' has shape {arr.shape}; expected a {want} array")
    return arr


def check_rows(path: Path | str, where: str, rows: Mapping[str, int]) -> int:
    """Return the common row count of the named arrays; differing counts raise DataError."""
    counts = {k: int(v) for k, v in rows.items()}
    values = set(counts.values())
    if len(values) > 1:
        detail = ", ".join(f"'{k}' {v}" for k, v in counts.items())
        raise DataError(f"{path}: {where} arrays have different numbers of samples ({detail}); "
                        f"every modality needs one row per sample")
    if not values or values == {0}:
        raise DataError(f"{path}: {where} is empty (no samples)")
    return values.pop()


def normalise_split(value: Any, path: Path | str, sample: str) -> str:
    """Return the canonical split name ('train', 'valid' or 'test') for `value`."""
    name = decode(value).strip().lower()
    if name not in SPLIT_ALIASES:
        raise DataError(f"{path}: sample '{sample}' has split '{name}'; use one of train, "
                        f"valid (or dev), test")
    return SPLIT_ALIASES[name]


def decode(value: Any) -> str:
    """Return `value` as text: bytes are decoded as UTF-8 (latin1 as a fallback)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).decode("latin1")
    return str(value)


def mmsa_id(value: Any) -> str:
    """Return a segment id in mimsa's `<video>_<clip>` form (MMSA writes `<video>$_$<clip>`)."""
    return decode(value).strip().replace("$_$", "_")


def unique_ids(ids: Sequence[str]) -> tuple[list[str], int]:
    """Return (ids with repeats suffixed '#2', '#3', ..., number of ids renamed)."""
    seen: dict[str, int] = {}
    out, renamed = [], 0
    taken = set(ids)
    for sid in ids:
        count = seen.get(sid, 0) + 1
        seen[sid] = count
        if count == 1:
            out.append(sid)
            continue
        new, k = f"{sid}#{count}", count
        while new in taken:
            k += 1
            new = f"{sid}#{k}"
        taken.add(new)
        out.append(new)
        renamed += 1
    return out, renamed


def cut(seq: np.ndarray, length: Any, path: Path | str, key: str, sample: str) -> np.ndarray:
    """Return the first `length` rows of `seq` (at least one row, at most all of them)."""
    try:
        n = int(np.asarray(length).reshape(-1)[0])
    except (ValueError, TypeError, IndexError) as exc:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is not a length "
                        f"({_one_line(exc)})") from exc
    if n < 0:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is negative ({n})")
    return seq[: max(1, min(n, seq.shape[0]))]


def float_sequence(value: Any, path: Path | str, key: str, sample: str) -> np.ndarray:
    """Return one sample's features as float32 [T, D] (a 1-D vector becomes [1, D])."""
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is not numeric "
                        f"({_one_line(exc)})") from exc
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: '{key}' of sample '{sample}' has shape {arr.shape}; "
                        f"expected [T, D] with T >= 1")
    return arr


def token_ids(value: Any, path: Path | str, key: str, sample: str) -> np.ndarray:
    """Return one sample's token ids as int64 [T]; non-integer values raise DataError."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is not a list of token ids "
                        f"({_one_line(exc)})") from exc
    if arr.size and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
        raise DataError(f"{path}: '{key}' of sample '{sample}' holds non-integer token ids")
    return arr.astype(np.int64)


def label_value(value: Any, path: Path | str, key: str, sample: str) -> float:
    """Return a scalar label (from a number, [1], [1, 1] ...); anything else raises DataError."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is not a number "
                        f"({_one_line(exc)})") from exc
    if arr.size != 1:
        raise DataError(f"{path}: '{key}' of sample '{sample}' holds {arr.size} values; "
                        f"expected one sentiment score")
    return float(arr[0])


class Columns:
    """Per-sample columns collected from one file, split by split, then assembled once."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.ids: list[str] = []
        self.splits: list[str] = []
        self.labels: list[float] = []
        self.fields: dict[str, list[Any]] = {}

    def add(self, split: str, ids: Sequence[str], labels: Sequence[float],
            **fields: Sequence[Any] | None) -> None:
        """Append one split's samples; a field must be present in every split or in none."""
        present = {k: v for k, v in fields.items() if v is not None}
        differ = sorted(set(self.fields) ^ set(present)) if self.ids else []
        if differ:
            key = differ[0]
            has, lacks = (split, "the earlier splits") if key in present else (
                "the earlier splits", split)
            raise DataError(f"{self.path}: field '{key}' is in {has} but not in {lacks}; "
                            f"every split needs the same modalities")
        for key, values in present.items():
            self.fields.setdefault(key, []).extend(values)
        self.ids.extend(ids)
        self.splits.extend([split] * len(ids))
        self.labels.extend(labels)

    def dataset(self, card: DatasetCard, nan_policy: NanPolicy = "error",
                vocab_size: int | None = None,
                require_splits: Iterable[str] = SPLITS) -> MultimodalDataset:
        """Return the validated `MultimodalDataset` of the collected columns."""
        return build_dataset(card, ids=self.ids, splits=self.splits, labels=self.labels,
                             nan_policy=nan_policy, vocab_size=vocab_size,
                             require_splits=tuple(require_splits), **self.fields)


def build_dataset(card: DatasetCard, *, nan_policy: NanPolicy = "error", **kwargs: Any
                  ) -> MultimodalDataset:
    """Return `MultimodalDataset(card=card, ...)`; numpy errors inside become DataError."""
    try:
        return MultimodalDataset(card=card, nan_policy=nan_policy, **kwargs)
    except DataError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise DataError(f"{card.source}: cannot assemble the dataset "
                        f"({type(exc).__name__}: {_one_line(exc)})") from exc


def read_csv_rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Return the rows of a headed CSV file; a missing file or column raises DataError."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            for column in required:
                if column not in header:
                    raise DataError(f"{path}: missing column '{column}' (columns present: "
                                    f"{', '.join(header) or 'none'})")
            rows = list(reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({_one_line(exc)})") from exc
    for number, row in enumerate(rows, start=2):
        if None in row or any(row.get(c) is None for c in required):
            raise DataError(f"{path}: line {number} has a different number of fields than "
                            f"the header")
    if not rows:
        raise DataError(f"{path}: the file has a header but no rows")
    return rows


def csv_label(row: Mapping[str, str], path: Path, sample: str, column: str = "label") -> float:
    """Return the float label of a CSV row; a non-number raises DataError naming the sample."""
    try:
        return float(row[column])
    except ValueError as exc:
        raise DataError(f"{path}: column '{column}' of sample '{sample}' is "
                        f"'{row[column]}', not a number") from exc


def _one_line(exc: BaseException) -> str:
    """Return the first line of an exception's message."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
