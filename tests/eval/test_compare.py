"""`mimsa compare`: paired t-test, paired bootstrap over test samples, Holm, outputs, bad input.

The run directories are written by hand (metrics.json from `mimsa.metrics`, predictions.csv);
nothing is trained.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel
from typer.testing import CliRunner

from mimsa.cli import app
from mimsa.errors import ConfigError, DataError, RunError
from mimsa.eval import significance
from mimsa.eval.compare import compare, render_csv, render_markdown
from mimsa.eval.significance import (
    bootstrap_p,
    draw_blocks,
    holm,
    indices_weights,
    paired_t_p,
    weighted_metrics,
)
from mimsa.metrics import METRIC_KEYS, regression_metrics

runner = CliRunner()
SEEDS = (1111, 1112, 1113)


def labels(n: int = 120, seed: int = 0) -> np.ndarray:
    """Labels in [-3, 3] on the dataset's 1/3 grid, with exact zeros and .5-like ties."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(-3, 3, n) * 3) / 3


def write_run(root: Path, name: str, y: np.ndarray, preds: dict[int, np.ndarray], *,
              ids: list[str] | None = None, with_predictions: bool = True,
              single: bool = False) -> Path:
    """Write a finished run: seed-*/metrics.json (+ predictions.csv with train and test rows),
    or a single-seed run (files directly in the folder)."""
    run = root / name
    ids = ids or [f"clip_{i}" for i in range(y.size)]
    for seed, p in preds.items():
        folder = run if single else run / f"seed-{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        metrics = {"valid": regression_metrics(y, p), "test": regression_metrics(y, p),
                   "best_epoch": 1, "seed": seed, "protocol": "clean"}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        if with_predictions:
            rows = ["id,label,prediction,split"]
            rows += [f"train_{i},0.5,0.25,train" for i in range(3)]
            rows += [f"{i},{lab:.6g},{q:.6f},test" for i, lab, q in zip(ids, y, p, strict=True)]
            (folder / "predictions.csv").write_text("\n".join(rows) + "\n")
    return run


def noisy(y: np.ndarray, seed: int, scale: float = 0.6) -> np.ndarray:
    """Predictions near the labels; rounded to 6 decimals as predictions.csv stores them."""
    return np.round(y + np.random.default_rng(seed).normal(0, scale, y.size), 6)


def test_vectorised_metrics_equal_mimsa_metrics_on_resampled_indices():
    rng = np.random.default_rng(3)
    y = labels(80, seed=3)
    y[:6] = 0.0  # exact-zero labels: dropped by Non0
    p = np.round(y + rng.normal(0, 0.8, y.size), 6)
    p[6:10] = [0.0, 2.5, -0.5, 1.5]  # exact 0 (negative for Non0, non-negative for Has0), ties
    constant = np.full(y.size, 0.7)  # Corr undefined → NaN in both
    idx = rng.integers(0, y.size, size=(12, y.size))
    got = weighted_metrics(y, np.stack([p, constant]), indices_weights(idx, y.size))
    for d in range(idx.shape[0]):
        for k, pred in enumerate((p, constant)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                expected = regression_metrics(y[idx[d]], pred[idx[d]])
            assert len(caught) == k  # the constant prediction warns about Corr, once
            for key in METRIC_KEYS:
                assert got[k][key][d] == pytest.approx(expected[key], rel=1e-9, abs=1e-12,
                                                       nan_ok=True), (key, d, k)
    assert np.isnan(got[1]["Corr"]).all() and not np.isnan(got[0]["Corr"]).any()


def test_draw_blocks_are_seeded_resamples_in_bounded_blocks(monkeypatch):
    monkeypatch.setattr(significance, "CHUNK_ELEMENTS", 7 * 50)  # blocks of 7 draws
    blocks = list(draw_blocks(50, 20, seed=5))
    assert [b.shape for b in blocks] == [(7, 50), (7, 50), (6, 50)]
    weights = np.concatenate(blocks)
    assert np.all(weights.sum(axis=1) == 50) and np.all(weights >= 0)
    again = np.concatenate(list(draw_blocks(50, 20, seed=5)))
    other = np.concatenate(list(draw_blocks(50, 20, seed=6)))
    assert np.array_equal(weights, again) and not np.array_equal(weights, other)


def test_identical_runs_give_p_1_and_a_zero_interval(tmp_path):
    y = labels()
    preds = {s: noisy(y, s) for s in SEEDS}
    a = write_run(tmp_path, "a", y, preds)
    b = write_run(tmp_path, "b", y, preds)
    result = compare([a, b], list(METRIC_KEYS), draws=500, seed=1)
    assert len(result.paired) == len(METRIC_KEYS)
    for row in result.paired:
        assert row.seeds == list(SEEDS) and row.boot_seeds == list(SEEDS)
        assert row.diff_mean == 0 and row.t_p == 1.0
        assert (row.boot_low, row.boot_high, row.boot_p) == (0.0, 0.0, 1.0)


def test_a_shifted_prediction_is_worse_with_a_small_p_and_an_interval_above_zero(tmp_path):
    y = labels(200)
    preds_a = {s: noisy(y, s, scale=0.3) for s in SEEDS}
    preds_b = {s: p + 0.5 for s, p in preds_a.items()}  # every prediction 0.5 too high
    a = write_run(tmp_path, "a", y, preds_a)
    b = write_run(tmp_path, "b", y, preds_b)
    result = compare([a, b], ["MAE", "Corr"], draws=2000, seed=0)
    mae, corr = result.paired
    assert mae.metric == "MAE" and mae.diff_mean > 0.2 and mae.boot_observed > 0.2
    assert mae.boot_observed == pytest.approx(mae.diff_mean, abs=1e-6)
    assert 0 < mae.boot_low < mae.boot_observed < mae.boot_high
    assert mae.boot_p == pytest.approx(2 / 2001)  # no draw at or below 0: the smallest p
    assert mae.t_p < 0.01
    # a constant shift leaves the correlation exactly where it was
    assert corr.diff_mean == pytest.approx(0, abs=1e-6)
    assert corr.boot_low <= 0 <= corr.boot_high


def test_bootstrap_p_counts_ties_on_both_sides():
    assert bootstrap_p(np.zeros(99)) == 1.0
    assert bootstrap_p(np.ones(99)) == pytest.approx(2 / 100)
    assert bootstrap_p(np.r_[-np.ones(10), np.ones(89)]) == pytest.approx(2 * 11 / 100)
    assert math.isnan(bootstrap_p(np.full(5, np.nan)))


def test_the_t_test_is_scipys_paired_t_test(tmp_path):
    ref = [0.91, 0.93, 0.95, 0.90, 0.92]
    other = [0.89, 0.90, 0.96, 0.86, 0.90]
    expected = float(ttest_rel(other, ref).pvalue)
    assert paired_t_p(other, ref) == pytest.approx(expected, rel=1e-12)
    assert paired_t_p(ref, ref) == 1.0 and math.isnan(paired_t_p([1.0], [2.0]))
    for name, values in (("ref", ref), ("other", other)):  # kept metrics only
        for seed, mae in zip(range(1111, 1116), values, strict=True):
            folder = tmp_path / name / f"seed-{seed}"
            folder.mkdir(parents=True)
            test = dict.fromkeys(METRIC_KEYS, 0.5) | {"MAE": mae}
            (folder / "metrics.json").write_text(json.dumps({"test": test, "seed": seed}))
    result = compare([tmp_path / "ref", tmp_path / "other"], ["MAE"])
    (row,) = result.paired
    assert row.t_p == pytest.approx(expected, rel=1e-12)
    assert row.diff_mean == pytest.approx(np.mean(np.subtract(other, ref)))
    assert row.diff_std == pytest.approx(np.std(np.subtract(other, ref), ddof=1))
    assert row.note == "no predictions" and math.isnan(row.boot_p)
    text = render_markdown(result)
    assert "| other | MAE | 5 | -0.020 ± 0.019 |" in text and "no predictions: ref, other" in text


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([math.nan, 0.02])
    assert math.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.02)


def test_three_runs_get_holm_columns_and_a_multiple_comparison_note(tmp_path):
    y = labels()
    runs = [write_run(tmp_path, name, y, {s: noisy(y, s + k) for s in SEEDS})
            for k, name in enumerate(("a", "b", "c"))]
    result = compare(runs, ["MAE"], draws=200)
    raw = [r.boot_p for r in result.paired]
    assert [r.boot_p_holm for r in result.paired] == pytest.approx(holm(raw))
    assert [r.t_p_holm for r in result.paired] == pytest.approx(holm([r.t_p for r in
                                                                      result.paired]))
    text = render_markdown(result)
    assert "multiple comparisons: 2 runs are compared" in text and "(Holm)" in text
    two = render_markdown(compare(runs[:2], ["MAE"], draws=200))
    assert "multiple comparisons" not in two and "(Holm)" not in two


def test_cli_writes_markdown_and_csv(tmp_path):
    y = labels()
    a = write_run(tmp_path, "a", y, {s: noisy(y, s) for s in SEEDS})
    b = write_run(tmp_path, "b", y, {s: noisy(y, s + 10) for s in SEEDS}, single=False)
    c = write_run(tmp_path, "c", y, {1111: noisy(y, 99)}, single=True)
    md, table = tmp_path / "out" / "cmp.md", tmp_path / "out" / "cmp.csv"
    result = runner.invoke(app, ["compare", str(a), str(b), str(c), "--metrics", "MAE", "Corr",
                                 "--draws", "300", "--out", str(md), "--csv", str(table)])
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert text in result.output and "| c | MAE | 1 |" in text
    assert "bootstrap: 300 paired resamples of the 120 test samples" in text
    rows = list(csv.DictReader(table.open()))
    assert [(r["run"], r["metric"]) for r in rows] == [
        (run, m) for run in "abc" for m in ("MAE", "Corr")]
    assert rows[0]["diff_mean"] == "" and rows[2]["boot_n"] == "3"
    assert rows[4]["paired_n"] == "1" and rows[4]["t_p"] == ""  # one shared seed: no t-test
    assert float(rows[4]["boot_low"]) <= float(rows[4]["boot_high"])
    assert not [p for p in md.parent.iterdir() if p.name.startswith(".")]  # no temporaries


def test_csv_holds_raw_units(tmp_path):
    y = labels()
    a = write_run(tmp_path, "a", y, {s: noisy(y, s) for s in SEEDS})
    b = write_run(tmp_path, "b", y, {s: noisy(y, s + 5) for s in SEEDS})
    result = compare([a, b], ["Non0_acc_2"], draws=100)
    rows = list(csv.DictReader(render_csv(result).splitlines()))
    expected = np.mean([regression_metrics(y, noisy(y, s))["Non0_acc_2"] for s in SEEDS])
    assert float(rows[0]["mean"]) == pytest.approx(expected)  # a fraction, not percent


def _error(args: list[str]) -> str:
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    return result.output


def test_bad_input_is_one_line(tmp_path):
    y = labels(30)
    a = write_run(tmp_path, "a", y, {1111: noisy(y, 1)})
    b = write_run(tmp_path, "b", y, {1111: noisy(y, 2)})
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert "at least two runs" in _error([str(a)])
    assert "no such run directory" in _error([str(a), str(tmp_path / "nowhere")])
    assert "is a file" in _error([str(a), str(tmp_path / "file.txt")])
    assert "no finished seed" in _error([str(a), str(tmp_path / "empty")])
    out = _error([str(a), str(b), "--metrics", "Accuracy"])
    assert "Accuracy" in out and "Mult_acc_7" in out and "Corr" in out  # lists valid ones
    assert "neither a run directory nor a metric" in _error(
        [str(a), str(b), "--metrics", "MAE", "Cor"])
    assert "--split" in _error([str(a), str(b), "--split", "train"])
    assert "--draws" in _error([str(a), str(b), "--draws", "0"])
    assert "is a folder" in _error([str(a), str(b), "--out", str(tmp_path)])
    assert "one label per run" in _error([str(a), str(b), "--label", "x"])
    assert not list(tmp_path.glob("*.md"))


def test_runs_on_other_samples_or_labels_are_refused(tmp_path):
    y = labels(30)
    a = write_run(tmp_path, "a", y, {1111: noisy(y, 1)})
    ids = [f"clip_{i}" for i in range(30)]
    other_ids = write_run(tmp_path, "b", y, {1111: noisy(y, 2)}, ids=[*ids[:7], "x", *ids[8:]])
    out = _error([str(a), str(other_ids)])
    assert "seed-1111/predictions.csv" in out and "b/seed-1111" in out and "'clip_7'" in out
    shifted = y.copy()
    shifted[4] += 1
    other_labels = write_run(tmp_path, "c", shifted, {1111: noisy(y, 2)})
    out = _error([str(a), str(other_labels)])
    assert "c/seed-1111" in out and "'clip_4'" in out and "label" in out
    with pytest.raises(DataError, match="clip_4"):
        compare([a, other_labels])
    shuffled = write_run(tmp_path, "d", y[::-1], {1111: noisy(y, 2)[::-1]}, ids=ids[::-1])
    (row, *_) = compare([a, shuffled], ["MAE"], draws=50).paired  # joined on id, not order
    assert row.boot_observed == pytest.approx(row.diff_mean, abs=1e-6)


def test_errors_are_mimsa_errors(tmp_path):
    with pytest.raises(ConfigError, match="at least two"):
        compare([tmp_path])
    with pytest.raises(RunError, match="no such run"):
        compare([tmp_path / "x", tmp_path / "y"])


def test_unfinished_seeds_are_left_out_with_a_warning(tmp_path):
    y = labels(30)
    a = write_run(tmp_path, "a", y, {s: noisy(y, s) for s in SEEDS})
    b = write_run(tmp_path, "b", y, {s: noisy(y, s + 1) for s in SEEDS})
    (b / "seed-1113" / "metrics.json").unlink()  # interrupted: no metrics yet
    with pytest.warns(UserWarning, match="seed-1113"):
        result = compare([a, b], ["MAE"], draws=50)
    assert result.paired[0].seeds == [1111, 1112]
    assert result.paired[0].boot_seeds == [1111, 1112]


def test_cli_labels_and_comma_separated_metrics(tmp_path):
    y = labels(30)
    a = write_run(tmp_path, "a", y, {1111: noisy(y, 1)})
    b = write_run(tmp_path, "b", y, {1111: noisy(y, 2)})
    result = runner.invoke(app, ["compare", str(a), str(b), "--metrics", "MAE,Mult_acc_5",
                                 "--label", "late fusion", "--label", "text only",
                                 "--draws", "50"])
    assert result.exit_code == 0, result.output
    assert "| text only | Mult_acc_5 | 1 |" in result.output
    assert "| late fusion | 1 |" in result.output and "Corr" not in result.output
