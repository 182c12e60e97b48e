"""Conversions at the reader boundary never lose information silently (issue 16, kinds 5, 6
and the data side of 2 and 3): text decoding, CSV reads, length fields, numeric conversions,
ids repeated across splits, and `mimsa data convert` leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mimsa.data.data_cli import data_app
from mimsa.data.dataset import DataError
from mimsa.data.readers import read_path
from mimsa.data.registry import load_dataset
from mimsa.data.store import clean_stale, load_dataset_dir, save_dataset
from mimsa.errors import ConfigError

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
    write_py2_pickle,
)

runner = CliRunner()
UTF8_TEXTS = ["the café scene", "a naïve plot", "真的很好", "plain words"]


@contextmanager
def strict() -> Iterator[None]:
    """Run the block with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# -- kind 5: text decoding --------------------------------------------------------------------
def py2_mmsa_object(texts: list[bytes]) -> dict:
    """Return an MMSA object whose ids and transcripts are Python 2 byte strings."""
    obj = mmsa_object(aligned=True)
    for split in obj:
        n = len(obj[split]["id"])
        obj[split]["id"] = [str(x).encode() for x in obj[split]["id"]]
        obj[split]["raw_text"] = [texts[k % len(texts)] for k in range(n)]
    return obj


def test_py2_pickle_utf8_text_is_decoded_as_utf8(tmp_path: Path) -> None:
    obj = py2_mmsa_object([t.encode("utf-8") for t in UTF8_TEXTS])
    path = write_py2_pickle(obj, tmp_path / "aligned_50.pkl")
    with strict():
        ds = read_path(path)
    assert ds.text[:4] == UTF8_TEXTS and ds.ids[0] == "trainvid0_1"
    reference = read_path(write_pickle(mmsa_object(aligned=True), tmp_path / "ref.pkl"))
    for name in ("text_ids", "text_feats", "audio", "vision"):  # numpy data survives intact
        for u, v in zip(getattr(ds, name), getattr(reference, name), strict=True):
            assert u.dtype == v.dtype and np.array_equal(u, v)
    back = load_dataset_dir(save_dataset(ds, tmp_path / "out"))
    assert back.text == ds.text


def test_py2_text_that_is_only_latin1_is_named_in_a_warning(tmp_path: Path) -> None:
    obj = py2_mmsa_object([b"caf\xe9 ok", b"plain"])
    path = write_py2_pickle(obj, tmp_path / "aligned_50.pkl")
    with pytest.warns(UserWarning, match=r"aligned_50.pkl: 6 text values are not valid UTF-8 "
                      r"and were decoded as latin-1 \('train/raw_text' of sample "
                      r"'trainvid0_1'") as record:
        ds = read_path(path)
    assert str(path) in str(record[0].message)
    assert ds.text[0] == "café ok" and ds.text[1] == "plain"
    assert any("decoded as latin-1" in n for n in ds.card.notes)


def test_cli_prints_the_latin1_warning_as_one_line(tmp_path: Path) -> None:
    path = write_py2_pickle(py2_mmsa_object([b"caf\xe9"]), tmp_path / "aligned_50.pkl")
    result = runner.invoke(data_app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {path}: 10 text values")
    assert "note: 10 text values decoded as latin-1" in result.stdout


def test_object_arrays_of_numbers_convert_exactly(tmp_path: Path) -> None:
    obj = mult_object()
    expected = obj["train"]["audio"].copy()
    obj["train"]["audio"] = obj["train"]["audio"].astype(np.float64).astype(object)
    ds = read_path(write_pickle(obj, tmp_path / "mosi_data.pkl"))
    assert all(np.array_equal(ds.audio[k], expected[k]) for k in range(SIZES["train"]))


def test_bytes_text_in_a_python3_pickle(tmp_path: Path) -> None:
    obj = mmsa_object(aligned=True)
    obj["train"]["raw_text"] = np.array([t.encode() for t in UTF8_TEXTS])  # dtype S
    obj["valid"]["raw_text"] = [b"x\xff", b"y", b"z"]
    path = write_pickle(obj, tmp_path / "aligned_50.pkl")
    with pytest.warns(UserWarning, match=r"'valid/raw_text' of sample 'validvid0_1'"):
        ds = read_path(path)
    assert ds.text[:4] == UTF8_TEXTS and ds.text[4] == "xÿ"


def test_mult_py2_ids_and_mmim_py2_words_are_utf8(tmp_path: Path) -> None:
    obj = mult_object(id_columns=1)
    for split in obj:
        obj[split]["id"] = [f"{split}vidé{i}".encode() for i in range(SIZES[split])]
    with strict():
        ds = read_path(write_py2_pickle(obj, tmp_path / "mosi_data.pkl"))
    assert ds.ids[0] == "trainvidé0"
    folder = write_mmim(tmp_path / "mmim")
    samples = mmim_samples("train", SIZES["train"])
    (words, visual, acoustic, _, vlen, alen), label, sid = samples[0]
    samples[0] = ((words, visual, acoustic, ["naïve".encode(), b"caf\xc3\xa9"], vlen, alen),
                  label, sid.encode())
    write_py2_pickle(samples, folder / "train.pkl")
    with strict():
        ds = read_path(folder)
    assert ds.text[0] == "naïve café" and ds.ids[0] == "trainv_1"


def test_csd_words_that_are_not_utf8_warn_with_the_segment(tmp_path: Path) -> None:
    from .helpers import write_csd

    folder = tmp_path / "csd"
    write_csd_folder(folder)
    words = {v: (np.array([[b"caf\xe9"], ["naïve".encode()]]), np.array([[0.1, 0.4], [1.2, 1.6]]))
             for v in ("vA", "vB", "vC")}
    write_csd(folder / "TOY_TimestampedWords.csd", "words", words)
    with pytest.warns(UserWarning, match=r"TOY_TimestampedWords.csd: .*'words' of sample 'vA_1'"):
        ds = read_path(folder)
    assert ds.text[0] == "café" and ds.text[1] == "naïve"


# -- kind 5: CSV --------------------------------------------------------------------------------
def write_spreadsheet_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> Path:
    """Write a CSV as spreadsheet programs do: UTF-8 with a byte-order mark, CRLF line ends."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\r\n",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_label_csv_with_bom_and_crlf_reads_like_plain_utf8(tmp_path: Path) -> None:
    rows = fet_rows()
    rows[0]["text"] = "真的很好, \"quoted\"\nover two lines"
    columns = ("video_id", "clip_id", "text", "label", "mode")
    plain = read_path(write_label_csv(tmp_path / "plain" / "label.csv", rows, columns))
    bom = write_spreadsheet_csv(tmp_path / "bom" / "label.csv", rows, columns)
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in bom.read_bytes()
    ds = read_path(bom)
    assert ds.ids == plain.ids and ds.text == plain.text and ds.splits == plain.splits
    assert np.array_equal(ds.labels, plain.labels)
    assert ds.text[0] == "真的很好, \"quoted\"\nover two lines"
    with_id = write_spreadsheet_csv(tmp_path / "id" / "label.csv", [
        {"id": r["video_id"] + "_" + r["clip_id"], **r} for r in rows],
        ("id", "text", "label", "mode"))
    assert read_path(with_id).ids == plain.ids


def test_csd_splits_csv_with_bom(tmp_path: Path) -> None:
    folder = tmp_path / "csd"
    write_csd_folder(folder)
    write_spreadsheet_csv(folder / "splits.csv", [{"id": "vA", "split": "train"},
                                                  {"id": "vB", "split": "dev"},
                                                  {"id": "vC_1", "split": "test"}],
                          ("id", "split"))
    assert read_path(folder).splits == ["train", "train", "valid", "valid", "test"]


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    rows = fet_rows()
    rows[0]["text"] = "two\nlines"
    path = write_label_csv(tmp_path / "a" / "label.csv", rows)
    text = path.read_text(encoding="utf-8").splitlines(keepends=True)
    text[5] = text[5].rstrip("\n") + ",extra\n"  # the 5th row, on line 6 of the file
    path.write_text("".join(text), encoding="utf-8")
    with pytest.raises(DataError, match=r"label.csv: line 6 has 6 fields but the header has 5"):
        read_path(path)
    path.write_bytes(path.read_bytes().replace(b"extra", b"caf\xe9"))
    with pytest.raises(DataError, match=r"label.csv: line 6 is not UTF-8 text \(byte 0xe9\)"):
        read_path(path)
    bad = fet_rows()
    bad[3]["label"] = "1,5"
    path = write_label_csv(tmp_path / "b" / "label.csv", bad)
    with pytest.raises(DataError, match=r"label.csv: line 5: column 'label' of sample "
                       r"'trainvid1_2' is '1,5', not a number"):
        read_path(path)
    path.write_text("video_id,clip_id,text,label,label,mode\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'label' appears more than once"):
        read_path(path)
    path.write_text(" video_id , clip_id,text,label,mode\r\nv,1,t,0.5,train\r\n,,,,\r\n")
    assert read_label_ids(path) == ["v_1"]  # header spaces and an empty row are harmless


def read_label_ids(path: Path) -> list[str]:
    """Return the ids of a label.csv (via the reader's own parser)."""
    from mimsa.data.readers.mmsa_fet import read_label_csv

    return read_label_csv(path)[0]


def test_real_csv_helpers_read_bom_and_name_bad_cells(tmp_path: Path) -> None:
    from mimsa.data import real

    path = tmp_path / "text_train.csv"
    path.write_bytes("\ufeff1,2.5\r\n3,4\r\n".encode())
    rows = real._read_csv(path)
    assert np.array_equal(real._float_rows(path, rows, 2), [[1, 2.5], [3, 4]])
    with pytest.raises(DataError, match=r"text_train.csv: row 2, column 2 is 'x', not a number"):
        real._float_rows(path, [["1", "2"], ["3", "x"]], 2)


# -- kind 5: length fields and numeric conversions --------------------------------------------
def test_lengths_past_the_end_negative_or_fractional_are_refused(tmp_path: Path) -> None:
    for value, message in ((7, r"'train/audio_lengths' of sample 'trainvid1_1' is 7 but "
                                r"'train/audio' has only 6 steps"),
                           (-2, r"'train/audio_lengths' of sample 'trainvid1_1' is negative"),
                           (2.5, r"'train/audio_lengths' of sample 'trainvid1_1' is 2.5, not a "
                                 r"whole number")):
        obj = mmsa_object()
        obj["train"]["audio_lengths"] = obj["train"]["audio_lengths"].astype(np.float64)
        obj["train"]["audio_lengths"][2] = value
        path = write_pickle(obj, tmp_path / "unaligned_50.pkl")
        with pytest.raises(DataError, match=message) as info:
            read_path(path)
        assert str(info.value).startswith(f"{path}: ")
    folder = write_mmim(tmp_path / "mmim")
    samples = mmim_samples("test", SIZES["test"])
    (words, visual, acoustic, actual, vlen, _), label, sid = samples[1]
    samples[1] = ((words, visual, acoustic, actual, vlen, 10), label, sid)
    write_pickle(samples, folder / "test.pkl")
    with pytest.raises(DataError, match=r"test.pkl: 'alen' of sample 'testv_2' is 10 but "
                       r"'acoustic' has only 9 steps"):
        read_path(folder)


def test_float64_beyond_float32_is_refused_not_turned_into_inf(tmp_path: Path) -> None:
    obj = mmsa_object(aligned=True)
    obj["test"]["audio"] = obj["test"]["audio"].astype(np.float64)
    obj["test"]["audio"][1, 0, 0] = 1e300
    with pytest.raises(DataError, match=r"'test/audio' of sample 'testvid0_2' holds 1e\+300, "
                       r"beyond the float32 range"):
        read_path(write_pickle(obj, tmp_path / "aligned_50.pkl"))


def test_non_numeric_labels_name_the_sample(tmp_path: Path) -> None:
    obj = mult_object()
    obj["valid"]["labels"] = np.array([["1.5"], ["oops"], ["0"]], dtype=object)
    with pytest.raises(DataError, match=r"'valid/labels' of sample 'validvid0_1.0_2.0' is not "
                       r"a number"):
        read_path(write_pickle(obj, tmp_path / "mosi_data.pkl"))


# -- kind 6: ids repeated across splits --------------------------------------------------------
def mult_with_copy() -> dict:
    """Return a MulT object whose first test sample is a verbatim copy of the first train one."""
    obj = mult_object()
    for split in obj:
        obj[split]["id"] = obj[split]["id"].astype(object)
    for key in ("text", "audio", "vision", "labels", "id"):
        obj["test"][key][0] = obj["train"][key][0]
    return obj


def test_mult_id_in_train_and_test_is_refused_or_dropped(tmp_path: Path) -> None:
    path = write_pickle(mult_with_copy(), tmp_path / "mosi_data.pkl")
    with pytest.raises(DataError) as info:
        read_path(path)
    message = str(info.value)
    assert message.startswith(f"{path}: sample id 'trainvid0_0.0_1.0' is in both train and test")
    assert "--drop-cross-split-duplicates" in message and "\n" not in message
    ds = read_path(path, cross_split_duplicates="drop")
    assert ds.card.split_sizes == {"train": 4, "valid": 3, "test": 2}
    test_ids = [ds.ids[i] for i in ds.indices("test")]
    assert "trainvid0_0.0_1.0" not in test_ids
    assert ds.cross_split_dropped == {"test": 1}
    assert "1 sample whose id is also in an earlier split was dropped from the later split " \
           "(cross_split_duplicates=drop): test 1" in ds.card.notes
    assert not any("#" in i for i in ds.ids)


def test_mult_repeats_within_one_split_are_still_renamed(tmp_path: Path) -> None:
    obj = mult_object()
    obj["train"]["id"][1] = obj["train"]["id"][0]
    ds = read_path(write_pickle(obj, tmp_path / "mosi_data.pkl"))
    assert ds.ids[:2] == ["trainvid0_0.0_1.0", "trainvid0_0.0_1.0#2"]
    assert any("repeated within a split" in n for n in ds.card.notes)


def test_every_reader_refuses_an_id_in_two_splits(tmp_path: Path) -> None:
    obj = mmsa_object()
    obj["valid"]["id"][0] = obj["train"]["id"][0]
    mmsa_path = write_pickle(obj, tmp_path / "unaligned_50.pkl")

    mmim = write_mmim(tmp_path / "mmim")
    dev = mmim_samples("valid", SIZES["valid"], 7)
    dev[2] = (*dev[2][:2], "trainv_3")
    write_pickle(dev, mmim / "dev.pkl")

    rows = fet_rows()
    rows[-1] = {**rows[-1], "video_id": rows[0]["video_id"], "clip_id": rows[0]["clip_id"]}
    fet = write_label_csv(tmp_path / "fet" / "label.csv", rows).parent

    csd = tmp_path / "csd"
    write_csd_folder(csd)
    write_label_csv(csd / "splits.csv", [{"id": "vA", "split": "train"},
                                         {"id": "vB", "split": "dev"},
                                         {"id": "vC_1", "split": "test"},
                                         {"id": "vA", "split": "test"}], ("id", "split"))
    cases = [(mmsa_path, "trainvid0_1", "train and valid", mmsa_path, "trainvid0_1"),
             (mmim, "trainv_3", "train and valid", mmim, "trainv_3"),
             (fet, "trainvid0_1", "train and test", fet / "label.csv", "trainvid0_1"),
             (csd, "vA", "train and test", csd / "splits.csv", "vA_1")]
    for path, sid, splits, named, kept in cases:
        with pytest.raises(DataError) as info:
            read_path(path)
        message = str(info.value)
        assert message.startswith(f"{named}: sample id '{sid}' is in both {splits}"), message
        assert "\n" not in message
        ds = read_path(path, cross_split_duplicates="drop")
        assert ds.ids.count(kept) == 1 and ds.splits[ds.ids.index(kept)] == "train"


def test_feature_pickle_beside_label_csv_with_an_id_in_two_splits(tmp_path: Path) -> None:
    folder = tmp_path / "fet"
    rows = fet_rows()
    write_label_csv(folder / "label.csv", rows[1:])
    obj = mmsa_object()
    obj["test"]["id"][0] = obj["train"]["id"][0]
    write_pickle(obj, folder / "feature.pkl")
    with pytest.raises(DataError, match=r"feature.pkl: sample id 'trainvid0_1' is in both "
                       r"train and test"):
        read_path(folder)


def test_load_dataset_takes_the_policy(tmp_path: Path) -> None:
    path = write_pickle(mult_with_copy(), tmp_path / "mosi_data.pkl")
    with pytest.raises(DataError, match="in both train and test"):
        load_dataset(str(path))
    assert len(load_dataset(str(path), cross_split_duplicates="drop")) == 9
    with pytest.raises(ConfigError, match="'error' or 'drop'"):
        load_dataset(str(path), cross_split_duplicates="ignore")
    assert len(load_dataset("synthetic", cross_split_duplicates="drop",
                            sizes={"train": 3, "valid": 2, "test": 2})) == 7


def test_cli_flag_drops_and_convert_records_it(tmp_path: Path) -> None:
    path = write_pickle(mult_with_copy(), tmp_path / "mosi_data.pkl")
    result = runner.invoke(data_app, ["inspect", str(path)])
    assert result.exit_code == 2 and "in both train and test" in result.stderr
    result = runner.invoke(data_app, ["inspect", str(path), "--drop-cross-split-duplicates"])
    assert result.exit_code == 0 and "split sizes: train 4, valid 3, test 2" in result.stdout
    out = tmp_path / "out"
    result = runner.invoke(data_app, ["convert", str(path), "--to", str(out),
                                      "--drop-cross-split-duplicates"])
    assert result.exit_code == 0, result.output
    back = load_dataset_dir(out)
    assert len(back) == 9 and any("test 1" in n for n in back.card.notes)


# -- mimsa's own format: errors name the folder; convert leaves nothing behind ---------------
def test_stored_dataset_errors_name_the_folder_first(tmp_path: Path) -> None:
    pkl = write_pickle(mmsa_object(), tmp_path / "unaligned_50.pkl")
    out = save_dataset(read_path(pkl), tmp_path / "store")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["card"]["label_range"] = [0, 0.5]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError) as info:
        read_path(out)
    assert str(info.value).startswith(f"{out} (converted from {pkl}): label ")


def test_convert_removes_what_a_killed_convert_left(tmp_path: Path) -> None:
    pkl = write_pickle(mmsa_object(), tmp_path / "unaligned_50.pkl")
    out = tmp_path / "out"
    script = ("import os, signal, sys\n"
              "import mimsa.data.store as store\n"
              "from mimsa.data.readers import read_path\n"
              "store._fix_permissions = lambda _: os.kill(os.getpid(), signal.SIGKILL)\n"
              "store.save_dataset(read_path(sys.argv[1]), sys.argv[2])\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", script, str(pkl), str(out)], env=env,
                            capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    left = list(tmp_path.glob(".out.tmp-*"))
    assert len(left) == 1 and not out.exists()
    mine = tmp_path / f".out.tmp-{os.getpid()}-live"  # a live writer's temporary is kept
    mine.mkdir()
    result = runner.invoke(data_app, ["convert", str(pkl), "--to", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "out", pkl.name]
    assert_same(read_path(pkl), load_dataset_dir(out))


def test_a_backup_left_between_the_two_renames_is_put_back(tmp_path: Path) -> None:
    pkl = write_pickle(mmsa_object(), tmp_path / "unaligned_50.pkl")
    out = save_dataset(read_path(pkl), tmp_path / "out")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.replace(out, tmp_path / f".out.old-{dead.pid}-abcd1234")
    clean_stale(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", pkl.name]
    assert_same(read_path(pkl), load_dataset_dir(out))


def tree(root: Path) -> list[str]:
    """Return every path under `root`, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_convert_refuses_bad_destinations_in_one_line(tmp_path: Path) -> None:
    pkl = write_pickle(mmsa_object(), tmp_path / "unaligned_50.pkl")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_text("keep me too")
    cases = [([str(notes / "out")], f"{notes / 'out'}: {notes} is a file, not a folder"),
             ([str(notes)], f"{notes}: is a file; the output must be a folder"),
             ([str(notes), "--overwrite"], f"{notes}: is a file"),
             ([str(other), "--overwrite"], f"{other}: exists and is not a mimsa dataset folder"),
             ([str(other)], f"{other}: already exists")]
    before = tree(tmp_path)
    for to, expected in cases:
        result = runner.invoke(data_app, ["convert", str(pkl), "--to", *to])
        assert result.exit_code == 2, (to, result.output)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
        assert "Traceback" not in result.output
        assert tree(tmp_path) == before
    assert notes.read_text() == "keep me" and (other / "a.jpg").read_text() == "keep me too"


def test_a_failed_convert_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "aligned_50.pkl"
    bad.write_bytes(pickle_prefix())
    before = tree(tmp_path)
    result = runner.invoke(data_app, ["convert", str(bad), "--to", str(tmp_path / "a" / "b")])
    assert result.exit_code == 2 and "truncated or corrupt pickle" in result.stderr
    assert tree(tmp_path) == before


def pickle_prefix() -> bytes:
    """Return the first half of a valid MMSA pickle (a truncated download)."""
    import pickle

    data = pickle.dumps(mmsa_object())
    return data[: len(data) // 2]
