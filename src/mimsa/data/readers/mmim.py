"""`mmim`: MMIM's cached split pickles (a folder with train.pkl, dev.pkl, test.pkl).

Each file is a list of samples `((words, visual, acoustic, actual_words, vlen, alen), label,
segment_id)`: words = GloVe vocabulary ids, visual [T_v, D_v], acoustic [T_a, D_a],
actual_words = the transcript's words, vlen / alen = real lengths, label = [[score]].
Sequences are cut to vlen / alen (at least one frame; a length past the end of its array,
negative or fractional raises DataError); the transcript is the words joined by spaces, bytes
decoded as UTF-8 (latin-1 only where they are not UTF-8, named in a warning). MMIM builds its
vocabulary at run time, so the ids carry no vocabulary size here.
"""

from __future__ import annotations

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
    Columns,
    cut,
    decode_text,
    float_sequence,
    label_value,
    token_ids,
    warn_latin1,
)
from mimsa.data.safe_pickle import load_pickle

NAME = "mmim"
SPLIT_FILES = {"train": ("train.pkl",), "valid": ("dev.pkl", "valid.pkl"), "test": ("test.pkl",)}


def detect(path: str | Path) -> bool:
    """Return True when `path` is a folder holding MMIM's train/dev/test pickles."""
    path = Path(path)
    return path.is_dir() and all(any((path / n).is_file() for n in names)
                                 for names in SPLIT_FILES.values())


def read(path: str | Path, *, trust_pickle: bool = False, nan_policy: NanPolicy = "error",
         cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset stored in the MMIM split pickles under the folder `path`."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: expected a folder holding train.pkl, dev.pkl and test.pkl")
    columns = Columns(path)
    notes = ["read by the 'mmim' reader (train.pkl / dev.pkl / test.pkl)"]
    for split, names in SPLIT_FILES.items():
        file = next((path / n for n in names if (path / n).exists()), None)
        if file is None:
            raise DataError(f"{path}: missing file {' or '.join(names)} (MMIM layout needs "
                            f"train.pkl, dev.pkl, test.pkl)")
        samples = load_pickle(file, trust=trust_pickle)
        if not isinstance(samples, list | tuple):
            raise DataError(f"{file}: expected a list of samples, found "
                            f"{type(samples).__name__}")
        if not samples:
            raise DataError(f"{file}: split '{split}' is empty (no samples)")
        latin1: list[str] = []
        ids, labels, fields = _split_samples(samples, file, latin1)
        warn_latin1(file, latin1, notes)
        columns.add(split, ids, labels, **fields)
    card = DatasetCard(
        name=path.name, source=str(path), description="MMIM cached split pickles",
        provenance={"text": "actual_words joined by spaces",
                    "text_ids": "words (GloVe vocabulary ids from MMIM's run-time vocabulary)",
                    "audio": "acoustic, cut to alen", "vision": "visual, cut to vlen"},
        notes=notes)
    return columns.dataset(card, nan_policy, cross_split_duplicates=cross_split_duplicates)


def _split_samples(samples: list[Any], file: Path, latin1: list[str]
                   ) -> tuple[list[str], list[float], dict[str, list[Any]]]:
    """Return (ids, labels, fields) of one MMIM split file (latin-1 text goes to `latin1`)."""
    ids: list[str] = []
    labels: list[float] = []
    fields: dict[str, list[Any]] = {"text": [], "text_ids": [], "audio": [], "vision": []}
    for i, sample in enumerate(samples):
        try:
            (words, visual, acoustic, actual_words, vlen, alen), label, segment = sample
        except (TypeError, ValueError) as exc:
            raise DataError(f"{file}: sample {i} is not ((words, visual, acoustic, "
                            f"actual_words, vlen, alen), label, segment_id)") from exc
        sid = decode_text(segment, file, "segment_id", f"sample {i}", latin1).strip()
        ids.append(sid)
        labels.append(label_value(label, file, "label", sid))
        if isinstance(actual_words, str | bytes):
            text = decode_text(actual_words, file, "actual_words", sid, latin1)
        else:
            words_list = np.asarray(actual_words, dtype=object).ravel()
            text = " ".join(decode_text(w, file, "actual_words", sid, latin1)
                            for w in words_list)
        fields["text"].append(text)
        fields["text_ids"].append(token_ids(words, file, "words", sid))
        fields["vision"].append(cut(float_sequence(visual, file, "visual", sid), vlen, file,
                                    "vlen", sid, "visual"))
        fields["audio"].append(cut(float_sequence(acoustic, file, "acoustic", sid), alen, file,
                                   "alen", sid, "acoustic"))
    return ids, labels, fields
