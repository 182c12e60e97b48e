"""The field's metrics for multimodal sentiment regression (MMSA conventions): pure functions on
arrays, used by the trainer (validation, model selection) and by evaluation.

Two metric families are provided:

* :func:`regression_metrics` -- CMU-MOSI / CMU-MOSEI style metrics for labels in ``[-3, 3]``.
* :func:`sims_metrics` -- CH-SIMS style metrics for labels in ``[-1, 1]``.

All accuracies and F1 scores are fractions in ``[0, 1]`` (not percent) and every returned value
is a plain Python ``float``. Undefined values (Pearson correlation of a constant array, Non0
metrics on a split without non-zero labels) are reported as ``nan`` together with a
``UserWarning`` instead of raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

METRIC_KEYS: tuple[str, ...] = (
    "Has0_acc_2",
    "Has0_F1_score",
    "Non0_acc_2",
    "Non0_F1_score",
    "Mult_acc_5",
    "Mult_acc_7",
    "MAE",
    "Corr",
)
"""Keys returned by :func:`regression_metrics`, in display order."""

SIMS_METRIC_KEYS: tuple[str, ...] = (
    "Mult_acc_2",
    "Mult_acc_3",
    "Mult_acc_5",
    "F1_score",
    "MAE",
    "Corr",
)
"""Keys returned by :func:`sims_metrics`, in display order."""

LOWER_IS_BETTER: frozenset[str] = frozenset({"MAE"})
"""Metric keys for which a smaller value is better; every other key is higher-is-better."""

# Interior bin edges for CH-SIMS after clipping to [-1, 1]. Intervals are right-closed and the
# leftmost bin is closed at -1: e.g. 2 classes are [-1, 0] -> 0 and (0, 1] -> 1.
_SIMS_EDGES: dict[int, tuple[float, ...]] = {
    2: (0.0,),
    3: (-0.1, 0.1),
    5: (-0.7, -0.1, 0.1, 0.7),
}

_METRIC_KINDS: tuple[str, ...] = ("regression", "sims")

# Keys formatted with 4 decimals (not as percent) by format_metrics_table.
_RAW_VALUE_KEYS: frozenset[str] = frozenset({"MAE", "Corr"})


def _as_1d_finite(values: ArrayLike, name: str) -> np.ndarray:
    """Convert ``values`` to a finite 1-D float64 array.

    Returns the converted array. Raises ``ValueError`` if it is empty, not 1-D after squeezing,
    or contains NaN/inf values.
    """
    arr = np.asarray(values, dtype=np.float64).squeeze()
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D after squeeze, got shape {np.shape(values)}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    n_bad = int(np.count_nonzero(~np.isfinite(arr)))
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} non-finite value(s) (NaN or inf)")
    return arr


def _validate(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate a label/prediction pair.

    Returns ``(y_true, y_pred)`` as finite 1-D float64 arrays of equal length.
    """
    true = _as_1d_finite(y_true, "y_true")
    pred = _as_1d_finite(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {true.size} and {pred.size}"
        )
    return true, pred


def _accuracy(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Return the fraction of positions where the two label arrays are equal."""
    return float(np.mean(true_labels == pred_labels))


def _weighted_f1(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Return sklearn's support-weighted F1, ``f1_score(true, pred, average="weighted")``.

    ``zero_division=0`` gives the same value as sklearn's default but without the warning
    emitted when a class is never predicted. scikit-learn is imported here, not with the module:
    importing it sets KMP_* environment variables, and importing mimsa leaves the environment
    alone.
    """
    from sklearn.metrics import f1_score

    return float(f1_score(true_labels, pred_labels, average="weighted", zero_division=0))


def _mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Return the mean absolute error between the two arrays."""
    return float(np.mean(np.abs(y_true - y_pred)))


def _pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Return the Pearson correlation of the two arrays.

    Returns ``nan`` and emits a ``UserWarning`` when either input is constant (the correlation
    is undefined); no numpy ``RuntimeWarning`` is raised.
    """
    if np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        warnings.warn(
            "Corr is undefined for constant input (y_true or y_pred has zero variance); "
            "returning nan",
            UserWarning,
            stacklevel=3,
        )
        return math.nan
    with np.errstate(all="ignore"):
        dt = y_true - y_true.mean()
        dp = y_pred - y_pred.mean()
        r = float(np.sum(dt * dp) / np.sqrt(np.sum(dt * dt) * np.sum(dp * dp)))
    if not math.isfinite(r):
        warnings.warn(
            "Corr is undefined for (numerically) constant input; returning nan",
            UserWarning,
            stacklevel=3,
        )
        return math.nan
    return min(1.0, max(-1.0, r))


def _multiclass_acc(y_true: np.ndarray, y_pred: np.ndarray, bound: float) -> float:
    """Return the exact-match accuracy after clipping to ``[-bound, bound]`` and rounding.

    Rounding is numpy's round-half-to-even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2).
    """
    true_cls = np.round(np.clip(y_true, -bound, bound))
    pred_cls = np.round(np.clip(y_pred, -bound, bound))
    return _accuracy(true_cls, pred_cls)


CLASS7_NAMES: dict[int, str] = {-3: "strongly negative", -2: "negative", -1: "weakly negative",
                                0: "neutral", 1: "weakly positive", 2: "positive",
                                3: "strongly positive"}
"""Names of the 7 classes of CMU-MOSI/MOSEI's annotation scale, by class value."""


def class7(values: ArrayLike) -> np.ndarray:
    """Return the 7-class labels (int64 in -3..3) of scores as ``Mult_acc_7`` defines them:
    clipped to ``[-3, 3]``, rounded half to even."""
    return np.round(np.clip(np.asarray(values, dtype=np.float64), -3.0, 3.0)).astype(np.int64)


def class2(values: ArrayLike) -> np.ndarray:
    """Return the 2-class labels of scores as ``Has0_acc_2`` defines them: ``"negative"``
    (``< 0``) or ``"non-negative"`` (``>= 0``)."""
    return np.where(np.asarray(values, dtype=np.float64) < 0, "negative", "non-negative")


def _non0_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Return ``(Non0_acc_2, Non0_F1_score)``, or ``(nan, nan)`` with a warning.

    Samples whose label is exactly 0 are dropped. Labels are positive if ``> 0`` (else
    negative, i.e. ``< 0``); predictions are positive if ``> 0`` and negative otherwise, so a
    prediction of exactly 0 counts as negative.
    """
    keep = y_true != 0
    if not np.any(keep):
        warnings.warn(
            "Non0 metrics are undefined: no non-zero labels in y_true; returning nan",
            UserWarning,
            stacklevel=3,
        )
        return math.nan, math.nan
    true_pos = y_true[keep] > 0
    pred_pos = y_pred[keep] > 0
    return _accuracy(true_pos, pred_pos), _weighted_f1(true_pos, pred_pos)


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Compute the MMSA metrics for CMU-MOSI / CMU-MOSEI regression.

    Definitions (``y_true`` are labels, ``y_pred`` predictions, both 1-D and finite):

    * ``Has0_acc_2`` / ``Has0_F1_score``: all samples; class is negative (``< 0``) vs
      non-negative (``>= 0``) for both labels and predictions. F1 is sklearn's weighted F1.
    * ``Non0_acc_2`` / ``Non0_F1_score``: samples with label exactly 0 are dropped; labels are
      positive (``> 0``) vs negative (``< 0``); predictions are positive if ``> 0`` and negative
      otherwise (a prediction of exactly 0 counts as negative). ``nan`` with a warning if no
      label is non-zero.
    * ``Mult_acc_7`` / ``Mult_acc_5``: both arrays clipped to ``[-3, 3]`` / ``[-2, 2]``, rounded
      half to even (``np.round``), exact-match accuracy.
    * ``MAE``: mean absolute error on the unclipped values.
    * ``Corr``: Pearson correlation on the unclipped values; ``nan`` with a warning if either
      array is constant.

    Returns a dict with exactly the keys of :data:`METRIC_KEYS` (in that order) mapping to plain
    floats; accuracies and F1 scores are fractions in ``[0, 1]``. Raises ``ValueError`` for empty,
    non-1-D, mismatched-length or non-finite inputs.
    """
    true, pred = _validate(y_true, y_pred)
    has0_true = true >= 0
    has0_pred = pred >= 0
    non0_acc, non0_f1 = _non0_metrics(true, pred)
    return {
        "Has0_acc_2": _accuracy(has0_true, has0_pred),
        "Has0_F1_score": _weighted_f1(has0_true, has0_pred),
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": _multiclass_acc(true, pred, 2.0),
        "Mult_acc_7": _multiclass_acc(true, pred, 3.0),
        "MAE": _mae(true, pred),
        "Corr": _pearson(true, pred),
    }


def sims_bins(values: np.ndarray, n_classes: int) -> np.ndarray:
    """Assign CH-SIMS class indices to values already clipped to ``[-1, 1]``.

    Bins (leftmost closed at -1, all others right-closed):

    * 2 classes: ``[-1, 0]`` -> 0, ``(0, 1]`` -> 1
    * 3 classes: ``[-1, -0.1]``, ``(-0.1, 0.1]``, ``(0.1, 1]``
    * 5 classes: ``[-1, -0.7]``, ``(-0.7, -0.1]``, ``(-0.1, 0.1]``, ``(0.1, 0.7]``, ``(0.7, 1]``

    Returns an int array of class indices in ``0 .. n_classes - 1``.
    """
    if n_classes not in _SIMS_EDGES:
        raise ValueError(f"n_classes must be one of {sorted(_SIMS_EDGES)}, got {n_classes}")
    # side="left" returns i with edges[i-1] < x <= edges[i], i.e. right-closed intervals.
    return np.searchsorted(np.asarray(_SIMS_EDGES[n_classes]), values, side="left")


def sims_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Compute the MMSA metrics for CH-SIMS regression (labels in ``[-1, 1]``).

    Both arrays are first clipped to ``[-1, 1]``; every metric uses the clipped values.
    Class bins are those of :func:`sims_bins` (leftmost bin closed at -1, the rest right-closed):

    * ``Mult_acc_2``: ``[-1, 0]``, ``(0, 1]``
    * ``Mult_acc_3``: ``[-1, -0.1]``, ``(-0.1, 0.1]``, ``(0.1, 1]``
    * ``Mult_acc_5``: ``[-1, -0.7]``, ``(-0.7, -0.1]``, ``(-0.1, 0.1]``, ``(0.1, 0.7]``,
      ``(0.7, 1]``
    * ``F1_score``: sklearn weighted F1 on the 2-class bins.
    * ``MAE``: mean absolute error; ``Corr``: Pearson correlation (``nan`` with a warning if
      either clipped array is constant).

    Returns a dict with the keys of :data:`SIMS_METRIC_KEYS` mapping to plain floats;
    accuracies and F1 are fractions in ``[0, 1]``. Raises ``ValueError`` on invalid input.
    """
    true, pred = _validate(y_true, y_pred)
    true = np.clip(true, -1.0, 1.0)
    pred = np.clip(pred, -1.0, 1.0)
    true2, pred2 = sims_bins(true, 2), sims_bins(pred, 2)
    return {
        "Mult_acc_2": _accuracy(true2, pred2),
        "Mult_acc_3": _accuracy(sims_bins(true, 3), sims_bins(pred, 3)),
        "Mult_acc_5": _accuracy(sims_bins(true, 5), sims_bins(pred, 5)),
        "F1_score": _weighted_f1(true2, pred2),
        "MAE": _mae(true, pred),
        "Corr": _pearson(true, pred),
    }


def compute_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, kind: str = "regression"
) -> dict[str, float]:
    """Compute the metric family named by ``kind`` (``"regression"`` or ``"sims"``).

    Returns the dict of :func:`regression_metrics` or :func:`sims_metrics`. Raises
    ``ValueError`` for an unknown ``kind``.
    """
    if kind == "regression":
        return regression_metrics(y_true, y_pred)
    if kind == "sims":
        return sims_metrics(y_true, y_pred)
    raise ValueError(f"unknown metrics kind {kind!r}; valid kinds: {', '.join(_METRIC_KINDS)}")


def score(labels: ArrayLike, predictions: ArrayLike) -> dict[str, float]:
    """Return the MMSA regression metrics (`METRIC_KEYS`) of `predictions` against `labels`,
    both [N] (labels cast to float64). Raises ValueError on mismatched or non-finite input."""
    return compute_metrics(np.asarray(labels, np.float64), predictions)


def _format_value(key: str, value: float | None) -> str:
    """Return one table cell: percent with 2 decimals, or 4 decimals for MAE/Corr."""
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if key in _RAW_VALUE_KEYS:
        return f"{value:.4f}"
    return f"{100.0 * value:.2f}"


def format_metrics_table(metrics_by_split: Mapping[str, Mapping[str, float]]) -> str:
    """Render metrics as a plain-text table: one row per metric key, one column per split.

    Rows follow the order in which keys first appear across splits. Accuracies and F1 scores are
    shown as percent with 2 decimals, ``MAE`` and ``Corr`` with 4 decimals, NaN as ``nan`` and a
    metric missing from a split as ``-``.

    Returns the table as a string of newline-separated lines (no trailing newline).
    """
    splits = list(metrics_by_split)
    keys: list[str] = []
    for metrics in metrics_by_split.values():
        keys.extend(k for k in metrics if k not in keys)
    rows = [["metric", *splits]]
    for key in keys:
        cells = [_format_value(key, metrics_by_split[s].get(key)) for s in splits]
        rows.append([key, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
    return "\n".join(lines)
