"""tfn, lmf, mult, misa build and run on the real datasets (utterance-level audio/visual: one
frame per sample), with their presets; skipped when the data are absent."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
import torch

from mimsa import config as config_mod
from mimsa.data.batch import collate
from mimsa.train.run import build_model, prepare_data

REAL_ROOT = Path(os.environ.get("MIMSA_DATA")
                 or Path(__file__).parents[2] / "../shared/data").resolve()


@cache
def _data(dataset: str) -> tuple:
    cfg = config_mod.resolve_config("late_fusion", dataset)
    cfg["data"]["root"] = str(REAL_ROOT)
    return prepare_data(cfg)


@pytest.mark.real_data
@pytest.mark.parametrize("dataset", ["mosi", "mosi-poria"])
@pytest.mark.parametrize("name", ["tfn", "lmf", "mult", "misa"])
def test_builds_and_runs_on_the_real_datasets(name, dataset):
    if not (REAL_ROOT / "mosi" / "label.csv").is_file():
        pytest.skip(f"real data not found at {REAL_ROOT}; set MIMSA_DATA")
    data, spec = _data(dataset)
    assert spec.modalities == ("ta" if dataset == "mosi" else "tav")
    cfg = config_mod.resolve_config(name, dataset)
    model, objectives = build_model(cfg, replace(spec, encoder=dict(cfg["encoder"])))
    batch = collate(data, data.indices("test")[:4], spec.modalities, spec.text.pad_id)
    assert batch.audio.shape[1] == 1  # one utterance-level frame
    model.eval()
    with torch.no_grad():
        out = model(batch)
        terms = {k: v for o in objectives.values() for k, v in o(out, batch).items()}
    assert out.prediction.shape == (4,) and torch.isfinite(out.prediction).all()
    assert all(torch.isfinite(v) for v in terms.values())
