"""How a run starts, resumes and refuses: nothing is written before every check passed, a
failed start removes what it created, --resume compares the given settings with the saved
ones, and one process writes a run directory at a time."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mimsa import config as config_mod
from mimsa.cli import app
from mimsa.errors import RunError
from mimsa.train import trainer as trainer_mod
from mimsa.train.lock import run_lock
from mimsa.train.run import reconcile_resume, train_run

runner = CliRunner()
TINY = ["--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}", "--quiet"]


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("setting", [
    "protocol=bogus", "objectives.ba.detach_targte=true", "objectives.x={}",
    "model.hidden=abc", "train.term_weights.nce=0", "train.stages=[{name: m, terms: {nce: 1}}]",
])
def test_a_bad_start_creates_nothing(tmp_path, setting):
    out = tmp_path / "deep" / "run"
    result = runner.invoke(app, ["train", "--out", str(out), "--set", setting, *TINY])
    _one_error_line(result)
    assert not (tmp_path / "deep").exists()


def test_a_start_that_fails_before_its_first_epoch_removes_what_it_created(
        tiny_cfg, tmp_path, monkeypatch):
    def broken_fit(self, resume=None):
        (self.run_dir / "history.jsonl").write_text("")
        raise RunError("simulated failure at the first batch")

    monkeypatch.setattr(trainer_mod.Trainer, "fit", broken_fit)
    with pytest.raises(RunError, match="simulated"):
        train_run(tiny_cfg, tmp_path / "new" / "seed-1")
    assert list(tmp_path.iterdir()) == []
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(RunError):
        train_run(tiny_cfg, kept / "run")
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_out_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    for out in (target, target / "run"):
        line = _one_error_line(runner.invoke(app, ["train", "--out", str(out), *TINY]))
        assert str(target) in line and "is a file" in line
    assert target.read_text() == "x"


def _interrupted(tmp_path, interrupt_run, tiny_cfg):
    run_dir = tmp_path / "run"
    interrupt_run(tiny_cfg, run_dir, epoch=1)
    return run_dir


def test_resume_refuses_other_settings_and_names_them(tmp_path, interrupt_run, tiny_cfg):
    run_dir = _interrupted(tmp_path, interrupt_run, tiny_cfg)
    result = runner.invoke(app, ["train", "--out", str(run_dir), "--resume", "-m", "mmim",
                                 "--set", "train.lr=0.5", "--quiet"])
    line = _one_error_line(result)
    assert "model.name: saved late_fusion, given mmim" in line
    assert "train.lr: saved 0.001, given 0.5" in line
    assert (run_dir / "resume.pt").is_file()  # the interrupted run is untouched


def test_resume_applies_a_larger_budget_and_reports_it(tmp_path, interrupt_run, tiny_cfg):
    run_dir = _interrupted(tmp_path, interrupt_run, tiny_cfg)
    result = runner.invoke(app, ["train", "--out", str(run_dir), "--resume",
                                 "--set", "train.epochs=4", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "train.epochs: 3 -> 4" in result.output
    assert "late_fusion on synthetic" in result.output
    history = (run_dir / "history.jsonl").read_text().splitlines()
    assert len(history) == 4


def test_reconcile_resume_rules(tmp_path):
    saved = {"train": {"epochs": 8, "lr": 0.001}, "model": {"name": "mmim"}}
    cfg, notes = reconcile_resume(saved, {"train.epochs": 8, "model.name": "mmim"}, tmp_path)
    assert cfg == saved and notes == []
    with pytest.raises(RunError, match="train.epochs: saved 8, given 5 \\(may only grow\\)"):
        reconcile_resume(saved, {"train.epochs": 5}, tmp_path)
    cfg, notes = reconcile_resume(saved, {"train.patience": 2}, tmp_path)
    assert cfg["train"]["patience"] == 2 and notes


@pytest.mark.parametrize("schedule", [{"warmup": 0.1}, {"decay": "linear"}])
def test_a_scheduled_run_keeps_its_budget_on_resume(tmp_path, schedule):
    # the warm-up and the decay are fractions of the budget: a larger one would move the rate
    # of every step after the interruption
    saved = {"train": {"epochs": 8, "lr": 0.001, "warmup": 0.0, "decay": "none", **schedule}}
    with pytest.raises(RunError, match="train.epochs: saved 8, given 10 \\(the learning-rate "
                                       "schedule"):
        reconcile_resume(saved, {"train.epochs": 10}, tmp_path)
    cfg, _ = reconcile_resume(saved, {"train.patience": 2}, tmp_path)
    assert cfg["train"]["epochs"] == 8


def test_resume_of_a_multi_seed_folder_without_seeds_says_so(tmp_path):
    (tmp_path / "seed-1").mkdir()
    line = _one_error_line(runner.invoke(app, ["train", "--out", str(tmp_path), "--resume",
                                               "--quiet"]))
    assert "nothing to resume" in line


def test_a_second_writer_is_refused_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    with run_lock(run_dir):
        line = _one_error_line(runner.invoke(app, ["train", "--out", str(run_dir), *TINY]))
    assert "being written by another mimsa process" in line
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]


def test_community_data_train_with_all_defaults_and_say_which_encoder(tmp_path):
    from tests.data.helpers import mmsa_object, write_pickle

    path = write_pickle(mmsa_object(), tmp_path / "unaligned_50.pkl")
    result = runner.invoke(app, ["train", "-d", str(path), "--out", str(tmp_path / "run"),
                                 "--set", "train.epochs=1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "encoder.name=auto picked 'vocab'" in result.output


def test_resume_of_a_finished_run_refuses_settings_it_cannot_apply(tmp_path, tiny_cfg):
    run_dir = tmp_path / "run"
    train_run(tiny_cfg, run_dir)
    again = train_run(tiny_cfg, run_dir, resume=True, given={"train.epochs": 3})
    assert again["seed"] == tiny_cfg["seed"]
    with pytest.raises(RunError, match="finished run: train.epochs: 3 -> 9"):
        train_run(tiny_cfg, run_dir, resume=True, given={"train.epochs": 9})


def test_a_dataset_without_a_valid_split_is_one_line_before_any_output(tmp_path):
    from mimsa.data.store import save_dataset
    from mimsa.data.synthetic import make_synthetic
    from mimsa.errors import DataError

    ds = make_synthetic(sizes={"train": 16, "valid": 4, "test": 4})
    keep = [i for i, s in enumerate(ds.splits) if s != "valid"]
    folder = save_dataset(ds.subset(keep), tmp_path / "novalid")
    cfg = config_mod.resolve_config("late_fusion", str(folder), None, ["train.epochs=1"])
    with pytest.raises(DataError, match="valid split is empty"):
        train_run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resume_without_model_checks_sets_against_the_saved_model(tmp_path, interrupt_run):
    # model.fusion_dropout is an mmim option; without -m it must meet mmim, not the default
    cfg = config_mod.resolve_config("mmim", "synthetic", None, [
        "data.synthetic_sizes={train: 64, valid: 32, test: 32}", "train.epochs=3"])
    run_dir = tmp_path / "run"
    interrupt_run(cfg, run_dir, epoch=1)
    result = runner.invoke(app, ["train", "--out", str(run_dir), "--resume",
                                 "--set", "model.fusion_dropout=0.3", "--quiet"])
    line = _one_error_line(result)
    assert "model.fusion_dropout: saved 0.1, given 0.3" in line
    result = runner.invoke(app, ["train", "--out", str(run_dir), "--resume", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "mmim on synthetic" in result.output
