"""`csd`: CMU-MultimodalSDK computational sequences (`.csd`, HDF5), a folder of them.

Every .csd holds one root group with `data/<key>/features` [n, D] and `data/<key>/intervals`
[n, 2] (start/end seconds). The labels file is the one whose name contains 'label'; its key is
a video id (row k is segment `<video>_<k+1>`) or an aligned segment key `<video>[k]` (also
segment `<video>_<k+1>`). Every other .csd is a feature sequence for one modality, told by
its name (covarep/opensmile/audio → audio, facet/openface/vision → vision, glove/bert/text →
text_feats) or by string-valued features (timestamped words → the transcript). A segment's
sequence is the feature file's entry for its segment key, else the rows of its video whose
intervals overlap the segment's interval.

Splits are NOT embedded: they come from `splits.csv` (columns id, split; the id may be a
segment or a whole video) or an MMSA-style `label.csv` beside the .csd files. Labelled
segments the split file does not list are left out and counted in the card's notes. An id the
split file lists in two splits is refused (or kept in the earlier split with
cross_split_duplicates="drop"). Words are decoded as UTF-8 (latin-1 only where they are not
UTF-8, named in a warning). A truncated or corrupt .csd raises DataError naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mimsa.data.dataset import (
    CrossSplitPolicy,
    DataError,
    DatasetCard,
    MultimodalDataset,
    NanPolicy,
)
from mimsa.data.readers._common import (
    _one_line,
    build_dataset,
    decode_text,
    float32_array,
    normalise_split,
    read_csv_rows,
    split_map,
    warn_latin1,
)

NAME = "csd"
_SEGMENT_KEY = re.compile(r"^(?P<video>.+)\[(?P<k>\d+)\]$")
_MODALITY_PATTERNS = (
    ("audio", re.compile(r"covarep|opensmile|audio|acoustic|wav2vec|librosa|egemaps", re.I)),
    ("vision", re.compile(r"facet|openface|vision|visual|video|face|3dcnn|resnet|vgg", re.I)),
    ("text_feats", re.compile(r"glove|bert|text|word|phone", re.I)),
)


def detect(path: str | Path) -> bool:
    """Return True for a .csd file or a folder holding .csd files."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".csd"
    return path.is_dir() and any(path.glob("*.csd"))


def read(path: str | Path | Sequence[str | Path], *, trust_pickle: bool = False,
         nan_policy: NanPolicy = "error",
         cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset of a folder of .csd files, one .csd file, or a list of .csd files.

    `trust_pickle` is accepted for a uniform reader signature and unused (HDF5 holds no code).
    """
    files, folder = _csd_files(path)
    label_file = _label_file(files, folder)
    segments = _read_labels(label_file)
    split_of, split_file = _read_splits(folder, cross_split_duplicates)

    kept = [s for s in segments if _lookup_split(split_of, s[0]) is not None]
    dropped = [s[0] for s in segments if _lookup_split(split_of, s[0]) is None]
    if not kept:
        raise DataError(f"{split_file}: none of the {len(segments)} segments of "
                        f"{label_file.name} is listed; ids look like '{segments[0][0]}'")
    ids = [s[0] for s in kept]
    fields: dict[str, list[Any]] = {}
    provenance: dict[str, str] = {}
    notes = ["read by the 'csd' reader (CMU-MultimodalSDK computational sequences)",
             f"labels from {label_file.name}; splits from {split_file.name}"]
    for file in files:
        if file == label_file:
            continue
        field, values = _read_feature_file(file, kept, notes)
        if field in fields:
            raise DataError(f"{file}: a second .csd for '{field}' (already read from "
                            f"{provenance[field]}); keep one file per modality")
        fields[field] = values
        provenance[field] = file.name
    if dropped:
        shown = ", ".join(dropped[:8]) + (", ..." if len(dropped) > 8 else "")
        notes.append(f"{len(dropped)} labelled segments are not in {split_file.name} and were "
                     f"left out: {shown}")
    card = DatasetCard(name=folder.name, source=str(folder),
                       description="CMU-MultimodalSDK computational sequences",
                       provenance={k: f"{v} (rows overlapping each segment's interval)"
                                   for k, v in provenance.items()}, notes=notes)
    return build_dataset(card, ids=ids, splits=[_lookup_split(split_of, i) for i in ids],
                         labels=[s[1] for s in kept], nan_policy=nan_policy,
                         cross_split_duplicates=cross_split_duplicates, **fields)


def _csd_files(path: str | Path | Sequence[str | Path]) -> tuple[list[Path], Path]:
    """Return (the .csd files to read, the folder where the split file is looked for)."""
    if isinstance(path, str | Path):
        path = Path(path)
        if path.is_dir():
            files = sorted(path.glob("*.csd"))
            if not files:
                raise DataError(f"{path}: no .csd files in this folder")
            paths = files
        else:
            paths = [path]
    else:
        paths = [Path(p) for p in path]
    if not paths:
        raise DataError("csd reader: no .csd files given")
    for p in paths:
        if p.is_dir():
            raise DataError(f"{p}: is a folder; expected a .csd file")
        if not p.is_file():
            raise DataError(f"{p}: file not found")
    return sorted(paths), paths[0].parent


def _label_file(files: list[Path], folder: Path) -> Path:
    """Return the labels .csd among `files` (the one whose name contains 'label')."""
    labels = [f for f in files if "label" in f.name.lower()]
    if len(labels) != 1:
        found = ", ".join(f.name for f in labels) or "none"
        raise DataError(f"{folder}: need exactly one labels .csd (name containing 'label'), "
                        f"found {found}")
    return labels[0]


@contextmanager
def _open(file: Path) -> Iterator[Any]:
    """Yield the open h5py File of a .csd; unreadable or corrupt content raises DataError."""
    import h5py

    try:
        handle = h5py.File(file, "r")
    except OSError as exc:
        raise DataError(f"{file}: not a readable HDF5 .csd file ({_one_line(exc)})") from exc
    try:
        with handle:
            yield handle
    except DataError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise DataError(f"{file}: truncated or corrupt .csd file ({type(exc).__name__}: "
                        f"{_one_line(exc)})") from exc


def _data_group(handle: Any, file: Path) -> Any:
    """Return the `<root>/data` group of an open .csd file."""
    roots = [k for k in handle if hasattr(handle[k], "keys") and "data" in handle[k]]
    if len(roots) != 1:
        raise DataError(f"{file}: missing key '<root>/data' (a .csd has one root group with "
                        f"'data' and 'metadata'; top-level keys: {', '.join(handle) or 'none'})")
    return handle[roots[0]]["data"]


def _entry(group: Any, key: str, file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (features, intervals) of one entry `data/<key>` as numpy arrays."""
    entry = group[key]
    for name in ("features", "intervals"):
        if name not in entry:
            raise DataError(f"{file}: missing key 'data/{key}/{name}'")
    try:
        features, intervals = entry["features"][()], entry["intervals"][()]
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{file}: cannot read 'data/{key}' ({_one_line(exc)})") from exc
    if features.ndim == 1:
        features = features.reshape(-1, 1)
    if intervals.ndim != 2 or intervals.shape[1] != 2 or len(intervals) != len(features):
        raise DataError(f"{file}: 'data/{key}' has features {features.shape} and intervals "
                        f"{intervals.shape}; expected [n, D] and [n, 2]")
    return features, intervals


def _read_labels(file: Path) -> list[tuple[str, float, float, float]]:
    """Return the labelled segments (id, label, start, end) of a labels .csd, in file order."""
    out: list[tuple[str, float, float, float]] = []
    with _open(file) as handle:
        group = _data_group(handle, file)
        for key in group:
            features, intervals = _entry(group, key, file)
            if features.shape[1] != 1:
                raise DataError(f"{file}: 'data/{key}/features' has shape {features.shape}; "
                                f"a labels .csd holds one score per segment ([n, 1])")
            if not (np.issubdtype(features.dtype, np.number)
                    and np.issubdtype(intervals.dtype, np.number)):
                raise DataError(f"{file}: 'data/{key}' holds {features.dtype} scores and "
                                f"{intervals.dtype} intervals; expected numbers")
            match = _SEGMENT_KEY.match(key)
            for k in range(len(features)):
                if match:
                    sid = f"{match['video']}_{int(match['k']) + k + 1}"
                else:
                    sid = f"{key}_{k + 1}"
                out.append((sid, float(features[k, 0]), float(intervals[k, 0]),
                            float(intervals[k, 1])))
    if not out:
        raise DataError(f"{file}: the labels .csd holds no segments")
    return out


def _read_splits(folder: Path, cross_split_duplicates: CrossSplitPolicy = "error"
                 ) -> tuple[dict[str, str], Path]:
    """Return ({segment or video id: split}, the split file read)."""
    splits_csv, label_csv = folder / "splits.csv", folder / "label.csv"
    if splits_csv.exists():
        rows = read_csv_rows(splits_csv, ("id", "split"))
        pairs = [(r["id"].strip(), normalise_split(r["split"], splits_csv, r["id"]))
                 for r in rows]
        return split_map(pairs, splits_csv, cross_split_duplicates), splits_csv
    if label_csv.exists():
        from mimsa.data.readers.mmsa_fet import read_label_csv

        ids, _, _, splits = read_label_csv(label_csv)
        pairs = list(zip(ids, splits, strict=True))
        return split_map(pairs, label_csv, cross_split_duplicates), label_csv
    raise DataError(f"{folder}: no split file; put splits.csv (columns id,split) or an "
                    f"MMSA-style label.csv (id or video_id+clip_id, mode) beside the .csd files")


def _lookup_split(split_of: dict[str, str], sid: str) -> str | None:
    """Return the split of a segment: by its id, else by its video id; None when unlisted."""
    if sid in split_of:
        return split_of[sid]
    return split_of.get(sid.rsplit("_", 1)[0])


def _modality(file: Path, sample: np.ndarray) -> str:
    """Return the field a feature .csd fills, from string values or from its name."""
    if sample.dtype.kind in "SUO":
        return "text"
    for field, pattern in _MODALITY_PATTERNS:
        if pattern.search(file.stem):
            return field
    raise DataError(f"{file}: cannot tell which modality this .csd holds; name it after its "
                    f"features (e.g. COVAREP / OpenFace / glove)")


def _read_feature_file(file: Path, segments: list[tuple[str, float, float, float]],
                       notes: list[str] | None = None) -> tuple[str, list[Any]]:
    """Return (field name, one value per segment) read from a feature .csd.

    Words that decode only as latin-1 are named in one warning (and a line in `notes`).
    """
    values: list[Any] = []
    latin1: list[str] = []
    field = None
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with _open(file) as handle:
        group = _data_group(handle, file)
        keys = set(group)
        for sid, _, start, end in segments:
            video, clip = sid.rsplit("_", 1)
            segment_key = f"{video}[{int(clip) - 1}]"
            if segment_key in keys:
                rows, _ = _entry(group, segment_key, file)
            elif video in keys:
                if video not in cache:
                    cache = {video: _entry(group, video, file)}
                features, intervals = cache[video]
                mid_zero = intervals[:, 0] == intervals[:, 1]
                hit = ((intervals[:, 0] < end) & (intervals[:, 1] > start)) | (
                    mid_zero & (intervals[:, 0] >= start) & (intervals[:, 0] < end))
                rows = features[hit]
            else:
                raise DataError(f"{file}: no entry for segment '{sid}' (looked for keys "
                                f"'{segment_key}' and '{video}')")
            if len(rows) == 0:
                raise DataError(f"{file}: no rows overlap segment '{sid}' "
                                f"[{start:g}, {end:g}] s")
            field = field or _modality(file, rows)
            values.append(_value(field, rows, file, sid, latin1))
    warn_latin1(file, latin1, notes)
    return field or "text_feats", values


def _value(field: str, rows: np.ndarray, file: Path, sample: str, latin1: list[str]) -> Any:
    """Return a segment's value: the transcript for words, else float32 [T, D] features."""
    if field == "text":
        words = [decode_text(w, file, "words", sample, latin1).strip() for w in rows.reshape(-1)]
        return " ".join(w for w in words if w and w != "sp")
    if not np.issubdtype(rows.dtype, np.number):
        raise DataError(f"{file}: features of segment '{sample}' have dtype {rows.dtype}; "
                        f"expected numbers")
    return float32_array(rows, file, "features", [sample] * len(rows))
