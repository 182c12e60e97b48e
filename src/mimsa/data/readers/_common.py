"""Small helpers shared by the readers: key lookup, row checks, splits, ids, assembly.

Every helper raises `DataError` with one line that names the file, the key and, where there
is one, the sample; numpy/h5py exceptions never escape raw.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimsa.data.dataset import (
    SPLITS,
    CrossSplitPolicy,
    DataError,
    DatasetCard,
    MultimodalDataset,
    NanPolicy,
    cross_split_message,
)
from mimsa.data.safe_pickle import Py2Text

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


def text_value(value: Any) -> tuple[str, bool]:
    """Return (text, True when it decoded only as latin-1).

    Bytes are decoded as UTF-8; bytes that are not UTF-8 are decoded as latin-1 (every byte
    sequence is valid latin-1, so nothing is lost, but the text may be wrong). A `Py2Text`
    left by `load_pickle` is a Python 2 byte string that was not UTF-8: latin-1 too.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, Py2Text):
        return str.__str__(value), True
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8"), False
        except UnicodeDecodeError:
            return bytes(value).decode("latin1"), True
    return str(value), False


def decode(value: Any) -> str:
    """Return `value` as text (see `text_value`); use `decode_text` where a sample is known."""
    return text_value(value)[0]


def decode_text(value: Any, path: Path | str, key: str, sample: str,
                latin1: list[str] | None = None) -> str:
    """Return `value` as text; text that decodes only as latin-1 is reported.

    With a list `latin1`, "key of sample 'x'" is appended to it (report them all at once with
    `warn_latin1`); without one, a warning naming the file, key and sample is issued now.
    """
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        raise DataError(f"{path}: '{key}' of sample '{sample}' is {value}, not text; fill in "
                        f"the missing text or drop the sample")
    text, fallback = text_value(value)
    if fallback:
        place = f"'{key}' of sample '{sample}'"
        if latin1 is None:
            warn_latin1(path, [place])
        else:
            latin1.append(place)
    return text


def warn_latin1(path: Path | str, places: Sequence[str], notes: list[str] | None = None
                ) -> None:
    """Warn once (and add a card note) naming the text values decoded as latin-1, if any."""
    if not places:
        return
    shown = ", ".join(places[:3]) + (", ..." if len(places) > 3 else "")
    message = (f"{path}: {len(places)} text values are not valid UTF-8 and were decoded as "
               f"latin-1 ({shown}); check them, or re-save the file with UTF-8 text")
    warnings.warn(message, UserWarning, stacklevel=3)
    if notes is not None:
        notes.append(f"{len(places)} text values decoded as latin-1 (not valid UTF-8): {shown}")


def decode_column(values: Iterable[Any], path: Path | str, key: str,
                  samples: Sequence[str] | None, latin1: list[str]) -> list[str]:
    """Return a column of text values; `samples` names each row (None: 'row k' is used)."""
    out = []
    for k, value in enumerate(values):
        sample = samples[k] if samples is not None else f"row {k}"
        out.append(decode_text(value, path, key, sample, latin1))
    return out


def text_array(value: Any, path: Path | str, key: str, ndim: int | Sequence[int]
               ) -> np.ndarray:
    """Return a column of strings as an object array, keeping each value's type (bytes, str)."""
    if isinstance(value, np.ndarray):
        return as_array(value, path, key, ndim=ndim)
    return as_array(value, path, key, ndim=ndim, dtype=object)


def unique_ids(ids: Sequence[str], splits: Sequence[str] | None = None) -> tuple[list[str], int]:
    """Return (ids with repeats suffixed '#2', '#3', ..., number of ids renamed).

    With `splits`, only repeats within one split are renamed: an id repeated in another split
    is left as it is, so that `MultimodalDataset` refuses it (or drops it) as leakage.
    """
    splits = splits if splits is not None else [""] * len(ids)
    seen: dict[tuple[str, str], int] = {}
    out, renamed = [], 0
    taken = set(ids)
    for sid, split in zip(ids, splits, strict=True):
        count = seen.get((sid, split), 0) + 1
        seen[(sid, split)] = count
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


def split_map(pairs: Iterable[tuple[str, str]], path: Path | str,
              cross_split_duplicates: CrossSplitPolicy = "error") -> dict[str, str]:
    """Return {id: split} of (id, split) pairs; an id listed in two splits is leakage.

    With "error" it raises the one-line cross-split DataError; with "drop" the id keeps its
    earliest split (train < valid < test). Repeating an id with the same split is harmless.
    """
    rank = {s: k for k, s in enumerate(SPLITS)}
    out: dict[str, str] = {}
    conflicts: list[tuple[str, str, str]] = []
    for sid, split in pairs:
        if sid not in out:
            out[sid] = split
        elif out[sid] != split:
            first, later = sorted((out[sid], split), key=rank.__getitem__)
            conflicts.append((sid, first, later))
            out[sid] = first
    if conflicts and cross_split_duplicates == "error":
        sid, first, later = conflicts[0]
        count = len({c[0] for c in conflicts})
        raise DataError(cross_split_message(str(path), sid, first, later, count))
    return out


def length_value(value: Any, path: Path | str, key: str, sample: str) -> int:
    """Return one sample's length as an int; a non-integer or negative value raises DataError."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is not a length "
                        f"({_one_line(exc)})") from exc
    if arr.size != 1:
        raise DataError(f"{path}: '{key}' of sample '{sample}' holds {arr.size} values; "
                        f"expected one length")
    n = float(arr[0])
    if not np.isfinite(n) or n != round(n):
        raise DataError(f"{path}: '{key}' of sample '{sample}' is {n:g}, not a whole number "
                        f"of steps")
    if n < 0:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is negative ({n:g})")
    return int(n)


def cut(seq: np.ndarray, length: Any, path: Path | str, key: str, sample: str,
        data_key: str = "") -> np.ndarray:
    """Return the first `length` rows of `seq` (at least one row).

    A length larger than the sequence (T rows) raises DataError: the file promises frames it
    does not hold, so its lengths (or its arrays) are wrong.
    """
    n = length_value(length, path, key, sample)
    if n > seq.shape[0]:
        what = f"'{data_key}'" if data_key else "the sequence"
        raise DataError(f"{path}: '{key}' of sample '{sample}' is {n} but {what} has only "
                        f"{seq.shape[0]} steps; fix the length or re-export the features")
    return seq[: max(1, n)]


def numeric_array(value: np.ndarray, path: Path | str, key: str,
                  samples: Sequence[str] | None = None) -> np.ndarray:
    """Return `value` when it holds numbers; an object array of numbers becomes float64.

    Strings, booleans or objects that are not numbers raise DataError naming the key and, when
    `samples` names the first axis, the sample.
    """
    if value.dtype.kind in "iuf":
        return value
    if value.dtype == object:
        try:
            return value.astype(np.float64)
        except (ValueError, TypeError):
            pass
        for index, item in np.ndenumerate(value):
            try:
                float(item)
            except (ValueError, TypeError):
                where = f" of sample '{samples[index[0]]}'" if samples is not None else ""
                raise DataError(f"{path}: '{key}'{where} holds {str(item)[:40]!r}, not a "
                                f"number") from None
    raise DataError(f"{path}: key '{key}' has dtype {value.dtype}; expected numbers")


def float32_array(value: np.ndarray, path: Path | str, key: str,
                  samples: Sequence[str] | None = None) -> np.ndarray:
    """Return numeric `value` as float32; a finite value too large for float32 raises DataError.

    NaN/inf already in the data pass through (the dataset's `nan_policy` handles them). The
    first axis indexes samples when `samples` names them.
    """
    src = np.asarray(value)
    with np.errstate(over="ignore", invalid="ignore"):
        out = src.astype(np.float32)
    if src.dtype != np.float32 and np.issubdtype(src.dtype, np.number):
        lost = ~np.isfinite(out) & np.isfinite(src)
        if lost.any():
            index = np.unravel_index(int(np.argmax(lost)), lost.shape)
            where = f" of sample '{samples[index[0]]}'" if samples is not None else ""
            raise DataError(f"{path}: '{key}'{where} holds {float(src[index]):g}, beyond the "
                            f"float32 range (±3.4e38); rescale the features")
    return out


def float_sequence(value: Any, path: Path | str, key: str, sample: str) -> np.ndarray:
    """Return one sample's features as float32 [T, D] (a 1-D vector becomes [1, D])."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: '{key}' of sample '{sample}' is not numeric "
                        f"({_one_line(exc)})") from exc
    arr = float32_array(arr, path, key).reshape(arr.shape)
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
    if arr.size and arr.min() < 0:
        raise DataError(f"{path}: '{key}' of sample '{sample}' holds a negative token id "
                        f"({arr.min():g})")
    return arr.astype(np.int64)


def label_column(values: Iterable[Any], path: Path | str, key: str, samples: Sequence[str]
                 ) -> list[float]:
    """Return one float label per sample; a value that is not a number names its sample."""
    return [label_value(v, path, key, sid) for v, sid in zip(values, samples, strict=True)]


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
                require_splits: Iterable[str] = SPLITS,
                cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
        """Return the validated `MultimodalDataset` of the collected columns."""
        return build_dataset(card, ids=self.ids, splits=self.splits, labels=self.labels,
                             nan_policy=nan_policy, vocab_size=vocab_size,
                             require_splits=tuple(require_splits),
                             cross_split_duplicates=cross_split_duplicates, **self.fields)


def build_dataset(card: DatasetCard, *, nan_policy: NanPolicy = "error", **kwargs: Any
                  ) -> MultimodalDataset:
    """Return `MultimodalDataset(card=card, ...)`; numpy errors inside become DataError."""
    try:
        return MultimodalDataset(card=card, nan_policy=nan_policy, **kwargs)
    except DataError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise DataError(f"{kwargs.get('location') or card.source}: cannot assemble the dataset "
                        f"({type(exc).__name__}: {_one_line(exc)})") from exc


def require_file(path: Path, what: str = "file") -> Path:
    """Return `path` when it is a file; a missing path or a folder raises DataError."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a {what}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def read_csv_table(path: Path) -> list[tuple[int, list[str]]]:
    """Return the non-blank rows of a CSV file as (line number where the row starts, fields).

    Text is UTF-8 with or without a byte-order mark; CRLF and LF line ends both work, and a
    quoted field may span lines. A file that is not UTF-8 or not CSV raises DataError naming
    the line.
    """
    data = require_file(path, "CSV file").read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}: line {line} is not UTF-8 text (byte "
                        f"0x{data[exc.start]:02x}); save the file as UTF-8") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}: line {start} is not valid CSV ({_one_line(exc)})") from exc
    return rows


class CsvRow(dict):
    """One CSV row as {column: text}; `line` is its line number in the file."""

    line: int = 0


def read_csv_rows(path: Path, required: Sequence[str]) -> list[CsvRow]:
    """Return the rows of a headed CSV file; a missing file or column raises DataError.

    Header names are stripped of spaces; a repeated column, a row with a different number of
    fields than the header, or a header without rows raises DataError naming file and line.
    """
    table = read_csv_table(path)
    if not table:
        raise DataError(f"{path}: the file is empty; expected a header row with columns "
                        f"{', '.join(required)}")
    header = [h.strip() for h in table[0][1]]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"{path}: column '{repeated[0]}' appears more than once in the header")
    for column in required:
        if column not in header:
            raise DataError(f"{path}: missing column '{column}' (columns present: "
                            f"{', '.join(header) or 'none'})")
    rows = []
    for line, fields in table[1:]:
        if len(fields) != len(header):
            raise DataError(f"{path}: line {line} has {len(fields)} fields but the header has "
                            f"{len(header)}; quote fields that contain commas")
        row = CsvRow(zip(header, fields, strict=True))
        row.line = line
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: the file has a header but no rows")
    return rows


def csv_label(row: Mapping[str, str], path: Path, sample: str, column: str = "label") -> float:
    """Return the float label of a CSV row; a non-number raises DataError naming the sample."""
    try:
        return float(row[column])
    except ValueError as exc:
        line = f"line {row.line}: " if isinstance(row, CsvRow) else ""
        raise DataError(f"{path}: {line}column '{column}' of sample '{sample}' is "
                        f"'{row[column]}', not a number") from exc


def _one_line(exc: BaseException) -> str:
    """Return the first line of an exception's message."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
