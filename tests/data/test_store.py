"""mimsa's own format: exact round trip, checksums, atomic writes, no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mimsa.data.dataset import DataError
from mimsa.data.readers import detect_format
from mimsa.data.store import load_dataset_dir, save_dataset
from mimsa.data.synthetic import make_synthetic

from .helpers import assert_same

SMALL = {"train": 12, "valid": 5, "test": 6}


def test_round_trip_is_exact_and_pickle_free(tmp_path: Path) -> None:
    ds = make_synthetic(seed=3, sizes=SMALL)
    out = save_dataset(ds, tmp_path / "syn")
    assert sorted(p.name for p in out.iterdir()) == ["arrays.safetensors", "manifest.json",
                                                      "samples.json"]
    assert detect_format(out) == "mimsa"
    back = load_dataset_dir(out)
    assert_same(ds, back)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "mimsa-dataset" and manifest["version"] == 1
    assert manifest["fields"] == ["text", "text_ids", "audio", "vision"]
    assert set(manifest["files"]) == {"arrays.safetensors", "samples.json"}
    assert not list(tmp_path.glob(".syn.tmp-*"))


def test_subset_with_missing_split_round_trips(tmp_path: Path) -> None:
    ds = make_synthetic(seed=1, sizes=SMALL)
    sub = ds.subset(np.concatenate([ds.indices("train"), ds.indices("test")]))
    assert_same(sub, load_dataset_dir(save_dataset(sub, tmp_path / "sub")))


def test_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    out = save_dataset(make_synthetic(sizes=SMALL), tmp_path / "syn")
    samples = out / "samples.json"
    samples.write_text(samples.read_text().replace("syn_00000", "syn_99999"))
    with pytest.raises(DataError, match=r"samples.json: sha256 .* does not match manifest.json"
                       ) as info:
        load_dataset_dir(out)
    assert "\n" not in str(info.value)
    (out / "arrays.safetensors").unlink()
    with pytest.raises(DataError, match="arrays.safetensors: file not found"):
        load_dataset_dir(out)


def test_corrupt_manifest_and_wrong_format(tmp_path: Path) -> None:
    out = save_dataset(make_synthetic(sizes=SMALL), tmp_path / "syn")
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json: unreadable JSON"):
        load_dataset_dir(out)
    (out / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="key 'format' is not 'mimsa-dataset'"):
        load_dataset_dir(out)


def test_existing_target_needs_overwrite(tmp_path: Path) -> None:
    first = make_synthetic(seed=0, sizes=SMALL)
    second = make_synthetic(seed=1, sizes=SMALL)
    out = save_dataset(first, tmp_path / "syn")
    with pytest.raises(DataError, match="already exists"):
        save_dataset(second, out)
    assert_same(first, load_dataset_dir(out))
    save_dataset(second, out, overwrite=True)
    assert_same(second, load_dataset_dir(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mimsa.data.store as store

    def boom(*_: object, **__: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "sha256_file", boom)
    with pytest.raises(DataError, match=r"syn: cannot write the dataset \(OSError: disk full"):
        save_dataset(make_synthetic(sizes=SMALL), tmp_path / "syn")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="disk full"):
        save_dataset(make_synthetic(sizes=SMALL), tmp_path / "new" / "deeper" / "syn")
    assert list(tmp_path.iterdir()) == []  # the parent folders it made are gone too
