import json

import pytest
import torch

from mimsa.eval.aggregate import write_seed_summary
from mimsa.eval.evaluate import evaluate_run
from mimsa.objectives.base import Objective
from mimsa.train import trainer as trainer_mod
from mimsa.train.run import RunError, train_run, train_seeds


def test_same_seed_identical_metrics(tiny_cfg, tmp_path):
    a = train_run(tiny_cfg, tmp_path / "a")
    b = train_run(tiny_cfg, tmp_path / "b")
    assert a == b
    other = train_run({**tiny_cfg, "seed": 7}, tmp_path / "c")
    assert other["test"] != a["test"]


def test_outputs_written(tiny_cfg, tmp_path):
    metrics = train_run(tiny_cfg, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.yaml", "history.jsonl", "metrics.json", "predictions.csv",
            "model.safetensors", "model.json"} <= names
    assert "resume.pt" not in names
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 3
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0] == "id,label,prediction,split" and len(rows) == 1 + 96 + 48 + 48
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["model"] == "late_fusion" and spec["inputs"]["modalities"] == "tav"
    assert set(metrics) >= {"valid", "test", "protocol"}
    assert metrics["protocol"] == "clean"
    # Re-evaluating the saved checkpoint reproduces the reported numbers.
    again = evaluate_run(tmp_path)
    assert again["test"] == pytest.approx(metrics["test"], nan_ok=True)


def test_resume_after_interruption_matches_uninterrupted(tiny_cfg, tmp_path, interrupt_run):
    full = train_run(tiny_cfg, tmp_path / "full")
    interrupt_run(tiny_cfg, tmp_path / "cut")
    assert (tmp_path / "cut" / "resume.pt").exists()
    assert not (tmp_path / "cut" / "metrics.json").exists()
    with pytest.raises(RunError, match="interrupted run"):
        train_run(tiny_cfg, tmp_path / "cut")
    resumed = train_run(tiny_cfg, tmp_path / "cut", resume=True)
    assert resumed == full
    with pytest.raises(RunError, match="finished run"):
        train_run(tiny_cfg, tmp_path / "cut")


def test_test_split_is_scored_once_at_the_end(tiny_cfg, tmp_path, monkeypatch):
    seen = []
    original = trainer_mod.Trainer.predict_split

    def spy(self, split):
        seen.append(split)
        return original(self, split)

    monkeypatch.setattr(trainer_mod.Trainer, "predict_split", spy)
    train_run(tiny_cfg, tmp_path)
    assert seen.count("test") == 1 and seen[-3:] == ["train", "valid", "test"]
    assert seen.count("valid") == 3 + 1


def test_selection_uses_validation_and_early_stops(tiny_cfg, tmp_path):
    tiny_cfg["train"].update(epochs=12, patience=2)
    metrics = train_run(tiny_cfg, tmp_path)
    history = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    best = min(history, key=lambda r: r["valid/MAE"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["valid"]["MAE"] == pytest.approx(best["valid/MAE"])
    assert len(history) - metrics["best_epoch"] <= 2


def test_stage_that_does_not_step_main_leaves_model_unchanged(tiny_cfg, tmp_path):
    """A stage naming an optimizer without parameters is refused at once."""
    tiny_cfg["train"]["stages"] = [{"name": "mi", "optimizer": "mi", "terms": {"task": 1}}]
    with pytest.raises(ValueError, match="optimizer 'mi', which has no parameters"):
        train_run(tiny_cfg, tmp_path)


def test_stage_fraction_and_encoder_lr_group(tiny_cfg, tmp_path):
    from mimsa.train.optim import build_optimizers

    model = torch.nn.Module()
    model.pretrained = torch.nn.Linear(2, 2)
    model.head = torch.nn.Linear(2, 1)
    opts = build_optimizers(model, torch.nn.ModuleDict(), {"lr": 1e-3, "weight_decay": 0},
                            {"lr": 5e-5})
    lrs = {g["name"]: g["lr"] for g in opts["main"].param_groups}
    assert lrs == {"encoder": 5e-5, "model": 1e-3}
    tiny_cfg["train"]["stages"] = [{"name": "half", "optimizer": "main",
                                    "terms": {"task": 1.0}, "fraction": 0.5}]
    train_run(tiny_cfg, tmp_path)


def test_nan_loss_stops_with_epoch_and_batch(tiny_cfg, tmp_path):
    tiny_cfg["train"]["lr"] = float("nan")
    tiny_cfg["train"]["clip"] = 0
    with pytest.raises(trainer_mod.TrainingError, match="epoch 1, stage 'main', batch 1"):
        train_run(tiny_cfg, tmp_path)


def test_non_finite_validation_predictions_are_one_line_naming_a_sample(
        tiny_cfg, tmp_path, monkeypatch):
    real = trainer_mod.Trainer.predict_split

    def diverged(self, split):
        predictions = real(self, split)
        predictions[3] = float("inf")
        return predictions

    monkeypatch.setattr(trainer_mod.Trainer, "predict_split", diverged)
    with pytest.raises(trainer_mod.TrainingError) as err:
        train_run(tiny_cfg, tmp_path / "run")
    assert "predicted NaN or inf for 1 of" in str(err.value) and "valid samples (first: '" \
        in str(err.value) and "\n" not in str(err.value)


def test_multi_seed_summary(tiny_cfg, tmp_path):
    tiny_cfg["train"]["epochs"] = 1
    results = train_seeds(tiny_cfg, [1, 2], tmp_path)
    assert set(results) == {1, 2}
    write_seed_summary(tmp_path, tiny_cfg, results)  # the layer above train writes it
    csv_text = (tmp_path / "summary.csv").read_text()
    assert "mean" in csv_text and "std" in csv_text
    md = (tmp_path / "summary.md").read_text()
    assert "mean ± std (n=2)" in md and "protocol: clean" in md
    for written in (tmp_path / "summary.csv", tmp_path / "seed-1" / "predictions.csv"):
        assert b"\r" not in written.read_bytes()  # plain \n lines: grep ',test$' works
    again = train_seeds(tiny_cfg, [1, 2], tmp_path, resume=True)
    assert again == results


class Probe(Objective):
    """A test objective with its own optimizer: regresses a constant from the fusion rep."""

    optimizer = "probe"
    terms = ("probe",)
    calls = 0

    def __init__(self, spec, reps_dims):
        super().__init__()
        self.linear = torch.nn.Linear(reps_dims["fusion"], 1)

    def forward(self, output, batch):
        Probe.calls += 1
        return {"probe": (self.linear(output.reps["fusion"]) - 1).pow(2).mean()}


def test_steps_within_a_stage_and_model_frozen_when_not_stepped(tiny_cfg, tmp_path):
    from mimsa.objectives.base import _OBJECTIVES
    from mimsa.train.run import build_model, prepare_data
    from mimsa.train.seeding import seed_everything

    _OBJECTIVES.setdefault("test_probe", Probe)
    tiny_cfg["objectives"] = {"test_probe": {}}
    tiny_cfg["train"]["epochs"] = 1
    tiny_cfg["train"]["optimizers"] = {"probe": {"lr": 0.1}}
    tiny_cfg["train"]["stages"] = [{"name": "probe", "steps": [
        {"optimizer": "probe", "terms": {"probe": 1.0}, "repeat": 3}]}]
    seed_everything(tiny_cfg["seed"])
    model, _ = build_model(tiny_cfg, prepare_data(tiny_cfg)[1])
    Probe.calls = 0
    train_run(tiny_cfg, tmp_path / "frozen")
    batches = 3  # 96 training samples in batches of 32
    assert Probe.calls >= 3 * batches
    from safetensors.torch import load_file

    trained = load_file(str(tmp_path / "frozen" / "model.safetensors"))
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())

    tiny_cfg["train"]["stages"] = [{"name": "both", "steps": [
        {"optimizer": "probe", "terms": {"probe": 1.0}, "repeat": 2},
        {"optimizer": "main", "terms": {"task": 1.0}}]}]
    train_run(tiny_cfg, tmp_path / "both")
    trained = load_file(str(tmp_path / "both" / "model.safetensors"))
    assert not all(torch.equal(trained[k], v) for k, v in model.state_dict().items())


def test_steps_after_the_model_step_reuse_its_output_without_a_forward(tiny_cfg, tmp_path,
                                                                       monkeypatch):
    from mimsa.objectives.base import _OBJECTIVES
    from mimsa.train.trainer import Trainer

    _OBJECTIVES.setdefault("test_probe", Probe)
    tiny_cfg["objectives"] = {"test_probe": {}}
    tiny_cfg["train"]["epochs"] = 1
    tiny_cfg["train"]["optimizers"] = {"probe": {"lr": 0.1}}
    forwards = []
    original = Trainer._forward_without_grad
    monkeypatch.setattr(Trainer, "_forward_without_grad",
                        lambda self, b: forwards.append(1) or original(self, b))
    batches = 3  # 96 training samples in batches of 32
    probe = {"optimizer": "probe", "terms": {"probe": 1.0}, "repeat": 2}
    model = {"optimizer": "main", "terms": {"task": 1.0}}
    tiny_cfg["train"]["stages"] = [{"name": "before", "steps": [probe, model]}]
    train_run(tiny_cfg, tmp_path / "before")
    assert len(forwards) == batches  # one shared no-grad forward per batch
    forwards.clear()
    tiny_cfg["train"]["stages"] = [{"name": "after", "steps": [model, probe]}]
    Probe.calls = 0
    train_run(tiny_cfg, tmp_path / "after")
    assert forwards == []  # the probe read the model step's detached output
    assert Probe.calls >= 2 * batches
    row = json.loads((tmp_path / "after" / "history.jsonl").read_text().splitlines()[0])
    assert row["after/loss"] == pytest.approx(row["after/task"])  # the model step's loss
