"""Compare multi-seed runs: test mean ± std per run and paired differences to a reference.

    python bench/compare.py REF_DIR OTHER_DIR ... [--metrics MAE Corr Non0_acc_2] [--out FILE]

Each DIR is a `mimsa train --seeds ...` output (seed-*/metrics.json). Differences are paired by
seed (other − reference) and reported as mean ± std with n and the two-sided p-value of a paired
t-test over the shared seeds (scipy.stats.ttest_rel; with n = 5 seeds only large, consistent
differences reach p < 0.05, and several comparisons at once call for a correction such as
Holm's); "*" marks p < 0.05.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel

PERCENT = ("acc", "F1")


def load(run_dir: Path, split: str = "test") -> dict[int, dict[str, float]]:
    """Return {seed: metrics of `split`} for every finished seed under `run_dir`."""
    out = {}
    for path in sorted(run_dir.glob("seed-*/metrics.json")):
        data = json.loads(path.read_text())
        out[int(data["seed"])] = data[split]
    if not out:
        raise SystemExit(f"{run_dir}: no seed-*/metrics.json found")
    return out


def fmt(key: str, mean: float, std: float) -> str:
    scale, digits = (100, 2) if any(p in key for p in PERCENT) else (1, 3)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")


def paired_p(values: list[float], reference: list[float]) -> float:
    """Return the two-sided p-value of a paired t-test (1.0 when every difference is 0, NaN
    with fewer than two pairs)."""
    diff = np.asarray(values, float) - np.asarray(reference, float)
    if len(diff) < 2:
        return float("nan")
    if np.allclose(diff, 0):
        return 1.0
    return float(ttest_rel(values, reference).pvalue)


def compare(ref: Path, others: list[Path], metrics: list[str], labels: list[str]) -> str:
    """Return a Markdown table: each run's mean ± std and paired difference to `ref`."""
    ref_runs = load(ref)
    header = "| run | n | " + " | ".join(metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    for label, run in zip(labels, [ref, *others], strict=True):
        runs = load(run)
        cells = [fmt(k, *stats([m[k] for m in runs.values()])) for k in metrics]
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    if others:
        lines += ["", f"Paired difference to {labels[0]} (same seeds; p: paired t-test, "
                  "two-sided; * = p < 0.05):", "", header, lines[1]]
        for label, run in zip(labels[1:], others, strict=True):
            runs = load(run)
            seeds = sorted(set(runs) & set(ref_runs))
            cells = []
            for k in metrics:
                diff = [runs[s][k] - ref_runs[s][k] for s in seeds]
                mean, std = stats(diff)
                p = paired_p([runs[s][k] for s in seeds], [ref_runs[s][k] for s in seeds])
                cells.append(f"{fmt(k, mean, std)} (p={p:.2f}){' *' if p < 0.05 else ''}")
            lines.append(f"| {label} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", type=Path)
    parser.add_argument("others", type=Path, nargs="*")
    parser.add_argument("--labels", nargs="*")
    parser.add_argument("--metrics", nargs="*",
                        default=["MAE", "Corr", "Has0_acc_2", "Non0_acc_2", "Non0_F1_score",
                                 "Mult_acc_7"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = [args.ref, *args.others]
    labels = args.labels or [p.name for p in runs]
    table = compare(args.ref, args.others, args.metrics, labels)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
