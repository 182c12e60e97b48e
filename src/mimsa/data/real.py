"""The real datasets under the data root: `mosi`, `mosi-poria` and `mosei`.

Files are read from the data root (`--data-root`, else $MIMSA_DATA, else the user cache):
  mosi/label.csv                        CMU-MOSI transcripts, labels, CMU standard folds
  mosi/CMU_MOSI_Opinion_Labels.csd      official continuous labels (HDF5)
  mosi/poria/*.csv                      Poria et al. (ACL 2017) utterance features + split
  mosei/label.csv                       CMU-MOSEI transcripts, labels, standard split
Each file's sha256 is checked against the published checksums (cheap: ~10 MB in all); pass
`verify=False` to read a copy that differs on purpose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mimsa.data.dataset import (
    CrossSplitPolicy,
    DataError,
    DatasetCard,
    MultimodalDataset,
    NanPolicy,
)
from mimsa.data.readers._common import build_dataset, read_csv_table
from mimsa.data.readers.mmsa_fet import read_label_csv
from mimsa.data.registry import register_dataset

CHECKSUMS = {
    "mosi/label.csv":
        "74c52aba8884cca3f77962310c41f31d3d6250c4e4b50fd77fd4efe4eb75a521",
    "mosi/CMU_MOSI_Opinion_Labels.csd":
        "aef5f4617cdb067cc7606bb798eb6452c3de45f0f21cb3427be33c4d8c7fe852",
    "mosi/poria/transcripts.csv":
        "e7689e6d70720addd2a6b316419d245a68839c32b014ff426c406063ee777466",
    "mosi/poria/text_train.csv":
        "73770b6302ad0f7a51f4eddcae6788efde4d0b6802e09f78249d5b538d1c1d67",
    "mosi/poria/text_test.csv":
        "f3b735070bf07ceff7a6ef6c8f4c32757e988de484e35bd6d38b2aecef851a59",
    "mosi/poria/audio_train0.csv":
        "5435398a54664e7b00304587dc59ae84a438852be033c2a2fba779588624a2a1",
    "mosi/poria/audio_test0.csv":
        "ddd17eeefd3d951d51d4e2ef8a0d132652d8161e1886f71eb7262b7a14bffff6",
    "mosi/poria/video_train0.csv":
        "b6efc0413132d627efd06f67f1706830e775e90af9a75696f535c48dbc73f12f",
    "mosi/poria/video_test0.csv":
        "cab836253d81100f59d533fa2ff65cd53c486be3ec9fd82203c5e25a7a77265f",
    "mosei/label.csv":
        "74a195945e28c1bbc45b6d279a99655d163f33d2c28b0c723ddba87bfbb97bfa",
}

# Validation videos of `mosi-poria`, carved from Poria's 62 train videos once, on 2026-11-22:
#   vids = sorted(train video ids)  (Python string order)
#   sorted(np.random.default_rng(20261122).choice(vids, 10, replace=False))
# Written out so the split never depends on a numpy version. 222 segments.
PORIA_VALID_VIDEOS = ("1DmNV9C1hbY", "73jzhE8R1TQ", "8qrpnFRGt2A", "Bfr499ggo-0", "TvyZBvOMOTc",
                      "_dI--eQ6qVU", "atnd_PF-Lbs", "bOL9jKpeJRs", "jUzDDGyPkXU", "v0zCBqDeKcE")
LABELS_CSD_GROUP = "Opinion Segment Labels"
AUDIO_DIM, TEXT_CNN_DIM, VIDEO_DIM = 73, 100, 100

# Measured by `measure_leakage(load_dataset("mosi-poria"))` on 2026-11-22 (ridge, alpha 1.0,
# features standardised on the train split; Pearson r of the predictions with the labels).
# tests/data/test_real.py::test_poria_leakage re-measures and compares with these numbers.
MEASURED_LEAKAGE = {
    "vision": {"train": 0.731, "valid": 0.737, "test": 0.058},
    "text_feats": {"train": 0.879, "valid": 0.874, "test": 0.587},
    "audio": {"train": 0.410, "valid": 0.054, "test": 0.102},
}
_NAMES = {"vision": "3D-CNN vision", "text_feats": "text-CNN", "audio": "openSMILE audio"}
LEAKAGE_NOTE = (
    "measured 2026-11-22 with measure_leakage (ridge on one feature set, alpha 1, fit on "
    "train), Pearson r train / valid / test: "
    + "; ".join(f"{_NAMES[k]} " + " / ".join(f"{v[s]:.3f}" for s in ("train", "valid", "test"))
                for k, v in MEASURED_LEAKAGE.items())
    + ". Leaky features score as well on valid as on train (their extractor saw valid's "
    "labels); clean audio drops on valid as on test")


# -- files ------------------------------------------------------------------------------------
def data_file(root: Path, relative: str, verify: bool = True) -> Path:
    """Return the path of a data file under `root`, checking that it exists (and its sha256)."""
    path = Path(root) / relative
    if not path.is_file():
        raise DataError(f"missing data file {path}; set MIMSA_DATA or pass --data-root to the "
                        f"folder that holds mosi/ and mosei/")
    if verify and relative in CHECKSUMS:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != CHECKSUMS[relative]:
            raise DataError(f"{path}: sha256 {digest[:12]}... differs from the published "
                            f"{CHECKSUMS[relative][:12]}... (data/README.md); call "
                            f"load_dataset(..., verify=False) to read a different copy")
    return path


def _read_csv(path: Path) -> list[list[str]]:
    """Return the non-blank rows of a header-less CSV file as lists of strings.

    UTF-8 with or without a byte-order mark, LF or CRLF; errors name the file and line.
    """
    return [fields for _, fields in read_csv_table(path)]


def _float_rows(path: Path, rows: list[list[str]], width: int) -> np.ndarray:
    """Return a header-less numeric CSV as a float64 [n, width] array.

    A row of another width or a cell that is not a number raises DataError naming the row
    (1-based, blank lines not counted) and the column.
    """
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise DataError(f"{path}: row {bad + 1} has {len(rows[bad])} fields, expected {width}")
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        pass
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            try:
                float(cell)
            except ValueError as exc:
                raise DataError(f"{path}: row {i + 1}, column {j + 1} is '{cell}', not a "
                                f"number") from exc
    raise DataError(f"{path}: cannot read the rows as numbers")


def read_poria(root: Path, verify: bool = True) -> dict[str, dict]:
    """Return Poria's utterance features by segment id.

    Each value holds: 'transcript' (upper case, as published), 'binary' (0/1), 'split'
    ('train' or 'test' of Poria's split), 'text_feats' [100], 'audio' [73], 'vision' [100].
    The join: column 0 of text_X.csv is the 0-based row of transcripts.csv; rows of
    audio_X0.csv / video_X0.csv follow the rows of text_X.csv, and their last column (the
    binary label) must equal the transcript's binary label.
    """
    transcripts_file = data_file(root, "mosi/poria/transcripts.csv", verify)
    transcripts = _read_csv(transcripts_file)
    if any(len(r) != 4 for r in transcripts):
        raise DataError(f"{transcripts_file}: expected 4 fields per row (id, transcript, "
                        f"video number, binary label)")
    out: dict[str, dict] = {}
    for split in ("train", "test"):
        text_file = data_file(root, f"mosi/poria/text_{split}.csv", verify)
        audio_file = data_file(root, f"mosi/poria/audio_{split}0.csv", verify)
        video_file = data_file(root, f"mosi/poria/video_{split}0.csv", verify)
        text = _float_rows(text_file, _read_csv(text_file), 1 + TEXT_CNN_DIM)
        audio = _float_rows(audio_file, _read_csv(audio_file), AUDIO_DIM + 1)
        video = _float_rows(video_file, _read_csv(video_file), VIDEO_DIM + 1)
        if not len(text) == len(audio) == len(video):
            raise DataError(f"{audio_file}: {len(audio)} rows, {text_file.name} {len(text)}, "
                            f"{video_file.name} {len(video)}; the rows must correspond")
        for k in range(len(text)):
            row = int(text[k, 0]) if np.isfinite(text[k, 0]) else -1
            if row != text[k, 0] or not 0 <= row < len(transcripts):
                raise DataError(f"{text_file}: row {k + 1} points at transcript row "
                                f"{text[k, 0]:g}, outside 0..{len(transcripts) - 1}")
            sid, transcript, _, binary = transcripts[row]
            if binary.strip() not in ("0", "1"):
                raise DataError(f"{transcripts_file}: row {row + 1}, column 4 (binary label of "
                                f"'{sid}') is '{binary}'; expected 0 or 1")
            if sid in out:
                raise DataError(f"{text_file}: segment '{sid}' appears twice in Poria's files")
            for file, arr in ((audio_file, audio), (video_file, video)):
                if arr[k, -1] != int(binary):
                    raise DataError(f"{file}: row {k + 1} has binary label {arr[k, -1]:g} but "
                                    f"segment '{sid}' has {binary} in {transcripts_file.name}; "
                                    f"the row order of the Poria files is broken")
            out[sid] = {"transcript": transcript, "binary": int(binary), "split": split,
                        "text_feats": text[k, 1:], "audio": audio[k, :-1],
                        "vision": video[k, :-1]}
    missing = [r[0] for r in transcripts if r[0] not in out]
    if missing:
        raise DataError(f"{transcripts_file}: {len(missing)} segments have no Poria features, "
                        f"e.g. '{missing[0]}'")
    return out


def read_mosi_csd_labels(root: Path, verify: bool = True) -> dict[str, float]:
    """Return the official continuous MOSI labels by segment id (row k → `<video>_<k+1>`)."""
    import h5py

    file = data_file(root, "mosi/CMU_MOSI_Opinion_Labels.csd", verify)
    labels: dict[str, float] = {}
    try:
        with h5py.File(file, "r") as handle:
            if LABELS_CSD_GROUP not in handle or "data" not in handle[LABELS_CSD_GROUP]:
                raise DataError(f"{file}: missing key '{LABELS_CSD_GROUP}/data'")
            group = handle[LABELS_CSD_GROUP]["data"]
            for video in group:
                if "features" not in group[video]:
                    raise DataError(f"{file}: missing key 'data/{video}/features'")
                scores = np.asarray(group[video]["features"][()], dtype=np.float64).reshape(-1)
                for k, score in enumerate(scores):
                    labels[f"{video}_{k + 1}"] = float(score)
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{file}: not a readable HDF5 .csd file ({exc})") from exc
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise DataError(f"{file}: truncated or corrupt .csd file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return labels


def _video(segment_id: str) -> str:
    """Return the video id of a `<video>_<clip>` segment id."""
    return segment_id.rsplit("_", 1)[0]


# -- datasets ---------------------------------------------------------------------------------
@register_dataset("mosi", "CMU-MOSI, standard folds (1281/229/685): transcripts + Poria's 73-d "
                  "openSMILE audio vector; no vision")
def mosi(data_root: Path, nan_policy: NanPolicy = "error", verify: bool = True,
         cross_split_duplicates: CrossSplitPolicy = "error", **_: object
         ) -> MultimodalDataset:
    """Return CMU-MOSI on the CMU standard folds with transcripts and openSMILE audio."""
    label_file = data_file(data_root, "mosi/label.csv", verify)
    ids, texts, labels, splits = read_label_csv(label_file)
    poria = read_poria(data_root, verify)
    lacking = [sid for sid in ids if sid not in poria]
    if lacking:
        raise DataError(f"{label_file}: {len(lacking)} segments have no Poria audio features, "
                        f"e.g. '{lacking[0]}'")
    card = DatasetCard(
        name="mosi", source=str(Path(data_root) / "mosi"),
        description="CMU-MOSI on the CMU standard folds, transcripts + utterance audio",
        provenance={
            "text": "mosi/label.csv column 'text' (lower-cased, no punctuation)",
            "audio": "Poria et al. 2017 openSMILE utterance vector (mosi/poria/audio_*0.csv) "
                     "as a length-1 sequence [1, 73], joined by segment id",
        },
        notes=[
            "Zadeh et al. 2016, IEEE Intelligent Systems; labels in [-3, 3], verified equal to "
            "CMU_MOSI_Opinion_Labels.csd",
            "folds: CMU-MultimodalSDK standard folds (mode 'dev' read as 'valid'); videos "
            "52 / 10 / 31; speaker-independent",
            "2,195 of the 2,199 segments (label.csv lacks 2WGyTLYerpo_44, 5W7Z1C_fDaE_24, "
            "BioHAh1qJAQ_30, lXPQBPVc5Cw_30); all 2,195 have Poria audio",
            "openSMILE audio is unsupervised, so it is safe on this split; Poria's text-CNN "
            "and 3D-CNN features are NOT used here: they were trained on labels of Poria's "
            "train split, which overlaps this test split (see mosi-poria)",
        ],
    )
    return build_dataset(card, ids=ids, splits=splits, labels=labels, text=texts,
                         audio=[poria[sid]["audio"].reshape(1, -1) for sid in ids],
                         nan_policy=nan_policy, cross_split_duplicates=cross_split_duplicates)


@register_dataset("mosi-poria", "CMU-MOSI on Poria's speaker-independent split (62 train videos, "
                  "10 of them held out as valid / 31 test): text + text-CNN + openSMILE + 3D-CNN")
def mosi_poria(data_root: Path, nan_policy: NanPolicy = "error", verify: bool = True,
               cross_split_duplicates: CrossSplitPolicy = "error", **_: object
               ) -> MultimodalDataset:
    """Return CMU-MOSI on Poria's split with all three of Poria's utterance feature sets."""
    poria = read_poria(data_root, verify)
    official = read_mosi_csd_labels(data_root, verify)
    ids = sorted(poria)
    train_videos = {_video(s) for s in ids if poria[s]["split"] == "train"}
    stray = sorted(set(PORIA_VALID_VIDEOS) - train_videos)
    if stray:
        raise DataError(f"{data_root}/mosi/poria: validation video '{stray[0]}' is not in "
                        f"Poria's train split; the Poria files differ from the published ones")
    labels = []
    for sid in ids:
        if sid not in official:
            raise DataError(f"{data_root}/mosi/CMU_MOSI_Opinion_Labels.csd: no label for "
                            f"segment '{sid}'")
        if int(official[sid] >= 0) != poria[sid]["binary"]:
            raise DataError(f"{data_root}/mosi/poria/transcripts.csv: binary label of '{sid}' "
                            f"is {poria[sid]['binary']} but the official label is "
                            f"{official[sid]:g}")
        labels.append(official[sid])
    splits = ["test" if poria[s]["split"] == "test" else
              "valid" if _video(s) in PORIA_VALID_VIDEOS else "train" for s in ids]
    card = DatasetCard(
        name="mosi-poria", source=str(Path(data_root) / "mosi"),
        description="CMU-MOSI on Poria et al.'s speaker-independent split, utterance features",
        provenance={
            "text": "mosi/poria/transcripts.csv, lower-cased (differs from label.csv's "
                    "transcript in 244 segments: Poria's transcription)",
            "text_feats": "Poria text-CNN utterance vector [1, 100] (mosi/poria/text_*.csv); "
                          "TRAINED ON LABELS of Poria's train split",
            "audio": "Poria openSMILE utterance vector [1, 73] (mosi/poria/audio_*0.csv); "
                     "unsupervised",
            "vision": "Poria 3D-CNN utterance vector [1, 100] (mosi/poria/video_*0.csv); "
                      "TRAINED ON LABELS of Poria's train split",
        },
        notes=[
            "Poria et al. 2017 (ACL), 'Context-dependent sentiment analysis in user-generated "
            "videos'; labels: official continuous scores from CMU_MOSI_Opinion_Labels.csd "
            "(row k of a video = segment <video>_<k+1>); all 2,199 segments",
            "split: Poria's 62 train / 31 test videos (speaker-independent; NOT the CMU "
            "standard folds: only 7 test videos coincide). Valid = 10 whole videos of Poria's "
            "train, fixed: " + ", ".join(PORIA_VALID_VIDEOS) + " (sorted ids, "
            "numpy default_rng(20261122).choice(10)); no video is in two splits",
            "LEAKAGE: the text-CNN and 3D-CNN extractors saw the labels of all 62 Poria train "
            "videos, the 10 valid videos included. Train AND valid scores on text_feats / "
            "vision are inflated; only test is clean. Model selection on valid favours "
            "those features. Never use them on any other split (they leak test labels "
            "there). openSMILE audio and the transcript are safe.",
            LEAKAGE_NOTE,
        ],
    )
    return build_dataset(
        card, ids=ids, splits=splits, labels=labels,
        text=[poria[s]["transcript"].lower() for s in ids],
        text_feats=[poria[s]["text_feats"].reshape(1, -1) for s in ids],
        audio=[poria[s]["audio"].reshape(1, -1) for s in ids],
        vision=[poria[s]["vision"].reshape(1, -1) for s in ids],
        nan_policy=nan_policy, cross_split_duplicates=cross_split_duplicates)


@register_dataset("mosei", "CMU-MOSEI, standard split (16274/1861/4653), transcripts only")
def mosei(data_root: Path, nan_policy: NanPolicy = "error", verify: bool = True,
          cross_split_duplicates: CrossSplitPolicy = "error", **_: object
          ) -> MultimodalDataset:
    """Return CMU-MOSEI (text only) on the standard split; ids are `<video_id>_<clip_id>`."""
    label_file = data_file(data_root, "mosei/label.csv", verify)
    ids, texts, labels, splits = read_label_csv(label_file)
    card = DatasetCard(
        name="mosei", source=str(label_file),
        description="CMU-MOSEI transcripts and sentiment, standard split, text only",
        provenance={"text": "mosei/label.csv column 'text' (cased, punctuated)"},
        notes=[
            "Zadeh et al. 2018 (ACL); 22,788 segments from 3,217 videos; labels in [-3, 3]",
            "split: MMSA's label.csv modes; every video split lies inside the official MOSEI "
            "standard folds",
            "ids: '<video_id>_<clip_id>' (clip_id is a start time written with '_')",
            "no audio/vision: no processed CMU sequence features are available here",
        ],
    )
    return build_dataset(card, ids=ids, splits=splits, labels=labels, text=texts,
                         nan_policy=nan_policy, cross_split_duplicates=cross_split_duplicates)


# -- leakage ----------------------------------------------------------------------------------
def measure_leakage(dataset: MultimodalDataset, alpha: float = 1.0,
                    fields: Iterable[str] = ("text_feats", "audio", "vision"),
                    ) -> dict[str, dict[str, float]]:
    """Return {field: {split: Pearson r}} of a ridge regression fit on the train split.

    Each sequence is averaged over time to one vector; features are standardised with the
    train mean/std; the ridge has an unpenalised intercept and penalty `alpha` (closed form).
    A feature extractor trained on train labels shows train r far above test r.
    """
    train = dataset.indices("train")
    y = dataset.labels.astype(np.float64)
    out: dict[str, dict[str, float]] = {}
    for field in fields:
        seqs = getattr(dataset, field, None)
        if seqs is None:
            continue
        X = np.stack([np.asarray(s, dtype=np.float64).mean(axis=0) for s in seqs])
        mean, std = X[train].mean(axis=0), X[train].std(axis=0)
        X = (X - mean) / np.where(std > 0, std, 1.0)
        y_mean = y[train].mean()
        A = X[train].T @ X[train] + alpha * np.eye(X.shape[1])
        w = np.linalg.solve(A, X[train].T @ (y[train] - y_mean))
        pred = X @ w + y_mean
        out[field] = {split: _pearson(pred[idx], y[idx]) for split in ("train", "valid", "test")
                      if len(idx := dataset.indices(split)) > 1}
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Pearson correlation of two vectors (0.0 when either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0
