"""A sweep's plan and its bookkeeping, shared by the backends.

`plan_runs` resolves and checks every run of the grids (config, model options, stages, the
dataset's name) before any run starts. A run lives in OUT/<name>, one seed per
OUT/<name>/seed-<s> (as `mimsa train --seeds` writes it), so whichever backend trained a seed,
the other finds it: a run with summary.csv is skipped, a finished seed (metrics.json, no
resume.pt) is kept, a seed directory with config.yaml resumes, any other seed starts. (A run
with summary.csv whose grid names a seed it lacks trains that seed and is summarised again.)

A kept seed or run is first compared with the grid: any setting of the run's resolved
configuration that differs from the one the kept seed was trained with (one the grid gives, or
one it no longer gives and that has returned to its default) makes the run fail with the list of
differences, so a changed grid never mixes old and new settings in one summary.

The backends report one `RunStatus` per run; `write_status` writes them to OUT/sweep.csv
(atomically) and `format_status` prints them as a table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mimsa import config as config_mod
from mimsa.atomic import atomic_write_text
from mimsa.data.registry import list_datasets
from mimsa.errors import ConfigError, MimsaError
from mimsa.eval.aggregate import write_seed_summary
from mimsa.sweep.grid import RunSpec, load_grid
from mimsa.train.checkpoint import RESUME
from mimsa.train.run import CONFIG, METRICS, check_run_config, read_run_config

SUMMARY = "summary.csv"
STATUS_FILE = "sweep.csv"
STATUS_COLUMNS = ("run", "status", "seeds_done", "seeds", "seconds", "error")
# Settings that may differ between the grid and a kept run without changing its results.
HARMLESS = ("data.root", "train.threads")


@dataclass
class PlannedRun:
    """One run of the sweep, resolved: its spec, full config, the explicitly given settings
    ({dotted key: value}, compared with a kept run's), its directory and torch thread count."""

    spec: RunSpec
    cfg: dict
    given: dict[str, Any]
    out: Path
    threads: int

    @property
    def name(self) -> str:
        """The run's name (its folder under OUT)."""
        return self.spec.name

    def seed_dir(self, seed: int) -> Path:
        """The run directory of one seed: OUT/<name>/seed-<seed>."""
        return self.out / f"seed-{seed}"

    def seed_cfg(self, seed: int) -> dict:
        """The config of one seed (the run's, with `seed` set)."""
        return {**self.cfg, "seed": int(seed)}


@dataclass
class RunStatus:
    """What became of one run: status is "done" (trained and summarised now), "skipped"
    (summary.csv was there), "failed" or "interrupted"; `error` is one line."""

    run: str
    status: str
    seeds_done: int
    seeds: int
    seconds: float = 0.0
    error: str = ""


def load_grids(paths: list[Path]) -> list[RunSpec]:
    """Return the runs of every grid file in `paths`, in order. A run name in two files with
    the same model, dataset, overrides and seeds is kept once; with different ones it is a
    `ConfigError` naming both files."""
    runs: dict[str, RunSpec] = {}
    for path in paths:
        for spec in load_grid(path):
            seen = runs.get(spec.name)
            if seen is None:
                runs[spec.name] = spec
            elif (seen.model, seen.dataset, seen.overrides, seen.seeds) != \
                    (spec.model, spec.dataset, spec.overrides, spec.seeds):
                raise ConfigError(f"grid {path}: run '{spec.name}' is also in grid {seen.grid} "
                                  f"with other settings; one name, one run: rename a label")
    return list(runs.values())


def plan_runs(specs: list[RunSpec], out: Path, data_root: Path | None = None
              ) -> list[PlannedRun]:
    """Return the planned runs of `specs` under `out`, each config resolved and checked.

    `data_root` adds `data.root=<its absolute path>` to every run (as `mimsa train --data-root`
    does). A dataset given as a path, and data.root, are stored as absolute paths.

    Raises:
        ConfigError: one line naming the grid file and run, for a bad override, model option,
            stage or dataset name; `out` is a file; a kept seed of a run was trained with
            other settings than the grid now gives (`check_kept`).
    """
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"--out {out}: {parent} is a file, not a folder; choose another "
                              f"--out")
    default_threads = torch.get_num_threads()
    known = {entry.name for entry in list_datasets()}
    planned = []
    for spec in specs:
        overrides = list(spec.overrides)
        if data_root is not None:
            overrides.append(f"data.root={Path(data_root).expanduser().resolve()}")
        try:
            cfg, sources = config_mod.resolve_with_sources(spec.model, spec.dataset, None,
                                                           overrides)
            check_run_config(cfg)
        except ConfigError as err:
            raise ConfigError(f"{spec.where()}: {err}") from None
        name = str(cfg["data"]["name"])
        if name not in known:
            if not Path(name).expanduser().exists():
                raise ConfigError(f"{spec.where()}: dataset '{name}' is neither a registered "
                                  f"dataset ({', '.join(sorted(known))}) nor an existing path")
            cfg["data"]["name"] = str(Path(name).expanduser().resolve())
        if cfg["data"]["root"] is not None:
            cfg["data"]["root"] = str(Path(cfg["data"]["root"]).expanduser().resolve())
        given = config_mod.explicit_values(cfg, sources)
        given.pop("seed", None)
        threads = int(cfg["train"].get("threads") or default_threads)
        planned.append(PlannedRun(spec, cfg, given, out / spec.name, threads))
    for run in planned:  # before any run starts: a kept seed trained with other settings
        problem = check_kept(run)
        if problem:
            raise ConfigError(problem)
    return planned


def seed_finished(seed_dir: Path) -> bool:
    """True when the seed's run is finished (metrics.json written, no resume state left)."""
    return (seed_dir / METRICS).is_file() and not (seed_dir / RESUME).is_file()


def seed_resumes(seed_dir: Path) -> bool:
    """True when the seed directory holds a started run (config.yaml) to continue."""
    return (seed_dir / CONFIG).is_file()


def settings_differ(seed_dir: Path, cfg: dict[str, Any]) -> str | None:
    """Return None when the kept run in `seed_dir` was trained with the resolved config `cfg`
    (every key compared, apart from `seed` and the `HARMLESS` ones), else one line listing the
    differences. Comparing every key, not only those the grid gives, also catches a setting
    dropped from the grid (back to its default) since the seed was trained."""
    try:
        saved = read_run_config(seed_dir)
    except MimsaError as err:
        return str(err)
    want, have = _flatten(cfg), _flatten(saved)
    # a key added to mimsa after the run was trained: the run had its default (a default
    # empty section, e.g. `objectives: {}`, is no key of its own where the run filled it)
    for key, value in _flatten(config_mod.DEFAULTS).items():
        if not any(k == key or k.startswith(key + ".") for k in have):
            have[key] = value
    differ = []
    for key in [*want, *(k for k in have if k not in want)]:
        if key in HARMLESS or key == "seed":
            continue
        if want.get(key) != have.get(key):
            differ.append(f"{key}: run {_short(have.get(key))}, grid {_short(want.get(key))}")
    if not differ:
        return None
    return (f"{seed_dir} was trained with other settings ({'; '.join(differ)}); delete the run "
            f"folder to train it again, or use another --out")


def check_kept(run: PlannedRun) -> str | None:
    """Return None when every finished or started seed of `run` agrees with the grid, else
    the first difference (one line)."""
    for seed in run.spec.seeds:
        seed_dir = run.seed_dir(seed)
        if seed_finished(seed_dir) or seed_resumes(seed_dir):
            problem = settings_differ(seed_dir, run.cfg)
            if problem:
                return problem
    return None


def run_finished(run: PlannedRun) -> bool:
    """True when the run has its summary.csv and every seed of the grid is finished (a grid
    given more seeds since trains the new ones and writes the summary again)."""
    return (run.out / SUMMARY).is_file() and all(seed_finished(run.seed_dir(s))
                                                 for s in run.spec.seeds)


def read_metrics(seed_dir: Path) -> dict:
    """Return the metrics.json content of a finished seed."""
    return json.loads((seed_dir / METRICS).read_text(encoding="utf-8"))


def summarise(run: PlannedRun) -> int:
    """Write the run's summary.csv/.md when every seed is finished; return the seeds done."""
    done = [s for s in run.spec.seeds if seed_finished(run.seed_dir(s))]
    if len(done) == len(run.spec.seeds):
        write_seed_summary(run.out, run.cfg, {s: read_metrics(run.seed_dir(s)) for s in done})
    return len(done)


def one_line(err: BaseException) -> str:
    """Return an error as one line: a `MimsaError`'s message, else "Type: message" (a bug)."""
    if isinstance(err, MimsaError):
        text = str(err.args[0] if err.args else err)
    else:
        text = f"{type(err).__name__}: {err}"
    return " ".join(text.split())


def write_status(out: Path, rows: list[RunStatus]) -> Path:
    """Write the status table to OUT/sweep.csv atomically; return its path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(STATUS_COLUMNS)
    for row in rows:
        writer.writerow([row.run, row.status, row.seeds_done, row.seeds,
                         f"{row.seconds:.1f}", row.error])
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out / STATUS_FILE, buffer.getvalue())


def format_status(rows: list[RunStatus]) -> str:
    """Return the status table as aligned text: run, status, seeds done, seconds, error."""
    header = ("run", "status", "seeds", "seconds", "error")
    lines = [(r.run, r.status, f"{r.seeds_done}/{r.seeds}",
              "" if math.isclose(r.seconds, 0.0) else f"{r.seconds:.0f}", r.error)
             for r in rows]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(4)]
    text = []
    for line in [header, *lines]:
        cells = [cell.ljust(width) for cell, width in zip(line[:4], widths, strict=True)]
        text.append("  ".join([*cells, line[4]]).rstrip())
    return "\n".join(text)


def _flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """Return {dotted key: value} of a nested config; lists and empty mappings are values."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
