"""`mimsa tune`: search-space checks, a study that continues, validation only, best.yaml,
pruning, storage errors, interrupted trials and the Ray backend."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

optuna = pytest.importorskip("optuna", reason="needs the sweep extra: pip install -e \".[sweep]\"")

from mimsa.cli import app  # noqa: E402
from mimsa.errors import ConfigError, MissingExtraError, RunError, TrainingError  # noqa: E402
from mimsa.models.base import list_models  # noqa: E402
from mimsa.sweep import tune as tune_mod  # noqa: E402
from mimsa.sweep.tune import TuneRequest, check_request, load_space, tune  # noqa: E402
from mimsa.train import trainer as trainer_mod  # noqa: E402
from mimsa.train.lock import writer  # noqa: E402

SETS = ["data.synthetic_sizes={train: 64, valid: 32, test: 32}", "train.epochs=2",
        "train.patience=10"]
SPACE = """\
train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
model.hidden: {type: categorical, choices: [16, 32]}
"""


def make_request(tmp_path: Path, trials: int, space: str = SPACE, **kwargs) -> TuneRequest:
    path = tmp_path / "space.yaml"
    path.write_text(space)
    options = {"sets": list(SETS), "out": tmp_path / "out", **kwargs}
    return TuneRequest(model="late_fusion", dataset="synthetic", trials=trials, space=path,
                       **options)


def states(out: Path) -> list[str]:
    with open(out / "trials.csv", newline="") as handle:
        return [row["state"] for row in csv.DictReader(handle)]


@pytest.fixture
def no_test_split(monkeypatch):
    """Fail on any prediction or validation that touches a sample of the test split."""
    real_predict, real_validate = trainer_mod.predict, trainer_mod.Trainer._validate

    def predict(model, dataset, indices, **kwargs):
        assert not set(indices.tolist()) & set(dataset.indices("test").tolist()), "test touched"
        return real_predict(model, dataset, indices, **kwargs)

    def validate(self, split="valid"):
        assert split != "test", "test scored"
        return real_validate(self, split)

    monkeypatch.setattr(trainer_mod, "predict", predict)
    monkeypatch.setattr(trainer_mod.Trainer, "_validate", validate)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 3-trial study on SQLite, then continued to 5 trials (test never touched)."""
    tmp = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as patch:
        real_predict = trainer_mod.predict

        def predict(model, dataset, indices, **kwargs):
            assert not set(indices.tolist()) & set(dataset.indices("test").tolist())
            return real_predict(model, dataset, indices, **kwargs)

        patch.setattr(trainer_mod, "predict", predict)
        request = make_request(tmp, 3)
        first = tune(request, plots=False)
        first_rows = (request.out / "trials.csv").read_text()
        request.trials = 5
        second = tune(request)
    return request, first, first_rows, second


# -- search spaces ---------------------------------------------------------------------------
BAD_SPACES = {
    "": "is empty",
    "train.nonexistent: {type: float, low: 0.1, high: 0.2}": "unknown config key",
    "model.nonexistent: {type: int, low: 1, high: 4}": "nonexistent",
    "protocol: {type: categorical, choices: [clean, legacy]}": "cannot be tuned",
    "seed: {type: int, low: 1, high: 9}": "cannot be tuned",
    "data.name: {type: categorical, choices: [synthetic, mosi]}": "cannot be tuned",
    "data.synthetic_sizes.test: {type: int, low: 8, high: 16}": "cannot be tuned",
    "train.select_metric: {type: categorical, choices: [MAE, Corr]}": "cannot be tuned",
    # a whole section holding a forbidden key is named as such (not "it is the objective")
    "train: {type: categorical, choices: [a, b]}": "it holds train.select_metric, which",
    "train.lr: {type: float, low: 0.1, high: 0.1}": "must be less than high",
    "train.lr: {type: float, low: 0.0, high: 0.1, log: true}": "log scale needs low > 0",
    "train.lr: {type: float, low: 0.0, high: 0.1}": "train.lr=0.0 cannot be trained",
    "train.lr: {type: float, lo: 0.1, high: 0.2}": "'lo' is not a field",
    "train.lr: {type: real, low: 0.1, high: 0.2}": "type 'real'",
    "train.lr: 0.1": "give a mapping with a type",
    "model.hidden: {type: categorical, choices: []}": "non-empty list",
    "model.hidden: {type: categorical, choices: [[16, 16]]}": "is not a number",
    "model.hidden: {type: int, low: 16, high: 60, step: 16}": "not a multiple of step",
    "model.hidden: {type: categorical, choices: [16, wide]}": "model.hidden=wide cannot be",
    "train.epochs: {type: int, low: 1, high: 3}": "also given with --set train.epochs",
}


@pytest.mark.parametrize("text", list(BAD_SPACES))
def test_bad_space_is_one_line_naming_file_and_key(tmp_path, text):
    request = make_request(tmp_path, 2, space=text + "\n")
    with pytest.raises(ConfigError) as err:
        tune(request)
    message = str(err.value)
    assert "\n" not in message and BAD_SPACES[text] in message
    assert str(request.space) in message
    key = text.split(":")[0]
    assert key in message
    assert not request.out.exists()


def test_missing_space_file_and_unknown_default(tmp_path):
    request = make_request(tmp_path, 2)
    with pytest.raises(ConfigError, match="search space file .*does not exist"):
        tune(dataclasses.replace(request, space=tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="no default search space for model 'nope'"):
        tune_mod.default_space("nope")


def test_legacy_protocol_and_seed_refused(tmp_path):
    for sets, match in ((["protocol=legacy"], "legacy"), (["seed=5"], "--seed")):
        request = make_request(tmp_path, 2, sets=[*SETS, *sets])
        with pytest.raises(ConfigError, match=match) as err:
            tune(request)
        assert "\n" not in str(err.value) and not request.out.exists()


@pytest.mark.parametrize("model", list(list_models()))
def test_default_space_of_every_model_is_valid(model):
    request = TuneRequest(model=model, dataset="synthetic", trials=1, out=Path("unused"))
    space = load_space(request.space_path)
    assert len(space) >= 3
    check_request(request, space)


# -- a study ---------------------------------------------------------------------------------
def test_study_continues_to_five_trials(study):
    request, first, first_rows, second = study
    assert first.finished == 3 and second.finished == 5
    rows = (request.out / "trials.csv").read_text().splitlines()
    assert rows[0] == "number,state,value,train.lr,model.hidden,duration_s"
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3", "4"]
    assert rows[1:4] == first_rows.splitlines()[1:]  # the first three were not run again
    assert states(request.out) == ["COMPLETE"] * 5
    again = tune(request)  # nothing left to run
    assert again.finished == 5 and len(again.study.trials) == 5


def test_trials_never_score_test(study):
    request, *_ = study
    for number in range(5):
        run = request.out / "trials" / f"trial-{number}"
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["test"] is None and "MAE" in metrics["valid"]
        history = (run / "history.jsonl").read_text()
        assert "test/" not in history
        splits = {line.rsplit(",", 1)[1]
                  for line in (run / "predictions.csv").read_text().splitlines()[1:]}
        assert splits == {"train", "valid"}


def test_objective_is_the_selected_valid_metric(study):
    request, _, _, second = study
    for trial in second.study.trials:
        metrics = json.loads((request.out / "trials" / f"trial-{trial.number}" /
                              "metrics.json").read_text())
        assert trial.value == metrics["valid"]["MAE"]
        assert sorted(trial.intermediate_values) == [1, 2]
    assert second.best.value == min(t.value for t in second.study.trials)


def test_outputs_written(study):
    request, _, _, second = study
    for name in ("best.yaml", "trials.csv", "history.png", "importances.png", "study.db"):
        assert (request.out / name).is_file(), name
    assert (request.out / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((request.out / "trials").glob("*.lock"))
    best = yaml.safe_load((request.out / "best.yaml").read_text())
    assert best["model"]["name"] == "late_fusion" and best["data"]["name"] == "synthetic"
    assert best["model"]["hidden"] == second.best.params["model.hidden"]
    assert best["train"]["lr"] == second.best.params["train.lr"]
    assert "seed" not in best


def test_best_yaml_is_accepted_by_train(study, tmp_path):
    request, _, _, second = study
    out = tmp_path / "retrained"
    result = CliRunner().invoke(app, ["train", "--config", str(request.out / "best.yaml"),
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    best_run = request.out / "trials" / f"trial-{second.best.number}"
    assert yaml.safe_load((out / "config.yaml").read_text()) == \
        yaml.safe_load((best_run / "config.yaml").read_text())
    retrained = json.loads((out / "metrics.json").read_text())
    assert retrained["valid"] == json.loads((best_run / "metrics.json").read_text())["valid"]


def test_other_settings_refused(study):
    request, *_ = study
    for changed in (dataclasses.replace(request, sets=[*SETS[:-1], "train.patience=3"]),
                    dataclasses.replace(request, seed=7)):
        with pytest.raises(ConfigError, match="started with other settings") as err:
            tune(changed)
        assert "\n" not in str(err.value)


def test_other_sets_are_named_not_cut_off(study):
    # the sets differ in their last item: the message names it (the whole lists would be
    # cut off before it)
    request, *_ = study
    longer = [*SETS[:-1], "train.patience=3", "data.batch_size=16"]
    with pytest.raises(ConfigError) as err:
        tune(dataclasses.replace(request, sets=longer))
    assert 'only saved ["train.patience=10"], only given ["train.patience=3", ' \
           '"data.batch_size=16"]' in str(err.value)


def test_cli_prints_the_best_trial(study):
    request, _, _, second = study
    args = ["tune", "-m", "late_fusion", "-d", "synthetic", "--space", str(request.space),
            "--trials", "5", "--out", str(request.out), "--quiet"]
    for s in SETS:
        args += ["--set", s]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"best trial {second.best.number}" in result.output
    assert f"validation MAE {second.best.value:.4f}" in result.output
    assert "best.yaml" in result.output and "model.hidden" in result.output


@pytest.mark.slow
def test_continued_study_draws_what_an_uninterrupted_one_draws(study, tmp_path):
    request, _, _, second = study
    whole = tune(dataclasses.replace(request, out=tmp_path / "whole"))
    assert [t.params for t in whole.study.trials] == [t.params for t in second.study.trials]
    assert [t.value for t in whole.study.trials] == [t.value for t in second.study.trials]


# -- pruning, failures, interruptions --------------------------------------------------------
class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_pruned_trials_leave_consistent_run_folders(tmp_path, no_test_split, monkeypatch):
    request = make_request(tmp_path, 2)
    result = tune(request, pruner=AlwaysPrune())
    assert result.finished == 2 and result.best is None
    assert any("no plots yet" in note for note in result.notes)
    assert states(request.out) == ["PRUNED", "PRUNED"]
    assert not (request.out / "best.yaml").exists()
    run = request.out / "trials" / "trial-0"
    assert (run / "resume.pt").is_file() and not (run / "metrics.json").exists()
    assert len((run / "history.jsonl").read_text().splitlines()) == 1
    assert writer(run) is None and not list(run.glob(".*.tmp"))
    assert list(result.study.trials[0].intermediate_values) == [1]
    # the folder is an interrupted run: `mimsa train --resume` finishes it (and scores test)
    monkeypatch.undo()
    resumed = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert (run / "metrics.json").is_file()


def test_failed_trials_do_not_stop_the_study(tmp_path, monkeypatch):
    real = tune_mod.run_trial
    calls = []

    def flaky(request, number, *args, **kwargs):
        calls.append(number)
        if number == 0:
            raise TrainingError("loss became nan at epoch 1 (test)")
        return real(request, number, *args, **kwargs)

    monkeypatch.setattr(tune_mod, "run_trial", flaky)
    request = make_request(tmp_path, 1)
    result = tune(request, plots=False)
    assert calls == [0, 1] and result.finished == 1
    assert states(request.out) == ["FAIL", "COMPLETE"]
    assert any("trial 0 failed" in note for note in result.notes)


def test_failing_every_trial_stops(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise TrainingError("loss became nan (test)")

    monkeypatch.setattr(tune_mod, "run_trial", broken)
    with pytest.raises(RunError, match="5 trials in a row failed") as err:
        tune(make_request(tmp_path, 3))
    assert "\n" not in str(err.value)


def test_ctrl_c_fails_the_trial_and_says_how_to_continue(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_mod, "run_trial", interrupted)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["tune", "-m", "late_fusion", "-d", "synthetic",
                                      "--trials", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 130 and "run the same command again" in result.output
    study = optuna.load_study(study_name="late_fusion_synthetic",
                              storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"]
    assert not list((out / "trials").glob("*.lock"))


def test_interrupted_trial_is_marked_failed(tmp_path):
    request = make_request(tmp_path, 1)
    tune(request, plots=False)
    # a second process asked for trial 1, took its lock and was killed: RUNNING, lock free
    study = optuna.load_study(study_name=request.study_name, storage=request.storage_url)
    running = study.ask()
    lock = tune_mod.TrialLock(request.out, running.number)
    lock.path.write_text("")
    request.trials = 2
    result = tune(request, plots=False)
    assert [t.state.name for t in result.study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert any("trial 1 had been interrupted" in note for note in result.notes)


# -- storage ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["postgresql://user:secret@127.0.0.1:1/mimsa",
                                 "sqlite:////nonexistent-folder/x/study.db", "not a url"])
def test_storage_that_cannot_be_opened_is_one_line(tmp_path, url):
    request = make_request(tmp_path, 2, storage=url)
    with pytest.raises(ConfigError, match="cannot open the study database") as err:
        tune(request)
    assert "\n" not in str(err.value) and "secret" not in str(err.value)
    assert not request.out.exists()


def test_empty_storage_is_the_default_database(tmp_path):
    request = make_request(tmp_path, 1, storage="")
    tune(request, plots=False)
    assert (request.out / "study.db").is_file()


def test_cli_storage_error_is_one_red_line(tmp_path):
    result = CliRunner().invoke(app, ["tune", "-m", "late_fusion", "-d", "synthetic",
                                      "--trials", "2", "--out", str(tmp_path / "out"),
                                      "--storage", "sqlite:////nonexistent-folder/x.db"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and len(result.output.splitlines()) == 1


# -- Ray -------------------------------------------------------------------------------------
def test_ray_backend_without_ray_names_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    request = make_request(tmp_path, 2, backend="ray")
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[sweep\]"'):
        tune(request)
    assert not request.out.exists()


@pytest.mark.slow
def test_ray_backend_runs_the_same_trials(ray_cluster, study, tmp_path):
    """Ray trials draw the local study's first values and reach the same validation MAE."""
    local_request, _, _, local = study
    request = dataclasses.replace(local_request, out=tmp_path / "ray", trials=2,
                                  backend="ray", jobs=2)
    result = tune(request)
    assert result.finished == 2 and states(request.out) == ["COMPLETE", "COMPLETE"]
    by_number = {t.number: t for t in local.study.trials}
    for trial in result.study.trials:
        assert trial.params == by_number[trial.number].params
        assert trial.value == by_number[trial.number].value
        metrics = json.loads((request.out / "trials" / f"trial-{trial.number}" /
                              "metrics.json").read_text())
        assert metrics["test"] is None
    assert (request.out / "best.yaml").is_file()


@pytest.mark.slow
def test_ray_backend_prunes(ray_cluster, tmp_path):
    request = make_request(tmp_path, 2, backend="ray", jobs=2)
    result = tune(request, pruner=AlwaysPrune())
    assert result.finished == 2 and states(request.out) == ["PRUNED", "PRUNED"]
    assert not list((request.out / "trials").glob("*.lock"))
    for number in (0, 1):
        run = request.out / "trials" / f"trial-{number}"
        assert (run / "config.yaml").is_file() and not (run / "metrics.json").exists()
        assert writer(run) is None


def test_the_first_trial_is_the_untuned_configuration(study):
    request, first, *_ = study
    base = check_request(request, load_space(request.space_path))
    trial0 = first.study.trials[0].params
    # the preset's lr (1e-3, in the range) is queued; its hidden (64) is not among the choices
    # (16, 32), so the sampler draws that one
    assert base["train"]["lr"] == trial0["train.lr"] == 1e-3
    assert base["model"]["hidden"] == 64 and trial0["model.hidden"] in (16, 32)


def test_preset_values_outside_the_space_are_left_to_the_sampler():
    space = [tune_mod.Param("train.lr", "float", 1e-2, 1e-1, log=True),
             tune_mod.Param("model.hidden", "int", 16, 64, step=16),
             tune_mod.Param("data.batch_size", "categorical", choices=(16, 64))]
    base = {"train": {"lr": 1e-3}, "model": {"hidden": 48}, "data": {"batch_size": 32}}
    assert tune_mod.preset_params(space, base) == {"model.hidden": 48}
    base["model"]["hidden"] = 40  # not on the step grid
    assert tune_mod.preset_params(space, base) == {}


def test_set_values_compare_as_the_settings_they_give():
    from mimsa.sweep.tune import _same

    assert _same("sets", ["train.lr=0.1", "train.epochs=2"], ["train.epochs=2", "train.lr=0.1"])
    # a key inside a section given later, or earlier: other settings
    inner_last = ["data.context={before: 2, after: 2}", "data.context.before=1"]
    assert not _same("sets", inner_last, inner_last[::-1])
    assert not _same("sets", ["train.lr=0.1", "train.lr=0.2"], ["train.lr=0.2", "train.lr=0.1"])


def test_the_same_sets_in_another_order_continue_the_study(study):
    request, _, _, second = study
    again = tune(dataclasses.replace(request, sets=SETS[::-1]))
    assert again.finished == second.finished
    assert again.best.number == second.best.number
