"""`mimsa ensemble`: the mean of a multi-seed run's predictions, scored; bad runs refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mimsa.cli import app
from mimsa.errors import DataError, RunError
from mimsa.eval.ensemble import seed_ensemble
from mimsa.metrics import score

from .test_compare import SEEDS, labels, noisy, write_run

runner = CliRunner()


def test_the_ensemble_scores_the_mean_of_the_seeds_predictions(tmp_path):
    y = labels()
    preds = {s: noisy(y, s) for s in SEEDS}
    run = write_run(tmp_path, "run", y, preds)
    result = seed_ensemble(run)
    assert result.seeds == list(SEEDS) and list(result.metrics) == ["test"]
    mean = np.mean(np.stack([preds[s] for s in SEEDS]), axis=0)
    # labels are stored with 6 significant digits (predictions.csv)
    assert result.metrics["test"] == pytest.approx(score(y, mean), rel=1e-5)
    single = [score(y, preds[s])["MAE"] for s in SEEDS]
    assert result.metrics["test"]["MAE"] < np.mean(single)  # averaging cancels the noise


def test_seeds_are_joined_on_sample_ids_not_on_row_order(tmp_path):
    y = labels(40)
    preds = {s: noisy(y, s) for s in SEEDS}
    run = write_run(tmp_path, "run", y, preds)
    last = run / f"seed-{SEEDS[-1]}" / "predictions.csv"
    lines = last.read_text().splitlines()
    last.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    mean = np.mean(np.stack([preds[s] for s in SEEDS]), axis=0)
    assert seed_ensemble(run).metrics["test"] == pytest.approx(score(y, mean), rel=1e-5)


def test_bad_runs_are_one_line(tmp_path):
    y = labels(30)
    one = write_run(tmp_path, "one", y, {1111: noisy(y, 1)})
    with pytest.raises(RunError, match="two or more finished seeds; this run has 1"):
        seed_ensemble(one)
    bare = write_run(tmp_path, "bare", y, {s: noisy(y, s) for s in SEEDS},
                     with_predictions=False)
    with pytest.raises(RunError, match="seed 1111 has no predictions.csv"):
        seed_ensemble(bare)
    other = write_run(tmp_path, "other", y, {s: noisy(y, s) for s in SEEDS})
    moved = other / "seed-1112" / "predictions.csv"
    moved.write_text(moved.read_text().replace("clip_3,", "clip_x,"))
    with pytest.raises(DataError, match="first differing id"):
        seed_ensemble(other)
    with pytest.raises(RunError, match="no such run directory"):
        seed_ensemble(tmp_path / "missing")


def test_cli_prints_the_row_and_writes_json(tmp_path):
    y = labels()
    run = write_run(tmp_path, "run", y, {s: noisy(y, s) for s in SEEDS})
    out = tmp_path / "ens.json"
    result = runner.invoke(app, ["ensemble", str(run), "--json", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "ensemble of 3 seeds" in text and "its own row" in text
    record = json.loads(out.read_text())
    assert record["seeds"] == list(SEEDS) and "MAE" in record["metrics"]["test"]
    assert record["protocol"] == "clean" and record["context"] is None
    legacy = run / "seed-1111" / "metrics.json"
    legacy.write_text(legacy.read_text().replace('"clean"', '"legacy"'))
    result = runner.invoke(app, ["ensemble", str(run)])
    assert "protocol: legacy" in result.output
    result = runner.invoke(app, ["ensemble", str(run), "--json", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output
