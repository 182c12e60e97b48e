"""Plots of evaluation results, drawn with matplotlib's Agg renderer (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimsa.atomic import atomic_write
from mimsa.metrics import LOWER_IS_BETTER

if TYPE_CHECKING:
    from mimsa.eval.robustness import RobustnessResult

LABELS = {"MAE": "MAE", "Corr": "Pearson correlation", "Non0_acc_2": "Acc-2, non0 (%)",
          "Has0_acc_2": "Acc-2, has0 (%)", "Mult_acc_7": "Acc-7 (%)", "Mult_acc_5": "Acc-5 (%)",
          "Non0_F1_score": "F1, non0 (%)", "Has0_F1_score": "F1, has0 (%)"}


def plot_robustness(result: RobustnessResult, path: Path,
                    metrics: tuple[str, ...] | None = None) -> Path:
    """Write a PNG with one panel per metric (metric vs corruption rate, one line per run,
    a ± std band where a run has several seeds) to `path` atomically; return `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mimsa.eval.robustness import SHOWN

    metrics = tuple(metrics or SHOWN)
    cols = 2 if len(metrics) > 1 else 1
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.8 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    rates = np.asarray(result.rates)
    for ax, key in zip(axes, metrics, strict=False):
        scale = 100.0 if ("acc" in key or "F1" in key) else 1.0
        for number, run in enumerate(result.runs):
            stats = run.stats(key)
            mean = np.array([s[0] for s in stats]) * scale
            std = np.array([s[1] for s in stats]) * scale
            color = f"C{number % 10}"
            label = run.label + (f" (n={len(run.seeds)})" if len(run.seeds) > 1 else "")
            ax.plot(rates, mean, marker="o", markersize=4, color=color, label=label)
            if np.isfinite(std).any():
                ax.fill_between(rates, mean - std, mean + std, color=color, alpha=0.15,
                                linewidth=0)
        better = "lower is better" if key in LOWER_IS_BETTER else "higher is better"
        ax.set_title(f"{key} ({better})", fontsize=10)
        ax.set_xlabel(f"corruption rate ({result.corruption})")
        ax.set_ylabel(LABELS.get(key, key))
        ax.set_xlim(rates.min(), rates.max() if rates.max() > rates.min() else rates.min() + 1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"Robustness to {result.corruption} — {result.split} split, corruption seed "
                 f"{result.seed}", fontsize=12)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return Path(path)
