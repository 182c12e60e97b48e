"""Significance tests for paired comparisons of runs: a paired t-test over seeds, Holm's
adjustment, and a paired bootstrap over test samples with the MMSA metrics vectorised over
draws.

The bootstrap never materialises resampled arrays: a draw is a vector of multiplicities w [N]
(how often each test sample was drawn; Σw = N), and every metric of `mimsa.metrics.
regression_metrics` is a function of a few weighted sums (w · v for per-sample vectors v), so
all draws of all runs and seeds are one matrix product W [D, N] @ V [N, K]. The values equal
`regression_metrics(y[idx], p[idx])` for the resampled indices idx (a test checks it), NaN
where that function returns NaN (Corr of a constant draw, Non0 metrics without non-zero
labels).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from scipy.stats import ttest_rel

from mimsa.metrics import METRIC_KEYS

CHUNK_ELEMENTS = 4_000_000
"""Most entries of one block of the multiplicity matrix W (32 MB of float64): draws are made
and scored in blocks of `CHUNK_ELEMENTS // N` so memory stays bounded for large test sets."""


def paired_t_p(values: Sequence[float], reference: Sequence[float]) -> float:
    """Return the two-sided p-value of a paired t-test of `values` against `reference` (same
    length n, paired by position; `scipy.stats.ttest_rel`).

    Pairs with a non-finite member are dropped. Returns 1.0 when every remaining difference is
    0 (the t statistic is 0/0 there) and NaN with fewer than two pairs.
    """
    a = np.asarray(values, np.float64)
    b = np.asarray(reference, np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2:
        return math.nan
    if np.all(a - b == 0):
        return 1.0
    return float(ttest_rel(a, b).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Return Holm's step-down adjusted p-values (family-wise error control), in input order.

    With the m finite p-values sorted ascending p(1) ≤ … ≤ p(m), the adjusted value of p(i) is
    max over j ≤ i of min(1, (m − j + 1) · p(j)). NaN entries stay NaN and do not count in m.
    Source: Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat.
    6 (1979).
    """
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return [float(v) for v in out]


def draw_blocks(n: int, draws: int, seed: int) -> Iterator[np.ndarray]:
    """Yield the multiplicity matrices of `draws` bootstrap resamples of n samples, in blocks.

    Each row of a block is one draw: how often each of the n samples was picked when n indices
    are drawn uniformly with replacement (float64 [d, n], rows sum to n). The indices come from
    `numpy.random.default_rng(seed)` block by block, so a given (n, draws, seed) always yields
    the same draws, whichever runs they are applied to.
    """
    rng = np.random.default_rng(seed)
    per_block = max(1, CHUNK_ELEMENTS // max(n, 1))
    done = 0
    while done < draws:
        d = min(per_block, draws - done)
        idx = rng.integers(0, n, size=(d, n))
        flat = (idx + n * np.arange(d)[:, None]).ravel()
        yield np.bincount(flat, minlength=d * n).reshape(d, n).astype(np.float64)
        done += d


def indices_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """Return the multiplicity matrix [d, n] of resampled index rows `idx` [d, n'] (the count
    of each sample in each row); the inverse view of `draw_blocks`, used to check it."""
    idx = np.atleast_2d(np.asarray(idx, np.int64))
    d = idx.shape[0]
    flat = (idx + n * np.arange(d)[:, None]).ravel()
    return np.bincount(flat, minlength=d * n).reshape(d, n).astype(np.float64)


# Per-(run, seed) columns of V, in this order; see `_columns`.
_COLUMNS = ("abs_err", "h11", "h10", "h01", "h00", "n11", "n10", "n01", "n00", "acc5", "acc7",
            "p_c", "p_c2", "yp_c")
_SHARED = ("y_c", "y_c2", "nonzero")


def _shared_columns(y: np.ndarray) -> np.ndarray:
    """Return the label columns [N, 3]: centred label, its square, label ≠ 0."""
    y_c = y - y.mean()
    return np.stack([y_c, y_c * y_c, (y != 0).astype(np.float64)], axis=1)


def _columns(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Return the per-sample vectors [N, 14] whose weighted sums give every metric of one
    prediction vector `p` against labels `y` (see `_COLUMNS`; h = Has0, n = Non0 classes as
    (label class, prediction class) pairs, 1 = positive)."""
    y_c = y - y.mean()
    p_c = p - p.mean()  # centring by a constant leaves the correlation unchanged and keeps a
    # constant prediction's variance exactly 0
    ht, hp = y >= 0, p >= 0
    nz = y != 0
    nt, npos = y > 0, p > 0
    cols = [np.abs(y - p),
            ht & hp, ht & ~hp, ~ht & hp, ~ht & ~hp,
            nz & nt & npos, nz & nt & ~npos, nz & ~nt & npos, nz & ~nt & ~npos,
            np.round(np.clip(y, -2, 2)) == np.round(np.clip(p, -2, 2)),
            np.round(np.clip(y, -3, 3)) == np.round(np.clip(p, -3, 3)),
            p_c, p_c * p_c, y_c * p_c]
    return np.stack([np.asarray(c, np.float64) for c in cols], axis=1)


def _weighted_f1(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Return sklearn's binary support-weighted F1 from the counts a = (true 1, pred 1),
    b = (1, 0), c = (0, 1), d = (0, 0); a class without true or predicted samples scores 0
    (zero_division=0) and has weight 0."""
    n = a + b + c + d
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_pos = np.where(2 * a + b + c > 0, 2 * a / (2 * a + b + c), 0.0)
        f1_neg = np.where(2 * d + b + c > 0, 2 * d / (2 * d + b + c), 0.0)
        return np.where(n > 0, ((a + b) * f1_pos + (c + d) * f1_neg) / n, np.nan)


def _metrics_from_sums(s: dict[str, np.ndarray], shared: dict[str, np.ndarray], n: int
                       ) -> dict[str, np.ndarray]:
    """Return METRIC_KEYS → values [d] from the weighted sums of one prediction vector."""
    nonzero = shared["nonzero"]
    with np.errstate(invalid="ignore", divide="ignore"):
        my, mp = shared["y_c"] / n, s["p_c"] / n
        var_y = shared["y_c2"] / n - my * my
        var_p = s["p_c2"] / n - mp * mp
        cov = s["yp_c"] / n - my * mp
        tiny_y = 1e-12 * np.maximum(shared["y_c2"] / n, 1e-300)
        tiny_p = 1e-12 * np.maximum(s["p_c2"] / n, 1e-300)
        defined = (var_y > tiny_y) & (var_p > tiny_p)
        corr = np.where(defined, np.clip(cov / np.sqrt(var_y * var_p), -1.0, 1.0), np.nan)
        non0_acc = np.where(nonzero > 0, (s["n11"] + s["n00"]) / nonzero, np.nan)
    non0_f1 = np.where(nonzero > 0, _weighted_f1(s["n11"], s["n10"], s["n01"], s["n00"]),
                       np.nan)
    out = {
        "Has0_acc_2": (s["h11"] + s["h00"]) / n,
        "Has0_F1_score": _weighted_f1(s["h11"], s["h10"], s["h01"], s["h00"]),
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": s["acc5"] / n,
        "Mult_acc_7": s["acc7"] / n,
        "MAE": s["abs_err"] / n,
        "Corr": corr,
    }
    return {k: out[k] for k in METRIC_KEYS}


def weighted_metrics(y: np.ndarray, predictions: np.ndarray, weights: np.ndarray
                     ) -> list[dict[str, np.ndarray]]:
    """Return the MMSA regression metrics of each prediction vector under each resample.

    y: labels [N]; predictions: [K, N] (one row per run × seed, aligned with y); weights: [D, N]
    sample multiplicities, each row summing to N (`draw_blocks`; a row of ones is the original
    sample). Returns K dicts METRIC_KEYS → float64 [D]; the definitions are those of
    `mimsa.metrics.regression_metrics` (fractions, not percent), NaN where it returns NaN.
    """
    y = np.asarray(y, np.float64)
    predictions = np.atleast_2d(np.asarray(predictions, np.float64))
    k_runs, n = predictions.shape
    blocks = [_shared_columns(y)] + [_columns(y, p) for p in predictions]
    sums = weights @ np.concatenate(blocks, axis=1)  # [D, 3 + 14 K]
    shared = {name: sums[:, i] for i, name in enumerate(_SHARED)}
    out = []
    width = len(_COLUMNS)
    for k in range(k_runs):
        start = len(_SHARED) + k * width
        s = {name: sums[:, start + i] for i, name in enumerate(_COLUMNS)}
        out.append(_metrics_from_sums(s, shared, n))
    return out


def bootstrap_p(differences: np.ndarray) -> float:
    """Return the two-sided bootstrap p-value of a distribution of differences d [D]:
    min(1, 2 · min(#{d ≤ 0} + 1, #{d ≥ 0} + 1) / (D + 1)), over the finite draws.

    A draw equal to 0 counts on both sides, so two identical runs (every d = 0) give p = 1;
    the +1 keeps p above 0 (the smallest value is 2 / (D + 1)). NaN when no draw is finite.
    Source: Davison & Hinkley, Bootstrap Methods and their Application (1997), ch. 4.
    """
    d = np.asarray(differences, np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    below = int(np.count_nonzero(d <= 0))
    above = int(np.count_nonzero(d >= 0))
    return min(1.0, 2.0 * (min(below, above) + 1) / (d.size + 1))


def percentile_interval(differences: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Return the (low, high) percentile interval of the finite draws holding `level` of them
    (2.5th and 97.5th percentiles for 0.95); (NaN, NaN) when no draw is finite."""
    d = np.asarray(differences, np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(d, [tail, 100 - tail])
    return float(low), float(high)
