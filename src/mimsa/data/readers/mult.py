"""`mult`: the MulT / CMU pickles (mosi_data.pkl, mosei_senti_data.pkl, *_noalign.pkl).

Layout: a dict with splits 'train', 'valid', 'test'; each split a dict of equally long arrays:
  text    [N, T, 300] GloVe vectors        audio  [N, T, D_a]        vision [N, T, D_v]
  labels  [N, 1, 1] sentiment in [-3, 3]   id     [N] or [N, k] segment ids (optional)
Sequences are fixed-length and zero-padded; the files hold no lengths, so every sample keeps
all T steps exactly as stored. Ids: one column (or the first column when it is unique on its
own, else the non-empty columns joined with '_'); repeats within one split get '#2', '#3', ...
An id repeated in another split is leakage: refused, or dropped from the later split with
cross_split_duplicates="drop" (see `MultimodalDataset`).
"""

from __future__ import annotations

import re
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
)
from mimsa.data.readers._common import (
    Columns,
    as_array,
    check_rows,
    decode_text,
    float32_array,
    label_column,
    numeric_array,
    require,
    text_array,
    unique_ids,
    warn_latin1,
)
from mimsa.data.safe_pickle import load_pickle

NAME = "mult"
_NAME_PATTERN = re.compile(r"^.*(_data|_noalign)\.pkl$", re.IGNORECASE)
_MODALITIES = (("text", "text_feats"), ("audio", "audio"), ("vision", "vision"))


def detect(path: str | Path) -> bool:
    """Return True when `path` is named like a MulT pickle (`*_data.pkl`, `*_noalign.pkl`)."""
    path = Path(path)
    return path.is_file() and bool(_NAME_PATTERN.match(path.name))


def looks_like(obj: Any) -> bool:
    """Return True when an unpickled object has MulT's layout (splits with 'labels')."""
    return isinstance(obj, dict) and isinstance(obj.get("train"), dict) and (
        "labels" in obj["train"])


def read(path: str | Path, *, trust_pickle: bool = False, nan_policy: NanPolicy = "error",
         cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset stored in the MulT pickle at `path`."""
    path = Path(path)
    return from_object(load_pickle(path, trust=trust_pickle), path, nan_policy,
                       cross_split_duplicates)


def from_object(obj: Any, path: Path, nan_policy: NanPolicy = "error",
                cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset of an already unpickled MulT object read from `path`."""
    parts = []
    latin1: list[str] = []
    for split in SPLITS:
        parts.append((split, *_split_samples(require(obj, split, path), path, split, latin1)))
    id_rows = [row for _, rows, _, _ in parts for row in rows]
    ids, how = _choose_ids(id_rows)
    ids, renamed = unique_ids(ids, [split for split, rows, _, _ in parts for _ in rows])
    columns = Columns(path)
    start = 0
    for split, rows, labels, fields in parts:
        columns.add(split, ids[start: start + len(rows)], labels, **fields)
        start += len(rows)
    notes = ["read by the 'mult' reader (MulT / CMU pickle layout)",
             "sequences keep all stored steps, zero padding included (the file holds no "
             "lengths)", f"ids: {how}"]
    if renamed:
        notes.append(f"{renamed} ids repeated within a split were made unique with a '#k' "
                     f"suffix")
    provenance = {field: f"key '{key}' of {path.name}" for key, field in _MODALITIES}
    card = DatasetCard(name=path.stem, source=str(path), description="MulT feature pickle",
                       provenance=provenance, notes=notes)
    warn_latin1(path, latin1, card.notes)
    return columns.dataset(card, nan_policy, cross_split_duplicates=cross_split_duplicates)


def _split_samples(part: Any, path: Path, split: str, latin1: list[str]
                   ) -> tuple[list[tuple[str, ...]], list[float], dict[str, list[np.ndarray]]]:
    """Return (raw id rows, labels, fields) of one MulT split (latin-1 ids go to `latin1`)."""
    where = f"split '{split}'"
    arrays = {key: as_array(require(part, key, path, where), path, f"{split}/{key}", ndim=3)
              for key, _ in _MODALITIES}
    labels = as_array(require(part, "labels", path, where), path, f"{split}/labels",
                      ndim=(1, 2, 3))
    rows = {key: len(arr) for key, arr in arrays.items()}
    rows["labels"] = len(labels)
    raw_ids = None
    if "id" in part:
        raw_ids = text_array(part["id"], path, f"{split}/id", ndim=(1, 2))
        rows["id"] = len(raw_ids)
    n = check_rows(path, where, rows)
    flat = labels.reshape(n, -1)
    if flat.shape[1] != 1:
        raise DataError(f"{path}: key '{split}/labels' has shape {labels.shape}; mimsa reads "
                        f"one sentiment score per sample ([N, 1, 1]), not class labels")
    if raw_ids is None:
        id_rows = [(f"{split}_{i:05d}",) for i in range(n)]
    else:
        id_rows = [tuple(decode_text(v, path, f"{split}/id", f"{split} row {k}", latin1).strip()
                         for v in np.atleast_1d(row)) for k, row in enumerate(raw_ids)]
    names = ["_".join(r) for r in id_rows]
    label_list = label_column(flat[:, 0], path, f"{split}/labels", names)
    fields = {field: list(float32_array(numeric_array(arrays[key], path, f"{split}/{key}",
                                                      names), path, f"{split}/{key}", names))
              for key, field in _MODALITIES}
    return id_rows, label_list, fields


def _choose_ids(rows: list[tuple[str, ...]]) -> tuple[list[str], str]:
    """Return (one id per row, a note saying how they were formed)."""
    first = [r[0] for r in rows]
    if all(len(r) == 1 for r in rows):
        return first, "the 'id' values (or '<split>_<index>' where the file has none)"
    if len(set(first)) == len(first):
        return first, "the first column of 'id'"
    joined = ["_".join(v for v in r if v) for r in rows]
    return joined, "the non-empty columns of 'id' joined with '_'"
