"""A corpus of hostile inputs, each run through the `mimsa` command as a user would: bad config
values, paths that are files or folders, damaged run files, community data with faults, and a
run meeting data it was not trained on. For every case: exit code 2, exactly one line, no
traceback, the line names the key, file or sample, and no file is created or left behind.
(The reader-level corpus is tests/data/test_hostile_readers.py.)"""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mimsa.cli import app
from tests.data.helpers import mmsa_object, write_pickle

runner = CliRunner()
TINY = ["--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}",
        "--set", "train.epochs=2", "--quiet"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny run trained on an MMSA pickle (so its data can be changed later)."""
    root = tmp_path_factory.mktemp("finished")
    (root / "data").mkdir()
    data = write_pickle(mmsa_object(), root / "data" / "unaligned_50.pkl")
    result = runner.invoke(app, ["train", "-d", str(data), "--out", str(root / "run"),
                                 "--set", "train.epochs=1", "--quiet"])
    assert result.exit_code == 0, result.output
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# Each case: (id, setup(tmp) -> argv, text the error line must contain). `setup` builds the
# hostile input inside tmp; the snapshot of tmp taken after setup must equal the one after
# the command.
Case = tuple[str, Callable[[Path], list[str]], str]


def _train_set(setting: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["train", *TINY, "--set", setting, "--out", str(tmp / "run")]


CONFIG_CASES: list[Case] = [
    ("epochs-text", _train_set("train.epochs=abc"), "train.epochs='abc'"),
    ("epochs-zero", _train_set("train.epochs=0"), "train.epochs=0"),
    ("batch-zero", _train_set("data.batch_size=0"), "data.batch_size=0"),
    ("batch-negative", _train_set("data.batch_size=-4"), "data.batch_size=-4"),
    ("lr-negative", _train_set("train.lr=-1"), "train.lr=-1"),
    ("nan-policy", _train_set("data.nan_policy=bogus"), "data.nan_policy='bogus'"),
    ("protocol", _train_set("protocol=peek"), "protocol='peek'"),
    ("model-option-type", _train_set("model.hidden=abc"), "model.hidden='abc'"),
    ("model-option-unknown", _train_set("model.hiden=3"), "model.hiden"),
    ("objective-unknown", _train_set("objectives.x=1"), "objectives.x"),
    ("objective-option", _train_set("objectives.ba.detach_targte=true"), "detach_targte"),
    ("objective-option-type", _train_set("objectives.cpc.modalities=[1]"),
     "objectives.cpc.modalities"),
    ("unknown-section", _train_set("trian.epochs=3"), "trian"),
    ("unknown-key", _train_set("train.epoch=3"), "train.epoch"),
    ("not-key-value", _train_set("train.epochs"), "key=value"),
    ("penalty-kind", _train_set("penalty.kind=mine"), "penalty.kind='mine'"),
    ("penalty-without-kind", _train_set("penalty.weight=0.5"), "penalty.weight"),
    ("select-metric", _train_set("train.select_metric=Acc"), "train.select_metric='Acc'"),
    ("modalities", _train_set("data.modalities=tx"), "data.modalities='tx'"),
    ("stage-fraction", _train_set("train.stages=[{name: m, fraction: 2}]"),
     "train.stages.0.fraction=2"),
    ("stage-term", _train_set("train.stages=[{name: m, terms: {nce: 1}}]"), "nce"),
    ("term-weight", _train_set("train.term_weights.nse=0"), "nse"),
    ("synthetic-option-on-real", lambda tmp: ["train", "-d", "mosi", "--set",
                                              "data.synthetic_seed=3", "--out",
                                              str(tmp / "run")], "data.synthetic_seed"),
    ("unknown-model", lambda tmp: ["train", "-m", "nope", "--out", str(tmp / "run"), *TINY],
     "unknown model 'nope'"),
    ("unknown-dataset", lambda tmp: ["train", "-d", "nope", "--out", str(tmp / "run")],
     "unknown dataset 'nope'"),
]


def _config_file(content: bytes) -> Callable[[Path], list[str]]:
    def setup(tmp: Path) -> list[str]:
        (tmp / "c.yaml").write_bytes(content)
        return ["train", "--config", str(tmp / "c.yaml"), "--out", str(tmp / "run"), *TINY]

    return setup


def _out_under_file(tmp: Path) -> list[str]:
    (tmp / "file").write_text("x")
    return ["train", "--out", str(tmp / "file" / "run"), *TINY]


def _out_is_file(tmp: Path) -> list[str]:
    (tmp / "file").write_text("x")
    return ["train", "--out", str(tmp / "file"), *TINY]


def _config_is_folder(tmp: Path) -> list[str]:
    (tmp / "folder").mkdir()
    return ["train", "--config", str(tmp / "folder"), "--out", str(tmp / "run"), *TINY]


def _convert_under_file(tmp: Path) -> list[str]:
    data = write_pickle(mmsa_object(), tmp / "aligned_50.pkl")
    (tmp / "file").write_text("x")
    return ["data", "convert", str(data), "--to", str(tmp / "file" / "out")]


PATH_CASES: list[Case] = [
    ("yaml-multiline-error", _config_file(b"train:\n  epochs: [1, 2\n  lr: 3\n"), "c.yaml"),
    ("yaml-random-bytes", _config_file(bytes(range(256)) * 8), "c.yaml"),
    ("yaml-list", _config_file(b"- 1\n- 2\n"), "c.yaml"),
    ("config-folder", _config_is_folder, "folder"),
    ("config-missing", lambda tmp: ["train", "--config", str(tmp / "missing.yaml")],
     "missing.yaml"),
    ("out-is-file", _out_is_file, "file"),
    ("out-under-file", _out_under_file, "file"),
    ("resume-without-out", lambda tmp: ["train", "--resume", *TINY], "--resume needs --out"),
    ("resume-nothing", lambda tmp: ["train", "--resume", "--out", str(tmp), *TINY],
     "nothing to resume"),
    ("evaluate-empty", lambda tmp: ["evaluate", str(tmp)], "no run found"),
    ("convert-under-file", _convert_under_file, "file"),
]


def _damaged_run(damage: Callable[[Path], None], command: str = "evaluate"
                 ) -> Callable[[Path], list[str]]:
    def setup(tmp: Path) -> list[str]:
        source = _FINISHED[0]
        shutil.copytree(source, tmp / "copy")
        run = tmp / "copy" / "run"
        damage(run)
        if command == "resume":
            return ["train", "--resume", "--out", str(run), "--quiet"]
        return [command, str(run)]

    return setup


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[:keep])

    return damage


def _edit_dims(run: Path) -> None:
    spec = json.loads((run / "model.json").read_text())
    spec["inputs"]["dims"]["audio"] = 7
    (run / "model.json").write_text(json.dumps(spec))


def _changed_data(run: Path) -> None:
    obj = mmsa_object()
    for part in obj.values():
        part["audio"] = np.concatenate([part["audio"], part["audio"][..., :1]], axis=-1)
    data = run.parent / "data" / "unaligned_50.pkl"
    data.write_bytes(pickle.dumps(obj))
    cfg = (run / "config.yaml").read_text().replace(str(_FINISHED[0]), str(run.parent))
    (run / "config.yaml").write_text(cfg)


def _garbage_resume(run: Path) -> None:
    (run / "metrics.json").unlink()
    (run / "resume.pt").write_bytes(b"not a checkpoint")


_FINISHED: list[Path] = []
RUN_CASES: list[Case] = [
    ("weights-empty", _damaged_run(_truncate("model.safetensors", 0)), "model.safetensors"),
    ("weights-truncated", _damaged_run(_truncate("model.safetensors", 100)),
     "model.safetensors"),
    ("spec-not-json", _damaged_run(lambda run: (run / "model.json").write_text("{oops")),
     "model.json"),
    ("spec-edited-dims", _damaged_run(_edit_dims), "audio"),
    ("config-not-yaml", _damaged_run(lambda run: (run / "config.yaml").write_text(":\n- [")),
     "config.yaml"),
    ("data-changed-dims", _damaged_run(_changed_data), "audio"),
    ("resume-garbage", _damaged_run(_garbage_resume, "resume"), "resume.pt"),
    ("dependency-without-critic", _damaged_run(lambda run: None, "dependency"), "critic"),
]


def _bad_pickle(change: Callable[[dict], None]) -> Callable[[Path], list[str]]:
    def setup(tmp: Path) -> list[str]:
        obj = mmsa_object()
        change(obj)
        data = write_pickle(obj, tmp / "unaligned_50.pkl")
        return ["train", "-d", str(data), "--out", str(tmp / "run"), "--quiet"]

    return setup


def _nan(obj: dict) -> None:
    obj["train"]["audio"][2, 0, 0] = np.nan


def _label_out_of_range(obj: dict) -> None:
    obj["test"]["regression_labels"][1] = 7.5


def _missing_key(obj: dict) -> None:
    del obj["valid"]["vision"]


def _lengths_past_end(obj: dict) -> None:
    obj["train"]["audio_lengths"][3] = 99


def _cross_split(obj: dict) -> None:
    obj["test"]["id"][0] = obj["train"]["id"][0]


def _truncated_pickle(tmp: Path) -> list[str]:
    data = write_pickle(mmsa_object(), tmp / "unaligned_50.pkl")
    data.write_bytes(data.read_bytes()[:200])
    return ["train", "-d", str(data), "--out", str(tmp / "run"), "--quiet"]


DATA_CASES: list[Case] = [
    ("data-nan", _bad_pickle(_nan), "unaligned_50.pkl"),
    ("data-label-range", _bad_pickle(_label_out_of_range), "unaligned_50.pkl"),
    ("data-missing-key", _bad_pickle(_missing_key), "vision"),
    ("data-lengths", _bad_pickle(_lengths_past_end), "audio_lengths"),
    ("data-cross-split-id", _bad_pickle(_cross_split), "train and test"),
    ("data-truncated", _truncated_pickle, "unaligned_50.pkl"),
    ("data-empty-file", lambda tmp: ["train", "-d", str(_touch(tmp / "unaligned_50.pkl")),
                                     "--out", str(tmp / "run"), "--quiet"], "unaligned_50.pkl"),
]


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


CASES = CONFIG_CASES + PATH_CASES + RUN_CASES + DATA_CASES


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize(("name", "setup", "named"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_leaves_nothing(name, setup, named, tmp_path,
                                                      finished_run, monkeypatch):
    if not _FINISHED:
        _FINISHED.append(finished_run)
    monkeypatch.chdir(tmp_path)  # a default --out would land here
    work = tmp_path / "case"
    work.mkdir()
    argv = setup(work)
    before = _files(tmp_path)
    result = runner.invoke(app, copy.copy(argv))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (name, result.output)
    assert "Traceback" not in result.output
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], (name, result.output)
    assert all(line.startswith(("error:", "warning:")) for line in lines), result.output
    assert named in errors[0], (name, errors[0])
    assert _files(tmp_path) == before, name
    assert not (work / "run").exists()
