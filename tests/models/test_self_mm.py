"""`self_mm`: its reps for ULGM, short synthetic runs that train, repeat, resume exactly, take
the other objectives by configuration, and write the generated labels on `mimsa evaluate`."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from mimsa import config as config_mod
from mimsa.cli import app
from mimsa.data.batch import collate
from mimsa.data.synthetic import make_synthetic
from mimsa.encoders.builder import prepare_text
from mimsa.models.base import InputSpec, create_model
from mimsa.train.run import load_run, train_run

SIZES = {"train": 48, "valid": 24, "test": 24}


@pytest.fixture
def self_mm_cfg() -> dict:
    """The self_mm preset (ulgm attached) on 48/24/24 synthetic samples, 3 epochs."""
    cfg = config_mod.resolve_config("self_mm", "synthetic")
    cfg["data"]["synthetic_sizes"] = dict(SIZES)
    cfg["train"]["epochs"] = 3
    return copy.deepcopy(cfg)


def history(run_dir) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


@pytest.mark.parametrize("modalities", ["tav", "ta", "v"])
def test_reps_carry_features_and_unimodal_predictions(modalities):
    torch.manual_seed(0)
    dataset = make_synthetic(sizes={"train": 8, "valid": 2, "test": 2})
    encoder = {"name": "auto", "hidden": 16, "emb_dim": 8}
    text = prepare_text(dataset, encoder)
    model = create_model("self_mm", InputSpec(modalities, dataset.feature_dims(), text, encoder))
    model.eval()
    out = model(collate(dataset, range(5), modalities))
    expected = {*modalities, "fusion", "feat_m", *(f"feat_{m}" for m in modalities),
                *(f"pred_{m}" for m in modalities)}
    assert set(out.reps) == expected == set(model.reps_dims)
    assert out.reps["fusion"] is out.reps["feat_m"] and out.reps["feat_m"].shape == (5, 128)
    assert {out.reps[f"pred_{m}"].shape for m in modalities} == {(5, 1)}
    assert bool((out.reps["feat_m"] >= 0).all())  # f_s = ReLU(...)
    assert model.reps_dims.get("feat_t", 32) == 32 and model.reps_dims.get("feat_a", 16) == 16


def test_run_trains_deterministically_and_resumes_exactly(self_mm_cfg, tmp_path, interrupt_run):
    full = train_run(self_mm_cfg, tmp_path / "full")
    rows = history(tmp_path / "full")
    assert [r["main/unimodal"] for r in rows[:2]] == [0.0, 0.0]  # weights 0 until epoch 3
    assert rows[2]["main/unimodal"] > 0
    interrupt_run(self_mm_cfg, tmp_path / "cut", epoch=2)  # before the labels first matter
    resumed = train_run(self_mm_cfg, tmp_path / "cut", resume=True)
    # the cut run repeated epochs 1-2 of the full run (deterministic) and continued exactly
    assert resumed == full and history(tmp_path / "cut") == rows
    saved = {k: (tmp_path / k / "objectives.safetensors").read_bytes() for k in ("full", "cut")}
    assert saved["full"] == saved["cut"]


def test_evaluate_writes_the_generated_labels(self_mm_cfg, tmp_path):
    self_mm_cfg["train"]["epochs"] = 2
    run_dir = tmp_path / "run"
    train_run(self_mm_cfg, run_dir)
    result = CliRunner().invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((run_dir / "unimodal_labels.csv").open()))
    _, model, dataset, _ = load_run(run_dir)
    train = dataset.indices("train")
    assert list(rows[0]) == ["id", "y_m", "y_t", "y_a", "y_v"]
    assert [r["id"] for r in rows] == [dataset.ids[i] for i in train]
    assert [float(r["y_m"]) for r in rows] == pytest.approx(dataset.labels[train].tolist())
    memory = model.objectives["ulgm"].labels_v
    assert [float(r["y_v"]) for r in rows] == pytest.approx(memory.tolist(), rel=1e-5)
    assert any(r["y_v"] != r["y_m"] for r in rows)  # epoch 2 generated labels


def test_a_run_without_ulgm_writes_no_label_file(self_mm_cfg, tmp_path):
    from mimsa.eval.unimodal_labels import write_unimodal_labels

    cfg = copy.deepcopy(self_mm_cfg)
    cfg["train"]["epochs"] = 1
    cfg["objectives"] = {}
    cfg["train"]["stages"] = [{"name": "main", "optimizer": "main", "terms": {"task": 1.0}}]
    train_run(cfg, tmp_path / "plain")
    assert write_unimodal_labels(tmp_path / "plain") is None
    assert not (tmp_path / "plain" / "unimodal_labels.csv").exists()


def test_penalty_and_mmim_objectives_attach_by_configuration(self_mm_cfg, tmp_path):
    cfg = copy.deepcopy(self_mm_cfg)
    cfg["train"]["epochs"] = 2
    cfg["penalty"] = {**cfg["penalty"], "kind": "js"}
    train_run(cfg, tmp_path / "js")
    row = history(tmp_path / "js")[-1]
    assert {"main/dependency", "main/critic_loss", "main/unimodal"} <= set(row)

    cfg = copy.deepcopy(self_mm_cfg)
    cfg["train"]["epochs"] = 2
    cfg["objectives"].update({"ba": {}, "entropy": {}, "cpc": {}})
    cfg["train"]["stages"] = [
        {"name": "mi", "optimizer": "mi", "terms": {"lld": -1.0}},
        {"name": "main", "optimizer": "main",
         "terms": {"task": 1.0, "unimodal": 1.0, "nce": 0.1, "lld": -0.1, "H": -0.1}}]
    train_run(cfg, tmp_path / "mmim_objectives")
    row = history(tmp_path / "mmim_objectives")[-1]
    assert {"mi/lld", "main/nce", "main/H", "main/unimodal"} <= set(row)
    assert all(v == v for v in row.values() if isinstance(v, float))  # no NaN


@pytest.mark.slow
def test_seeds_keep_separate_memories(self_mm_cfg, tmp_path):
    from mimsa.train.run import train_seeds

    results = train_seeds(self_mm_cfg, [1111, 1112], tmp_path / "seeds")
    single = train_run({**self_mm_cfg, "seed": 1112}, tmp_path / "single")
    assert results[1112] == single
