"""`mimsa robustness`: curves over corruption rates, AUC, relative drop, files and errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mimsa.cli import app
from mimsa.eval.robustness import (
    normalised_auc,
    parse_rates,
    relative_drop,
    robustness,
    run_labels,
)

runner = CliRunner()
TINY = ["--set", "train.epochs=1", "--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}",
        "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    single = root / "single"
    result = runner.invoke(app, ["train", "--out", str(single), *TINY])
    assert result.exit_code == 0, result.output
    seeds = root / "seeds"
    result = runner.invoke(app, ["train", "-m", "ef_lstm", "--seeds", "1", "2", "--out",
                                 str(seeds), *TINY])
    assert result.exit_code == 0, result.output
    return single, seeds


def test_auc_drop_and_rates():
    assert normalised_auc([0, 0.5, 1], [2, 2, 2]) == pytest.approx(2)
    assert normalised_auc([0, 1], [1, 0]) == pytest.approx(0.5)
    assert normalised_auc([0.2, 0.4, 0.6], [1, 1, 0]) == pytest.approx(0.75)
    assert normalised_auc([0.0], [3.0]) == 3.0
    assert relative_drop("Corr", 0.8, 0.6) == pytest.approx(25)
    assert relative_drop("MAE", 1.0, 1.2) == pytest.approx(20)  # worse is positive for MAE too
    assert parse_rates([0.5, 0.1, 0.5]) == [0.0, 0.1, 0.5]
    with pytest.raises(ValueError, match="outside"):
        parse_rates([0.1, 1.2])
    assert run_labels(["a/x", "b/y"]) == ["x", "y"]
    assert run_labels(["a/x", "b/x", "c/y"]) == ["a/x", "b/x", "c/y"]


def test_clean_rate_reproduces_the_run_and_seeds_are_averaged(runs):
    single, seeds = runs
    result = robustness([single, seeds], "frame_drop", [1.0, 0.5], seed=0)
    assert result.rates == [0.0, 0.5, 1.0]
    one, two = result.runs
    assert one.seeds == ["seed-1111"] and two.seeds == ["seed-1", "seed-2"]
    reported = json.loads((single / "metrics.json").read_text())["test"]
    assert one.values["MAE"][0, 0] == pytest.approx(reported["MAE"])
    per_seed = [json.loads((seeds / s / "metrics.json").read_text())["test"]["MAE"]
                for s in ("seed-1", "seed-2")]
    mean, std, n = two.stats("MAE")[0]
    assert n == 2 and mean == pytest.approx(np.mean(per_seed))
    assert std == pytest.approx(np.std(per_seed, ddof=1))
    assert np.all(two.drops("MAE")[:, 0] == 0)
    assert two.aucs("MAE") == pytest.approx([normalised_auc(result.rates, row)
                                            for row in two.values["MAE"]])


def test_cli_end_to_end_writes_table_csv_and_png(runs, tmp_path):
    single, seeds = runs
    out = tmp_path / "report"
    result = runner.invoke(app, ["robustness", str(single), str(seeds), "--corruption",
                                 "text_missing", "--rates", "0", "0.5", "1", "--out", str(out),
                                 "--option", "mode=delete"])
    assert result.exit_code == 0, result.output
    assert "## MAE (lower is better)" in result.output and "mode=delete" in result.output
    names = {p.name for p in out.iterdir()}
    assert names == {"text_missing.csv", "text_missing_auc.csv", "text_missing.md",
                     "text_missing.json", "text_missing.png"}
    assert (out / "text_missing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "text_missing.csv").open()))
    assert len(rows) == 2 * 3 * 8  # runs × rates × metrics
    assert {r["metric"] for r in rows} >= {"MAE", "Corr", "Non0_acc_2", "Mult_acc_7"}
    auc = list(csv.DictReader((out / "text_missing_auc.csv").open()))
    assert len(auc) == 2 * 8 and {r["n"] for r in auc} == {"1", "2"}
    table = (out / "text_missing.md").read_text()
    assert "| single | 1 |" in table and "| seeds | 2 |" in table and "AUC" in table
    # one run: the report goes to RUN_DIR/robustness; rates may be given with commas
    result = runner.invoke(app, ["robustness", str(single), "-c", "feature_noise", "--rates",
                                 "0.2,0.4"])
    assert result.exit_code == 0, result.output
    assert (single / "robustness" / "feature_noise.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--corruption", "blur", "--rates", "0", "0.5"], "unknown corruption 'blur'"),
    (["--corruption", "text_missing", "--rates", "0", "1.5"], "outside [0, 1]"),
    (["--corruption", "text_missing", "--rates", "x", "0"], "--rates 'x' is not a number"),
    (["--corruption", "frame_drop", "--rates", "0.5", "--option", "mode=cut"],
     "mode 'cut' is unknown"),
    (["--corruption", "frame_drop", "--rates", "0.5", "--split", "dev"], "--split 'dev'"),
])
def test_bad_arguments_are_one_line_errors(runs, tmp_path, args, message):
    single, _ = runs
    result = runner.invoke(app, ["robustness", str(single), *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_run_dir_is_one_line_error(tmp_path):
    for target, message in ((tmp_path / "missing", "no such run directory"),
                            (tmp_path, "no run found")):
        result = runner.invoke(app, ["robustness", str(target), "-c", "frame_drop", "--rates",
                                     "0.5", "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and message in result.output
        assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("seed: 1\n")
    result = runner.invoke(app, ["robustness", str(tmp_path / "half"), "-c", "frame_drop",
                                 "--rates", "0.5"])
    assert result.exit_code == 2 and "not a finished run" in result.output


def test_runs_scored_on_other_test_samples_are_refused_before_any_output(runs, tmp_path):
    single, _ = runs
    other = tmp_path / "other"
    result = runner.invoke(app, ["train", "--out", str(other), "--set", "train.epochs=1",
                                 "--set", "data.synthetic_sizes={train: 64, valid: 32, test: 16}",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "report"
    result = runner.invoke(app, ["robustness", str(single), str(other), "-c", "frame_drop",
                                 "--rates", "0", "0.5", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{other}: its test samples differ" in " ".join(result.output.split())
    assert not out.exists()
