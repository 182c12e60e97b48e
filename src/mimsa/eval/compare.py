"""Compare finished runs: mean ± std per run, paired differences to a reference, a paired t-test
over seeds and a paired bootstrap over test samples.

    mimsa compare RUN_A RUN_B ... [--metrics MAE Corr ...] [--draws 10000] [--seed 0]
        [--split test] [--out FILE.md] [--csv FILE.csv]

A RUN is a multi-seed run directory (seed-*/metrics.json, and seed-*/predictions.csv with the
columns id,label,prediction,split) or a single-seed one (metrics.json directly); the first RUN
is the reference. For every metric:

  mean ± std     over each run's finished seeds, from metrics.json (sample std, ddof 1), n
  difference     other − reference per shared seed, then mean ± std over those seeds
  t-test p       paired t-test over the shared seeds (scipy.stats.ttest_rel, two-sided; 1 when
                 every difference is 0): does the difference hold across training seeds?
  bootstrap      D paired resamples of the split's samples (seeded; the same resampled indices
                 for every run and every seed); per draw, each metric is recomputed from
                 predictions.csv for both runs per shared seed and the per-seed differences are
                 averaged. Reported: the 95% percentile interval of that mean difference and the
                 two-sided p = min(1, 2 · min(#{d ≤ 0} + 1, #{d ≥ 0} + 1) / (D + 1)): does the
                 difference hold across test samples, for these trained models?
  Holm           with more than two runs, each metric's p-values (per test) adjusted over the
                 comparisons with the reference (Holm 1979)

Runs without predictions.csv (e.g. the kept metrics of bench/results) get everything but the
bootstrap, whose cells then say "no predictions". Runs scored on different sample ids or with a
different label for an id are refused (the bootstrap pairs samples by id).
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

from mimsa.atomic import atomic_write_files
from mimsa.errors import ConfigError, DataError, RunError
from mimsa.eval.aggregate import mean_std
from mimsa.eval.significance import (
    bootstrap_p,
    draw_blocks,
    holm,
    paired_t_p,
    percentile_interval,
    weighted_metrics,
)
from mimsa.metrics import LOWER_IS_BETTER, METRIC_KEYS

# The file names of a run directory (as in mimsa.train.run, not imported from there: that
# module loads torch, which comparing JSON and CSV files does not need).
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
SPLITS = ("valid", "test")
DEFAULT_METRICS = ("MAE", "Corr", "Has0_acc_2", "Non0_acc_2", "Non0_F1_score", "Mult_acc_7")
"""The columns of the paired tables in BENCHMARKS.md; `--metrics` takes any of METRIC_KEYS."""
NO_PREDICTIONS = "no predictions"
_LABEL_TOLERANCE = 1e-9


@dataclass
class Run:
    """A finished run as compared: `metrics` {seed: {metric: value}} of the chosen split and
    `predictions` {seed: predictions.csv path} for the seeds that have one."""

    path: Path
    label: str
    metrics: dict[int, dict[str, float]]
    predictions: dict[int, Path]


@dataclass
class Paired:
    """One run × metric against the reference (raw units: fractions, not percent)."""

    run: str
    metric: str
    seeds: list[int]
    diff_mean: float
    diff_std: float
    t_p: float
    boot_seeds: list[int] = field(default_factory=list)
    boot_observed: float = math.nan
    boot_low: float = math.nan
    boot_high: float = math.nan
    boot_p: float = math.nan
    t_p_holm: float = math.nan
    boot_p_holm: float = math.nan
    note: str = ""


@dataclass
class Comparison:
    """Everything `render_markdown` and `render_csv` show."""

    runs: list[Run]
    metrics: list[str]
    split: str
    draws: int
    seed: int
    n_samples: int | None
    paired: list[Paired]


def valid_metrics_text() -> str:
    """Return the metric names `--metrics` accepts, comma-separated."""
    return ", ".join(METRIC_KEYS)


def check_metrics(metrics: list[str]) -> list[str]:
    """Return `metrics` without repeats (default: DEFAULT_METRICS when empty); raise
    ConfigError naming an unknown one and listing the valid names."""
    chosen = list(dict.fromkeys(metrics)) or list(DEFAULT_METRICS)
    for name in chosen:
        if name not in METRIC_KEYS:
            raise ConfigError(f"--metrics {name}: not a metric mimsa computes; valid metrics: "
                              f"{valid_metrics_text()}")
    return chosen


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read it as JSON ({err}); re-run or re-copy the "
                        f"run") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a mimsa metrics file (expected a JSON object)")
    return data


def _split_metrics(path: Path, data: dict, split: str, metrics: list[str]) -> dict[str, float]:
    values = data.get(split)
    if not isinstance(values, dict):
        raise DataError(f"{path}: no '{split}' metrics; choose --split from "
                        f"{', '.join(SPLITS)}")
    missing = [m for m in metrics if m not in values]
    if missing:
        raise DataError(f"{path}: no metric '{missing[0]}' under '{split}'; leave it out of "
                        f"--metrics (valid metrics: {valid_metrics_text()})")
    out = {}
    for m in metrics:
        value = values[m]
        out[m] = math.nan if value is None else float(value)
    return out


def read_run(path: Path, split: str, metrics: list[str], label: str | None = None) -> Run:
    """Return the finished seeds of the run directory `path` (multi- or single-seed).

    Raises RunError (one line) when `path` is missing, a file, or holds no finished seed, and
    DataError for a metrics.json without the split, a metric or its seed. Unfinished seed
    directories (no metrics.json) are left out with a warning.
    """
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunError(f"{path} is a file, not a run directory; give a directory holding "
                       f"metrics.json or seed-*/metrics.json")
    single = path / METRICS_FILE
    seed_dirs = [path] if single.is_file() else sorted(p for p in path.glob("seed-*")
                                                       if p.is_dir())
    finished = [d for d in seed_dirs if (d / METRICS_FILE).is_file()]
    if not finished:
        raise RunError(f"{path}: no finished seed (no metrics.json nor seed-*/metrics.json); "
                       f"give a finished mimsa run directory")
    if len(finished) < len(seed_dirs):
        unfinished = ", ".join(d.name for d in seed_dirs if d not in finished)
        warnings.warn(f"{path}: left out the unfinished seed(s) {unfinished} (no metrics.json)",
                      UserWarning, stacklevel=2)
    runs: dict[int, dict[str, float]] = {}
    predictions: dict[int, Path] = {}
    for seed_dir in finished:
        file = seed_dir / METRICS_FILE
        data = _read_json(file)
        seed = data.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise DataError(f"{file}: no integer 'seed'; it is not a mimsa metrics file")
        if seed in runs:
            raise DataError(f"{file}: seed {seed} appears twice in {path}; keep one copy")
        runs[seed] = _split_metrics(file, data, split, metrics)
        if (seed_dir / PREDICTIONS_FILE).is_file():
            predictions[seed] = seed_dir / PREDICTIONS_FILE
    return Run(path=path, label=label or path.name, metrics=dict(sorted(runs.items())),
               predictions=predictions)


def read_predictions(path: Path, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Return (ids, labels [N], predictions [N]) of the `split` rows of a predictions.csv.

    Raises DataError (one line, naming the file and the sample id) for missing columns, a
    non-numeric or non-finite value, an id given twice, or no row of `split`.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read it ({err})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("id", "label", "prediction", "split")
               if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: no column '{missing[0]}'; a predictions.csv has the columns "
                        f"id,label,prediction,split")
    ids: list[str] = []
    labels: list[float] = []
    preds: list[float] = []
    seen: set[str] = set()
    for row in reader:
        if row["split"] != split:
            continue
        sample = row["id"]
        if sample in seen:
            raise DataError(f"{path}: sample id '{sample}' appears twice in the {split} rows")
        seen.add(sample)
        try:
            label, pred = float(row["label"]), float(row["prediction"])
        except (TypeError, ValueError):
            raise DataError(f"{path}: sample '{sample}' has a non-numeric label or "
                            f"prediction") from None
        if not (math.isfinite(label) and math.isfinite(pred)):
            raise DataError(f"{path}: sample '{sample}' has a non-finite label or prediction")
        ids.append(sample)
        labels.append(label)
        preds.append(pred)
    if not ids:
        raise DataError(f"{path}: no rows of the {split} split")
    return ids, np.asarray(labels), np.asarray(preds)


def _first_difference(reference: list[str], other: list[str]) -> tuple[str, str]:
    """Return (id, where) of the first id in one list but not the other."""
    ref_set, other_set = set(reference), set(other)
    for sample in reference:
        if sample not in other_set:
            return sample, "missing there"
    for sample in other:
        if sample not in ref_set:
            return sample, "not in the reference"
    raise AssertionError("the id lists do not differ")  # pragma: no cover


def aligned_predictions(files: dict[tuple[int, int], Path], split: str
                        ) -> tuple[list[str], np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """Read predictions.csv files and join them on sample id.

    `files` maps (run index, seed) → path; the first file sets the id order. Returns (ids,
    labels [N], {key: predictions [N] in that order}). Raises DataError naming the file and
    the first differing id when a file covers other ids, or a different label for an id.
    """
    ids: list[str] = []
    labels = np.empty(0)
    reference = Path()
    out: dict[tuple[int, int], np.ndarray] = {}
    for key, path in files.items():
        these, y, p = read_predictions(path, split)
        if not ids:
            ids, labels, reference = these, y, path
            position = {sample: i for i, sample in enumerate(ids)}
            out[key] = p
            continue
        if len(these) != len(ids) or set(these) != set(position):
            sample, where = _first_difference(ids, these)
            raise DataError(f"{path}: its {split} samples differ from those of {reference} "
                            f"(first differing id '{sample}', {where}); compare runs scored on "
                            f"the same {split} samples")
        order = np.asarray([position[s] for s in these])
        y_here = np.empty_like(y)
        y_here[order] = y
        p_here = np.empty_like(p)
        p_here[order] = p
        bad = np.flatnonzero(np.abs(y_here - labels) > _LABEL_TOLERANCE)
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{path}: sample '{ids[i]}' has label {y_here[i]:g} but "
                            f"{labels[i]:g} in {reference}; compare runs trained on the same "
                            f"labels")
        out[key] = p_here
    return ids, labels, out


def _bootstrap(runs: list[Run], split: str, draws: int, seed: int, paired: list[Paired],
               metrics: list[str]) -> int | None:
    """Fill the bootstrap fields of `paired` in place; return the number of samples (None
    when no comparison has predictions)."""
    reference = runs[0]
    seeds_of: dict[int, list[int]] = {}
    for i, run in enumerate(runs[1:], start=1):
        seeds_of[i] = sorted(set(run.predictions) & set(reference.predictions)
                             & set(run.metrics) & set(reference.metrics))
    files: dict[tuple[int, int], Path] = {}
    for i, seeds in seeds_of.items():
        for s in seeds:
            files.setdefault((0, s), reference.predictions[s])
            files[(i, s)] = runs[i].predictions[s]
    if not files:
        for row in paired:
            row.note = row.note or NO_PREDICTIONS
        return None
    _, labels, preds = aligned_predictions(files, split)
    keys = list(files)
    stacked = np.stack([preds[k] for k in keys])
    n = labels.size
    observed = weighted_metrics(labels, stacked, np.ones((1, n)))
    per_key: list[dict[str, list[np.ndarray]]] = [{m: [] for m in metrics} for _ in keys]
    for weights in draw_blocks(n, draws, seed):
        block = weighted_metrics(labels, stacked, weights)
        for k, values in enumerate(block):
            for m in metrics:
                per_key[k][m].append(values[m])
    samples = {key: {m: np.concatenate(per_key[k][m]) for m in metrics}
               for k, key in enumerate(keys)}
    observed_of = {key: observed[k] for k, key in enumerate(keys)}
    index = {r.label: i for i, r in enumerate(runs)}
    for row in paired:
        i = index[row.run]
        seeds = seeds_of[i]
        if not seeds:
            row.note = row.note or NO_PREDICTIONS
            continue
        d = np.mean([samples[(i, s)][row.metric] - samples[(0, s)][row.metric]
                     for s in seeds], axis=0)
        row.boot_seeds = seeds
        row.boot_observed = float(np.mean([observed_of[(i, s)][row.metric][0]
                                           - observed_of[(0, s)][row.metric][0]
                                           for s in seeds]))
        row.boot_low, row.boot_high = percentile_interval(d)
        row.boot_p = bootstrap_p(d)
        if seeds != row.seeds:
            row.note = f"bootstrap over {len(seeds)} of {len(row.seeds)} seeds"
    return n


def compare(paths: list[Path], metrics: list[str] | None = None, *, split: str = "test",
            draws: int = 10_000, seed: int = 0, labels: list[str] | None = None) -> Comparison:
    """Compare the runs in `paths` with the first one (the reference); see the module doc.

    Returns a `Comparison` (values in raw units: fractions, not percent). Raises ConfigError
    for fewer than two runs, an unknown metric or split, draws < 1 or a label count that does
    not match; RunError / DataError (one line) for a path that is not a finished run, and for
    predictions that cannot be paired (other sample ids, other labels).
    """
    if len(paths) < 2:
        raise ConfigError("give at least two runs: mimsa compare REFERENCE_RUN OTHER_RUN ...")
    if split not in SPLITS:
        raise ConfigError(f"--split {split}: choose one of {', '.join(SPLITS)} (metrics.json "
                          f"holds those)")
    if draws < 1:
        raise ConfigError(f"--draws {draws}: give a positive number of bootstrap draws "
                          f"(default 10000)")
    metrics = check_metrics(list(metrics or []))
    if labels and len(labels) != len(paths):
        raise ConfigError(f"--label is given {len(labels)} time(s) for {len(paths)} runs; give "
                          f"one label per run, in order, or none")
    names = list(labels) if labels else [Path(p).name for p in paths]
    if not labels and len(set(names)) < len(names):
        names = [str(p) for p in paths]
    if len(set(names)) < len(names):  # the same run twice: number the repeats
        names = [f"{name} ({i + 1})" for i, name in enumerate(names)]
    runs = [read_run(Path(p), split, metrics, name)
            for p, name in zip(paths, names, strict=True)]
    reference = runs[0]
    paired: list[Paired] = []
    for run in runs[1:]:
        seeds = sorted(set(run.metrics) & set(reference.metrics))
        for m in metrics:
            diff = [run.metrics[s][m] - reference.metrics[s][m] for s in seeds]
            mean, std, _ = mean_std(diff)
            p = paired_t_p([run.metrics[s][m] for s in seeds],
                           [reference.metrics[s][m] for s in seeds])
            paired.append(Paired(run=run.label, metric=m, seeds=seeds, diff_mean=mean,
                                 diff_std=std, t_p=p,
                                 note="" if seeds else "no shared seeds"))
    n_samples = _bootstrap(runs, split, draws, seed, paired, metrics)
    for m in metrics:
        rows = [r for r in paired if r.metric == m]
        for attr in ("t_p", "boot_p"):
            for row, adjusted in zip(rows, holm([getattr(r, attr) for r in rows]), strict=True):
                setattr(row, f"{attr}_holm", adjusted)
    return Comparison(runs=runs, metrics=metrics, split=split, draws=draws, seed=seed,
                      n_samples=n_samples, paired=paired)


def _scale(metric: str) -> tuple[float, int]:
    """Return (factor, decimals) of a metric's display: percent with 2 decimals for accuracies
    and F1, raw with 3 decimals for MAE and Corr (as bench tables and summary.md)."""
    return (100.0, 2) if ("acc" in metric or "F1" in metric) else (1.0, 3)


def _value(metric: str, value: float, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    factor, digits = _scale(metric)
    return f"{factor * value:{'+' if sign else ''}.{digits}f}"


def _mean_std(metric: str, mean: float, std: float, n: int, sign: bool = False) -> str:
    if n == 0:
        return "–"
    if n == 1 or not math.isfinite(std):
        return _value(metric, mean, sign)
    return f"{_value(metric, mean, sign)} ± {_value(metric, std)}"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def render_markdown(result: Comparison) -> str:
    """Return the comparison as Markdown: a mean ± std table, the paired table, and notes."""
    ref = result.runs[0]
    many = len(result.runs) > 2
    lines = [f"# Comparison on the {result.split} split", "",
             f"Reference: {ref.label} ({ref.path}).", "",
             "Mean ± sample std (ddof 1) over each run's seeds (n); accuracies and F1 in "
             "percent:", ""]
    header = "| run | n | " + " | ".join(result.metrics) + " |"
    lines += [header, "|" + "---|" * (len(result.metrics) + 2)]
    for run in result.runs:
        cells = []
        for m in result.metrics:
            mean, std, n = mean_std([v[m] for v in run.metrics.values()])
            cells.append(_mean_std(m, mean, std, n))
        lines.append(f"| {run.label} | {len(run.metrics)} | " + " | ".join(cells) + " |")
    lines += ["", f"Paired differences to {ref.label} (other − reference; accuracies and F1 in "
              f"percentage points):", ""]
    columns = ["run", "metric", "n", "difference", "t-test p", "bootstrap 95% interval",
               "bootstrap p"]
    if many:
        columns += ["t-test p (Holm)", "bootstrap p (Holm)"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in result.paired:
        if not row.boot_seeds:
            interval, boot = row.note or NO_PREDICTIONS, "–"
        else:
            interval = (f"[{_value(row.metric, row.boot_low, True)}, "
                        f"{_value(row.metric, row.boot_high, True)}]")
            boot = _p(row.boot_p)
            if row.note:
                interval += f" ({row.note})"
        cells = [row.run, row.metric, str(len(row.seeds)),
                 _mean_std(row.metric, row.diff_mean, row.diff_std, len(row.seeds), True),
                 _p(row.t_p), interval, boot]
        if many:
            cells += [_p(row.t_p_holm), _p(row.boot_p_holm)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_notes(result)]
    return "\n".join(lines) + "\n"


def _notes(result: Comparison) -> list[str]:
    notes = [
        "- difference: mean ± sample std over the n seeds both runs have, from metrics.json.",
        "- t-test: paired t-test over those seeds (scipy.stats.ttest_rel, two-sided; p = 1 when "
        "every difference is 0, none with n < 2). It asks whether the difference holds across "
        "training seeds; with 5 seeds only large, consistent differences reach p < 0.05.",
    ]
    if result.n_samples is not None:
        notes.append(
            f"- bootstrap: {result.draws} paired resamples of the {result.n_samples} "
            f"{result.split} samples (seed {result.seed}; the same resamples for every run and "
            f"seed); each metric is recomputed from predictions.csv per shared seed and the "
            f"per-seed differences are averaged; 95% percentile interval, two-sided p = "
            f"min(1, 2·min(#{{d ≤ 0}} + 1, #{{d ≥ 0}} + 1) / (draws + 1)). It asks whether the "
            f"difference holds across test samples for these trained models (not for new "
            f"trainings).")
    missing = [r.label for r in result.runs if not r.predictions]
    if missing:
        notes.append(f"- no predictions: {', '.join(missing)} "
                     f"{'has' if len(missing) == 1 else 'have'} no predictions.csv (e.g. kept "
                     f"metrics only), so the bootstrap is left out where "
                     f"{'it is' if len(missing) == 1 else 'they are'} involved; the t-test "
                     f"needs only metrics.json.")
    if len(result.runs) > 2:
        k = len(result.runs) - 1
        notes.append(
            f"- multiple comparisons: {k} runs are compared with the reference, so some small "
            f"p-values arise by chance alone; the Holm columns adjust each metric's p-values "
            f"(per test) over these {k} comparisons (family-wise error); reading several "
            f"metrics at once adds further multiplicity.")
    lower = [m for m in result.metrics if m in LOWER_IS_BETTER]
    if lower:
        notes.append(f"- {', '.join(lower)}: lower is better, so a positive difference means "
                     f"the other run is worse.")
    return notes


CSV_COLUMNS = ("run", "path", "reference", "metric", "n", "mean", "std", "paired_n",
               "diff_mean", "diff_std", "t_p", "t_p_holm", "boot_n", "boot_draws",
               "boot_observed", "boot_low", "boot_high", "boot_p", "boot_p_holm", "note")


def render_csv(result: Comparison) -> str:
    """Return one CSV row per run × metric (raw units: fractions, not percent); the paired
    and bootstrap columns are empty for the reference and where not computed."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    ref = result.runs[0]
    by_key = {(r.run, r.metric): r for r in result.paired}

    def num(value: float) -> str:
        return "" if value is None or not math.isfinite(value) else repr(float(value))

    for run in result.runs:
        for m in result.metrics:
            mean, std, n = mean_std([v[m] for v in run.metrics.values()])
            row = {"run": run.label, "path": str(run.path), "reference": ref.label, "metric": m,
                   "n": n, "mean": num(mean), "std": num(std)}
            pair = by_key.get((run.label, m)) if run is not ref else None
            if pair is not None:
                has_boot = bool(pair.boot_seeds)
                row.update(paired_n=len(pair.seeds), diff_mean=num(pair.diff_mean),
                           diff_std=num(pair.diff_std), t_p=num(pair.t_p),
                           t_p_holm=num(pair.t_p_holm),
                           boot_n=len(pair.boot_seeds),
                           boot_draws=result.draws if has_boot else "",
                           boot_observed=num(pair.boot_observed), boot_low=num(pair.boot_low),
                           boot_high=num(pair.boot_high), boot_p=num(pair.boot_p),
                           boot_p_holm=num(pair.boot_p_holm), note=pair.note)
            writer.writerow(row)
    return buffer.getvalue()


def check_output_file(path: Path, option: str) -> None:
    """Raise ConfigError when the output file `path` is a folder or lies under a file."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{option} {path}: {parent} is a file, not a folder; choose "
                              f"another path")


def write_comparison(result: Comparison, markdown: Path | None, table: Path | None
                     ) -> list[Path]:
    """Write the Markdown (`markdown`) and CSV (`table`) files given, together and atomically;
    return their paths."""
    writes = []
    if markdown is not None:
        text = render_markdown(result).encode()
        writes.append((Path(markdown), lambda tmp, data=text: tmp.write_bytes(data)))
    if table is not None:
        data = render_csv(result).encode()
        writes.append((Path(table), lambda tmp, data=data: tmp.write_bytes(data)))
    return atomic_write_files(writes) if writes else []
