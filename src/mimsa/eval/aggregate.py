"""Multi-seed aggregation: per-seed rows and mean ± sample std (ddof=1) with n."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from mimsa.atomic import atomic_write_text
from mimsa.metrics import METRIC_KEYS

SPLITS = ("valid", "test")


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """Return (mean, sample std with ddof=1, n) over the finite values (std NaN when n < 2)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return float("nan"), float("nan"), 0
    std = float(np.std(finite, ddof=1)) if n > 1 else float("nan")
    return float(np.mean(finite)), std, n


def summary_rows(results: dict[int, dict]) -> list[dict]:
    """Return CSV rows: one per (seed, split), then mean/std/n rows per split."""
    rows = []
    for split in SPLITS:
        for seed, metrics in results.items():
            rows.append({"seed": seed, "split": split,
                         **{k: metrics[split].get(k) for k in METRIC_KEYS}})
        stats = {k: mean_std([m[split].get(k) for m in results.values()]) for k in METRIC_KEYS}
        for i, name in enumerate(("mean", "std", "n")):
            rows.append({"seed": name, "split": split, **{k: s[i] for k, s in stats.items()}})
    return rows


def format_cell(key: str, value: float) -> str:
    """Return a metric as text: accuracies and F1 in percent (2 dp), MAE/Corr with 3 dp."""
    if value is None or not math.isfinite(value):
        return "nan"
    return f"{100 * value:.2f}" if ("acc" in key or "F1" in key) else f"{value:.3f}"


def summary_markdown(results: dict[int, dict], title: str, protocol: str = "clean") -> str:
    """Return the Markdown summary: per-seed test rows and mean ± std (n) for each split."""
    lines = [f"# {title}", "", f"protocol: {protocol}"
             + (" (test-informed)" if protocol == "legacy" else "")
             + f"; seeds: {', '.join(str(s) for s in results)}", ""]
    header = "| seed | " + " | ".join(METRIC_KEYS) + " |"
    rule = "|" + "---|" * (len(METRIC_KEYS) + 1)
    for split in SPLITS:
        lines += [f"## {split}", "", header, rule]
        for seed, metrics in results.items():
            cells = " | ".join(format_cell(k, metrics[split].get(k)) for k in METRIC_KEYS)
            lines.append(f"| {seed} | {cells} |")
        cells = []
        for k in METRIC_KEYS:
            mean, std, n = mean_std([m[split].get(k) for m in results.values()])
            scale = 100 if ("acc" in k or "F1" in k) else 1
            digits = 2 if scale == 100 else 3
            cells.append(f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}")
        lines.append(f"| mean ± std (n={len(results)}) | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_summary(out_dir: Path, results: dict[int, dict], title: str,
                  protocol: str = "clean") -> None:
    """Write summary.csv and summary.md into `out_dir` atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["seed", "split", *METRIC_KEYS],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_rows(results))
    atomic_write_text(Path(out_dir) / "summary.csv", buffer.getvalue())
    atomic_write_text(Path(out_dir) / "summary.md", summary_markdown(results, title, protocol))


def write_seed_summary(out_dir: Path, cfg: dict, results: dict[int, dict]) -> None:
    """Write summary.csv and summary.md of a multi-seed run (`train_seeds` results per seed)
    into `out_dir`, titled "<model> on <dataset>" with the run's protocol."""
    context = cfg["data"].get("context")
    title = f"{cfg['model']['name']} on {cfg['data']['name']}"
    if context:
        title += f" with context (before {context['before']}, after {context['after']})"
    write_summary(out_dir, results, title=title,
                  protocol=cfg.get("protocol", "clean"))
