"""The Ray backend: the same run folders and numbers as the local backend, failures reported,
and one-line errors (no extra, an address that does not answer, too few CPUs) before any run."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mimsa.cli import app
from mimsa.errors import ConfigError
from mimsa.sweep.local import run_local
from mimsa.sweep.ray_backend import run_ray, trial_resources
from mimsa.sweep.runner import prepare

from .sweep_helpers import TINY_GRID, bad_data_grid, seed_metrics, write

runner = CliRunner()
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed: pip install -e \".[sweep]\"")


@needs_ray
@pytest.mark.slow
def test_ray_trials_give_the_local_numbers(ray_cluster, tmp_path: Path) -> None:
    grids = [write(tmp_path / "tiny.yaml", TINY_GRID), bad_data_grid(tmp_path)]
    local_rows, _ = run_local(prepare(grids, tmp_path / "local"), report=lambda line: None)
    out = tmp_path / "ray"
    lines: list[str] = []
    rows, interrupted = run_ray(prepare(grids, out), out, report=lines.append)
    assert not interrupted
    assert [(r.run, r.status, r.seeds_done) for r in rows] == \
        [(r.run, r.status, r.seeds_done) for r in local_rows]
    assert [r.status for r in rows] == ["done", "done", "failed"]
    assert "cannot tell the data format" in rows[2].error
    assert any("synthetic_text_only seed 2 done" in line for line in lines)
    mine = seed_metrics(out)
    assert len(mine) == 4 and mine == seed_metrics(tmp_path / "local")
    for config in out.glob("*/seed-*/config.yaml"):  # the same settings saved
        assert config.read_text() == (tmp_path / "local" / config.relative_to(out)).read_text()
    assert (out / "synthetic_text_only" / "summary.csv").is_file()
    assert not (out / ".ray").exists()

    again, _ = run_ray(prepare(grids[:1], out), out, report=lines.append)
    assert [r.status for r in again] == ["skipped", "skipped"]


@needs_ray
def test_an_address_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    grid = write(tmp_path / "g.yaml", TINY_GRID)
    result = runner.invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "o"), "--backend",
                                 "ray", "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers there" in result.output
    assert not (tmp_path / "o" / "synthetic_late_fusion").exists()


def test_without_ray_the_error_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    grid = write(tmp_path / "g.yaml", TINY_GRID)
    result = runner.invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "o"), "--backend",
                                 "ray"])
    assert result.exit_code == 2
    assert 'pip install -e ".[sweep]"' in result.output
    assert not (tmp_path / "o").exists()


@needs_ray
def test_a_run_needing_more_cpus_than_jobs_is_refused(tmp_path: Path) -> None:
    grid = write(tmp_path / "g.yaml", TINY_GRID + "  - train.threads=2\n")
    with pytest.raises(ConfigError, match="--jobs 1: a run uses 2 torch threads"):
        run_ray(prepare([grid], tmp_path / "o"), tmp_path / "o", jobs=1)
    assert not (tmp_path / "o").exists()


def _trial(device: str, threads: int = 2) -> dict:
    return {"cfg": {"train": {"device": device}}, "threads": threads}


def test_a_trial_asks_for_a_gpu_share_only_when_it_trains_on_a_gpu() -> None:
    assert trial_resources(_trial("cpu"), cpus=8, gpus=1) == {"cpu": 2.0}
    assert trial_resources(_trial("auto"), cpus=8, gpus=0) == {"cpu": 2.0}
    assert trial_resources(_trial("auto"), cpus=8, gpus=1) == {"cpu": 2.0, "gpu": 0.25}
    assert trial_resources(_trial("cuda", threads=8), cpus=4, gpus=2) == {"cpu": 8.0, "gpu": 1.0}
    with pytest.raises(ConfigError, match="the Ray cluster has no GPU"):
        trial_resources(_trial("cuda"), cpus=8, gpus=0)
    with pytest.raises(ConfigError, match="use train.device=cuda or auto"):
        trial_resources(_trial("cuda:1"), cpus=8, gpus=2)
