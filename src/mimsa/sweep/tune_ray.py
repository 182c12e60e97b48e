"""`mimsa tune --backend ray`: the study's trials as Ray Tune trials (see `mimsa.sweep.tune`).

Ray Tune runs the trials; `ray.tune.search.optuna.OptunaSearch` is the search algorithm, on the
same Optuna study and storage as the local backend (a study may be continued by either). Each
trial is a normal mimsa run in `<OUT>/trials/trial-<number>` (the Optuna trial number travels
with the sampled values) that reports its validation metric after every epoch with
`ray.tune.report({"objective": value, "epoch": epoch})` and, once trained, the selected
checkpoint's value (`"final": True`), which the study records.

Pruning: OptunaSearch creates the study with a no-op pruner and would record a trial that Ray
stops as COMPLETE with its last value. Here a small Ray scheduler reports each epoch's value to
the Optuna trial and asks the study's pruner (the same median pruner as the local backend);
when it prunes, Ray stops the trial and the study records it as PRUNED. A stopped trial's
folder is an interrupted run, as with the local backend. The driver holds each trial's
`trials/trial-<n>.lock` until the study is told its result, so a driver killed mid-study
leaves trials that the next `mimsa tune` marks FAIL.

When this process has not called `ray.init` yet, it connects to the cluster named by
$RAY_ADDRESS, else starts a local one of `--jobs` CPUs, and shuts Ray down at the end; `--jobs`
trials run at once. Trials on other machines need OUT and the data on a shared file system.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mimsa.errors import RunError
from mimsa.sweep.tune import (
    TRIAL_KEY,
    Param,
    TrialLock,
    TuneRequest,
    count_finished,
    run_trial,
    write_tables,
)

_WORKER: dict[str, Any] = {}  # per Ray worker process: one EncoderCache for its trials


def _ray_trial(config: dict, request: TuneRequest, metric: str) -> None:
    """The Ray Tune trainable of one trial (runs in a Ray worker)."""
    from ray import tune as ray_tune
    from ray.tune.utils import flatten_dict

    from mimsa.encoders.cache import EncoderCache

    config = dict(config)
    number = int(config.pop(TRIAL_KEY))
    params = flatten_dict(config, delimiter="/")  # Ray nests keys at "/" (stage/term weights)
    cache = _WORKER.setdefault("cache", EncoderCache())

    def report(epoch: int, value: float) -> None:
        ray_tune.report({"objective": value, "epoch": epoch})

    value = run_trial(request, number, params, metric, report, cache)
    ray_tune.report({"objective": value, "final": True})


def _classes():
    """Return (searcher class, scheduler class); defined here so that mimsa imports without
    Ray."""
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search.optuna import OptunaSearch

    class StudySearch(OptunaSearch):
        """OptunaSearch that passes the trial number, holds the trial locks, records pruned
        trials as PRUNED and calls `after_trial(frozen_trial)` once a trial is told."""

        def __init__(self, *args, out: Path, pruner, after_trial: Callable[[Any], None],
                     seed: int, **kwargs) -> None:
            super().__init__(*args, sampler=TPESampler(seed=seed), **kwargs)
            self._ot_study.pruner = pruner
            self._seed_base = seed
            self._out, self._after_trial = out, after_trial
            self._locks: dict[str, TrialLock] = {}
            self._pruned: set[str] = set()

        def suggest(self, trial_id: str) -> dict | None:
            # seeded per trial as the local backend does: the same values for the same number
            trials = len(self._ot_study.get_trials(deepcopy=False))
            self._ot_study.sampler = TPESampler(seed=self._seed_base + trials)
            params = super().suggest(trial_id)
            number = self._ot_trials[trial_id].number
            lock = TrialLock(self._out, number)
            if not lock.acquire():  # cannot happen: trial numbers are unique within a study
                raise RunError(f"{lock.path} is held by another process")
            self._locks[trial_id] = lock
            return {**params, TRIAL_KEY: number}

        def prune(self, trial_id: str, result: dict) -> bool:
            """Report an epoch's value to the Optuna trial; return True to prune it."""
            if result.get("final") or "epoch" not in result:
                return False
            trial = self._ot_trials[trial_id]
            trial.report(float(result[self.metric]), int(result["epoch"]))
            if trial.should_prune():
                self._pruned.add(trial_id)
                return True
            return False

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            """Nothing: the scheduler reported the value already (`prune`)."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            try:
                if trial_id in self._pruned and trial_id not in self._completed_trials:
                    self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
                    self._completed_trials.add(trial_id)
                else:
                    super().on_trial_complete(trial_id, result, error)
            finally:
                lock = self._locks.pop(trial_id, None)
                if lock is not None:
                    lock.release()
            if trial_id in self._ot_trials:
                number = self._ot_trials[trial_id].number
                frozen = [t for t in self._ot_study.get_trials(deepcopy=False)
                          if t.number == number]
                if frozen:
                    self._after_trial(frozen[0])

        def save(self, checkpoint_path: str) -> None:
            """Nothing: the study lives in its database (Ray experiment restore is not used)."""

    class PruningScheduler(FIFOScheduler):
        """FIFO scheduling that stops a trial when the study's pruner prunes it."""

        def __init__(self, searcher: StudySearch) -> None:
            super().__init__()
            self.searcher = searcher

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            if self.searcher.prune(trial.trial_id, result):
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    return StudySearch, PruningScheduler


def run_ray(study, storage, request: TuneRequest, space: list[Param], settings: dict, pruner,
            on_trial: Callable[[Any], None] | None) -> list[str]:
    """Run Ray Tune rounds until the study holds `request.trials` finished trials; return
    notes (failed trials). Raises RunError when a round finishes no trial."""
    import ray
    from ray import tune as ray_tune

    StudySearch, PruningScheduler = _classes()
    request = dataclasses.replace(request, out=Path(request.out).resolve())
    started = not ray.is_initialized()
    if started:  # a running cluster named by RAY_ADDRESS, else a local one of --jobs CPUs
        cpus = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": request.jobs}
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 **cpus)
    notes: list[str] = []

    def after_trial(frozen) -> None:
        write_tables(study, request, space, settings)
        if on_trial is not None:
            on_trial(frozen)

    try:
        while (remaining := request.trials - count_finished(study)) > 0:
            before = count_finished(study)
            searcher = StudySearch(
                {p.key: p.distribution() for p in space}, metric="objective",
                mode="min" if settings["direction"] == "minimize" else "max", seed=request.seed,
                study_name=request.study_name, storage=storage, out=request.out,
                pruner=pruner, after_trial=after_trial)
            trainable = ray_tune.with_parameters(_ray_trial, request=request,
                                                 metric=settings["metric"])
            tuner = ray_tune.Tuner(
                trainable,
                tune_config=ray_tune.TuneConfig(
                    search_alg=searcher, scheduler=PruningScheduler(searcher),
                    num_samples=remaining, max_concurrent_trials=request.jobs,
                    trial_name_creator=lambda t: f"ray-{t.trial_id}",
                    trial_dirname_creator=lambda t: f"ray-{t.trial_id}"),
                run_config=ray_tune.RunConfig(
                    name=f"{request.study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
                    storage_path=str(request.out / "ray"), verbose=0,
                    failure_config=ray_tune.FailureConfig(max_failures=0)))
            grid = tuner.fit()
            errors = [" ".join(str(e).split())[-300:] for e in grid.errors]
            notes += [f"a Ray trial failed: {e}" for e in errors]
            if count_finished(study) == before:
                raise RunError(f"no trial of this Ray round finished ({len(errors)} failed; "
                               f"last: {errors[-1] if errors else 'no error reported'}); fix "
                               f"the settings, then re-run to continue the study")
    finally:
        if started:
            ray.shutdown()
    return notes
