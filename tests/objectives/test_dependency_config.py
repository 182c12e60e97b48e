"""The `penalty:` config section attaches a dependency penalty to any model, models untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from mimsa import config as config_mod
from mimsa.data.batch import collate
from mimsa.objectives.critic import DependencyObjective
from mimsa.objectives.penalty_config import apply_penalty, penalise_stages
from mimsa.train.run import build_model, prepare_data
from mimsa.train.seeding import seed_everything

SIZES = {"train": 32, "valid": 16, "test": 16}


def resolved(model: str, *overrides: str) -> dict:
    cfg = config_mod.resolve_config(model, "synthetic", overrides=list(overrides))
    cfg["data"]["synthetic_sizes"] = dict(SIZES)
    return cfg


def test_apply_penalty_rewrites_main_stages_and_adds_the_critic():
    cfg = resolved("late_fusion", "penalty.kind=js", "penalty.weight=0.2",
                   "penalty.critic_steps=3", "penalty.critic_lr=0.002", "penalty.hidden=16")
    before = copy.deepcopy(cfg)
    out = apply_penalty(cfg)
    assert cfg == before  # a copy comes back
    assert out["objectives"]["dependency_js"] == {"hidden": 16, "depth": 2,
                                                  "activation": "relu", "reps": None}
    assert out["train"]["optimizers"]["critic"] == {"lr": 0.002}
    assert out["train"]["stages"] == [{"name": "main", "steps": [
        {"optimizer": "critic", "terms": {"critic_loss": 1.0}, "repeat": 3},
        {"optimizer": "main", "terms": {"task": 1.0, "dependency": -0.2}}]}]
    assert out["penalty"]["kind"] is None
    assert apply_penalty(out) is out  # applying again changes nothing
    plain = resolved("late_fusion")
    assert apply_penalty(plain) is plain  # no penalty: the same config


def test_mmim_stages_keep_their_terms_and_the_mi_stage_is_left_alone():
    cfg = resolved("mmim", "penalty.kind=wasserstein", "penalty.lipschitz=spectral")
    cfg["train"]["stages"][1]["fraction"] = 0.5
    out = apply_penalty(cfg)
    mi, main = out["train"]["stages"]
    assert mi == cfg["train"]["stages"][0]
    assert main["name"] == "main" and main["fraction"] == 0.5
    assert main["steps"][0] == {"optimizer": "critic", "terms": {"critic_loss": 1.0},
                                "repeat": 1}
    assert main["steps"][1]["terms"] == {"task": 1.0, "nce": 0.1, "lld": -0.1, "H": -0.1,
                                         "dependency": -0.1}
    assert out["objectives"]["dependency_wasserstein"]["lipschitz"] == "spectral"
    assert out["train"]["optimizers"]["mi"] == cfg["train"]["optimizers"]["mi"]
    assert set(out["objectives"]) == {"ba", "entropy", "cpc", "dependency_wasserstein"}


def test_multi_step_stages_get_a_critic_step_before_each_main_step():
    stages = [{"name": "s", "steps": [{"optimizer": "mi", "terms": {"lld": -1.0}},
                                      {"optimizer": ["main", "mi"]}]}]
    out = penalise_stages(stages, 0.5, 2)
    assert [s.get("optimizer") for s in out[0]["steps"]] == ["mi", "critic", ["main", "mi"]]
    assert out[0]["steps"][2]["terms"] == {"task": 1.0, "dependency": -0.5}


def test_critic_reps_reuse_puts_the_critic_step_after_the_model_step():
    out = apply_penalty(resolved("late_fusion", "penalty.kind=kl", "penalty.critic_reps=reuse",
                                 "penalty.critic_steps=2"))
    assert out["train"]["stages"] == [{"name": "main", "steps": [
        {"optimizer": "main", "terms": {"task": 1.0, "dependency": -0.1}},
        {"optimizer": "critic", "terms": {"critic_loss": 1.0}, "repeat": 2}]}]


@pytest.mark.parametrize("override, message", [
    ("penalty.kind=mine", "penalty.kind='mine' is not allowed: .*'kl', 'js' or 'wasserstein'"),
    ("penalty.critic_reps=stale", "penalty.critic_reps='stale' is not allowed: .*'fresh'"),
    ("penalty.ema=0.99", "penalty.ema applies to penalty.kind=kl only"),
    ("penalty.critic_steps=0", "critic_steps=0 is not allowed: .*greater than or equal to 1"),
])
def test_bad_penalty_settings_are_one_line_errors(override, message):
    overrides = ["penalty.kind=js"] + [override]
    with pytest.raises(ValueError, match=message):
        apply_penalty(resolved("late_fusion", *overrides))


def test_unknown_penalty_key_is_rejected_by_the_config():
    with pytest.raises(config_mod.ConfigError, match="penalty"):
        resolved("late_fusion", "penalty.lambda=0.1")


def test_text_only_explains_that_a_penalty_needs_two_modalities():
    cfg = resolved("text_only", "penalty.kind=kl")
    _, spec = prepare_data(cfg)
    with pytest.raises(ValueError, match="at least two modalities"):
        build_model(cfg, spec)


@pytest.mark.parametrize("model", ["late_fusion", "ef_lstm", "mmim"])
def test_penalty_leaves_the_model_unchanged_at_initialisation(model):
    plain_cfg = resolved(model)
    dataset, spec = prepare_data(plain_cfg)
    batch = collate(dataset, dataset.indices("valid")[:8], spec.modalities, spec.text.pad_id)
    results = {}
    for kind in (None, "kl", "js", "wasserstein"):
        cfg = resolved(model, f"penalty.kind={kind or 'null'}")
        seed_everything(7)
        net, objectives = build_model(cfg, spec)
        net.eval()
        with torch.no_grad():
            results[kind] = (net.state_dict(), net(batch).prediction, objectives)
    state, prediction, objectives = results[None]
    assert not any(isinstance(o, DependencyObjective) for o in objectives.values())
    for kind in ("kl", "js", "wasserstein"):
        other_state, other_prediction, other_objectives = results[kind]
        assert other_state.keys() == state.keys()
        assert all(torch.equal(state[k], other_state[k]) for k in state)
        assert torch.equal(prediction, other_prediction)
        critic = other_objectives[f"dependency_{kind}"]
        assert critic.reps == [m for m in "tav" if m in spec.modalities]
