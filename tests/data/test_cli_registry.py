"""`load_dataset` on names and paths, and the `mimsa data` sub-commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mimsa.data.data_cli import data_app
from mimsa.data.dataset import DataError
from mimsa.data.registry import list_datasets, load_dataset
from mimsa.data.store import load_dataset_dir
from mimsa.errors import ConfigError

from .helpers import assert_same, mmsa_object, write_pickle

runner = CliRunner()


def test_registered_real_datasets() -> None:
    names = [e.name for e in list_datasets()]
    assert {"mosi", "mosi-poria", "mosei", "synthetic"} <= set(names)


def test_load_dataset_reads_paths_and_lists_names(tmp_path: Path) -> None:
    path = write_pickle(mmsa_object(), tmp_path / "aligned_50.pkl")
    ds = load_dataset(str(path))
    assert ds.modalities == "tav"
    assert load_dataset(path, format="mmsa").ids == ds.ids
    with pytest.raises(ConfigError, match="unknown dataset 'nosuch'.*registered datasets: .*mosi"):
        load_dataset("nosuch")


def test_missing_real_files_say_what_to_set(tmp_path: Path) -> None:
    for name in ("mosi", "mosi-poria", "mosei"):
        with pytest.raises(DataError, match=r"missing data file .*label.csv|transcripts.csv"
                           ) as info:
            load_dataset(name, data_root=tmp_path)
        assert "MIMSA_DATA" in str(info.value) and "--data-root" in str(info.value)


def test_cli_inspect_and_convert(tmp_path: Path) -> None:
    path = write_pickle(mmsa_object(), tmp_path / "unaligned_50.pkl")
    result = runner.invoke(data_app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "split sizes: train 4, valid 3, test 3" in result.stdout
    assert "feature dims: text_feats 8, audio 5, vision 4" in result.stdout
    out = tmp_path / "converted"
    result = runner.invoke(data_app, ["convert", str(path), "--to", str(out)])
    assert result.exit_code == 0, result.output
    assert_same(load_dataset(str(path)), load_dataset_dir(out))
    result = runner.invoke(data_app, ["convert", str(path), "--to", str(out)])
    assert result.exit_code == 2 and "already exists" in result.stderr
    result = runner.invoke(data_app, ["convert", str(path), "--to", str(out), "--overwrite"])
    assert result.exit_code == 0
    result = runner.invoke(data_app, ["inspect", str(out)])
    assert result.exit_code == 0 and "MMSA feature pickle" in result.stdout


def test_cli_errors_are_one_red_line_with_exit_2(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "aligned_50.pkl"
    evil.write_bytes(b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    for args in (["inspect", "nosuch"], ["inspect", str(evil)],
                 ["inspect", str(tmp_path), "--format", "bogus"],
                 ["inspect", "mosi", "--data-root", str(tmp_path)]):
        result = runner.invoke(data_app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.output
    assert not marker.exists()
    assert not os.path.exists(marker)
