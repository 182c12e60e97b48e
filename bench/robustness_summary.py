"""One table from the `<corruption>_auc.csv` files that `mimsa robustness --out DIR` writes.

    python bench/robustness_summary.py DIR [--metric Non0_acc_2] [--out FILE]

Rows: corruptions; columns: runs; cell: the clean score, then the area under the
metric-vs-rate curve (normalised by the rate range), mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from bench_report import save_text

PERCENT = ("acc", "F1")


def fmt(metric: str, value: str) -> str:
    scale, digits = (100, 2) if any(p in metric for p in PERCENT) else (1, 3)
    return f"{scale * float(value):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--metric", default="Non0_acc_2")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [r for path in sorted(args.folder.glob("*_auc.csv"))
            for r in csv.DictReader(path.open()) if r["metric"] == args.metric]
    if not rows:
        raise SystemExit(f"{args.folder}: no *_auc.csv with metric {args.metric}")
    runs = list(dict.fromkeys(r["run"] for r in rows))
    lines = [f"{args.metric}: clean score / area under the curve over rates 0–"
             f"{rows[0]['max_rate']} (mean ± std over seeds)", "",
             "| corruption | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for corruption in dict.fromkeys(r["corruption"] for r in rows):
        by_run = {r["run"]: r for r in rows if r["corruption"] == corruption}
        cells = [f"{fmt(args.metric, by_run[run]['clean_mean'])} / "
                 f"{fmt(args.metric, by_run[run]['auc_mean'])} ± "
                 f"{fmt(args.metric, by_run[run]['auc_std'])}" if run in by_run else "—"
                 for run in runs]
        lines.append(f"| {corruption} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    save_text(table, args.out)


if __name__ == "__main__":
    main()
