"""Hyperparameter tuning with Optuna (`mimsa tune`): validation only, in a real database.

A study samples values for config keys from a search space file, trains one normal mimsa run
per trial and keeps the trial whose selected epoch is best on the VALIDATION split:

    train.lr:           {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    model.hidden:       {type: int, low: 32, high: 256, step: 32}
    data.batch_size:    {type: categorical, choices: [16, 32, 64]}

- Sampler: TPE, seeded before each trial with `--seed` plus the trial's number, so a study
  that is stopped and continued draws the same values as one that never stopped, and the Ray
  backend draws the local backend's values while TPE still samples at random (its first 10
  trials).
- Pruner: a median pruner fed the validation metric after every epoch (`trial.report`); a
  pruned trial stops at that epoch and its folder stays a consistent interrupted run
  (history.jsonl, the best checkpoint so far, resume.pt): `mimsa train --out DIR --resume`
  finishes it (and only then scores test).
- Objective: `train.select_metric` (default MAE) of the selected checkpoint on valid; its
  direction from `mimsa.metrics.LOWER_IS_BETTER`. The test split is never predicted or scored
  (`train_run(score_test=False)`): each trial's metrics.json has `"test": null`.
- Storage: any SQLAlchemy URL (default sqlite:///<OUT>/study.db). The study keeps the settings
  it was started with (model, dataset, seed, --set values, space, metric); continuing it with
  other settings is refused. `--trials N` means the study ends with N finished (complete +
  pruned) trials: a stopped 3-trial study given --trials 5 runs 2 more. Several processes or
  machines may work on one study (same --storage and --study); together they may finish a
  few more than N.
- Trials: `<OUT>/trials/trial-<number>`, one mimsa run each (one writer per folder). A trial
  whose process was killed stays RUNNING in the database; the next `mimsa tune` on the same
  OUT marks it FAIL (its `trials/trial-<n>.lock` is no longer held) and runs a new trial in its
  place; its folder is kept as an interrupted run. A trial whose training fails (`ConfigError`
  for a combination of values the model refuses, `TrainingError` for a diverging loss) is FAIL
  and the study goes on; five failures in a row stop it.
- Outputs in OUT, each written atomically: best.yaml (a config `mimsa train --config` takes:
  the model, dataset, --set values and the tuned values; the seed is left out so that
  `--seeds` can be given), trials.csv (number, state, value, one column per parameter,
  duration_s), history.png (optimisation history) and importances.png (fANOVA parameter
  importances; needs >= 2 complete trials and > 1 parameter, else skipped with a note).
- Backends: `local` runs trials one after another in this process (a frozen text encoder's
  states are shared by all trials); `ray` runs them as Ray Tune trials with
  `ray.tune.search.optuna.OptunaSearch` on the same study and storage, the per-epoch valid
  metric reported with `ray.tune.report`, and the same pruner applied by a Ray scheduler.

Search spaces may not tune `seed` (every trial trains with --seed so that trials differ only in
the tuned values), `protocol` (legacy scores test every epoch), the data's identity or splits
(data.name, data.root, data.synthetic_*, data.cross_split_duplicates, data.nan_policy,
data.trust_pickle) or `train.select_metric` (the objective). Every error a user can cause is a
one-line `ConfigError` / `RunError` / `MissingExtraError`, raised before any trial starts.
Default spaces ship per model in mimsa/configs/spaces/<model>.yaml.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mimsa import config as config_mod
from mimsa.atomic import atomic_write, atomic_write_text
from mimsa.errors import ConfigError, RunError, TrainingError, require_extra
from mimsa.metrics import LOWER_IS_BETTER

SPACE_DIR = "spaces"
TYPES = {"float": ("low", "high", "log"), "int": ("low", "high", "step", "log"),
         "categorical": ("choices",)}
# Keys (and everything under them) a search space may not tune, with the reason.
_DATA = "it changes the data or their train/valid/test splits"
FORBIDDEN = {
    "seed": "every trial trains with --seed, so that trials differ only in the tuned values",
    "protocol": "protocol: legacy scores the test split every epoch, and tuning never looks "
                "at test",
    "train.select_metric": "it is the objective; choose it with --set train.select_metric=...",
    **{f"data.{key}": _DATA for key in ("name", "root", "synthetic_seed", "synthetic_sizes",
                                        "cross_split_duplicates", "nan_policy",
                                        "trust_pickle")},
}
BACKENDS = ("local", "ray")
FINISHED = ("COMPLETE", "PRUNED")
MAX_FAILURES_IN_A_ROW = 5
TRIAL_KEY = "mimsa_trial"  # the Optuna trial number, passed to a Ray trial with its params


# -- search spaces ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One tuned config key: a float or int range (optionally log-scaled, ints with a step) or
    categorical choices (YAML scalars: numbers, strings, booleans, null)."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: int | None = None
    log: bool = False
    choices: tuple = ()

    def distribution(self):
        """Return the `optuna.distributions` object of this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "float":
            return FloatDistribution(float(self.low), float(self.high), log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log,
                                   step=self.step or 1)
        return CategoricalDistribution(list(self.choices))

    def extremes(self) -> list[Any]:
        """Return the values every sampled value lies between (range ends) or is (choices)."""
        if self.kind == "categorical":
            return list(self.choices)
        return [self.low, self.high]

    def record(self) -> dict:
        """Return the parameter as the JSON the study keeps (to compare on continuation)."""
        out = {k: v for k, v in asdict(self).items() if v not in (None, ())}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        return out


def default_space(model: str) -> Path:
    """Return the shipped search space of `model` (mimsa/configs/spaces/<model>.yaml).

    Raises ConfigError (one line) when none ships for it."""
    root = resources.files("mimsa") / config_mod.CONFIG_DIR / SPACE_DIR
    path = root / f"{model}.yaml"
    if not config_mod.PRESET_NAME.match(model) or not path.is_file():
        shipped = sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))
        raise ConfigError(f"no default search space for model '{model}' (shipped: "
                          f"{', '.join(shipped)}); give one with --space SPACE.yaml")
    return Path(str(path))


def load_space(path: Path) -> list[Param]:
    """Return the parameters of the search space file `path`, checked for shape only (see
    `check_space` for the values). Raises ConfigError, one line naming the file and key."""
    path = Path(path)
    try:
        data = config_mod.load_yaml(path)
    except ConfigError as err:
        raise ConfigError(str(err).replace("config file", "search space file", 1)) from None
    if not data:
        raise ConfigError(f"search space {path} is empty; give at least one key, e.g. "
                          f"train.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}")
    return [_param(path, str(key), entry) for key, entry in data.items()]


def _param(path: Path, key: str, entry: Any) -> Param:
    where = f"search space {path}: {key}"
    if not isinstance(entry, dict) or "type" not in entry:
        raise ConfigError(f"{where}: give a mapping with a type, e.g. {{type: float, low: 0.1, "
                          f"high: 0.5}}, {{type: int, low: 1, high: 4}} or {{type: "
                          f"categorical, choices: [16, 32]}}")
    kind = entry["type"]
    if kind not in TYPES:
        raise ConfigError(f"{where}: type '{kind}' is not one of {', '.join(TYPES)}")
    unknown = [k for k in entry if k != "type" and k not in TYPES[kind]]
    if unknown:
        raise ConfigError(f"{where}: '{unknown[0]}' is not a field of type {kind}; its fields: "
                          f"{', '.join(TYPES[kind])}")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, e.g. [16, 32, 64]")
        bad = [c for c in choices if not isinstance(c, str | int | float | bool | type(None))]
        if bad:
            raise ConfigError(f"{where}: choice {bad[0]!r} is not a number, string, boolean or "
                              f"null (the values a study can store)")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ConfigError(f"{where}: a choice is listed twice; list each once")
        return Param(key, kind, choices=tuple(choices))
    number = int if kind == "int" else (int, float)
    ends = {}
    for end in ("low", "high"):
        value = entry.get(end)
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            what = "an integer" if kind == "int" else "a number"
            raise ConfigError(f"{where}: {end} must be {what} (got {value!r})")
        ends[end] = value if kind == "int" else float(value)
    low, high = ends["low"], ends["high"]
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be less than high ({high})")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0 (got {low})")
    step = entry.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ConfigError(f"{where}: step must be an integer >= 1 (got {step!r})")
        if log and step != 1:
            raise ConfigError(f"{where}: a log scale takes no step; drop one of them")
        if (high - low) % step:
            raise ConfigError(f"{where}: high - low ({high - low}) is not a multiple of step "
                              f"({step}); e.g. high: {low + (high - low) // step * step}")
    return Param(key, kind, low, high, step, log)


def forbidden_reason(key: str) -> str | None:
    """Return why `key` may not be tuned, or None when it may."""
    for name, reason in FORBIDDEN.items():
        if key == name or key.startswith(name + "."):
            return reason
        if name.startswith(key + "."):  # a whole section, e.g. train
            return f"it holds {name}, which cannot be tuned: {reason}"
    return None


def yaml_value(value: Any) -> str:
    """Return `value` as the YAML text of a `--set key=value` that reads back as `value`."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


# -- the request -----------------------------------------------------------------------------
@dataclass
class TuneRequest:
    """What `mimsa tune` was asked: the model, dataset, --set values (`sets`), the search space
    file (None: the model's default), trials, seed, output folder, storage URL (None: SQLite in
    `out`), study name (None: <model>_<dataset>), backend and Ray concurrency (`jobs`)."""

    model: str
    dataset: str
    trials: int
    out: Path
    space: Path | None = None
    sets: list[str] = field(default_factory=list)
    seed: int = 1111
    storage: str | None = None
    study: str | None = None
    backend: str = "local"
    jobs: int = 1

    @property
    def study_name(self) -> str:
        return self.study or f"{self.model}_{Path(str(self.dataset)).name}"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(Path(self.out) / 'study.db').resolve()}"

    @property
    def space_path(self) -> Path:
        return Path(self.space) if self.space is not None else default_space(self.model)

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """Return the --set list of a trial with `params` ({dotted key: value})."""
        return [*self.sets, f"seed={self.seed}",
                *(f"{key}={yaml_value(value)}" for key, value in params.items())]

    def trial_config(self, params: dict[str, Any]) -> dict:
        """Return the resolved, checked config of a trial with `params`."""
        return config_mod.resolve_config(self.model, self.dataset, None, self.overrides(params))


def check_request(request: TuneRequest, space: list[Param]) -> dict:
    """Check everything before any trial: the options, the --set values, and every value the
    space can sample (range ends, each choice) through `resolve_config` and the run checks.
    Return the base config (no tuned values). Raises ConfigError, one line."""
    from mimsa.train.run import check_run_config

    if request.trials < 1:
        raise ConfigError(f"--trials {request.trials}: give at least 1")
    if request.backend not in BACKENDS:
        raise ConfigError(f"--backend {request.backend}: choose one of {', '.join(BACKENDS)}")
    if request.jobs < 1:
        raise ConfigError(f"--jobs {request.jobs}: give at least 1")
    set_keys = [".".join(config_mod.parse_override(s)[0]) for s in request.sets]
    for key in set_keys:
        if key == "seed":
            raise ConfigError("--set seed=...: give the seed with --seed (every trial uses it)")
    base = request.trial_config({})
    check_run_config(base)
    if base["protocol"] != "clean":
        raise ConfigError(f"protocol: {base['protocol']} scores the test split every epoch, "
                          f"and tuning never looks at test; drop it (protocol: clean)")
    path = request.space_path
    for param in space:
        where = f"search space {path}: {param.key}"
        reason = forbidden_reason(param.key)
        if reason:
            raise ConfigError(f"{where}: this key cannot be tuned ({reason})")
        for key in set_keys:
            if key == param.key or key.startswith(param.key + ".") \
                    or param.key.startswith(key + "."):
                raise ConfigError(f"{where}: it is also given with --set {key}=...; tune it or "
                                  f"set it, not both")
        for value in param.extremes():
            try:
                check_run_config(request.trial_config({param.key: value}))
            except ConfigError as err:
                raise ConfigError(f"{where}={yaml_value(value)} cannot be trained: {err}"
                                  ) from None
    ranges = [p for p in space if p.kind != "categorical"]
    for end, name in ((0, "low"), (1, "high")):  # the ranges' ends together
        if len(ranges) > 1:
            try:
                check_run_config(request.trial_config({p.key: p.extremes()[end]
                                                       for p in ranges}))
            except ConfigError as err:
                raise ConfigError(f"search space {path}: every range at its {name} end cannot "
                                  f"be trained together: {err}") from None
    return base


def objective_of(cfg: dict) -> tuple[str, str]:
    """Return (metric, "minimize" | "maximize") of the config's `train.select_metric`."""
    metric = str(cfg["train"]["select_metric"])
    lower = metric in LOWER_IS_BETTER or metric == "loss"
    return metric, "minimize" if lower else "maximize"


def study_settings(request: TuneRequest, space: list[Param], base: dict) -> dict:
    """Return what the study keeps and a continuation must repeat (data.root may change)."""
    metric, direction = objective_of(base)
    sets = [s for s in request.sets if config_mod.parse_override(s)[0] != ["data", "root"]]
    return {"model": request.model, "dataset": str(request.dataset), "seed": request.seed,
            "sets": sets, "space": [p.record() for p in space], "metric": metric,
            "direction": direction}


# -- storage and study -----------------------------------------------------------------------
def _optuna():
    require_extra("optuna", "sweep", "mimsa tune")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def shown_url(url: str) -> str:
    """Return `url` with its password hidden (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def open_storage(url: str):
    """Return an `optuna.storages.RDBStorage` on the SQLAlchemy `url`.

    Raises ConfigError (one line) when it cannot be opened: a bad URL, a missing driver, a
    database that does not answer or a file that cannot be created."""
    optuna = _optuna()
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy, drivers and Optuna raise many kinds
        reason = " ".join(str(err).split("(Background on this error")[0].split())
        raise ConfigError(f"--storage {shown_url(url)}: cannot open the study database "
                          f"({type(err).__name__}: {reason[:200]}); give an SQLAlchemy URL "
                          f"this process can open, e.g. sqlite:///path/to/study.db") from None


def preset_params(space: list[Param], base: dict) -> dict[str, Any]:
    """Return {key: value} of the resolved config `base` (presets + --set) for every space
    key whose value lies in its range or choices: the configuration the study tries first, so
    a tuned result is never worse on the tuning seed than the untuned one."""
    params = {}
    for param in space:
        node: Any = base
        for part in param.key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        if param.kind == "categorical":
            if node in param.choices:
                params[param.key] = node
        elif isinstance(node, int | float) and param.low <= node <= param.high:
            steps = (node - param.low) / (param.step or 1)
            if param.kind == "float" or float(steps).is_integer():
                params[param.key] = node
    return params


def open_study(storage, request: TuneRequest, settings: dict, pruner=None,
               first: dict[str, Any] | None = None):
    """Create the study, or load it if it exists; refuse one started with other settings.
    A new study queues `first` (`preset_params`) as its trial 0."""
    optuna = _optuna()
    study = optuna.create_study(
        storage=storage, study_name=request.study_name, direction=settings["direction"],
        sampler=optuna.samplers.TPESampler(seed=request.seed),
        pruner=pruner if pruner is not None else default_pruner(), load_if_exists=True)
    saved = study.user_attrs.get("mimsa")
    if saved is None:
        study.set_user_attr("mimsa", settings)
        if first:
            study.enqueue_trial(first)
        return study
    differ = [_difference(key, saved.get(key), settings[key])
              for key in settings if not _same(key, saved.get(key), settings[key])]
    if differ:
        raise ConfigError(f"study '{request.study_name}' in {shown_url(request.storage_url)} "
                          f"was started with other settings ({'; '.join(differ)}); continue it "
                          f"with the same settings or start another with --study NAME")
    return study


def _same(key: str, saved: Any, given: Any) -> bool:
    """True when a study's saved setting equals the given one; --set values compare as the
    settings they give, so the order of independent keys does not matter."""
    if key == "sets" and isinstance(saved, list) and isinstance(given, list):
        return _set_values(saved) == _set_values(given)
    return saved == given


def _set_values(sets: list[str]) -> dict[str, Any]:
    """Return the nested settings the --set values give, applied in order (as a run applies
    them: a later value wins, also over a section it lies in)."""
    values: dict[str, Any] = {}
    for text in sets:
        path, value = config_mod.parse_override(text)
        config_mod.set_path(values, path, value)
    return values


def _difference(key: str, saved: Any, given: Any) -> str:
    """Return "key: saved X, given Y"; for two lists (--set values, the space) only the items
    in one of them, so a long list's difference is not cut off."""
    if isinstance(saved, list) and isinstance(given, list):
        parts = [f"{what} {_short(items)}" for what, items in (
            ("only saved", [x for x in saved if x not in given]),
            ("only given", [x for x in given if x not in saved])) if items]
        if parts:
            return f"{key}: {', '.join(parts)}"
        return f"{key}: the same items in another order, saved {_short(saved)}"
    return f"{key}: saved {_short(saved)}, given {_short(given)}"


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def default_pruner():
    """The median pruner: prune a trial whose best validation value so far is worse than the
    median of the other trials at the same epoch, once 5 trials finished and after epoch 2."""
    return _optuna().pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)


def count_finished(study) -> int:
    """Return the number of COMPLETE and PRUNED trials of `study`."""
    return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))


# -- one trial -------------------------------------------------------------------------------
def trial_dir(out: Path, number: int) -> Path:
    return Path(out) / "trials" / f"trial-{number}"


class TrialLock:
    """`<OUT>/trials/trial-<n>.lock`, held while trial n runs (from before its training to after
    the study is told its result). A RUNNING trial whose lock file exists and is free was
    interrupted: its process ended without telling the study."""

    def __init__(self, out: Path, number: int) -> None:
        from filelock import FileLock

        self.path = Path(out) / "trials" / f"trial-{number}.lock"
        self.lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> bool:
        """Take the lock; return False when another process holds it."""
        from filelock import Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
        except Timeout:
            return False
        return True

    def release(self) -> None:
        """Remove the lock file (the trial is told) and release the lock."""
        self.path.unlink(missing_ok=True)
        self.lock.release()


def fail_interrupted(study, out: Path) -> list[int]:
    """Mark FAIL every RUNNING trial of `study` whose process on this OUT ended without telling
    the study (its lock file is free); return their numbers. Trials running elsewhere (another
    OUT or machine, a lock still held) are left alone."""
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        lock = TrialLock(out, trial.number)
        if not lock.path.is_file() or not lock.acquire():
            continue
        try:
            now = [t for t in study.get_trials(deepcopy=False) if t.number == trial.number]
            if now and now[0].state == TrialState.RUNNING:
                study.tell(trial.number, state=TrialState.FAIL)
                failed.append(trial.number)
        finally:
            lock.release()
    return failed


def objective_value(run_dir: Path, metrics: dict, metric: str) -> float:
    """Return the selected checkpoint's validation `metric` (from metrics.json, or the best
    epoch's history row for "loss")."""
    if metric in (metrics.get("valid") or {}):
        return float(metrics["valid"][metric])
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["epoch"] == metrics["best_epoch"])
    return float(row[f"valid/{metric}"])


def run_trial(request: TuneRequest, number: int, params: dict[str, Any], metric: str,
              report: Callable[[int, float], None], cache=None, display=None) -> float:
    """Train trial `number` with `params` into <OUT>/trials/trial-<number> without ever
    scoring test; call `report(epoch, valid metric)` after each epoch (it may raise to stop
    the trial); return the objective value."""
    from mimsa.train.run import train_run

    run_dir = trial_dir(request.out, number)
    cfg = request.trial_config(params)

    def on_epoch_end(epoch: int, row: dict) -> None:
        report(epoch, float(row[f"valid/{metric}"]))

    metrics = train_run(cfg, run_dir, on_epoch_end=on_epoch_end, cache=cache,
                        display=display, score_test=False)
    return objective_value(run_dir, metrics, metric)


# -- outputs ---------------------------------------------------------------------------------
def nested(values: dict[str, Any]) -> dict:
    """Return {dotted key: value} as nested mappings."""
    out: dict = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def best_config_text(request: TuneRequest, best, settings: dict) -> str:
    """Return best.yaml: the explicit settings of the best trial (model, dataset, --set
    values, tuned values; not the seed) with a header saying where they come from."""
    overrides = [o for o in request.overrides(best.params) if not o.startswith("seed=")]
    cfg, sources = config_mod.resolve_with_sources(request.model, request.dataset, None,
                                                   overrides)
    explicit = config_mod.explicit_values(cfg, sources)
    explicit.pop("seed", None)
    tuned = ", ".join(f"{k}={yaml_value(v)}" for k, v in best.params.items())
    header = (f"# mimsa tune: the best trial ({best.number}) of study "
              f"'{request.study_name}', validation {settings['metric']} {best.value:.6g} "
              f"(tuned with seed {request.seed}).\n# Tuned: {tuned}\n"
              f"# Train it: mimsa train --config best.yaml --seeds 1111 1112 1113 1114 1115\n")
    return header + config_mod.dump(nested(explicit))


def trials_table(study, space: list[Param]) -> str:
    """Return trials.csv: number, state, value, one column per parameter, duration_s."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = [p.key for p in space]
    writer.writerow(["number", "state", "value", *keys, "duration_s"])
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration is not None else None
        writer.writerow([t.number, t.state.name, "" if t.value is None else f"{t.value:.6g}",
                         *(yaml_value(t.params[k]) if k in t.params else "" for k in keys),
                         "" if duration is None else f"{duration:.1f}"])
    return buffer.getvalue()


def best_trial(study):
    """Return the best COMPLETE trial of `study`, or None when there is none."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def write_tables(study, request: TuneRequest, space: list[Param], settings: dict
                 ) -> dict[str, Path]:
    """Write trials.csv and (once a trial completed) best.yaml in OUT; return their paths."""
    out = Path(request.out)
    written = {"trials": atomic_write_text(out / "trials.csv", trials_table(study, space))}
    best = best_trial(study)
    if best is not None:
        written["best"] = atomic_write_text(out / "best.yaml",
                                            best_config_text(request, best, settings))
    return written


def write_plots(study, out: Path, seed: int, space: list[Param]) -> tuple[list[Path], list[str]]:
    """Write history.png and importances.png (matplotlib, Agg); return (paths, notes on what
    was skipped)."""
    from optuna.trial import TrialState

    optuna = _optuna()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written, notes = [], []
    if not complete:
        return written, ["no plots yet: no trial completed"]
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    plots = [("history.png", lambda: optuna_plots.plot_optimization_history(study))]
    if len(complete) >= 2 and len(space) > 1:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        plots.append(("importances.png", lambda: optuna_plots.plot_param_importances(
            study, evaluator=evaluator)))
    else:
        notes.append(f"importances.png skipped: it needs >= 2 complete trials and > 1 tuned "
                     f"parameter ({len(complete)} complete, {len(space)} parameter(s))")
    for name, draw in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna.exceptions.ExperimentalWarning
            axes = draw()
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        written.append(atomic_write(Path(out) / name,
                                    lambda tmp, f=figure: f.savefig(tmp, format="png", dpi=100)))
        plt.close(figure)
    return written, notes


# -- the study -------------------------------------------------------------------------------
@dataclass
class TuneResult:
    """What `tune` did: the study, its best trial (None if none completed), the number of
    finished trials, the files written, and notes (interrupted trials failed, plots skipped,
    failed trials)."""

    study: Any
    best: Any
    finished: int
    metric: str
    written: dict[str, Path]
    notes: list[str]


def tune(request: TuneRequest, *, pruner=None, display=None,
         progress: Callable[[str], None] | None = None, plots: bool = True) -> TuneResult:
    """Run (or continue) the study of `request` until it holds `request.trials` finished
    trials; write best.yaml, trials.csv and the plots in `request.out`.

    `pruner` replaces the default median pruner (tests force one); `display` is the trials'
    training display (default quiet); `progress(line)` gets one line per finished trial
    (`describe_trial`); `plots=False` leaves the PNG files as they are.
    Raises ConfigError (space, options, storage), RunError (output folder; every trial
    failing), MissingExtraError (optuna, or ray for the ray backend)."""
    out = Path(request.out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise RunError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    _optuna()
    space = load_space(request.space_path)
    base = check_request(request, space)
    settings = study_settings(request, space, base)
    if request.backend == "ray":
        require_extra("ray", "sweep", "mimsa tune --backend ray")
    if not request.storage:  # the default, sqlite:///OUT/study.db (also for --storage "")
        out.mkdir(parents=True, exist_ok=True)
    storage = open_storage(request.storage_url)
    pruner = pruner if pruner is not None else default_pruner()
    study = open_study(storage, request, settings, pruner, preset_params(space, base))
    out.mkdir(parents=True, exist_ok=True)
    metric = settings["metric"]

    def on_trial(frozen) -> None:
        if progress is not None:
            progress(describe_trial(frozen, metric))

    notes = [f"trial {n} had been interrupted (its process ended): marked FAIL; its folder "
             f"{trial_dir(out, n)} is kept" for n in fail_interrupted(study, out)]
    if request.backend == "ray":
        from mimsa.sweep.tune_ray import run_ray

        notes += run_ray(study, storage, request, space, settings, pruner, on_trial)
    else:
        notes += _run_local(study, request, space, settings, display, on_trial)
    written = write_tables(study, request, space, settings)
    pngs, plot_notes = write_plots(study, out, request.seed, space) if plots else ([], [])
    written.update({p.stem: p for p in pngs})
    return TuneResult(study, best_trial(study), count_finished(study), settings["metric"],
                      written, notes + plot_notes)


def _run_local(study, request: TuneRequest, space: list[Param], settings: dict, display,
               on_trial) -> list[str]:
    """Run trials one after another in this process until the study holds enough."""
    from optuna import TrialPruned
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState

    from mimsa.encoders.cache import EncoderCache

    cache = EncoderCache()  # a frozen text encoder encodes each transcript once for all trials
    display = NotesOnce(display)
    distributions = {p.key: p.distribution() for p in space}
    notes, failures = [], []
    while count_finished(study) < request.trials:
        study.sampler = TPESampler(seed=request.seed + len(study.get_trials(deepcopy=False)))
        trial = study.ask(distributions)
        lock = TrialLock(request.out, trial.number)
        if not lock.acquire():  # cannot happen: trial numbers are unique within a study
            raise RunError(f"{lock.path} is held by another process; choose another --out")
        try:
            def report(epoch: int, value: float, trial=trial) -> None:
                trial.report(value, epoch)
                if trial.should_prune():
                    raise TrialPruned(f"pruned after epoch {epoch}")

            try:
                value = run_trial(request, trial.number, trial.params, settings["metric"],
                                  report, cache, display)
            except TrialPruned:
                frozen = study.tell(trial, state=TrialState.PRUNED)
            except (TrainingError, ConfigError) as err:
                frozen = study.tell(trial, state=TrialState.FAIL)
                failures.append(f"trial {trial.number} failed: {err}")
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            else:
                frozen = study.tell(trial, value)
                failures.clear()
        finally:
            lock.release()
        write_tables(study, request, space, settings)
        if on_trial is not None:
            on_trial(frozen)
        if frozen.state == TrialState.FAIL:
            notes.append(failures[-1])
            if len(failures) >= MAX_FAILURES_IN_A_ROW:
                raise RunError(f"{len(failures)} trials in a row failed (last: "
                               f"{failures[-1]}); fix the search space or the settings, then "
                               f"re-run to continue the study")
    return notes


class NotesOnce:
    """A training display that shows each note once (trials repeat the same notes, e.g. which
    text encoder encoder.name=auto picked); everything else goes to `display`."""

    def __init__(self, display=None) -> None:
        from mimsa.train.display import QuietDisplay

        self.display, self.seen = display or QuietDisplay(), set()

    def __getattr__(self, name: str):
        return getattr(self.display, name)

    def note(self, line: str) -> None:
        if line not in self.seen:
            self.seen.add(line)
            self.display.note(line)


def describe_trial(trial, metric: str) -> str:
    """Return one line about a finished trial: number, state, value, params, duration."""
    value = "" if trial.value is None else f" {metric} {trial.value:.4f}"
    params = ", ".join(f"{k}={yaml_value(v)}" for k, v in trial.params.items())
    duration = trial.duration.total_seconds() if trial.duration is not None else math.nan
    return f"trial {trial.number}: {trial.state.name.lower()}{value} ({params}; {duration:.1f} s)"
