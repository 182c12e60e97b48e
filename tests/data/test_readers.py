"""Each community format: files written here in that exact layout, read, checked value by value
against the layout's rules, then round-tripped through mimsa's own format exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mimsa.data.dataset import SPLITS, DataError, MultimodalDataset
from mimsa.data.readers import detect_format, formats, read_path
from mimsa.data.store import load_dataset_dir, save_dataset

from .helpers import (
    SIZES,
    assert_same,
    fet_rows,
    mmim_samples,
    mmsa_object,
    mult_object,
    write_csd_folder,
    write_label_csv,
    write_mmim,
    write_pickle,
)


def round_trip(ds: MultimodalDataset, tmp_path: Path) -> MultimodalDataset:
    """Return `ds` after save_dataset + load_dataset_dir (and check it equals `ds`)."""
    out = save_dataset(ds, tmp_path / "converted")
    back = read_path(out)
    assert_same(ds, back)
    assert_same(ds, load_dataset_dir(out))
    return back


def test_formats_and_unknown_format(tmp_path: Path) -> None:
    assert formats() == ["csd", "mimsa", "mmim", "mmsa", "mmsa_fet", "mult"]
    with pytest.raises(DataError, match="unknown data format 'hdf'.*csd, mimsa, mmim"):
        read_path(tmp_path, format="hdf")
    with pytest.raises(DataError, match="cannot tell the data format"):
        read_path(tmp_path)
    with pytest.raises(DataError, match="not found"):
        read_path(tmp_path / "nope")


# -- mmsa -------------------------------------------------------------------------------------
def test_mmsa_unaligned_values_and_round_trip(tmp_path: Path) -> None:
    obj = mmsa_object()
    path = write_pickle(obj, tmp_path / "unaligned_50.pkl")
    assert detect_format(path) == "mmsa"
    ds = read_path(path)
    assert ds.card.split_sizes == SIZES and ds.modalities == "tav"
    i = 0
    for split in SPLITS:
        part = obj[split]
        for k in range(SIZES[split]):
            video, clip = part["id"][k].split("$_$")
            assert ds.ids[i] == f"{video}_{clip}" and ds.splits[i] == split
            assert ds.labels[i] == part["regression_labels"][k]
            assert ds.text[i] == part["raw_text"][k]
            mask = part["text_bert"][k, 1] > 0
            assert np.array_equal(ds.text_ids[i], part["text_bert"][k, 0][mask].astype(np.int64))
            assert np.array_equal(ds.text_feats[i], part["text"][k, : int(mask.sum())])
            a_len = max(1, int(part["audio_lengths"][k]))
            assert np.array_equal(ds.audio[i], part["audio"][k, :a_len])
            assert np.array_equal(ds.vision[i], part["vision"][k, : part["vision_lengths"][k]])
            i += 1
    round_trip(ds, tmp_path)


def test_mmsa_aligned_uses_bert_mask_length(tmp_path: Path) -> None:
    obj = mmsa_object(aligned=True)
    ds = read_path(write_pickle(obj, tmp_path / "aligned_50.pkl"))
    n = int(obj["train"]["text_bert"][1, 1].sum())
    assert ds.audio[1].shape == (n, 5) and ds.vision[1].shape == (n, 4)
    round_trip(ds, tmp_path)


def test_mmsa_missing_key_names_key_split_and_file(tmp_path: Path) -> None:
    obj = mmsa_object()
    del obj["valid"]["regression_labels"]
    path = write_pickle(obj, tmp_path / "aligned_50.pkl")
    with pytest.raises(DataError, match=r"missing key 'regression_labels' of split 'valid'"
                       ) as info:
        read_path(path)
    assert str(path) in str(info.value)
    obj = mmsa_object()
    del obj["test"]
    with pytest.raises(DataError, match="missing key 'test'"):
        read_path(write_pickle(obj, tmp_path / "aligned_50.pkl"))


def test_mmsa_minus_inf_error_or_zero(tmp_path: Path) -> None:
    obj = mmsa_object()
    obj["train"]["audio"][2, 0, 1] = -np.inf
    obj["train"]["audio_lengths"][2] = 3
    path = write_pickle(obj, tmp_path / "unaligned_50.pkl")
    with pytest.raises(DataError, match=r"audio of sample 'trainvid1_1' holds 1 NaN/inf") as info:
        read_path(path)
    assert str(path) in str(info.value)
    with pytest.warns(UserWarning, match="audio 1"):
        ds = read_path(path, nan_policy="zero")
    assert ds.audio[2][0, 1] == 0.0 and ds.nan_report["audio"] == 1
    assert np.isfinite(np.concatenate(ds.audio)).all()


def test_mmsa_mismatched_lengths(tmp_path: Path) -> None:
    obj = mmsa_object()
    obj["test"]["vision"] = obj["test"]["vision"][:-1]
    with pytest.raises(DataError, match=r"split 'test' arrays have different numbers of "
                       r"samples.*'vision' 2"):
        read_path(write_pickle(obj, tmp_path / "unaligned_50.pkl"))


def test_mmsa_bad_labels_duplicates_and_empty_split(tmp_path: Path) -> None:
    obj = mmsa_object()
    obj["valid"]["regression_labels"][1] = 4.5
    with pytest.raises(DataError, match=r"label 4.5 of sample 'validvid0_2' is outside"):
        read_path(write_pickle(obj, tmp_path / "aligned_50.pkl"))
    obj = mmsa_object()
    obj["valid"]["regression_labels"][0] = np.nan
    with pytest.raises(DataError, match="label of sample 'validvid0_1' is not finite"):
        read_path(write_pickle(obj, tmp_path / "aligned_50.pkl"))
    obj = mmsa_object()
    obj["test"]["id"][1] = obj["test"]["id"][0]
    with pytest.raises(DataError, match="duplicate sample id 'testvid0_1'"):
        read_path(write_pickle(obj, tmp_path / "aligned_50.pkl"))
    obj = mmsa_object()
    obj["valid"] = {k: v[:0] for k, v in obj["valid"].items()}
    with pytest.raises(DataError, match="split 'valid' is empty"):
        read_path(write_pickle(obj, tmp_path / "aligned_50.pkl"))


def test_unnamed_pickle_is_dispatched_on_its_keys(tmp_path: Path) -> None:
    ds = read_path(write_pickle(mmsa_object(), tmp_path / "whatever.pkl"))
    assert ds.modalities == "tav"
    ds = read_path(write_pickle(mult_object(), tmp_path / "other.pkl"))
    assert ds.card.description == "MulT feature pickle"
    with pytest.raises(DataError, match="layout not recognised"):
        read_path(write_pickle({"a": 1}, tmp_path / "odd.pkl"))


# -- mult -------------------------------------------------------------------------------------
def test_mult_values_ids_and_round_trip(tmp_path: Path) -> None:
    obj = mult_object()
    path = write_pickle(obj, tmp_path / "mosi_data.pkl")
    assert detect_format(path) == "mult"
    ds = read_path(path)
    assert ds.ids[:3] == ["trainvid0_0.0_1.0", "trainvid0_1.0_2.0", "trainvid1_2.0_3.0"]
    i = 0
    for split in SPLITS:
        for k in range(SIZES[split]):
            assert ds.labels[i] == obj[split]["labels"][k, 0, 0]
            for key, field in (("text", "text_feats"), ("audio", "audio"), ("vision", "vision")):
                assert np.array_equal(getattr(ds, field)[i], obj[split][key][k])
            i += 1
    round_trip(ds, tmp_path)


def test_mult_ids_unique_first_column_absent_and_repeated(tmp_path: Path) -> None:
    ds = read_path(write_pickle(mult_object(id_columns=0), tmp_path / "a_data_noalign.pkl"))
    assert ds.ids[0] == "train_00000" and ds.ids[-1] == "test_00002"
    obj = mult_object(id_columns=1)
    ds = read_path(write_pickle(obj, tmp_path / "b_data.pkl"))
    assert ds.ids[:3] == ["trainvid0", "trainvid0#2", "trainvid1"]
    assert any("made unique" in n for n in ds.card.notes)


def test_mult_class_labels_and_missing_key(tmp_path: Path) -> None:
    obj = mult_object()
    obj["train"]["labels"] = np.zeros((4, 4, 2), dtype=np.float32)
    with pytest.raises(DataError, match=r"'train/labels' has shape \(4, 4, 2\)"):
        read_path(write_pickle(obj, tmp_path / "iemocap_data.pkl"))
    obj = mult_object()
    del obj["valid"]["audio"]
    with pytest.raises(DataError, match="missing key 'audio' of split 'valid'"):
        read_path(write_pickle(obj, tmp_path / "mosi_data.pkl"))


def test_mult_minus_inf_and_mismatch(tmp_path: Path) -> None:
    obj = mult_object()
    obj["test"]["audio"][0, 2, 0] = -np.inf
    path = write_pickle(obj, tmp_path / "mosi_data.pkl")
    with pytest.raises(DataError, match="audio of sample 'testvid0_0.0_1.0' holds 1"):
        read_path(path)
    with pytest.warns(UserWarning):
        assert read_path(path, nan_policy="zero").audio[-3][2, 0] == 0.0
    obj = mult_object()
    obj["train"]["labels"] = obj["train"]["labels"][:3]
    with pytest.raises(DataError, match="'labels' 3"):
        read_path(write_pickle(obj, tmp_path / "mosi_data.pkl"))


# -- mmim -------------------------------------------------------------------------------------
def test_mmim_values_and_round_trip(tmp_path: Path) -> None:
    folder = write_mmim(tmp_path / "mmim")
    assert detect_format(folder) == "mmim"
    ds = read_path(folder)
    train = mmim_samples("train", SIZES["train"], 0 + len("train.pkl"))
    for i, ((words, visual, acoustic, actual, vlen, alen), label, sid) in enumerate(train):
        assert ds.ids[i] == sid and ds.labels[i] == label[0, 0]
        assert ds.text[i] == " ".join(actual)
        assert np.array_equal(ds.text_ids[i], np.array(words, dtype=np.int64))
        assert np.array_equal(ds.vision[i], visual[: max(1, vlen)])
        assert np.array_equal(ds.audio[i], acoustic[:alen])
    assert ds.splits.count("valid") == SIZES["valid"]
    round_trip(ds, tmp_path)


def test_mmim_bad_sample_and_missing_file(tmp_path: Path) -> None:
    folder = write_mmim(tmp_path / "mmim")
    write_pickle([("not", "a sample")], folder / "dev.pkl")
    with pytest.raises(DataError, match=r"dev.pkl: sample 0 is not \(\(words"):
        read_path(folder)
    (folder / "dev.pkl").unlink()
    with pytest.raises(DataError, match="missing file dev.pkl or valid.pkl"):
        read_path(folder, format="mmim")


# -- csd --------------------------------------------------------------------------------------
def test_csd_values_drop_and_round_trip(tmp_path: Path) -> None:
    truth = write_csd_folder(tmp_path / "csd")
    assert detect_format(tmp_path / "csd") == "csd"
    ds = read_path(tmp_path / "csd")
    assert ds.ids == ["vA_1", "vA_2", "vB_1", "vB_2", "vC_1"]
    assert ds.splits == ["train", "train", "valid", "valid", "test"]
    for i, sid in enumerate(ds.ids):
        label, audio, text = truth[sid]
        assert ds.labels[i] == np.float32(label)
        assert np.array_equal(ds.audio[i], audio) and ds.text[i] == text
    assert any("1 labelled segments" in n and "vC_2" in n for n in ds.card.notes)
    round_trip(ds, tmp_path)


def test_csd_aligned_segment_keys(tmp_path: Path) -> None:
    from .helpers import write_csd

    folder = tmp_path / "aligned"
    folder.mkdir()
    iv = np.array([[0.0, 1.0]])
    write_csd(folder / "X_labels.csd", "labels", {f"v{s}[0]": (np.array([[0.5 * s]]), iv)
                                                  for s in range(3)})
    feats = {f"v{s}[0]": (np.full((2, 3), s, np.float32), np.array([[0, .5], [.5, 1]]))
             for s in range(3)}
    write_csd(folder / "X_FACET.csd", "FACET", feats)
    write_label_csv(folder / "label.csv", [
        {"id": f"v{s}_1", "text": "t", "label": "0", "mode": m}
        for s, m in enumerate(("train", "dev", "test"))], ("id", "text", "label", "mode"))
    ds = read_path(folder, format="csd")
    assert ds.ids == ["v0_1", "v1_1", "v2_1"] and ds.modalities == "v"
    assert np.array_equal(ds.vision[2], np.full((2, 3), 2, np.float32))


def test_csd_errors(tmp_path: Path) -> None:
    folder = tmp_path / "csd"
    write_csd_folder(folder)
    (folder / "splits.csv").unlink()
    with pytest.raises(DataError, match="no split file; put splits.csv"):
        read_path(folder)
    write_csd_folder(folder)
    (folder / "TOY_COVAREP.csd").write_bytes(b"this is not hdf5")
    with pytest.raises(DataError, match="TOY_COVAREP.csd: not a readable HDF5"):
        read_path(folder)
    write_csd_folder(folder)
    (folder / "TOY_Opinion_Labels.csd").unlink()
    with pytest.raises(DataError, match="exactly one labels .csd"):
        read_path(folder)
    write_csd_folder(folder)
    (folder / "TOY_Mystery.csd").write_bytes((folder / "TOY_COVAREP.csd").read_bytes())
    with pytest.raises(DataError, match="TOY_Mystery.csd: cannot tell which modality"):
        read_path(folder)


# -- mmsa_fet ---------------------------------------------------------------------------------
def test_mmsa_fet_text_only_and_round_trip(tmp_path: Path) -> None:
    rows = fet_rows()
    write_label_csv(tmp_path / "fet" / "label.csv", rows)
    assert detect_format(tmp_path / "fet") == "mmsa_fet"
    ds = read_path(tmp_path / "fet")
    assert ds.modalities == "t" and ds.card.split_sizes == SIZES
    assert ds.ids[0] == f"{rows[0]['video_id']}_{rows[0]['clip_id']}"
    assert ds.text[0] == rows[0]["text"] and ds.labels[0] == np.float32(float(rows[0]["label"]))
    round_trip(ds, tmp_path)


def test_mmsa_fet_with_feature_pickle(tmp_path: Path) -> None:
    folder = tmp_path / "fet"
    write_label_csv(folder / "label.csv", fet_rows())
    write_pickle(mmsa_object(), folder / "feature.pkl")
    ds = read_path(folder)
    direct = read_path(folder / "feature.pkl", format="mmsa")
    assert ds.ids == direct.ids and ds.modalities == "tav"
    for name in ("text_ids", "text_feats", "audio", "vision"):
        for u, v in zip(getattr(ds, name), getattr(direct, name), strict=True):
            assert np.array_equal(u, v)
    assert ds.text[0].startswith("Text, ")
    round_trip(ds, tmp_path)


def test_mmsa_fet_errors(tmp_path: Path) -> None:
    rows = fet_rows()
    write_label_csv(tmp_path / "a" / "label.csv", rows, ("video_id", "clip_id", "text", "label"))
    with pytest.raises(DataError, match="missing column 'mode'"):
        read_path(tmp_path / "a")
    bad = [dict(r) for r in rows]
    bad[1]["mode"] = "holdout"
    write_label_csv(tmp_path / "b" / "label.csv", bad)
    with pytest.raises(DataError, match="sample 'trainvid0_2' has split 'holdout'"):
        read_path(tmp_path / "b")
    bad = [dict(r) for r in rows]
    bad[2]["label"] = "n/a"
    write_label_csv(tmp_path / "c" / "label.csv", bad)
    with pytest.raises(DataError, match="'label' of sample 'trainvid1_1' is 'n/a'"):
        read_path(tmp_path / "c")
    extra = [*rows, {**rows[0], "clip_id": "99"}]
    write_label_csv(tmp_path / "d" / "label.csv", extra)
    write_pickle(mmsa_object(), tmp_path / "d" / "feature.pkl")
    with pytest.raises(DataError, match="no features for sample 'trainvid0_99'"):
        read_path(tmp_path / "d")
    write_label_csv(tmp_path / "e" / "label.csv", [r for r in rows if r["mode"] != "test"])
    with pytest.raises(DataError, match="split 'test' is empty"):
        read_path(tmp_path / "e")


def test_mmsa_modality_missing_in_one_split(tmp_path: Path) -> None:
    obj = mmsa_object()
    del obj["test"]["vision"], obj["test"]["vision_lengths"]
    with pytest.raises(DataError, match="field 'vision' is in the earlier splits but not in test"):
        read_path(write_pickle(obj, tmp_path / "unaligned_50.pkl"))
