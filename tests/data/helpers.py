"""Builders of small files in each community layout, and an exact dataset comparison."""

from __future__ import annotations

import csv
import io
import pickle
import struct
from pathlib import Path

import h5py
import numpy as np

from mimsa.data.dataset import SPLITS, MultimodalDataset

SIZES = {"train": 4, "valid": 3, "test": 3}


def assert_same(a: MultimodalDataset, b: MultimodalDataset) -> None:
    """Assert that two datasets hold exactly the same samples, values and card."""
    assert a.ids == b.ids
    assert a.splits == b.splits
    assert a.labels.dtype == b.labels.dtype and np.array_equal(a.labels, b.labels)
    assert a.text == b.text
    assert a.vocab_size == b.vocab_size
    for name in ("text_ids", "text_feats", "audio", "vision"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is None:
            continue
        assert len(x) == len(y)
        for u, v in zip(x, y, strict=True):
            assert u.dtype == v.dtype and u.shape == v.shape, name
            assert np.array_equal(u, v), name
    assert a.card.to_dict() == b.card.to_dict()


def write_pickle(obj: object, path: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    """Pickle `obj` to `path` and return the path."""
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class Py2Pickler(pickle._Pickler):
    """A pickler that writes what Python 2 writes for its `str`: SHORT_BINSTRING / BINSTRING.

    `bytes` and ASCII `str` become Python 2 byte strings (as they were in Python 2, where ids,
    transcripts and numpy's raw array data are all `str`); non-ASCII `str` stays unicode.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)

    def save_py2_str(self, obj: str) -> None:
        if obj.isascii():
            self.save_py2_bytes(obj.encode("ascii"))
        else:
            pickle._Pickler.save_str(self, obj)

    dispatch[bytes] = save_py2_bytes
    dispatch[str] = save_py2_str


def write_py2_pickle(obj: object, path: Path) -> Path:
    """Pickle `obj` at protocol 2 the way Python 2 does (see `Py2Pickler`); return the path."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue())
    return path


def mmsa_object(seed: int = 0, steps: int = 6, aligned: bool = False) -> dict:
    """Return a small dict in MMSA's pickle layout (with -inf-free random features)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in SIZES.items():
        tokens = rng.integers(1, 1000, (n, steps)).astype(np.float64)
        token_len = rng.integers(1, steps + 1, n)
        token_len[0] = steps
        mask = (np.arange(steps)[None, :] < token_len[:, None]).astype(np.float64)
        bert = np.stack([tokens * mask, mask, np.zeros_like(mask)], axis=1)
        part = {
            "id": np.array([f"{split}vid{i // 2}$_${i % 2 + 1}" for i in range(n)], dtype=object),
            "raw_text": np.array([f"{split} words {i}" for i in range(n)], dtype=object),
            "text": rng.standard_normal((n, steps, 8)).astype(np.float32),
            "text_bert": bert,
            "audio": rng.standard_normal((n, steps, 5)).astype(np.float32),
            "vision": rng.standard_normal((n, steps, 4)).astype(np.float32),
            "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
            "classification_labels": np.zeros(n),
        }
        if not aligned:
            lengths = rng.integers(0, steps + 1, n)
            lengths[0] = 0
            part["audio_lengths"] = lengths
            part["vision_lengths"] = list(rng.integers(1, steps + 1, n))
        out[split] = part
    return out


def mult_object(seed: int = 0, steps: int = 5, id_columns: int = 3) -> dict:
    """Return a small dict in MulT's pickle layout; ids [N, 3] bytes repeat in column 0."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in SIZES.items():
        if id_columns:
            ids = np.array([[f"{split}vid{i // 2}".encode(), f"{i:.1f}".encode(),
                             f"{i + 1:.1f}".encode()][:id_columns] for i in range(n)])
        else:
            ids = None
        part = {
            "text": rng.standard_normal((n, steps, 6)).astype(np.float32),
            "audio": rng.standard_normal((n, steps, 3)).astype(np.float32),
            "vision": rng.standard_normal((n, steps, 2)).astype(np.float32),
            "labels": rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32),
        }
        if ids is not None:
            part["id"] = ids
        out[split] = part
    return out


def mmim_samples(split: str, n: int, seed: int = 0) -> list:
    """Return one MMIM split: ((words, visual, acoustic, actual_words, vlen, alen), label, id)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        n_words = int(rng.integers(1, 6))
        words = [int(x) for x in rng.integers(1, 50, n_words)]
        actual = [f"w{x}" for x in words]
        visual = rng.standard_normal((7, 3)).astype(np.float32)
        acoustic = rng.standard_normal((9, 2)).astype(np.float32)
        vlen, alen = int(rng.integers(0, 8)), int(rng.integers(1, 10))
        label = np.array([[rng.uniform(-3, 3)]], dtype=np.float32)
        samples.append(((words, visual, acoustic, actual, vlen, alen), label, f"{split}v_{i + 1}"))
    return samples


def write_mmim(folder: Path, seed: int = 0) -> Path:
    """Write train.pkl / dev.pkl / test.pkl in MMIM's layout under `folder` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.pkl"), ("valid", "dev.pkl"), ("test", "test.pkl")):
        write_pickle(mmim_samples(split, SIZES[split], seed + len(name)), folder / name)
    return folder


def write_csd(path: Path, root: str, entries: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write a computational sequence: `<root>/data/<key>/{features,intervals}` + metadata."""
    with h5py.File(path, "w") as handle:
        data = handle.create_group(root).create_group("data")
        for key, (features, intervals) in entries.items():
            group = data.create_group(key)
            group.create_dataset("features", data=features)
            group.create_dataset("intervals", data=intervals)
        meta = handle[root].create_group("metadata")
        meta.create_dataset("root name", data=[root.encode()])
    return path


def write_csd_folder(folder: Path, seed: int = 0) -> dict:
    """Write labels + COVAREP-like audio + words .csd files and splits.csv; return the truth.

    Videos 'vA', 'vB', 'vC', each with 2 segments; splits by video via splits.csv except
    segment vC_2, which the split file does not list.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels, audio, words, truth = {}, {}, {}, {}
    for v, video in enumerate(("vA", "vB", "vC")):
        seg_iv = np.array([[0.0, 1.0], [1.0, 2.5]], dtype=np.float32)
        scores = rng.uniform(-3, 3, (2, 1)).astype(np.float32)
        labels[video] = (scores, seg_iv)
        frame_start = np.arange(0, 2.5, 0.25, dtype=np.float64)
        frames = np.stack([frame_start, frame_start + 0.25], axis=1)
        feats = rng.standard_normal((len(frames), 3)).astype(np.float32)
        audio[video] = (feats, frames)
        word_iv = np.array([[0.1, 0.4], [0.5, 0.9], [1.2, 1.6], [1.7, 2.0]])
        tokens = np.array([[b"good"], [b"sp"], [b"bad"], [f"w{v}".encode()]])
        words[video] = (tokens, word_iv)
        for k in range(2):
            start, end = seg_iv[k]
            hit = (frames[:, 0] < end) & (frames[:, 1] > start)
            text = "good" if k == 0 else f"bad w{v}"
            truth[f"{video}_{k + 1}"] = (float(scores[k, 0]), feats[hit], text)
    write_csd(folder / "TOY_Opinion_Labels.csd", "Opinion Segment Labels", labels)
    write_csd(folder / "TOY_COVAREP.csd", "COVAREP", audio)
    write_csd(folder / "TOY_TimestampedWords.csd", "words", words)
    with (folder / "splits.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split"])
        writer.writerows([["vA", "train"], ["vB", "dev"], ["vC_1", "test"]])
    return truth


def write_label_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = (
        "video_id", "clip_id", "text", "label", "mode")) -> Path:
    """Write an MMSA-style label.csv with `columns` and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def fet_rows() -> list[dict]:
    """Return label.csv rows for the ids of `mmsa_object` (mode 'dev' for the valid split)."""
    rows = []
    obj = mmsa_object()
    for split in SPLITS:
        for i, sid in enumerate(obj[split]["id"]):
            video, clip = sid.split("$_$")
            rows.append({"video_id": video, "clip_id": clip, "text": f"Text, \"{split}\" {i}",
                         "label": f"{float(obj[split]['regression_labels'][i])!r}",
                         "mode": "dev" if split == "valid" else split})
    return rows
