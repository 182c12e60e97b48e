"""Checks shared by the zoo models' tests (tfn, lmf, mult, misa): a tiny synthetic run that
trains deterministically, and a dependency penalty attached by configuration."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mimsa import config as config_mod
from mimsa.data.batch import collate
from mimsa.data.synthetic import make_synthetic
from mimsa.encoders.builder import prepare_text
from mimsa.models.base import InputSpec, Model, create_model
from mimsa.train.run import train_run

SIZES = {"train": 48, "valid": 16, "test": 16}
ENCODER = {"name": "auto", "hidden": 16, "emb_dim": 8}


def tiny_cfg(model: str, *overrides: str) -> dict:
    """Return the model's synthetic preset on 48/16/16 samples, 2 epochs, batch 16."""
    cfg = config_mod.resolve_config(model, "synthetic", overrides=[
        "train.epochs=2", "train.patience=5", "data.batch_size=16", "encoder.hidden=16",
        "encoder.emb_dim=8", *overrides])
    cfg["data"]["synthetic_sizes"] = dict(SIZES)
    return cfg


def history(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]


def assert_trains_deterministically(cfg: dict, tmp_path: Path) -> list[dict]:
    """Train `cfg` twice; the metrics and histories must agree exactly (seconds aside)."""
    first = train_run(cfg, tmp_path / "a")
    second = train_run(cfg, tmp_path / "b")
    assert first == second
    rows = [history(tmp_path / name) for name in ("a", "b")]
    drop = ("train_seconds", "seconds", "eval_seconds")
    strip = [[{k: v for k, v in row.items() if k not in drop and "seconds" not in k}
              for row in run] for run in rows]
    assert strip[0] == strip[1]
    return rows[0]


def assert_js_penalty_attaches(cfg: dict, tmp_path: Path) -> None:
    """One epoch with penalty.kind=js: the dependency and critic terms are trained."""
    cfg = {**cfg, "penalty": {**cfg["penalty"], "kind": "js"},
           "train": {**cfg["train"], "epochs": 1}}
    metrics = train_run(cfg, tmp_path / "js")
    row = history(tmp_path / "js")[0]
    assert any(k.endswith("/dependency") for k in row), sorted(row)
    assert any(k.endswith("/critic_loss") for k in row), sorted(row)
    assert all(v == v for v in row.values() if isinstance(v, float))  # no NaN
    assert metrics


def make(name: str, modalities: str = "tav", n: int = 6, seed: int = 0,
         **options) -> tuple[Model, object]:
    """Return (model in eval mode, a batch of n synthetic samples) with small local encoders."""
    dataset = make_synthetic(sizes={"train": 12, "valid": 4, "test": 4})
    text = prepare_text(dataset, ENCODER) if "t" in modalities else InputSpec("", {}).text
    torch.manual_seed(seed)
    spec = InputSpec(modalities, dataset.feature_dims(), text, ENCODER)
    model = create_model(name, spec, **options)
    model.eval()
    return model, collate(dataset, range(n), modalities)
