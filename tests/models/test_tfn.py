"""tfn: the fused vector is vec(⊗_m [h_m; 1]), of size Π(d_m + 1), holding every h_m."""

from __future__ import annotations

import math

import pytest
import torch

from mimsa.models.tfn import tensor_fusion
from tests.models.zoo_checks import (
    assert_js_penalty_attaches,
    assert_trains_deterministically,
    make,
    tiny_cfg,
)


def test_tensor_fusion_holds_each_vector_times_the_others_constant_one():
    torch.manual_seed(0)
    h_t, h_a, h_v = torch.randn(5, 4), torch.randn(5, 3), torch.randn(5, 2)
    z = tensor_fusion([h_t, h_a, h_v])
    assert z.shape == (5, 5 * 4 * 3)
    cube = z.view(5, 5, 4, 3)
    assert torch.equal(cube[:, :4, 3, 2], h_t)  # h_t · 1 · 1
    assert torch.equal(cube[:, 4, :3, 2], h_a)
    assert torch.equal(cube[:, 4, 3, :2], h_v)
    assert torch.equal(cube[:, 4, 3, 2], torch.ones(5))
    assert torch.allclose(cube[:, :4, :3, 2], h_t[:, :, None] * h_a[:, None, :])  # bimodal
    assert torch.allclose(cube[:, :4, :3, :2],
                          h_t[:, :, None, None] * h_a[:, None, :, None] * h_v[:, None, None])
    assert torch.equal(tensor_fusion([h_a]), torch.cat([h_a, torch.ones(5, 1)], dim=1))


@pytest.mark.parametrize("modalities", ["tav", "ta", "av", "v"])
def test_the_models_fused_vector_has_size_prod_d_plus_one(modalities):
    model, batch = make("tfn", modalities, text_dim=5, audio_dim=3, vision_dim=4)
    dims = [model.reps_dims[m] for m in modalities]
    out = model(batch)
    z = model.fuse(batch)
    assert z.shape == (6, math.prod(d + 1 for d in dims)) and model.fused_dim == z.shape[1]
    cube = z.view(6, *(d + 1 for d in dims))
    for i, m in enumerate(modalities):  # h_m along its axis, the other axes at their 1
        index = [slice(None)] + [slice(0, d) if j == i else d for j, d in enumerate(dims)]
        assert torch.equal(cube[tuple(index)], out.reps[m])
    assert set(out.reps) == set(modalities) | {"fusion"}
    assert out.reps["fusion"].shape == (6, 64)


def test_a_pretrained_sized_text_vector_is_projected_to_text_dim():
    model, batch = make("tfn", "ta", text_dim=5)
    assert model.reps_dims["t"] == 5 and model(batch).reps["t"].shape == (6, 5)


def test_tiny_run_is_deterministic_and_a_penalty_attaches(tmp_path):
    cfg = tiny_cfg("tfn", "model.vision_dim=8", "model.hidden=16")
    rows = assert_trains_deterministically(cfg, tmp_path)
    assert "main/task" in rows[0]
    assert_js_penalty_attaches(cfg, tmp_path)
