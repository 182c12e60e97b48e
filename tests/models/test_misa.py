"""misa: invariant vectors from ONE shared encoder, specific ones from private encoders, a
shared decoder, and its three losses as objectives reading the documented reps keys."""

from __future__ import annotations

import pytest
import torch

from mimsa import config as config_mod
from tests.models.zoo_checks import (
    assert_js_penalty_attaches,
    assert_trains_deterministically,
    make,
    tiny_cfg,
)


@pytest.mark.parametrize("modalities", ["tav", "ta", "v"])
def test_reps_keys_and_sizes(modalities):
    model, batch = make("misa", modalities, hidden=16)
    out = model(batch)
    expected = set(modalities) | {"fusion"} | {f"{k}_{m}" for k in ("inv", "spec", "recon")
                                               for m in modalities}
    assert set(out.reps) == expected == set(model.reps_dims)
    assert out.reps["fusion"].shape == (6, 16 * len(modalities))
    for m in modalities:
        assert out.reps[f"inv_{m}"].shape == (6, 16)


def test_shared_encoder_private_encoders_and_shared_decoder():
    model, batch = make("misa", "tav", hidden=16)
    out = model(batch)
    with torch.no_grad():
        for m in "tav":
            assert torch.allclose(out.reps[f"inv_{m}"], model.shared(out.reps[m]))
            assert torch.allclose(out.reps[f"spec_{m}"], model.private[m](out.reps[m]))
            assert torch.allclose(out.reps[f"recon_{m}"], model.decoders[0](
                out.reps[f"inv_{m}"] + out.reps[f"spec_{m}"]))
    assert len(model.decoders) == 1 and len(model.private) == 3
    per_modality, _ = make("misa", "tav", hidden=16, shared_decoder=False)
    assert len(per_modality.decoders) == 3


def test_preset_has_the_published_weights():
    cfg = config_mod.resolve_config("misa", "mosi")
    assert cfg["train"]["stages"][0]["terms"] == {"task": 1.0, "diff": 0.3, "sim": 1.0,
                                                  "recon": 1.0}
    assert set(cfg["objectives"]) == {"cmd", "soft_orthogonality", "reconstruction"}
    assert cfg["train"]["loss"] == "mse" and cfg["encoder"]["pooling"] == "mean"
    assert config_mod.resolve_config("misa", "mosei")["data"]["batch_size"] == 16


def test_tiny_run_is_deterministic_and_a_penalty_attaches(tmp_path):
    cfg = tiny_cfg("misa", "model.hidden=16")
    rows = assert_trains_deterministically(cfg, tmp_path)
    assert {"main/task", "main/sim", "main/diff", "main/recon"} <= set(rows[0])
    assert_js_penalty_attaches(cfg, tmp_path)
