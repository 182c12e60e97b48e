"""Trainer behaviour that MMIM's preset exercises: stages with their own optimisers, the
per-epoch reset of objectives, the legacy (test-informed) protocol and its resume, and
`train.term_weights`."""

import copy
import json

import pytest
import torch

from mimsa import config as config_mod
from mimsa.objectives.entropy import GaussianEntropy
from mimsa.train import trainer as trainer_mod
from mimsa.train.checkpoint import load_resume_state
from mimsa.train.run import build_model, prepare_data, train_run
from mimsa.train.seeding import seed_everything
from mimsa.train.trainer import Stage, Trainer, apply_term_weights


def history(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]


def one_stage_trainer(cfg: dict, stage: dict, run_dir) -> Trainer:
    cfg["train"]["stages"] = [stage]
    cfg["train"]["epochs"] = 1
    seed_everything(cfg["seed"])
    dataset, spec = prepare_data(cfg)
    model, objectives = build_model(cfg, spec)
    return Trainer(model, objectives, dataset, cfg, {"model": "mmim"}, run_dir,
                   modalities=spec.modalities, pad_id=spec.text.pad_id)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def test_stage_mi_trains_only_the_ba_networks_and_stage_main_leaves_them(mmim_cfg, tmp_path):
    stages = mmim_cfg["train"]["stages"]
    assert [s["name"] for s in stages] == ["mi", "main"]
    trainer = one_stage_trainer(copy.deepcopy(mmim_cfg), stages[0], tmp_path / "mi")
    assert sorted(trainer.optimizers) == ["main", "mi"]
    mi_params = {id(p) for g in trainer.optimizers["mi"].param_groups for p in g["params"]}
    assert mi_params == {id(p) for p in trainer.objectives["ba"].parameters()}
    model, objectives = snapshot(trainer.model), snapshot(trainer.objectives)
    trainer.fit()
    assert not changed(model, trainer.model)
    assert {k.split(".")[0] for k in changed(objectives, trainer.objectives)} == {"ba"}
    assert changed(objectives, trainer.objectives) == {k for k in objectives
                                                       if k.startswith("ba.")}

    trainer = one_stage_trainer(copy.deepcopy(mmim_cfg), stages[1], tmp_path / "main")
    model, objectives = snapshot(trainer.model), snapshot(trainer.objectives)
    trainer.fit()
    assert changed(model, trainer.model) == set(model)
    assert {k.split(".")[0] for k in changed(objectives, trainer.objectives)} == {"cpc"}


def test_two_stage_run_is_deterministic_and_resets_entropy_each_epoch(mmim_cfg, tmp_path,
                                                                      monkeypatch):
    resets = []
    original = GaussianEntropy.reset

    def spy(self):
        resets.append(len(self._history))
        original(self)

    monkeypatch.setattr(GaussianEntropy, "reset", spy)
    a = train_run(mmim_cfg, tmp_path / "a")
    assert resets == [0, 1]  # epoch 1: empty; epoch 2: the last batch of epoch 1 is dropped
    monkeypatch.undo()
    b = train_run(mmim_cfg, tmp_path / "b")
    assert a == b
    assert (tmp_path / "a" / "metrics.json").read_text() == \
        (tmp_path / "b" / "metrics.json").read_text()
    rows = history(tmp_path / "a")
    assert len(rows) == 2
    assert {"mi/lld", "main/task", "main/nce", "main/lld", "main/H"} <= set(rows[0])
    assert "mi/nce" not in rows[0] and "mi/H" not in rows[0]  # stage mi runs only `ba`
    assert (tmp_path / "a" / "objectives.safetensors").is_file()


def test_legacy_protocol_scores_test_every_epoch_clean_does_not(mmim_cfg, tmp_path,
                                                                  monkeypatch):
    seen = []
    original = trainer_mod.Trainer.predict_split

    def spy(self, split):
        seen.append(split)
        return original(self, split)

    monkeypatch.setattr(trainer_mod.Trainer, "predict_split", spy)
    mmim_cfg["train"]["epochs"] = 3
    clean = train_run(mmim_cfg, tmp_path / "clean")
    assert seen.count("test") == 1 and clean["protocol"] == "clean"
    assert not any("test/MAE" in r for r in history(tmp_path / "clean"))

    seen.clear()
    legacy = train_run({**mmim_cfg, "protocol": "legacy"}, tmp_path / "legacy")
    assert seen.count("test") == 3 + 1 and seen.count("valid") == 3 + 1
    assert legacy["protocol"] == "legacy"
    rows = history(tmp_path / "legacy")
    assert all("test/MAE" in r and "test/Corr" in r for r in rows)
    best_valid = best_test = None
    for row in rows:  # the published rule, replayed from the history
        keep = False
        if best_valid is None or row["valid/MAE"] < best_valid:
            best_valid = row["valid/MAE"]
            keep = best_test is None or row["test/MAE"] < best_test
            best_test = row["test/MAE"] if keep else best_test
        assert row["best"] == keep
    assert legacy["best_epoch"] == max(r["epoch"] for r in rows if r["best"])
    with pytest.raises(ValueError, match="unknown protocol 'peek'"):
        train_run({**mmim_cfg, "protocol": "peek"}, tmp_path / "bad")


def test_legacy_run_resumes_with_its_best_test_so_far(mmim_cfg, tmp_path, interrupt_run):
    cfg = {**mmim_cfg, "protocol": "legacy", "train": {**mmim_cfg["train"], "epochs": 3}}
    full = train_run(cfg, tmp_path / "full")
    interrupt_run(cfg, tmp_path / "cut")
    kept = [r["test/MAE"] for r in history(tmp_path / "cut") if r["best"]]
    assert load_resume_state(tmp_path / "cut")["best_test"] == kept[-1]
    assert train_run(cfg, tmp_path / "cut", resume=True) == full

    def rows(run_dir):
        return [{k: v for k, v in r.items() if k != "train_seconds"} for r in history(run_dir)]

    assert rows(tmp_path / "cut") == rows(tmp_path / "full")


def test_term_weights_replace_weights_and_zero_switches_off():
    stages = [Stage.from_config(s) for s in config_mod.resolve_config("mmim")["train"]["stages"]]
    same = apply_term_weights(stages, {})
    assert same == stages
    out = apply_term_weights(stages, {"nce": 0, "main/lld": -0.05, "H": "-0.3"})
    assert [s.name for s in out] == ["mi", "main"]
    assert out[0].steps[0].terms == {"lld": -1.0}
    assert out[1].steps[0].terms == {"task": 1.0, "lld": -0.05, "H": -0.3}
    no_ba = apply_term_weights(stages, {"lld": 0, "H": 0})
    assert [s.name for s in no_ba] == ["main"]
    assert no_ba[0].steps[0].terms == {"task": 1.0, "nce": 0.1}
    with pytest.raises(ValueError, match="nse is not a term of any stage; valid: .*nce"):
        apply_term_weights(stages, {"nse": 0})
    with pytest.raises(ValueError, match="nothing to train"):
        apply_term_weights(stages, {"task": 0, "nce": 0, "lld": 0, "H": 0})
    assert config_mod.resolve_config("mmim", overrides=["train.term_weights.main/nce=0.3"]
                                     )["train"]["term_weights"] == {"main/nce": 0.3}
