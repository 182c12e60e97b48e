"""Tests for mimsa.metrics. Golden values are derived by hand in the comments."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr

from mimsa.metrics import (
    LOWER_IS_BETTER,
    METRIC_KEYS,
    SIMS_METRIC_KEYS,
    compute_metrics,
    format_metrics_table,
    regression_metrics,
    score,
    sims_bins,
    sims_metrics,
)

# ---------------------------------------------------------------------------------------------
# regression_metrics: golden values
# ---------------------------------------------------------------------------------------------


def test_regression_general_case_all_keys() -> None:
    y_true = [-3.0, -1.0, 0.0, 1.0, 3.0]
    y_pred = [-1.5, 0.5, -0.5, 1.5, 0.0]
    m = regression_metrics(y_true, y_pred)
    assert list(m) == list(METRIC_KEYS)
    assert all(type(v) is float for v in m.values())
    # Has0: true >= 0 -> [F, F, T, T, T]; pred >= 0 -> [F, T, F, T, T]
    # matches at idx 0, 3, 4 -> 3/5
    assert m["Has0_acc_2"] == pytest.approx(0.6)
    # class T (support 3): TP=2 (idx 3, 4), predicted T=3 -> P=2/3, R=2/3, F1=2/3
    # class F (support 2): TP=1 (idx 0), predicted F=2 -> P=1/2, R=1/2, F1=1/2
    # weighted: (3 * 2/3 + 2 * 1/2) / 5 = 3/5
    assert m["Has0_F1_score"] == pytest.approx(0.6)
    # Non0: drop idx 2 (label 0). true > 0 -> [F, F, T, T]; pred > 0 -> [F, T, T, F]
    # (pred 0.0 at idx 4 is negative). matches idx 0, 3 -> 2/4
    assert m["Non0_acc_2"] == pytest.approx(0.5)
    # class T (support 2): TP=1, predicted T=2 -> F1=1/2; class F (support 2): TP=1,
    # predicted F=2 -> F1=1/2; weighted 1/2
    assert m["Non0_F1_score"] == pytest.approx(0.5)
    # Acc-7: true [-3, -1, 0, 1, 3]; pred rounded (half to even) [-2, 0, -0, 2, 0]
    # only idx 2 matches -> 1/5
    assert m["Mult_acc_7"] == pytest.approx(0.2)
    # Acc-5: true clipped [-2, -1, 0, 1, 2]; pred clipped+rounded [-2, 0, -0, 2, 0]
    # idx 0 and 2 match -> 2/5
    assert m["Mult_acc_5"] == pytest.approx(0.4)
    # MAE: |1.5| + |1.5| + |0.5| + |0.5| + |3| = 7 -> 7/5
    assert m["MAE"] == pytest.approx(1.4)
    # Corr: both means are 0. sum(xy) = 4.5 - 0.5 + 0 + 1.5 + 0 = 5.5
    # sum(x^2) = 9+1+0+1+9 = 20, sum(y^2) = 2.25+0.25+0.25+2.25+0 = 5 -> 5.5/sqrt(100)
    assert m["Corr"] == pytest.approx(0.55)


def test_regression_labels_exactly_zero() -> None:
    y_true = [0.0, 0.0, 1.0, -1.0]
    y_pred = [0.5, 0.2, 2.0, 0.3]
    m = regression_metrics(y_true, y_pred)
    # Has0: zero labels are non-negative: true >= 0 -> [T, T, T, F]; pred >= 0 -> all T
    # acc = 3/4
    assert m["Has0_acc_2"] == pytest.approx(0.75)
    # class T (support 3): P=3/4, R=1 -> F1 = 2*(3/4)/(7/4) = 6/7
    # class F (support 1): never predicted -> F1=0; weighted = (3 * 6/7 + 0) / 4 = 9/14
    assert m["Has0_F1_score"] == pytest.approx(9 / 14)
    # Non0: drop idx 0, 1 -> true [T, F], pred [T, T] -> acc 1/2
    assert m["Non0_acc_2"] == pytest.approx(0.5)
    # class T (support 1): P=1/2, R=1 -> F1=2/3; class F (support 1): F1=0 -> (2/3)/2 = 1/3
    assert m["Non0_F1_score"] == pytest.approx(1 / 3)


def test_regression_predictions_exactly_zero() -> None:
    y_true = [1.0, -1.0, -2.0, 2.0]
    y_pred = [0.0, 0.0, -1.0, 1.0]
    m = regression_metrics(y_true, y_pred)
    # Has0: a 0 prediction is non-negative. true [T, F, F, T], pred [T, T, F, T] -> 3/4
    assert m["Has0_acc_2"] == pytest.approx(0.75)
    # class T (support 2): TP=2, predicted T=3 -> P=2/3, R=1 -> F1=4/5
    # class F (support 2): TP=1, predicted F=1 -> P=1, R=1/2 -> F1=2/3
    # weighted = (4/5 + 2/3) / 2 = 11/15
    assert m["Has0_F1_score"] == pytest.approx(11 / 15)
    # Non0: no label is 0; a 0 prediction counts as negative.
    # true > 0 [T, F, F, T], pred > 0 [F, F, F, T] -> 3/4
    assert m["Non0_acc_2"] == pytest.approx(0.75)
    # class T: TP=1, predicted T=1 -> P=1, R=1/2 -> 2/3; class F: TP=2, predicted F=3 ->
    # P=2/3, R=1 -> 4/5; weighted = 11/15
    assert m["Non0_F1_score"] == pytest.approx(11 / 15)


def test_regression_constant_prediction_corr_nan_with_warning() -> None:
    y_true = [-1.0, 1.4, 2.0, 3.0]
    y_pred = [1.0, 1.0, 1.0, 1.0]
    with pytest.warns(UserWarning, match="constant") as record:
        m = regression_metrics(y_true, y_pred)
    assert not any(issubclass(w.category, RuntimeWarning) for w in record)
    assert math.isnan(m["Corr"])
    # other metrics still computed
    # Has0: true >= 0 [F, T, T, T], pred all T -> 3/4
    assert m["Has0_acc_2"] == pytest.approx(0.75)
    # Acc-7: true rounded [-1, 1, 2, 3] vs pred 1 -> idx 1 matches -> 1/4
    assert m["Mult_acc_7"] == pytest.approx(0.25)
    # MAE: 2 + 0.4 + 1 + 2 = 5.4 -> 5.4/4
    assert m["MAE"] == pytest.approx(1.35)


def test_regression_constant_labels_corr_nan_with_warning() -> None:
    with pytest.warns(UserWarning, match="constant"):
        m = regression_metrics([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert math.isnan(m["Corr"])
    # MAE: (1 + 0 + 1) / 3
    assert m["MAE"] == pytest.approx(2 / 3)


def test_regression_no_nonzero_labels_non0_nan_with_warning() -> None:
    y_true = [0.0, 0.0, 0.0]
    y_pred = [0.5, -0.5, 0.0]
    # the constant labels also trigger the Corr warning
    with pytest.warns(UserWarning) as record:
        m = regression_metrics(y_true, y_pred)
    messages = [str(w.message) for w in record]
    assert any("non-zero" in msg for msg in messages)
    assert any("constant" in msg for msg in messages)
    assert math.isnan(m["Non0_acc_2"])
    assert math.isnan(m["Non0_F1_score"])
    assert math.isnan(m["Corr"])
    # Has0: true all T, pred >= 0 [T, F, T] -> 2/3
    assert m["Has0_acc_2"] == pytest.approx(2 / 3)
    # class T (support 3): TP=2, predicted T=2 -> P=1, R=2/3 -> F1=4/5; class F has
    # support 0 so weight 0 -> weighted F1 = 4/5
    assert m["Has0_F1_score"] == pytest.approx(0.8)
    # Acc-7: pred rounded (half to even) [0, -0, 0] -> all match labels 0
    assert m["Mult_acc_7"] == pytest.approx(1.0)
    # MAE: (0.5 + 0.5 + 0) / 3
    assert m["MAE"] == pytest.approx(1 / 3)


def test_mult_acc_7_rounds_half_to_even_and_clips() -> None:
    y_pred = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.7, -5.0]
    # half-to-even: 0.5->0, 1.5->2, 2.5->2, -0.5->-0, -1.5->-2, -2.5->-2; clip: 3.7->3, -5->-3
    y_even = [0.0, 2.0, 2.0, 0.0, -2.0, -2.0, 3.0, -3.0]
    assert regression_metrics(y_even, y_pred)["Mult_acc_7"] == pytest.approx(1.0)
    # half-away-from-zero would give 1, 2, 3, -1, -2, -3: idx 0, 2, 3, 5 differ -> 4/8 match
    y_away = [1.0, 2.0, 3.0, -1.0, -2.0, -3.0, 3.0, -3.0]
    assert regression_metrics(y_away, y_pred)["Mult_acc_7"] == pytest.approx(0.5)


def test_mult_acc_rounds_labels_too() -> None:
    # labels are clipped/rounded like predictions: 2.5 -> 2, 4.0 -> 3 (Acc-7)
    m = regression_metrics([2.5, 4.0], [2.0, 3.0])
    assert m["Mult_acc_7"] == pytest.approx(1.0)


def test_mult_acc_5_clips_to_two() -> None:
    y_true = [2.0, -2.0, 3.0, -3.0]
    y_pred = [2.6, -7.0, 3.0, 1.0]
    m = regression_metrics(y_true, y_pred)
    # Acc-5: true clipped [2, -2, 2, -2]; pred clipped [2, -2, 2, 1] -> 3/4
    assert m["Mult_acc_5"] == pytest.approx(0.75)
    # Acc-7: true [2, -2, 3, -3]; pred clipped to 3 [2.6, -3, 3, 1] rounded [3, -3, 3, 1]
    # only idx 2 matches -> 1/4
    assert m["Mult_acc_7"] == pytest.approx(0.25)


def test_regression_matches_independent_recomputation() -> None:
    rng = np.random.default_rng(1234)
    n = 100
    y_true = np.round(rng.uniform(-3.0, 3.0, size=n) * 3) / 3
    y_true[::10] = 0.0  # ensure exact zero labels
    y_pred = np.clip(y_true + rng.normal(0.0, 1.0, size=n), -3.5, 3.5)
    y_pred[5] = 0.0  # ensure an exact zero prediction
    m = regression_metrics(y_true, y_pred)

    def weighted_f1(t: np.ndarray, p: np.ndarray) -> float:
        total = 0.0
        for c in np.unique(t):
            tp = np.sum((t == c) & (p == c))
            prec = tp / np.sum(p == c) if np.sum(p == c) else 0.0
            rec = tp / np.sum(t == c)
            f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
            total += f1 * np.sum(t == c)
        return total / len(t)

    nz = y_true != 0
    expected = {
        "Has0_acc_2": np.mean((y_true >= 0) == (y_pred >= 0)),
        "Has0_F1_score": weighted_f1(y_true >= 0, y_pred >= 0),
        "Non0_acc_2": np.mean((y_true[nz] > 0) == (y_pred[nz] > 0)),
        "Non0_F1_score": weighted_f1(y_true[nz] > 0, y_pred[nz] > 0),
        "Mult_acc_5": np.mean(np.round(np.clip(y_true, -2, 2)) == np.round(np.clip(y_pred, -2, 2))),
        "Mult_acc_7": np.mean(np.round(np.clip(y_true, -3, 3)) == np.round(np.clip(y_pred, -3, 3))),
        "MAE": np.mean(np.abs(y_true - y_pred)),
        "Corr": pearsonr(y_true, y_pred)[0],
    }
    assert set(m) == set(expected)
    for key, value in expected.items():
        assert m[key] == pytest.approx(float(value), abs=1e-12), key


# ---------------------------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------------------------


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same length"):
        regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0])


def test_nan_raises_with_count_and_argument_name() -> None:
    with pytest.raises(ValueError, match=r"y_pred contains 2 non-finite"):
        regression_metrics([1.0, 2.0, 3.0], [np.nan, 2.0, np.inf])
    with pytest.raises(ValueError, match=r"y_true contains 1 non-finite"):
        sims_metrics([np.nan, 0.5], [0.1, 0.2])


def test_empty_and_2d_inputs_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        regression_metrics([], [])
    with pytest.raises(ValueError, match="1-D"):
        regression_metrics(np.zeros((2, 3)), np.zeros((2, 3)))


def test_column_vectors_are_squeezed() -> None:
    y_true = np.array([[-1.0], [1.0], [2.0]])
    y_pred = np.array([[-1.0], [1.0], [2.0]])
    m = regression_metrics(y_true, y_pred)
    assert m["Has0_acc_2"] == 1.0
    assert m["Corr"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# sims_metrics
# ---------------------------------------------------------------------------------------------


def test_sims_general_case() -> None:
    y_true = [-0.8, -0.2, 0.0, 0.2, 0.8]
    y_pred = [-1.6, -0.15, 0.05, 0.75, 0.35]  # -1.6 is clipped to -1
    m = sims_metrics(y_true, y_pred)
    assert list(m) == list(SIMS_METRIC_KEYS)
    assert all(type(v) is float for v in m.values())
    # 2 bins ([-1,0] -> 0): true [0, 0, 0, 1, 1]; pred [0, 0, 1, 1, 1] -> 4/5
    assert m["Mult_acc_2"] == pytest.approx(0.8)
    # class 0 (support 3): TP=2, predicted 0=2 -> P=1, R=2/3 -> F1=4/5
    # class 1 (support 2): TP=2, predicted 1=3 -> P=2/3, R=1 -> F1=4/5 -> weighted 4/5
    assert m["F1_score"] == pytest.approx(0.8)
    # 3 bins: true [0, 0, 1, 2, 2]; pred (-1, -0.15, 0.05, 0.75, 0.35) -> [0, 0, 1, 2, 2] -> 1
    assert m["Mult_acc_3"] == pytest.approx(1.0)
    # 5 bins: true [0, 1, 2, 3, 4]; pred [0, 1, 2, 4, 3] -> 3/5
    assert m["Mult_acc_5"] == pytest.approx(0.6)
    # MAE on clipped values: 0.2 + 0.05 + 0.05 + 0.55 + 0.45 = 1.3 -> 1.3/5
    assert m["MAE"] == pytest.approx(0.26)
    # Corr on clipped values; both means 0. sum(xy) = 0.8 + 0.03 + 0 + 0.15 + 0.28 = 1.26
    # sum(x^2) = 0.64+0.04+0+0.04+0.64 = 1.36; sum(y^2) = 1+0.0225+0.0025+0.5625+0.1225 = 1.71
    assert m["Corr"] == pytest.approx(1.26 / math.sqrt(1.36 * 1.71))


def test_sims_bin_boundaries_are_right_closed() -> None:
    boundaries = [-0.7, -0.1, 0.1, 0.7]
    # just below each boundary: same bin as the boundary itself under right-closed bins
    m = sims_metrics(boundaries, [-0.8, -0.2, 0.0, 0.6])
    # 5 bins: (-0.7, -0.8) both bin 0, (-0.1, -0.2) bin 1, (0.1, 0.0) bin 2, (0.7, 0.6) bin 3
    assert m["Mult_acc_5"] == pytest.approx(1.0)
    # 3 bins: 0/0, 0/0, 1/1, 2/2
    assert m["Mult_acc_3"] == pytest.approx(1.0)
    # 2 bins: 0/0, 0/0, 1 vs 0 (0.0 is in [-1, 0]), 1/1 -> 3/4
    assert m["Mult_acc_2"] == pytest.approx(0.75)
    # just above each boundary: next bin
    m = sims_metrics(boundaries, [-0.6, 0.0, 0.2, 0.8])
    # 5 bins: 0 vs 1, 1 vs 2, 2 vs 3, 3 vs 4 -> 0
    assert m["Mult_acc_5"] == pytest.approx(0.0)
    # 3 bins: 0/0, 0 vs 1, 1 vs 2, 2/2 -> 1/2
    assert m["Mult_acc_3"] == pytest.approx(0.5)
    # 2 bins: 0/0, 0/0, 1/1, 1/1 -> 1
    assert m["Mult_acc_2"] == pytest.approx(1.0)


def test_sims_zero_is_negative_class_and_clipping() -> None:
    # 0 belongs to [-1, 0]: same class as -0.05, different from 0.05
    assert sims_metrics([0.0, 0.5], [-0.05, 0.5])["Mult_acc_2"] == pytest.approx(1.0)
    assert sims_metrics([0.0, 0.5], [0.05, 0.5])["Mult_acc_2"] == pytest.approx(0.5)
    # clipping: -3 -> -1 (bin 0 with label -1), 1.5 -> 1 (top bin); MAE = 0 after clipping
    m = sims_metrics([-1.0, 1.0], [-3.0, 1.5])
    assert m["Mult_acc_5"] == pytest.approx(1.0)
    assert m["MAE"] == pytest.approx(0.0)


def test_sims_bins_direct() -> None:
    values = np.array([-1.0, -0.7, -0.69, -0.1, 0.0, 0.1, 0.7, 0.71, 1.0])
    assert sims_bins(values, 2).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert sims_bins(values, 3).tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2]
    assert sims_bins(values, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 4]
    with pytest.raises(ValueError, match="n_classes"):
        sims_bins(values, 7)


def test_sims_constant_prediction_corr_nan() -> None:
    with pytest.warns(UserWarning, match="constant"):
        m = sims_metrics([-0.5, 0.0, 0.5], [2.0, 3.0, 1.0])  # all clip to 1
    assert math.isnan(m["Corr"])
    # bins: true [0, 0, 1] vs pred [1, 1, 1] -> 1/3
    assert m["Mult_acc_2"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------------------------------------
# constants, dispatch, formatting
# ---------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert METRIC_KEYS == (
        "Has0_acc_2",
        "Has0_F1_score",
        "Non0_acc_2",
        "Non0_F1_score",
        "Mult_acc_5",
        "Mult_acc_7",
        "MAE",
        "Corr",
    )
    assert isinstance(LOWER_IS_BETTER, frozenset)
    assert set(LOWER_IS_BETTER) == {"MAE"}


def test_compute_metrics_dispatch() -> None:
    y_true, y_pred = [-0.5, 0.2, 0.9], [-0.4, 0.3, 0.6]
    assert compute_metrics(y_true, y_pred) == regression_metrics(y_true, y_pred)
    assert compute_metrics(y_true, y_pred, kind="sims") == sims_metrics(y_true, y_pred)
    with pytest.raises(ValueError, match="regression, sims"):
        compute_metrics(y_true, y_pred, kind="mosi")


def test_no_warnings_on_regular_input() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regression_metrics([-1.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 2.0])
        sims_metrics([-1.0, 0.0, 1.0], [1.0, 1.0, 0.5])


def test_format_metrics_table() -> None:
    table = format_metrics_table(
        {
            "valid": {"Has0_acc_2": 0.8123, "MAE": 0.71234, "Corr": float("nan")},
            "test": {"Has0_acc_2": 0.5, "MAE": 1.0, "Corr": 0.123456},
        }
    )
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "valid", "test"]
    assert lines[1].split() == ["Has0_acc_2", "81.23", "50.00"]
    assert lines[2].split() == ["MAE", "0.7123", "1.0000"]
    assert lines[3].split() == ["Corr", "nan", "0.1235"]
    assert len(lines) == 4
    # right-aligned numeric columns: all lines have the same width
    assert len({len(line) for line in lines}) == 1


def test_format_metrics_table_missing_metric() -> None:
    table = format_metrics_table({"a": {"MAE": 0.5}, "b": {"Corr": 0.25}})
    rows = [line.split() for line in table.splitlines()]
    assert rows[1:] == [["MAE", "0.5000", "-"], ["Corr", "-", "0.2500"]]


def test_score_casts_labels_and_matches_compute_metrics():
    labels = [1, -2, 0, 3]  # integers: cast to float64
    predictions = np.array([0.5, -1.0, 0.2, 2.5])
    assert score(labels, predictions) == compute_metrics(np.array(labels, float), predictions)


def test_class_labels_of_single_scores_follow_acc7_and_has0():
    from mimsa.metrics import CLASS7_NAMES, class2, class7

    scores = [-3.7, -2.5, -0.5, 0.0, 0.49, 1.5, 2.5, 9.0]
    assert class7(scores).tolist() == [-3, -2, 0, 0, 0, 2, 2, 3]  # clip, round half to even
    assert class2([-0.01, 0.0, 2.0]).tolist() == ["negative", "non-negative", "non-negative"]
    assert sorted(CLASS7_NAMES) == list(range(-3, 4))
    labels, preds = np.array(scores), np.array(scores[::-1])
    acc7 = regression_metrics(labels, preds)["Mult_acc_7"]
    assert acc7 == pytest.approx(np.mean(class7(labels) == class7(preds)))
