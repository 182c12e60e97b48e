"""The Ray backend: one Ray Tune trial per (run, seed), on a local cluster or an existing one.

    mimsa sweep GRID.yaml --backend ray [--jobs N]          # a local cluster of N CPUs
    mimsa sweep GRID.yaml --backend ray --address HOST:PORT # a running cluster (`ray start`)

Each trial is `mimsa.train.run.train_run` into the same directory the local backend uses,
OUT/<name>/seed-<s>, so finished seeds are kept and started ones resume whichever backend ran
them (the run lock lets one process write a directory at a time). A trial asks Ray for as many
CPUs as the torch threads it uses (train.threads, else the driver's torch default:
$OMP_NUM_THREADS or the cores), so its numbers equal the local backend's; for one CPU per
trial, run the sweep with OMP_NUM_THREADS=1 (or train.threads=1 in the grid's sets). A trial
whose train.device is `cuda`, or `auto` on a cluster with GPUs, also asks for a share of a GPU
(`trial_resources`). Trials on
one worker process share one `EncoderCache` (Tune reuses the process), so a frozen encoder
encodes a transcript once per worker, not once per trial. The driver writes each run's summary
after its trials; a failed trial is reported and does not stop the others.

With --address, OUT, the data and the encoders' folders must be at the same paths on every
node (a shared file system); the driver's $MIMSA_* variables are passed to the workers. Ray's
own files (Tune's experiment state) go to OUT/.ray and are removed at the end; Ray's logging
is reduced to errors and the workers' output is not forwarded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mimsa.errors import ConfigError, MimsaError, require_extra
from mimsa.sweep.local import finish
from mimsa.sweep.plan import (
    PlannedRun,
    RunStatus,
    check_kept,
    one_line,
    run_finished,
    seed_finished,
)

RAY_DIR = ".ray"
EXPERIMENT = "sweep"
# Quiet, file-free Tune: no CSV/JSON/TensorBoard loggers in the trial folders, old-style output
# (silenced by verbose=0), trials in the driver's working directory.
RAY_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0",
           "RAY_CHDIR_TO_TRIAL_DIR": "0"}
PASSED_ENV = ("MIMSA_", "HF_", "TRANSFORMERS_", "OMP_NUM_THREADS")
CONNECT_TIMEOUT_S = 5.0

_WORKER_CACHE: dict[str, Any] = {}  # per worker process: the EncoderCache its trials share


def run_ray(runs: list[PlannedRun], out: Path, address: str | None = None,
            jobs: int | None = None, report: Callable[[str], None] = print
            ) -> tuple[list[RunStatus], bool]:
    """Train the unfinished seeds of `runs` as Ray Tune trials; return (one status per run, in
    order; whether Ctrl-C stopped the sweep).

    `address`: a running cluster ("HOST:PORT", "auto", "ray://HOST:PORT"); else a local
    cluster of `jobs` CPUs (default: the machine's). With an address, `jobs` caps the trials
    that run at once.

    Raises (before any trial starts):
        MissingExtraError: Ray is not installed (the `sweep` extra).
        ConfigError: the address does not answer, or a run needs more CPUs (threads) than the
            cluster has.
    """
    require_extra("ray", "sweep", "mimsa sweep --backend ray")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give a number of CPUs >= 1")
    threads = max((run.threads for run in runs), default=1)
    if address is None and jobs is not None and threads > jobs:
        raise ConfigError(_threads_problem(f"--jobs {jobs}", threads))
    rows: dict[str, RunStatus] = {}
    trials: list[dict] = []
    for run in runs:
        problem = check_kept(run)
        done = sum(seed_finished(run.seed_dir(s)) for s in run.spec.seeds)
        if problem:
            report(f"{time.strftime('%H:%M:%S')} {run.name} failed: {problem}")
            rows[run.name] = RunStatus(run.name, "failed", done, len(run.spec.seeds), 0.0,
                                       problem)
        elif run_finished(run):
            rows[run.name] = RunStatus(run.name, "skipped", done, len(run.spec.seeds))
        else:
            trials += [_trial_spec(run, seed) for seed in run.spec.seeds
                       if not seed_finished(run.seed_dir(seed))]
    if trials:
        results, interrupted = _fit(trials, out, address, jobs, threads, report)
    else:
        results, interrupted = {}, False
    for run in runs:
        if run.name in rows:
            continue
        mine = [results.get(i, {}) for i, t in enumerate(trials) if t["run"] == run.name]
        errors = [f"seed {r['seed']}: {r['error']}" for r in mine if r.get("error")]
        seconds = sum(float(r.get("seconds") or 0.0) for r in mine)
        rows[run.name] = finish(run, errors, seconds, report)
        if interrupted and rows[run.name].status == "failed":
            rows[run.name].status = "interrupted"
    return [rows[run.name] for run in runs], interrupted


def _trial_spec(run: PlannedRun, seed: int) -> dict:
    """Return what one trial needs, as plain data (absolute paths: workers may run anywhere)."""
    return {"run": run.name, "seed": int(seed), "cfg": run.seed_cfg(seed),
            "dir": str(run.seed_dir(seed).resolve()), "given": run.given,
            "threads": run.threads, "cwd": os.getcwd()}


def trial_resources(trial: dict, cpus: float, gpus: float) -> dict[str, float]:
    """Return the Ray resources of one trial: its torch threads as CPUs and, when its
    train.device is `cuda` (or `auto` on a cluster with GPUs), a share of a GPU in proportion to
    its share of the CPUs, so that as many trials share the GPUs as the CPUs allow.

    Ray shows a trial only the GPU it assigned (as cuda:0), so `cuda:N` is refused; a GPU
    device on a cluster without one is refused too (`ConfigError`, one line)."""
    device = str(trial["cfg"]["train"].get("device", "auto"))
    wanted = {"cpu": float(trial["threads"])}
    if device.startswith("cuda:") and device != "cuda:0":
        raise ConfigError(f"train.device={device}: with --backend ray each trial sees only the "
                          f"GPU Ray gives it; use train.device=cuda or auto")
    if device.startswith("cuda") or (device == "auto" and gpus > 0):
        if gpus <= 0:
            raise ConfigError(f"train.device={device}: the Ray cluster has no GPU; use "
                              f"train.device=auto or cpu, or start Ray on GPU nodes")
        wanted["gpu"] = min(1.0, gpus * wanted["cpu"] / max(cpus, 1.0))
    return wanted


def _threads_problem(what: str, threads: int) -> str:
    return (f"{what}: a run uses {threads} torch threads (train.threads, else $OMP_NUM_THREADS "
            f"or the cores) and each trial asks for that many CPUs; give more CPUs, or run "
            f"with OMP_NUM_THREADS=1 for one CPU per trial")


def _fit(trials: list[dict], out: Path, address: str | None, jobs: int | None,
         threads: int, report: Callable[[str], None]) -> tuple[dict[int, dict], bool]:
    """Run `trials` with Ray Tune; return ({trial index: its result}, interrupted)."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    import ray
    from ray import tune

    started_here = _connect(ray, address, jobs)
    loggers = [logging.getLogger(name) for name in ("ray", "ray.tune", "ray.train", "ray.air")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:  # Tune's notes on its own files; also when Ray was started before
        logger.setLevel(logging.ERROR)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 0))
        gpus = float(ray.cluster_resources().get("GPU", 0))
        resources = [trial_resources(trial, cpus, gpus) for trial in trials]
        if threads > cpus:
            raise ConfigError(_threads_problem(f"the Ray cluster ({cpus:g} CPUs)", threads))
        storage = (out / RAY_DIR).resolve()
        shutil.rmtree(storage, ignore_errors=True)
        report(f"{time.strftime('%H:%M:%S')} {len(trials)} trial(s) on Ray "
               f"({cpus:g} CPUs, {threads} per trial)")
        trainable = tune.with_resources(
            tune.with_parameters(sweep_trial, specs=trials),
            lambda config: resources[config["trial"]])
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search(list(range(len(trials))))},
            tune_config=tune.TuneConfig(reuse_actors=True,
                                        max_concurrent_trials=jobs if address else None),
            run_config=tune.RunConfig(
                name=EXPERIMENT, storage_path=str(storage), verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
                callbacks=[_progress_callback(tune, trials, report)]))
        interrupted = False
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            return {}, True
        results: dict[int, dict] = {}
        for result in grid:
            index = int((result.config or {}).get("trial", -1))
            if index < 0:
                continue
            metrics = dict(result.metrics or {})
            if result.error is not None and not metrics.get("error"):
                metrics["error"] = _ray_error(result.error)
            if not metrics.get("finished") and not metrics.get("error"):
                metrics["error"] = "the trial did not finish (stopped)"
                interrupted = True
            metrics["seed"] = trials[index]["seed"]
            results[index] = metrics
        shutil.rmtree(storage, ignore_errors=True)
        return results, interrupted
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if started_here:
            ray.shutdown()


def _connect(ray: Any, address: str | None, jobs: int | None) -> bool:
    """Connect to the cluster at `address` or start a local one; return True when this call
    started (and so must shut down) Ray. An address that does not answer is a `ConfigError`."""
    if address is not None:
        _probe(address)
    if ray.is_initialized():  # e.g. a cluster this process started itself (tests, notebooks)
        return False
    options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                               "logging_level": logging.ERROR, "configure_logging": True}
    if address is None:
        ray.init(num_cpus=jobs or os.cpu_count() or 1, **options)
        return True
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
    try:
        ray.init(address=address, runtime_env={"env_vars": env} if env else None, **options)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as err:
        raise ConfigError(f"--address {address}: cannot connect to a Ray cluster "
                          f"({' '.join(str(err).split())[:200]}); start one with `ray start "
                          f"--head` or check the address") from None
    return True


def _probe(address: str) -> None:
    """Raise `ConfigError` unless HOST:PORT of `address` accepts a TCP connection within
    CONNECT_TIMEOUT_S ("auto" and "local" are left to Ray, which fails fast for them)."""
    host_port = address.split("://", 1)[-1]
    if address in ("auto", "local") or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except ValueError:
        raise ConfigError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), "
                          f"'auto' or ray://HOST:PORT") from None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({reason}); start "
                          f"one with `ray start --head` or check the address") from None


def _ray_error(error: BaseException) -> str:
    """Return a Ray-side trial failure (the worker died, out of memory, ...) as one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


def _progress_callback(tune: Any, specs: list[dict], report: Callable[[str], None]) -> Any:
    """Return a Tune callback that reports each finished trial as one line."""

    def _report_trial(trial: Any, how: str) -> None:
        try:
            spec = specs[int(trial.config["trial"])]
            last = trial.last_result or {}
            if last.get("error"):
                how = f"failed: {last['error']}"
            elif last.get("seconds") is not None:
                how = f"{how} in {float(last['seconds']):.0f} s"
            report(f"{time.strftime('%H:%M:%S')} {spec['run']} seed {spec['seed']} {how}")
        except Exception:  # progress lines must never stop the sweep  # noqa: S110
            pass

    class Progress(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
            _report_trial(trial, "done")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
            _report_trial(trial, "failed")

        def __reduce__(self):  # Tune pickles its run config; the reporter stays here
            return (object, ())

    return Progress()


def sweep_trial(config: dict, specs: list[dict]) -> dict:
    """One Tune trial: train seed `specs[config["trial"]]` into its directory (resumed when it
    holds a started run); return {"finished": True, "error": "" or one line, "seconds": s}.

    Runs in a Ray worker. Errors are returned, not raised, so the driver reports the one line
    mimsa would print; a bug's traceback goes to the worker's log."""
    import torch

    from mimsa.encoders.cache import EncoderCache
    from mimsa.train.run import CONFIG, train_run

    spec = specs[config["trial"]]
    started = time.perf_counter()
    with contextlib.suppress(OSError):  # relative paths mean what they meant to the driver
        os.chdir(spec["cwd"])
    torch.set_num_threads(int(spec["threads"]))
    if "cache" not in _WORKER_CACHE:  # made once per worker process, then shared
        _WORKER_CACHE["cache"] = EncoderCache()
    cache = _WORKER_CACHE["cache"]
    run_dir = Path(spec["dir"])
    try:
        train_run(spec["cfg"], run_dir, resume=(run_dir / CONFIG).is_file(), cache=cache,
                  given=spec["given"])
        error = ""
    except Exception as err:  # reported by the driver; the sweep goes on
        if not isinstance(err, MimsaError):
            traceback.print_exc(file=sys.stderr)
        error = one_line(err)
    return {"finished": True, "error": error, "seconds": time.perf_counter() - started}
