"""The local backend: the sweep's runs one after another in this process.

One `EncoderCache` serves every run, so a frozen text encoder encodes each transcript once for
the whole sweep (per dataset), as a multi-seed `mimsa train` does for its seeds. Every seed is
trained with `torch.set_num_threads(run.threads)` (train.threads, else this process's torch
default: $OMP_NUM_THREADS or the cores), the count the Ray backend's trials use too, so both
give the same numbers. A seed that fails is reported and the sweep goes on (with the run's
other seeds and the other runs); Ctrl-C stops it, and a re-run continues where it stopped.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable

import torch

from mimsa.encoders.cache import EncoderCache
from mimsa.errors import MimsaError, raised_by_interrupt
from mimsa.sweep.plan import (
    PlannedRun,
    RunStatus,
    check_kept,
    one_line,
    run_finished,
    seed_finished,
    seed_resumes,
    summarise,
)
from mimsa.train.run import train_run


def run_local(runs: list[PlannedRun], report: Callable[[str], None] = print
              ) -> tuple[list[RunStatus], bool]:
    """Train `runs` in order; return (one status per run, whether Ctrl-C stopped the sweep).

    After an interrupt the run in progress is "interrupted" and the runs not reached are
    "pending". `report` receives one progress line per seed and per run.
    """
    cache = EncoderCache()
    rows: list[RunStatus] = []
    for index, run in enumerate(runs):
        started = time.perf_counter()
        try:
            rows.append(train_planned(run, cache, report))
        except KeyboardInterrupt:
            done = sum(seed_finished(run.seed_dir(s)) for s in run.spec.seeds)
            rows.append(RunStatus(run.name, "interrupted", done, len(run.spec.seeds),
                                  time.perf_counter() - started,
                                  "stopped by Ctrl-C; re-run the sweep to continue"))
            rows += [RunStatus(r.name, "pending", sum(seed_finished(r.seed_dir(s))
                                                      for s in r.spec.seeds), len(r.spec.seeds))
                     for r in runs[index + 1:]]
            return rows, True
    return rows, False


def train_planned(run: PlannedRun, cache: EncoderCache | None = None,
                  report: Callable[[str], None] = print) -> RunStatus:
    """Train the unfinished seeds of one run (finished ones kept, started ones resumed), then
    write its summary when every seed is finished; return its status."""
    started = time.perf_counter()
    total = len(run.spec.seeds)
    problem = check_kept(run)
    if problem:
        done = sum(seed_finished(run.seed_dir(s)) for s in run.spec.seeds)
        report(f"{time.strftime('%H:%M:%S')} {run.name} failed: {problem}")
        return RunStatus(run.name, "failed", done, total, 0.0, problem)
    if run_finished(run):
        return RunStatus(run.name, "skipped", total, total)
    errors = []
    for seed in run.spec.seeds:
        seed_dir = run.seed_dir(seed)
        if seed_finished(seed_dir):
            continue
        resume = seed_resumes(seed_dir)
        report(f"{time.strftime('%H:%M:%S')} {run.name} seed {seed}"
               f"{' (resumed)' if resume else ''}")
        torch.set_num_threads(run.threads)
        try:
            train_run(run.seed_cfg(seed), seed_dir, resume=resume, cache=cache,
                      given=run.given)
        except Exception as err:  # a failed seed is reported; the sweep goes on
            if raised_by_interrupt(err):
                raise KeyboardInterrupt from err
            if not isinstance(err, MimsaError):
                traceback.print_exc(file=sys.stderr)
            errors.append(f"seed {seed}: {one_line(err)}")
            report(f"{time.strftime('%H:%M:%S')} {run.name} seed {seed} failed: "
                   f"{one_line(err)}")
    return finish(run, errors, time.perf_counter() - started, report)


def finish(run: PlannedRun, errors: list[str], seconds: float,
           report: Callable[[str], None] = print) -> RunStatus:
    """Summarise `run` if all its seeds are finished; return its status with `errors`."""
    total = len(run.spec.seeds)
    try:
        done = summarise(run)
    except (MimsaError, OSError) as err:
        errors.append(f"summary: {one_line(err)}")
        done = sum(seed_finished(run.seed_dir(s)) for s in run.spec.seeds)
    if errors or done < total:
        error = errors[0] if errors else f"{total - done} seed(s) not finished"
        if len(errors) > 1:
            error += f" (and {len(errors) - 1} more failed seed(s))"
        report(f"{time.strftime('%H:%M:%S')} {run.name} failed ({done}/{total} seeds)")
        return RunStatus(run.name, "failed", done, total, seconds, error)
    report(f"{time.strftime('%H:%M:%S')} {run.name} done in {seconds:.0f} s")
    return RunStatus(run.name, "done", done, total, seconds)
