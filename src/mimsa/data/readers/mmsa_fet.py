"""`mmsa_fet`: an MMSA-FET-style dataset folder: label.csv, optionally with a feature pickle.

label.csv has columns `video_id, clip_id, text, label, mode` (the id is `<video_id>_<clip_id>`)
or `id, text, label, mode`; mode is train / valid (or dev) / test. Without a feature pickle the
dataset is text only. With `feature.pkl` (or the folder's only `*.pkl`) in MMSA layout, its
features are joined to the rows of label.csv by segment id; label.csv stays authoritative for
ids, transcripts, labels and splits, and every row must find its features. label.csv is UTF-8,
with or without a byte-order mark, with LF or CRLF line ends (as spreadsheet programs save it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mimsa.data.dataset import (
    SPLITS,
    CrossSplitPolicy,
    DataError,
    DatasetCard,
    MultimodalDataset,
    NanPolicy,
    cross_split_message,
)
from mimsa.data.readers import mmsa
from mimsa.data.readers._common import (
    build_dataset,
    csv_label,
    normalise_split,
    read_csv_rows,
    require,
    warn_latin1,
)
from mimsa.data.safe_pickle import load_pickle

NAME = "mmsa_fet"
LABEL_FILE = "label.csv"


def detect(path: str | Path) -> bool:
    """Return True when `path` is a folder (or a label.csv) in MMSA-FET layout."""
    path = Path(path)
    if path.is_file():
        return path.name == LABEL_FILE
    return path.is_dir() and (path / LABEL_FILE).is_file()


def read(path: str | Path, *, trust_pickle: bool = False, nan_policy: NanPolicy = "error",
         cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset of the MMSA-FET folder `path` (or of its label.csv)."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    label_file = path if path.is_file() else folder / LABEL_FILE
    ids, texts, labels, splits = read_label_csv(label_file)
    fields: dict[str, list[Any] | None] = {}
    notes = ["read by the 'mmsa_fet' reader (label.csv layout)"]
    provenance = {"text": f"column 'text' of {label_file.name}"}
    feature_file = _feature_file(folder)
    if feature_file is not None:
        fields, extra = _join_features(feature_file, ids, trust_pickle, notes,
                                       cross_split_duplicates)
        provenance.update({k: v for k, v in mmsa.provenance(fields, feature_file).items()
                           if k != "text"})
        notes.append(f"features joined by segment id from {feature_file.name}")
        if extra:
            notes.append(f"{extra} samples of {feature_file.name} are not in {LABEL_FILE} "
                         f"and were left out")
    else:
        notes.append("no feature pickle beside label.csv: text only")
    card = DatasetCard(name=folder.name, source=str(label_file),
                       description="MMSA-FET-style dataset folder", provenance=provenance,
                       notes=notes)
    return build_dataset(card, ids=ids, splits=splits, labels=labels, text=texts,
                         nan_policy=nan_policy, cross_split_duplicates=cross_split_duplicates,
                         **fields)


def read_label_csv(label_file: Path) -> tuple[list[str], list[str], list[float], list[str]]:
    """Return (ids, transcripts, labels, splits) of an MMSA-style label.csv.

    A missing column, an empty id, a label that is not a number or an unknown mode raises
    DataError naming the file, the line and the sample.
    """
    rows = read_csv_rows(label_file, ("text", "label", "mode"))
    has_id = "id" in rows[0]
    if not has_id and not ("video_id" in rows[0] and "clip_id" in rows[0]):
        raise DataError(f"{label_file}: missing column 'id' (or 'video_id' and 'clip_id'); "
                        f"columns present: {', '.join(rows[0])}")
    ids, texts, labels, splits = [], [], [], []
    for row in rows:
        if has_id:
            parts = [row["id"].strip()]
        else:
            parts = [row["video_id"].strip(), row["clip_id"].strip()]
        if not all(parts):
            raise DataError(f"{label_file}: line {row.line} has an empty "
                            f"{'id' if has_id else 'video_id or clip_id'}; every row needs one")
        sid = "_".join(parts)
        ids.append(sid)
        texts.append(row["text"])
        labels.append(csv_label(row, label_file, sid))
        splits.append(normalise_split(row["mode"], label_file, sid))
    return ids, texts, labels, splits


def _feature_file(folder: Path) -> Path | None:
    """Return the feature pickle beside label.csv (feature.pkl or the only *.pkl), or None."""
    if (folder / "feature.pkl").is_file():
        return folder / "feature.pkl"
    pickles = sorted(folder.glob("*.pkl"))
    if len(pickles) > 1:
        names = ", ".join(p.name for p in pickles)
        raise DataError(f"{folder}: several feature pickles ({names}) and no feature.pkl; "
                        f"read the one you want with --format mmsa")
    return pickles[0] if pickles else None


def _join_features(feature_file: Path, ids: list[str], trust_pickle: bool,
                   notes: list[str] | None = None,
                   cross_split_duplicates: CrossSplitPolicy = "error"
                   ) -> tuple[dict[str, list[Any] | None], int]:
    """Return (fields aligned to `ids`, number of feature samples without a label.csv row).

    An id twice in one split of the pickle raises DataError; an id in two of its splits is
    leakage, refused, or (with "drop") its features are taken from the earlier split.
    """
    obj = load_pickle(feature_file, trust=trust_pickle)
    by_id: dict[str, tuple[str, int]] = {}
    per_split: dict[str, dict[str, list[Any] | None]] = {}
    latin1: list[str] = []
    for split in SPLITS:
        split_ids, _, fields = mmsa.split_samples(require(obj, split, feature_file),
                                                  feature_file, split, latin1)
        per_split[split] = fields
        for i, sid in enumerate(split_ids):
            if sid in by_id:
                first = by_id[sid][0]
                if first == split:
                    raise DataError(f"{feature_file}: duplicate sample id '{sid}' in split "
                                    f"'{split}'; ids must be unique")
                if cross_split_duplicates == "error":
                    raise DataError(cross_split_message(str(feature_file), sid, first, split))
                continue
            by_id[sid] = (split, i)
    warn_latin1(feature_file, latin1, notes)
    names = [k for k, v in per_split["train"].items() if v is not None and k != "text"]
    out: dict[str, list[Any] | None] = {k: [] for k in names}
    for sid in ids:
        if sid not in by_id:
            raise DataError(f"{feature_file}: no features for sample '{sid}' of {LABEL_FILE}")
        split, i = by_id[sid]
        for k in names:
            values = per_split[split].get(k)
            if values is None:
                raise DataError(f"{feature_file}: key '{k}' is missing in split '{split}'")
            out[k].append(values[i])
    return out, len(by_id) - len(set(ids) & set(by_id))
