"""`mmsa`: the MMSA / MMSA-FET feature pickles (aligned_50.pkl, unaligned_50.pkl, feature.pkl).

Layout: a dict with splits 'train', 'valid', 'test'; each split a dict of equally long arrays:
  id                 [N] '<video>$_$<clip>' (stored here as '<video>_<clip>')
  raw_text           [N] transcripts
  text               [N, T, D_t] word/token features (GloVe 300-d or BERT 768-d)
  text_bert          [N, 3, T] BERT input ids / attention mask / segment ids
  audio, vision      [N, T, D] features, zero-padded at the end
  audio_lengths, vision_lengths   [N] real lengths (absent in the aligned files)
  regression_labels  [N] sentiment in [-3, 3]
Sequences are cut to their lengths (at least one frame); a length past the end of its array,
negative or fractional raises DataError. Where the lengths are absent and the sequence is as
long as `text_bert` (aligned files), the BERT mask length is used, as MMSA does. Text (ids,
raw_text) is decoded as UTF-8; text that is only valid latin-1 is decoded so and named in a
warning and a card note.
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
    cut,
    decode_column,
    float32_array,
    label_column,
    numeric_array,
    require,
    text_array,
    warn_latin1,
)
from mimsa.data.safe_pickle import load_pickle

NAME = "mmsa"
_NAME_PATTERN = re.compile(r"^(un)?aligned(_\d+)?\.pkl$|^feature.*\.pkl$", re.IGNORECASE)


def detect(path: str | Path) -> bool:
    """Return True when `path` is named like an MMSA feature pickle."""
    path = Path(path)
    return path.is_file() and bool(_NAME_PATTERN.match(path.name))


def looks_like(obj: Any) -> bool:
    """Return True when an unpickled object has MMSA's layout (splits with regression_labels)."""
    return isinstance(obj, dict) and isinstance(obj.get("train"), dict) and (
        "regression_labels" in obj["train"])


def read(path: str | Path, *, trust_pickle: bool = False, nan_policy: NanPolicy = "error",
         cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset stored in the MMSA pickle at `path`."""
    path = Path(path)
    return from_object(load_pickle(path, trust=trust_pickle), path, nan_policy,
                       cross_split_duplicates)


def from_object(obj: Any, path: Path, nan_policy: NanPolicy = "error",
                cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset of an already unpickled MMSA object read from `path`."""
    columns = Columns(path)
    latin1: list[str] = []
    for split in SPLITS:
        part = require(obj, split, path)
        ids, labels, fields = split_samples(part, path, split, latin1)
        columns.add(split, ids, labels, **fields)
    card = DatasetCard(name=path.stem, source=str(path),
                       description="MMSA feature pickle",
                       provenance=provenance(columns.fields, path),
                       notes=["read by the 'mmsa' reader (MMSA / MMSA-FET layout)",
                              "ids '<video>$_$<clip>' are stored as '<video>_<clip>'",
                              "sequences cut to audio_lengths / vision_lengths (or the BERT "
                              "mask length when those are absent)"])
    warn_latin1(path, latin1, card.notes)
    return columns.dataset(card, nan_policy, cross_split_duplicates=cross_split_duplicates)


def provenance(fields: dict[str, Any], path: Path) -> dict[str, str]:
    """Return the card's provenance lines for the fields read from an MMSA pickle."""
    text = {"text": "raw_text", "text_ids": "text_bert (BERT ids where the mask is 1)",
            "text_feats": "text"}
    lines = {}
    for field, key in (*text.items(), ("audio", "audio"), ("vision", "vision")):
        if field in fields:
            lines[field] = f"key '{key}' of {path.name}"
    return lines


def split_samples(part: Any, path: Path, split: str, latin1: list[str] | None = None
                  ) -> tuple[list[str], list[float], dict[str, list[Any] | None]]:
    """Return (ids, labels, fields) of one MMSA split; fields maps field name → per-sample list.

    Text decoded as latin-1 is listed in `latin1` (see `warn_latin1`); when it is None, a
    warning is issued here.
    """
    where = f"split '{split}'"
    own = latin1 is None
    latin1 = [] if latin1 is None else latin1
    raw_ids = text_array(require(part, "id", path, where), path, f"{split}/id", ndim=1)
    labels = as_array(require(part, "regression_labels", path, where), path,
                      f"{split}/regression_labels", ndim=(1, 2))
    rows: dict[str, int] = {"id": len(raw_ids), "regression_labels": len(labels)}
    arrays: dict[str, np.ndarray] = {}
    for key, ndim in (("raw_text", 1), ("text", 3), ("text_bert", 3), ("audio", 3),
                      ("vision", 3), ("audio_lengths", 1), ("vision_lengths", 1)):
        if key in part:
            if key == "raw_text":
                arrays[key] = text_array(part[key], path, f"{split}/{key}", ndim=ndim)
            else:
                arrays[key] = as_array(part[key], path, f"{split}/{key}", ndim=ndim)
            rows[key] = len(arrays[key])
    check_rows(path, where, rows)
    rows_named = [f"{split} row {k}" for k in range(len(raw_ids))]
    ids = [sid.strip().replace("$_$", "_") for sid in
           decode_column(raw_ids, path, f"{split}/id", rows_named, latin1)]
    if labels.ndim == 2:
        if labels.shape[1] != 1:
            raise DataError(f"{path}: key '{split}/regression_labels' has shape "
                            f"{labels.shape}; expected [N] or [N, 1]")
        labels = labels[:, 0]
    label_list = label_column(labels, path, f"{split}/regression_labels", ids)

    mask_len = None
    if "text_bert" in arrays:
        bert = arrays["text_bert"]
        if bert.shape[1] != 3:
            raise DataError(f"{path}: key '{split}/text_bert' has shape {bert.shape}; expected "
                            f"[N, 3, T] (ids, mask, segment ids)")
        bert = numeric_array(bert, path, f"{split}/text_bert", ids)
        arrays["text_bert"] = bert
        mask = bert[:, 1, :]
        if not np.isin(mask, (0, 1)).all():
            k = int(np.argmax(~np.isin(mask, (0, 1)).all(axis=1)))
            raise DataError(f"{path}: key '{split}/text_bert' of sample '{ids[k]}' has a mask "
                            f"row (index 1) with values other than 0 and 1")
        mask_len = mask.astype(np.float64).sum(axis=1).astype(np.int64)

    text = None
    if "raw_text" in arrays:
        text = decode_column(arrays["raw_text"], path, f"{split}/raw_text", ids, latin1)
    fields: dict[str, list[Any] | None] = {
        "text": text,
        "text_ids": _bert_ids(arrays.get("text_bert"), ids, path, split),
        "text_feats": _sequences(arrays, "text", None, mask_len, ids, path, split),
        "audio": _sequences(arrays, "audio", "audio_lengths", mask_len, ids, path, split),
        "vision": _sequences(arrays, "vision", "vision_lengths", mask_len, ids, path, split),
    }
    if own:
        warn_latin1(path, latin1)
    return ids, label_list, fields


def _bert_ids(bert: np.ndarray | None, ids: list[str], path: Path, split: str
              ) -> list[np.ndarray] | None:
    """Return per-sample BERT token ids (positions where the mask row is 1), or None."""
    if bert is None:
        return None
    out = []
    for sid, row in zip(ids, bert, strict=True):
        tokens = row[0].astype(np.float64)
        mask = row[1].astype(np.float64) > 0
        kept = tokens[mask]
        if (kept != np.round(kept)).any() or not np.isfinite(kept).all() or (kept < 0).any():
            raise DataError(f"{path}: key '{split}/text_bert' of sample '{sid}' holds "
                            f"non-integer or negative token ids")
        out.append(kept.astype(np.int64))
    return out


def _sequences(arrays: dict[str, np.ndarray], key: str, length_key: str | None,
               mask_len: np.ndarray | None, ids: list[str], path: Path, split: str
               ) -> list[np.ndarray] | None:
    """Return the per-sample sequences of `key` cut to their real lengths, or None if absent."""
    if key not in arrays:
        return None
    data = numeric_array(arrays[key], path, f"{split}/{key}", ids)
    data = float32_array(data, path, f"{split}/{key}", ids)
    if length_key is not None and length_key in arrays:
        lengths, name = arrays[length_key], f"{split}/{length_key}"
    elif mask_len is not None and data.shape[1] == _bert_width(arrays):
        lengths, name = mask_len, f"{split}/text_bert"
    else:
        return list(data)
    return [cut(x, n, path, name, sid, f"{split}/{key}")
            for sid, x, n in zip(ids, data, lengths, strict=True)]


def _bert_width(arrays: dict[str, np.ndarray]) -> int:
    """Return the padded token length T of `text_bert` (-1 when absent)."""
    return int(arrays["text_bert"].shape[2]) if "text_bert" in arrays else -1
