"""End to end: tiny trainings with each penalty, `mimsa dependency` and `mimsa evaluate --drop`."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
import yaml
from typer.testing import CliRunner

from mimsa import config as config_mod
from mimsa.cli import app
from mimsa.data.drop import ModalityDrop
from mimsa.eval.evaluate import evaluate_run
from mimsa.train import trainer as trainer_mod
from mimsa.train.checkpoint import load_objective_state, to_cpu_state
from mimsa.train.run import train_run

runner = CliRunner()
SIZES = {"train": 96, "valid": 48, "test": 48}


def tiny(kind: str | None) -> dict:
    cfg = config_mod.resolve_config(
        "late_fusion", "synthetic", overrides=[f"penalty.kind={kind or 'null'}"])
    cfg["data"]["synthetic_sizes"] = dict(SIZES)
    cfg["train"]["epochs"] = 1
    cfg["train"]["patience"] = 10
    return cfg


def train_and_spy(cfg: dict, run_dir) -> dict:
    """Train `cfg` into `run_dir`; return the optimisers and the objectives' initial state."""
    seen: dict = {}
    real = trainer_mod.build_optimizers

    def spy(model, objectives, *args, **kwargs):
        seen["optimizers"] = real(model, objectives, *args, **kwargs)
        seen["initial"] = to_cpu_state(objectives)
        return seen["optimizers"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_mod, "build_optimizers", spy)
        seen["metrics"] = train_run(cfg, run_dir)
    return seen


def check_critic_trained(seen: dict, run_dir, kind: str) -> None:
    optimizers = seen["optimizers"]
    critic_params = {id(p) for g in optimizers["critic"].param_groups for p in g["params"]}
    main_params = {id(p) for g in optimizers["main"].param_groups for p in g["params"]}
    assert critic_params and not critic_params & main_params  # "main" never steps the critic
    steps = {int(s["step"]) for s in optimizers["critic"].state.values()}
    assert steps == {3}  # 96 samples / batch 32 = 3 batches, one critic step each
    saved = load_objective_state(run_dir)
    weights = [k for k in saved if k.startswith(f"dependency_{kind}.critic.") and "weight" in k]
    assert weights
    assert any(not torch.equal(saved[k], seen["initial"][k]) for k in weights)
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert {"main/dependency", "main/critic_loss"} <= set(history[0])
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["penalty"]["kind"] == kind


@pytest.fixture(scope="module")
def js_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dependency") / "js"
    torch.set_num_threads(1)  # module-scoped: runs before the per-test thread fixture
    return run_dir, train_and_spy(tiny("js"), run_dir)


def test_js_penalty_trains_the_critic(js_run):
    run_dir, seen = js_run
    check_critic_trained(seen, run_dir, "js")


@pytest.mark.parametrize("kind", ["kl", "wasserstein"])
def test_each_penalty_trains_end_to_end(kind, tmp_path):
    seen = train_and_spy(tiny(kind), tmp_path / kind)
    check_critic_trained(seen, tmp_path / kind, kind)
    assert seen["metrics"]["test"]["MAE"] == seen["metrics"]["test"]["MAE"]  # not NaN


def test_dependency_command_scores_and_ranks(js_run, tmp_path):
    run_dir, _ = js_run
    result = runner.invoke(app, ["dependency", str(run_dir), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "highest dependency_js scores" in result.output
    assert "lowest dependency_js scores" in result.output
    with (run_dir / "dependency_test.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "label", "prediction", "score", "text"]
    assert len(rows) == SIZES["test"]
    assert all(row["text"] for row in rows)  # synthetic data has transcripts
    top = max(rows, key=lambda r: float(r["score"]))
    assert top["id"] in result.output
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["dependency", str(run_dir), "--split", "valid", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + SIZES["valid"]


def test_dependency_without_critic_is_one_line(js_run, tmp_path):
    run_dir, _ = js_run
    plain = tmp_path / "plain"
    train_run(tiny(None), plain)  # a finished run trained without a penalty: no critic
    result = runner.invoke(app, ["dependency", str(plain)])
    assert result.exit_code == 2
    assert "no dependency critic" in result.output and "penalty.kind=" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["dependency", str(run_dir), "--split", "dev"])
    assert result.exit_code == 2 and "unknown split" in result.output


def test_evaluate_drop_on_a_run_and_a_multi_seed_directory(js_run, tmp_path):
    run_dir, seen = js_run
    result = runner.invoke(app, ["evaluate", str(run_dir), "--drop", "a"])
    assert result.exit_code == 0, result.output
    assert "dropped at test time: a (fill zero" in result.output and "MAE" in result.output
    multi = tmp_path / "seeds"
    for seed in ("seed-1", "seed-2"):
        shutil.copytree(run_dir, multi / seed)
    result = runner.invoke(app, ["evaluate", str(multi), "--drop", "a", "--drop", "v",
                                 "--fill", "mean"])
    assert result.exit_code == 0, result.output
    assert "dropped at test time: a, v (fill mean" in result.output
    assert result.output.count("(dropped av, fill mean)") == 2
    result = runner.invoke(app, ["evaluate", str(run_dir), "--drop", "t", "--fill", "mean"])
    assert result.exit_code == 2 and "not defined for text given as token ids" in result.output
    result = runner.invoke(app, ["evaluate", str(run_dir), "--drop", "x"])
    assert result.exit_code == 2 and "not a modality" in result.output


def test_dropping_changes_predictions_and_nothing_dropped_reproduces(js_run):
    run_dir, seen = js_run
    reported = seen["metrics"]["test"]
    baseline = evaluate_run(run_dir)["test"]
    assert baseline["MAE"] == pytest.approx(reported["MAE"])
    for drop, fill in (("t", "zero"), ("av", "mean")):
        dropped = evaluate_run(run_dir, transform=ModalityDrop(drop, fill))["test"]
        assert dropped["MAE"] != pytest.approx(baseline["MAE"])


def test_a_modality_the_model_does_not_read_cannot_be_dropped_or_corrupted(tmp_path):
    # text_only on data with audio and vision reads text alone: dropping audio would report
    # the as-trained numbers as "audio dropped"
    cfg = config_mod.resolve_config("text_only", "synthetic")
    cfg["data"]["synthetic_sizes"] = dict(SIZES)
    cfg["train"]["epochs"] = 1
    run_dir = tmp_path / "text_only"
    train_run(cfg, run_dir)
    result = runner.invoke(app, ["evaluate", str(run_dir), "--drop", "a"])
    assert result.exit_code == 2
    assert "--drop a: the run's model reads modalities 't' only" in result.output
    result = runner.invoke(app, ["robustness", str(run_dir), "-c", "feature_noise",
                                 "--rates", "0.5"])
    assert result.exit_code == 2 and "reads modalities 't' only" in result.output
    result = runner.invoke(app, ["evaluate", str(run_dir), "--drop", "t"])
    assert result.exit_code == 0, result.output


def test_options_that_would_do_nothing_are_refused(js_run):
    run_dir, _ = js_run
    result = runner.invoke(app, ["evaluate", str(run_dir), "--fill", "mean"])
    assert result.exit_code == 2 and "give --drop a|v|t with it" in result.output
    for top in ("0", "-1"):
        result = runner.invoke(app, ["dependency", str(run_dir), "--top", top])
        assert result.exit_code == 2 and f"--top {top}" in result.output
    result = runner.invoke(app, ["evaluate", str(run_dir), "--drop", "a"])
    assert "pad id" not in result.output  # the token-id note is for a dropped text only
    assert "pad id" in ModalityDrop("t").describe()
