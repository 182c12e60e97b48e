"""The real datasets under the data root (skipped when the folder is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mimsa.data.dataset import DataError, MultimodalDataset
from mimsa.data.readers import read_path
from mimsa.data.readers.mmsa_fet import read_label_csv
from mimsa.data.real import (
    MEASURED_LEAKAGE,
    PORIA_VALID_VIDEOS,
    measure_leakage,
    read_mosi_csd_labels,
    read_poria,
)
from mimsa.data.registry import load_dataset

pytestmark = pytest.mark.real_data

_CACHE: dict[str, MultimodalDataset] = {}


def _load(name: str, root: Path) -> MultimodalDataset:
    """Return a registered real dataset, loaded once per test session."""
    if name not in _CACHE:
        _CACHE[name] = load_dataset(name, data_root=root)
    return _CACHE[name]


def _videos(ds: MultimodalDataset, split: str) -> set[str]:
    return {ds.ids[i].rsplit("_", 1)[0] for i in ds.indices(split)}


@pytest.mark.parametrize(("name", "sizes"), [
    ("mosi", {"train": 1281, "valid": 229, "test": 685}),
    ("mosei", {"train": 16274, "valid": 1861, "test": 4653}),
    ("mosi-poria", {"train": 1225, "valid": 222, "test": 752}),
])
def test_split_sizes_and_label_range(real_root: Path, name: str, sizes: dict) -> None:
    ds = _load(name, real_root)
    assert ds.card.split_sizes == sizes
    assert ds.labels.min() >= -3 and ds.labels.max() <= 3
    assert ds.labels.min() == -3 and ds.labels.max() == 3
    assert ds.card.source and ds.card.provenance and ds.card.notes


def test_mosi_modalities_and_audio_join(real_root: Path) -> None:
    ds = _load("mosi", real_root)
    assert ds.modalities == "ta" and ds.feature_dims() == {"audio": 73}
    assert all(a.shape == (1, 73) for a in ds.audio)
    assert ds.text[0] == "anyhow it was really good" and ds.ids[0] == "03bSnISJMiM_1"
    poria = read_poria(real_root)
    for i in (0, 500, len(ds) - 1):
        assert np.array_equal(ds.audio[i][0], poria[ds.ids[i]]["audio"].astype(np.float32))
    assert len(_videos(ds, "train")) == 52 and len(_videos(ds, "valid")) == 10
    assert len(_videos(ds, "test")) == 31


def test_mosei_ids(real_root: Path) -> None:
    ds = _load("mosei", real_root)
    assert ds.modalities == "t" and ds.ids[0] == "-3g5yACwYnA_82_7645"


def test_poria_join_binary_label_matches_official(real_root: Path) -> None:
    poria = read_poria(real_root)
    official = read_mosi_csd_labels(real_root)
    assert len(poria) == 2199 and set(poria) == set(official)
    assert all(poria[s]["binary"] == int(official[s] >= 0) for s in poria)
    ds = _load("mosi-poria", real_root)
    assert all(ds.labels[i] == np.float32(official[s]) for i, s in enumerate(ds.ids))


def test_mosi_labels_equal_official_csd(real_root: Path) -> None:
    official = read_mosi_csd_labels(real_root)
    ids, _, labels, _ = read_label_csv(real_root / "mosi" / "label.csv")
    assert all(np.float32(lab) == np.float32(official[s]) for s, lab in zip(ids, labels,
                                                                              strict=True))


def test_mosi_poria_splits_are_video_disjoint(real_root: Path) -> None:
    ds = _load("mosi-poria", real_root)
    train, valid, test = (_videos(ds, s) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert len(train | valid) == 62 and len(test) == 31
    assert valid == set(PORIA_VALID_VIDEOS)
    assert ds.modalities == "tav"
    assert ds.feature_dims() == {"text_feats": 100, "audio": 73, "vision": 100}
    assert ds.text[ds.ids.index("03bSnISJMiM_1")] == "anyhow it was really good"


def test_poria_leakage(real_root: Path) -> None:
    ds = _load("mosi-poria", real_root)
    r = measure_leakage(ds)
    vision, text, audio = r["vision"], r["text_feats"], r["audio"]
    # Label-trained extractors: train (and valid, whose labels they also saw) >> test.
    assert vision["train"] - vision["test"] > 0.5 and vision["valid"] - vision["test"] > 0.5
    assert text["train"] - text["test"] > 0.2 and text["valid"] - text["test"] > 0.2
    # Unsupervised openSMILE audio: valid and test behave alike.
    assert abs(audio["valid"] - audio["test"]) < 0.15
    for field, by_split in MEASURED_LEAKAGE.items():
        for split, value in by_split.items():
            assert r[field][split] == pytest.approx(value, abs=0.002), (field, split)
    notes = " ".join(ds.card.notes)
    assert "2026-11-22" in notes and "0.731 / 0.737 / 0.058" in notes


def test_csd_reader_on_real_mosi(real_root: Path) -> None:
    ds = read_path(real_root / "mosi", format="csd")
    mosi = _load("mosi", real_root)
    assert len(ds) == 2195 and ds.card.split_sizes == mosi.card.split_sizes
    order = {s: i for i, s in enumerate(ds.ids)}
    assert all(ds.labels[order[s]] == mosi.labels[i] for i, s in enumerate(mosi.ids))
    assert ds.splits == [mosi.splits[mosi.ids.index(s)] for s in ds.ids]
    assert any("4 labelled segments" in n for n in ds.card.notes)


def test_checksum_mismatch_is_reported(real_root: Path, tmp_path: Path) -> None:
    (tmp_path / "mosei").mkdir()
    original = (real_root / "mosei" / "label.csv").read_text(encoding="utf-8")
    (tmp_path / "mosei" / "label.csv").write_text(original.replace("Key is", "Kee is", 1),
                                                  encoding="utf-8")
    with pytest.raises(DataError, match="sha256 .* differs from the published"):
        load_dataset("mosei", data_root=tmp_path)
    assert len(load_dataset("mosei", data_root=tmp_path, verify=False)) == 22788


def test_missing_poria_file_is_named(real_root: Path, tmp_path: Path) -> None:
    (tmp_path / "mosi" / "poria").mkdir(parents=True)
    for file in (real_root / "mosi").rglob("*"):
        if file.is_file() and file.name != "video_test0.csv":
            link = tmp_path / file.relative_to(real_root)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(file)
    with pytest.raises(DataError, match=r"missing data file .*video_test0.csv; set MIMSA_DATA"):
        load_dataset("mosi-poria", data_root=tmp_path)
