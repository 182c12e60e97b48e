"""Test metrics under single-modality drop, mean ± std over the seeds of multi-seed runs.

    MIMSA_DATA=../shared/data python bench/drop_table.py RUN_DIR ... [--fill zero|mean]
        [--metrics MAE Corr Non0_acc_2] [--labels ...] [--wide] [--out FILE]

For every run (a `mimsa train --seeds ...` directory), every seed's selected checkpoint is
scored on the test split as trained ("none") and with each of its modalities dropped in turn
(`mimsa evaluate RUN --drop m`, see mimsa.data.drop). Prints a Markdown table: a row per run
and drop, or with `--wide` a row per run and a column per (drop, metric), for many runs with
the same modalities.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_report import save_text

from mimsa.data.drop import ModalityDrop
from mimsa.encoders.cache import EncoderCache
from mimsa.eval.aggregate import mean_std
from mimsa.eval.evaluate import evaluate_loaded
from mimsa.models.base import modalities_read
from mimsa.train.run import load_run

PERCENT = ("acc", "F1")


def cell(key: str, values: list[float]) -> str:
    mean, std, _ = mean_std(values)
    scale, digits = (100, 2) if any(p in key for p in PERCENT) else (1, 3)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def drop_rows(run: Path, fill: str, metrics: list[str], cache: EncoderCache
              ) -> list[tuple[str, int, list[str]]]:
    """Return (drop, n seeds, cells) rows for run: as trained, then each modality dropped.
    `cache` keeps a frozen text encoder's states from one evaluation to the next."""
    seeds = sorted(run.glob("seed-*/metrics.json"))
    if not seeds:
        raise SystemExit(f"{run}: no seed-*/metrics.json found")
    loaded = [load_run(p.parent, cache) for p in seeds]
    _, model, _, spec = loaded[0]
    rows = []
    for drop in ["none", *modalities_read(model, spec)]:
        transform = None if drop == "none" else ModalityDrop([drop], fill)
        scores = [evaluate_loaded(one, transform, cache=cache)["test"] for one in loaded]
        rows.append((drop, len(scores), [cell(k, [s[k] for s in scores]) for k in metrics]))
    return rows


Rows = list[tuple[str, int, list[str]]]


def long_table(results: list[tuple[str, Rows]], metrics: list[str]) -> list[str]:
    lines = ["| run | dropped | n | " + " | ".join(metrics) + " |",
             "|" + "---|" * (len(metrics) + 3)]
    for label, rows in results:
        for drop, n, cells in rows:
            lines.append(f"| {label} | {drop} | {n} | " + " | ".join(cells) + " |")
    return lines


def wide_table(results: list[tuple[str, Rows]], metrics: list[str]) -> list[str]:
    drops = [drop for drop, _, _ in results[0][1]]
    for label, rows in results:
        if [drop for drop, _, _ in rows] != drops:
            raise SystemExit(f"{label}: other modalities than {results[0][0]}; drop --wide")
    header = [f"{metric}, {'as trained' if drop == 'none' else '−' + drop}"
              for metric in metrics for drop in drops]
    lines = ["| run | n | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 2)]
    for label, rows in results:
        cells = [rows[d][2][m] for m in range(len(metrics)) for d in range(len(drops))]
        lines.append(f"| {label} | {rows[0][1]} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--fill", default="zero")
    parser.add_argument("--metrics", nargs="*", default=["MAE", "Corr", "Non0_acc_2",
                                                         "Mult_acc_7"])
    parser.add_argument("--labels", nargs="*")
    parser.add_argument("--wide", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    labels = args.labels or [p.name for p in args.runs]
    cache = EncoderCache()
    results = [(label, drop_rows(run, args.fill, args.metrics, cache))
               for label, run in zip(labels, args.runs, strict=True)]
    lines = wide_table(results, args.metrics) if args.wide else long_table(results, args.metrics)
    table = "\n".join(lines)
    save_text(table, args.out)


if __name__ == "__main__":
    main()
