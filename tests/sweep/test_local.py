"""The local backend: runs in order, skips finished runs, resumes started ones, reports failed
ones without stopping, and writes OUT/sweep.csv."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mimsa.cli import app
from mimsa.sweep.local import run_local
from mimsa.sweep.runner import prepare

from .sweep_helpers import TINY_GRID, bad_data_grid, seed_metrics, write

runner = CliRunner()


def _status(out: Path) -> dict[str, dict]:
    with open(out / "sweep.csv", newline="", encoding="utf-8") as handle:
        return {row["run"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, Path, Path, object, dict]:
    """A local sweep of a broken run (first) and the tiny grid's two runs, via the CLI; with
    its exit status and OUT/sweep.csv right after it."""
    torch.set_num_threads(1)  # as the tests' own runs (a module fixture runs before theirs)
    folder = tmp_path_factory.mktemp("sweep")
    grid, bad = write(folder / "tiny.yaml", TINY_GRID), bad_data_grid(folder)
    out = folder / "out"
    result = runner.invoke(app, ["sweep", str(bad), str(grid), "--out", str(out)])
    return folder, grid, out, result, _status(out)


def test_a_failed_run_is_reported_and_the_others_run(swept) -> None:
    _, _, out, result, status = swept
    assert result.exit_code == 2, result.output
    assert list(status) == ["broken_late_fusion", "synthetic_late_fusion", "synthetic_text_only"]
    assert status["broken_late_fusion"]["status"] == "failed"
    assert "cannot tell the data format" in status["broken_late_fusion"]["error"]
    for name in ("synthetic_late_fusion", "synthetic_text_only"):
        assert (status[name]["status"], status[name]["seeds_done"]) == ("done", "2")
        assert (out / name / "summary.csv").is_file()
    assert sorted(seed_metrics(out)) == [f"synthetic_{m}/seed-{s}" for m in
                                         ("late_fusion", "text_only") for s in (1, 2)]
    assert "1 of 3 runs failed" in result.output


def test_finished_runs_are_skipped(swept) -> None:
    _, grid, out, _, _ = swept
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/metrics.json")}
    result = runner.invoke(app, ["sweep", str(grid), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {row["status"] for row in _status(out).values()} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/metrics.json")} == before


def test_a_run_equals_its_listed_train_command(swept, tmp_path: Path) -> None:
    _, grid, out, _, _ = swept
    listed = runner.invoke(app, ["sweep", str(grid), "--out", str(tmp_path), "--list"])
    assert listed.exit_code == 0, listed.output
    line = next(x for x in listed.output.splitlines()
                if x.startswith("synthetic_late_fusion (0/2 seeds done): "))
    command = shlex.split(line.split(": ", 1)[1])
    kept = runner.invoke(app, ["sweep", str(grid), "--out", str(out), "--list"])
    assert "synthetic_late_fusion (2/2 seeds done): " in kept.output
    assert command[:2] == ["mimsa", "train"] and not (tmp_path / "synthetic_late_fusion").exists()
    trained = runner.invoke(app, [*command[1:], "--quiet"])
    assert trained.exit_code == 0, trained.output
    mine = seed_metrics(tmp_path)
    swept_metrics = {k: v for k, v in seed_metrics(out).items() if k in mine}
    assert mine and mine == swept_metrics


def test_a_kept_run_trained_with_other_settings_fails(swept) -> None:
    folder, _, out, _, _ = swept
    changed = write(folder / "changed.yaml", TINY_GRID.replace("train.epochs=2",
                                                               "train.epochs=3"))
    before = (out / "sweep.csv").read_text()
    result = runner.invoke(app, ["sweep", str(changed), "--out", str(out)])
    assert result.exit_code == 2
    # refused before any run starts, in one line; the sweep's status file is left as it was
    assert "trained with other settings (train.epochs: run 2, grid 3)" in result.output
    assert (out / "sweep.csv").read_text() == before


def test_a_setting_dropped_from_the_grid_is_a_difference_too(swept) -> None:
    # without train.epochs=2 the run resolves to the preset's epochs: a new seed trained so
    # would be summarised with the kept seeds trained for 2 epochs
    folder, _, out, _, _ = swept
    dropped = write(folder / "dropped.yaml",
                    TINY_GRID.replace("  - train.epochs=2\n", "").replace("[1, 2]", "[1, 2, 3]"))
    result = runner.invoke(app, ["sweep", str(dropped), "--out", str(out),
                                 "--only", "synthetic_text_only"])
    assert result.exit_code == 2
    assert "trained with other settings (train.epochs: run 2, grid " in result.output
    assert not (out / "synthetic_text_only" / "seed-3").exists()


def test_a_grid_given_another_seed_trains_it_and_summarises_again(tmp_path: Path) -> None:
    one = TINY_GRID.replace("models: [late_fusion, text_only]", "models: [text_only]")
    grid = write(tmp_path / "g.yaml", one.replace("seeds: [1, 2]", "seeds: [1]"))
    rows, _ = run_local(prepare([grid], tmp_path / "out"), report=lambda line: None)
    assert [(r.status, r.seeds_done) for r in rows] == [("done", 1)]
    first = (tmp_path / "out" / "synthetic_text_only" / "seed-1" / "metrics.json").read_text()
    grid = write(tmp_path / "g.yaml", one)
    rows, _ = run_local(prepare([grid], tmp_path / "out"), report=lambda line: None)
    assert [(r.status, r.seeds_done) for r in rows] == [("done", 2)]
    assert (tmp_path / "out" / "synthetic_text_only" / "seed-1" / "metrics.json").read_text() \
        == first
    summary = (tmp_path / "out" / "synthetic_text_only" / "summary.csv").read_text()
    assert summary.count("\n1,valid,") == 1 and summary.count("\n2,valid,") == 1


@pytest.mark.parametrize("option", [["--jobs", "2"], ["--address", "auto"]])
def test_ray_options_with_the_local_backend_are_refused(tmp_path: Path, option) -> None:
    grid = write(tmp_path / "g.yaml", TINY_GRID)
    result = runner.invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "o"), *option])
    assert result.exit_code == 2
    assert f"{option[0]} applies to --backend ray only" in result.output
    assert not (tmp_path / "o").exists()


CHILD = r"""
import sys, time
from pathlib import Path

import mimsa.sweep.local as local

ready, stop_in = Path(sys.argv[1]), sys.argv[2]
real_train_run = local.train_run


def train_run(cfg, run_dir, **kw):
    def stop(epoch, row):  # after epoch 2 of the second run's first seed (resume.pt saved)
        if epoch == 2 and stop_in in str(run_dir):
            ready.write_text("x")
            time.sleep(300)
    return real_train_run(cfg, run_dir, on_epoch_end=stop, **kw)


local.train_run = train_run
from mimsa.cli import app

app(sys.argv[3:], prog_name="mimsa")
"""


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    grid = write(tmp_path / "g.yaml", TINY_GRID.replace("train.epochs=2", "train.epochs=3"))
    out, ready = tmp_path / "out", tmp_path / "ready"
    script = write(tmp_path / "child.py", CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(script), str(ready),
                              "synthetic_text_only/seed-1", "sweep", str(grid), "--out",
                              str(out)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the child sweep never reached the second run"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (out / "synthetic_late_fusion" / "summary.csv").is_file()
    assert (out / "synthetic_text_only" / "seed-1" / "resume.pt").is_file()
    assert not (out / "synthetic_text_only" / "seed-1" / "metrics.json").exists()

    resumed = runner.invoke(app, ["sweep", str(grid), "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert "synthetic_text_only seed 1 (resumed)" in resumed.output
    status = _status(out)
    assert status["synthetic_late_fusion"]["status"] == "skipped"
    assert status["synthetic_text_only"]["status"] == "done"

    rows, interrupted = run_local(prepare([grid], tmp_path / "whole"), report=lambda line: None)
    assert not interrupted and [r.status for r in rows] == ["done", "done"]
    assert seed_metrics(out) == seed_metrics(tmp_path / "whole")


def test_a_key_added_to_mimsa_after_a_run_was_trained_is_its_default(swept) -> None:
    # a kept run's config.yaml written before a setting existed (here: train.warmup and
    # train.decay) matches a grid that leaves the setting at its default
    from mimsa.sweep.plan import settings_differ
    from mimsa.train.run import read_run_config

    _, _, out, _, _ = swept
    seed_dir = out / "synthetic_late_fusion" / "seed-1"
    cfg = read_run_config(seed_dir)
    config = (seed_dir / "config.yaml").read_text()
    assert "warmup:" in config
    (seed_dir / "config.yaml").write_text(
        "\n".join(line for line in config.splitlines()
                  if not line.strip().startswith(("warmup:", "decay:"))) + "\n")
    try:
        assert settings_differ(seed_dir, cfg) is None
        cfg["train"]["warmup"] = 0.1
        assert "train.warmup: run 0.0, grid 0.1" in settings_differ(seed_dir, cfg)
    finally:
        (seed_dir / "config.yaml").write_text(config)


def test_a_filled_section_that_defaults_to_empty_matches_itself(swept) -> None:
    # `train.term_weights: {}` by default; a kept run that filled it compares key by key, not
    # as the empty default against the grid's missing key
    import yaml

    from mimsa.sweep.plan import settings_differ
    from mimsa.train.run import read_run_config

    _, _, out, _, _ = swept
    seed_dir = out / "synthetic_late_fusion" / "seed-1"
    config = (seed_dir / "config.yaml").read_text()
    saved = yaml.safe_load(config)
    saved["train"]["term_weights"] = {"task": 1.0}
    (seed_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    try:
        cfg = read_run_config(seed_dir)
        assert settings_differ(seed_dir, cfg) is None
        cfg["train"]["term_weights"] = {"task": 0.5}
        assert "train.term_weights.task: run 1.0, grid 0.5" in settings_differ(seed_dir, cfg)
        cfg["train"]["term_weights"] = {}
        assert "train.term_weights" in settings_differ(seed_dir, cfg)
    finally:
        (seed_dir / "config.yaml").write_text(config)


def test_an_error_raised_while_handling_ctrl_c_stops_the_sweep(tmp_path, monkeypatch) -> None:
    # a library that turns the KeyboardInterrupt into its own error (torch.save's zip writer
    # does) must stop the sweep as an interruption, not fail one seed and go on
    from mimsa.sweep import local as local_mod

    def interrupted_save(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("unexpected pos 59570304 vs 59570192") from None

    monkeypatch.setattr(local_mod, "train_run", interrupted_save)
    grid = write(tmp_path / "tiny.yaml", TINY_GRID)
    rows, interrupted = run_local(prepare([grid], tmp_path / "out"), report=lambda line: None)
    assert interrupted
    assert [r.status for r in rows] == ["interrupted", "pending"]
