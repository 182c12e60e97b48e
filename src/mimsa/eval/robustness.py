"""Robustness curves: metrics of trained runs on inputs corrupted at increasing rates.

    mimsa robustness RUN_DIR [RUN_DIR ...] --corruption text_missing \\
        --rates 0 0.1 0.3 0.5 0.7 0.9 [--option mode=delete] [--seed 0] [--split test] [--out DIR]

For every run (a single-seed run directory, or a multi-seed one with seed-*/ subdirectories)
and every rate, the selected checkpoint predicts the split with the corruption applied
(`mimsa.data.corruptions`, same corruption seed for every run and model seed, so all runs see
the very same corrupted inputs) and the MMSA metrics are computed. Rate 0, the clean
reference, is always evaluated (added when not given). Per run, metric and rate:

  mean ± std      over the run's seeds (sample std, ddof 1; NaN for one seed), with n
  relative drop   100 · (clean − corrupted) / |clean| in percent, per seed, then mean ± std;
                  for MAE (lower is better) the sign is flipped, so a positive drop is always
                  a loss of quality
  AUC             the area under the metric-vs-rate curve by the trapezoid rule over the
                  evaluated rates, divided by the rate range (max − min): the metric's mean
                  level over the range, in the metric's own units; per seed, then mean ± std

Outputs in --out (default RUN_DIR/robustness for one run), written atomically, named after the
corruption so several corruptions share a folder: <name>.csv (one row per run × rate × metric),
<name>_auc.csv (one row per run × metric: AUC and the drop at the highest rate), <name>.md (the
tables), <name>.json (everything, per seed included) and <name>.png (one panel per metric,
one line per run, ± std bands).
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimsa.atomic import atomic_write_text
from mimsa.data.corruptions import check_rate, make_corruption
from mimsa.encoders.cache import EncoderCache
from mimsa.encoders.text import share_cache
from mimsa.errors import ConfigError, DataError, RunError
from mimsa.eval.aggregate import format_cell, mean_std
from mimsa.eval.evaluate import bind_transform
from mimsa.metrics import LOWER_IS_BETTER, METRIC_KEYS, score
from mimsa.train.inference import predict
from mimsa.train.run import load_run

SPLITS = ("train", "valid", "test")
SHOWN = ("MAE", "Corr", "Non0_acc_2", "Mult_acc_7")  # in the Markdown tables and the plot


@dataclass
class RunCurves:
    """One run's metrics per seed and rate: values[metric] is an array [n_seeds, n_rates]."""

    label: str
    path: Path
    seeds: list[str]
    rates: list[float]
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def stats(self, metric: str) -> list[tuple[float, float, int]]:
        """Return (mean, std, n) over seeds at each rate."""
        return [mean_std(list(self.values[metric][:, j])) for j in range(len(self.rates))]

    def drops(self, metric: str) -> np.ndarray:
        """Return the relative drop in percent [n_seeds, n_rates] (positive = worse)."""
        return relative_drop(metric, self.values[metric][:, :1], self.values[metric])

    def aucs(self, metric: str) -> np.ndarray:
        """Return the normalised area under the metric-vs-rate curve per seed [n_seeds]."""
        return np.array([normalised_auc(self.rates, row) for row in self.values[metric]])


@dataclass
class RobustnessResult:
    """Curves of every run for one corruption on one split."""

    corruption: str
    options: dict
    seed: int
    split: str
    rates: list[float]
    description: str
    runs: list[RunCurves]


def relative_drop(metric: str, clean: np.ndarray | float, value: np.ndarray | float
                  ) -> np.ndarray:
    """Return 100·(clean − value)/|clean| (MAE: 100·(value − clean)/|clean|), in percent."""
    clean, value = np.asarray(clean, np.float64), np.asarray(value, np.float64)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * sign * (clean - value) / np.abs(clean)


def normalised_auc(rates: list[float], values: np.ndarray | list[float]) -> float:
    """Return the trapezoid area under `values` over `rates` divided by the rate range (the
    mean level of the curve); with a single rate, that rate's value."""
    x, y = np.asarray(rates, np.float64), np.asarray(values, np.float64)
    if len(x) == 1:
        return float(y[0])
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return area / float(x[-1] - x[0])


def parse_rates(rates: list[float] | list[str]) -> list[float]:
    """Return the rates sorted, without duplicates and with 0 (the clean reference) added;
    each must lie in [0, 1] (one-line error otherwise)."""
    if not rates:
        raise ConfigError("--rates needs at least one rate in [0, 1], e.g. --rates 0 0.1 0.3 0.5")
    values = {check_rate(r) for r in rates}
    return sorted(values | {0.0})


def seed_runs(run_dir: Path) -> list[Path]:
    """Return the finished single-seed runs of `run_dir` (itself, or its seed-*/ folders)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    runs = [run_dir] if (run_dir / "config.yaml").is_file() else sorted(
        p for p in run_dir.glob("seed-*") if (p / "config.yaml").is_file())
    if not runs:
        raise RunError(f"{run_dir}: no run found (expected config.yaml or seed-*/ "
                       f"subdirectories from mimsa train)")
    unfinished = [str(p) for p in runs if not (p / "metrics.json").is_file()]
    if unfinished:
        raise RunError(f"{unfinished[0]} is not a finished run (no metrics.json); finish it "
                       f"with mimsa train --resume --out {unfinished[0]}")
    return runs


def seed_name(run_dir: Path) -> str:
    """Return "seed-<seed>" of a finished single-seed run (from its metrics.json)."""
    try:
        return f"seed-{json.loads((Path(run_dir) / 'metrics.json').read_text())['seed']}"
    except (OSError, ValueError, KeyError):
        return Path(run_dir).name


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Return a short distinct label per run: its folder name, with parents when names clash."""
    paths = [Path(p).resolve() for p in run_dirs]
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def corrupted_metrics(run_dir: Path, corruption: str, rates: list[float], *, seed: int = 0,
                      split: str = "test", options: dict | None = None,
                      cache: EncoderCache | None = None, samples: list[str] | None = None
                      ) -> tuple[list[dict[str, float]], str, list[str]]:
    """Return (metrics per rate, description of the corruption, the split's sample ids) of one
    single-seed run.

    `cache` (shared by the runs of one `robustness` call) keeps a frozen encoder's states.
    `samples`: the ids another run was scored on; a run with other ones raises DataError
    (naming the first differing id) before it is scored, so curves side by side always
    describe the same samples.
    """
    cfg, model, dataset, spec = load_run(run_dir)
    if cache is not None:
        share_cache(model, cache)
    bound = bind_transform(make_corruption(corruption, 0.0, seed, **(options or {})), dataset,
                           spec, model, cache)
    index = dataset.indices(split)
    ids = [dataset.ids[i] for i in index]
    if samples is not None and ids != samples:
        first = next((i for i, (a, b) in enumerate(zip(ids, samples, strict=False)) if a != b),
                     min(len(ids), len(samples)))
        shown = ids[first] if first < len(ids) else f"none after {len(ids)} samples"
        raise DataError(f"{run_dir}: its {split} samples differ from those of the runs before "
                        f"it (sample {first + 1}: '{shown}'); compare runs of the same data "
                        f"and split")
    out = []
    for rate in rates:
        transform = bound.with_rate(rate)
        preds = predict(model, dataset, index, modalities=spec.modalities,
                        batch_size=int(cfg["data"]["eval_batch_size"]), pad_id=spec.text.pad_id,
                        transform=transform)
        with warnings.catch_warnings():  # constant predictions: Corr is NaN, reported as such
            warnings.simplefilter("ignore", UserWarning)
            out.append(score(dataset.labels[index], preds))
    return out, bound.definition(), ids


def robustness(run_dirs: list[Path], corruption: str, rates: list[float], *, seed: int = 0,
               split: str = "test", options: dict | None = None) -> RobustnessResult:
    """Return the curves of every run (see the module) for `corruption` at `rates`."""
    if split not in SPLITS:
        raise ConfigError(f"--split '{split}' is unknown; use one of {', '.join(SPLITS)}")
    make_corruption(corruption, 0.0, seed, **(options or {}))  # bad name/option: fail first
    rates = parse_rates(rates)
    if not run_dirs:
        raise ConfigError("give at least one run directory")
    groups = [seed_runs(Path(r)) for r in run_dirs]  # every directory checked before any work
    runs, description, samples = [], "", None
    cache = EncoderCache()  # frozen encoders: each distinct input encoded once for all runs
    for label, run_dir, group in zip(run_labels(run_dirs), run_dirs, groups, strict=True):
        curves = RunCurves(label, Path(run_dir), [seed_name(p) for p in group], rates)
        table = {k: np.full((len(group), len(rates)), np.nan) for k in METRIC_KEYS}
        for i, single in enumerate(group):
            per_rate, description, samples = corrupted_metrics(
                single, corruption, rates, seed=seed, split=split, options=options, cache=cache,
                samples=samples)
            for j, metrics in enumerate(per_rate):
                for key in METRIC_KEYS:
                    table[key][i, j] = metrics.get(key, math.nan)
        curves.values = table
        runs.append(curves)
    return RobustnessResult(corruption, dict(options or {}), seed, split, rates, description,
                            runs)


# -- reports ------------------------------------------------------------------------------------
def _num(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def rows_csv(result: RobustnessResult) -> str:
    """Return the per-rate CSV: run, rate, metric, mean, std, n, relative drop (%)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run", "path", "corruption", "split", "rate", "metric", "mean", "std", "n",
                     "drop_pct_mean", "drop_pct_std"])
    for run in result.runs:
        for key in METRIC_KEYS:
            stats, drops = run.stats(key), run.drops(key)
            for j, rate in enumerate(result.rates):
                mean, std, n = stats[j]
                d_mean, d_std, _ = mean_std(list(drops[:, j]))
                writer.writerow([run.label, str(run.path), result.corruption, result.split,
                                 f"{rate:g}", key, _num(mean), _num(std), n, _num(d_mean),
                                 _num(d_std)])
    return buffer.getvalue()


def auc_csv(result: RobustnessResult) -> str:
    """Return the summary CSV: run, metric, clean score, AUC and the drop at the top rate."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run", "path", "corruption", "split", "metric", "clean_mean", "auc_mean",
                     "auc_std", "n", "max_rate", "drop_at_max_pct_mean", "drop_at_max_pct_std"])
    for run in result.runs:
        for key in METRIC_KEYS:
            clean = run.stats(key)[0][0]
            a_mean, a_std, n = mean_std(list(run.aucs(key)))
            d_mean, d_std, _ = mean_std(list(run.drops(key)[:, -1]))
            writer.writerow([run.label, str(run.path), result.corruption, result.split, key,
                             _num(clean), _num(a_mean), _num(a_std), n,
                             f"{result.rates[-1]:g}", _num(d_mean), _num(d_std)])
    return buffer.getvalue()


def _cell(key: str, mean: float, std: float) -> str:
    text = format_cell(key, mean)
    return text if not math.isfinite(std) else f"{text} ± {format_cell(key, std)}"


def markdown(result: RobustnessResult) -> str:
    """Return the Markdown report: one table per metric (runs × rates, AUC, drop at max)."""
    options = ", ".join(f"{k}={v}" for k, v in result.options.items())
    top = f"{result.rates[-1]:g}"
    lines = [f"# Robustness to {result.corruption} ({result.split} split)", "",
             f"corruption: {result.description}", "",
             f"rates: {', '.join(f'{r:g}' for r in result.rates)}; corruption seed "
             f"{result.seed}" + (f"; options: {options}" if options else "")
             + "; mean ± std over each run's seeds (n); accuracies in %", "",
             "AUC: trapezoid area under the metric-vs-rate curve divided by the rate range. "
             f"Drop: relative loss from rate 0 at rate {top}, in % (MAE: increase), "
             "positive = worse.", ""]
    for run in result.runs:
        lines.append(f"- `{run.label}`: {run.path} ({len(run.seeds)} seed"
                     f"{'s' * (len(run.seeds) != 1)}: {', '.join(run.seeds)})")
    lines.append("")
    for key in SHOWN:
        note = " (lower is better)" if key in LOWER_IS_BETTER else ""
        lines += [f"## {key}{note}", "",
                  "| run | n | " + " | ".join(f"{r:g}" for r in result.rates)
                  + f" | AUC | drop at {top} (%) |",
                  "|---|---|" + "---|" * (len(result.rates) + 2)]
        for run in result.runs:
            cells = [_cell(key, mean, std) for mean, std, _ in run.stats(key)]
            a_mean, a_std, _ = mean_std(list(run.aucs(key)))
            d_mean, d_std, _ = mean_std(list(run.drops(key)[:, -1]))
            drop = "nan" if not math.isfinite(d_mean) else f"{d_mean:.1f}" + (
                f" ± {d_std:.1f}" if math.isfinite(d_std) else "")
            lines.append(f"| {run.label} | {len(run.seeds)} | " + " | ".join(cells)
                         + f" | {_cell(key, a_mean, a_std)} | {drop} |")
        lines.append("")
    return "\n".join(lines)


def to_json(result: RobustnessResult) -> dict:
    """Return everything as plain data (per-seed values included; NaN kept as NaN)."""
    return {"corruption": result.corruption, "options": result.options, "seed": result.seed,
            "split": result.split, "rates": result.rates, "description": result.description,
            "runs": [{"label": r.label, "path": str(r.path), "seeds": r.seeds,
                      "values": {k: v.tolist() for k, v in r.values.items()},
                      "auc": {k: r.aucs(k).tolist() for k in METRIC_KEYS},
                      "drop_pct": {k: r.drops(k).tolist() for k in METRIC_KEYS}}
                     for r in result.runs]}


def write_report(result: RobustnessResult, out_dir: Path) -> dict[str, Path]:
    """Write <name>.csv, <name>_auc.csv, <name>.md, <name>.json and <name>.png into `out_dir`
    atomically; return their paths by kind."""
    from mimsa.eval.plots import plot_robustness

    out_dir = Path(out_dir)
    name = result.corruption
    paths = {"csv": out_dir / f"{name}.csv", "auc": out_dir / f"{name}_auc.csv",
             "md": out_dir / f"{name}.md", "json": out_dir / f"{name}.json",
             "png": out_dir / f"{name}.png"}
    atomic_write_text(paths["csv"], rows_csv(result))
    atomic_write_text(paths["auc"], auc_csv(result))
    atomic_write_text(paths["md"], markdown(result))
    atomic_write_text(paths["json"], json.dumps(to_json(result), indent=1, allow_nan=True))
    plot_robustness(result, paths["png"])
    return paths
