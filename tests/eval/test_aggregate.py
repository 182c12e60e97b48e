import math

import pytest

from mimsa.eval.aggregate import mean_std, summary_markdown, summary_rows
from mimsa.metrics import METRIC_KEYS


def fake(mae: float) -> dict:
    m = {k: 0.5 for k in METRIC_KEYS}
    m["MAE"] = mae
    return {"valid": m, "test": m}


def test_mean_and_sample_std():
    mean, std, n = mean_std([1.0, 2.0, 3.0, 4.0])
    assert (mean, n) == (2.5, 4)
    assert std == pytest.approx(math.sqrt(5 / 3))  # ddof=1: sum of squares 5 over 3
    assert math.isnan(mean_std([1.0])[1])
    assert mean_std([float("nan"), 2.0])[2] == 1


def test_rows_and_markdown():
    results = {1111: fake(0.7), 1112: fake(0.9)}
    rows = summary_rows(results)
    mean_row = next(r for r in rows if r["seed"] == "mean" and r["split"] == "test")
    assert mean_row["MAE"] == pytest.approx(0.8)
    md = summary_markdown(results, "t", protocol="legacy")
    assert "protocol: legacy (test-informed)" in md
    assert "0.800 ± 0.141" in md
