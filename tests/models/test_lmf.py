"""lmf: a rank-r factorisation of tfn's first post-fusion layer, never forming z.

The exact relation tested: for every input, LowRankFusion(h) = W·z + b with
W = full_weight() = Σ_r ⊗_m W_m^(r) (per output unit) and z = tensor_fusion(h); hence an lmf
and a tfn sharing subnetworks, later layers and that weight give the same prediction. At full
rank the converse holds as well: with two modalities, rank min(d_1+1, d_2+1) represents ANY tfn
weight (an SVD per output unit), so lmf reproduces an arbitrary tfn.
"""

from __future__ import annotations

import pytest
import torch

from mimsa.errors import ConfigError
from mimsa.models.lmf import LowRankFusion
from mimsa.models.tfn import tensor_fusion
from tests.models.zoo_checks import (
    assert_js_penalty_attaches,
    assert_trains_deterministically,
    make,
    tiny_cfg,
)

SIZES = {"text_dim": 5, "audio_dim": 3, "vision_dim": 4, "hidden": 7}


def test_low_rank_fusion_is_a_linear_layer_on_z_with_the_cp_weight():
    torch.manual_seed(0)
    fusion = LowRankFusion([4, 3, 2], out_dim=6, rank=3)
    with torch.no_grad():
        fusion.bias.normal_()
    h = [torch.randn(8, 4), torch.randn(8, 3), torch.randn(8, 2)]
    weight = fusion.full_weight()
    assert weight.shape == (6, 5 * 4 * 3)
    expected = tensor_fusion(h) @ weight.T + fusion.bias
    assert torch.allclose(fusion(h), expected, atol=1e-5)


def test_lmf_equals_the_tfn_whose_fusion_weight_is_its_factor_product():
    lmf, batch = make("lmf", "tav", rank=2, **SIZES)
    tfn, _ = make("tfn", "tav", seed=1, **SIZES)
    state = {k: v for k, v in lmf.state_dict().items() if not k.startswith("fusion_layer.")}
    state["fusion_layer.weight"] = lmf.fusion_layer.full_weight().detach()
    state["fusion_layer.bias"] = lmf.fusion_layer.bias.detach()
    tfn.load_state_dict(state)
    with torch.no_grad():
        a, b = lmf(batch), tfn(batch)
    assert torch.allclose(a.prediction, b.prediction, atol=1e-5)
    assert torch.allclose(a.reps["fusion"], b.reps["fusion"], atol=1e-5)
    assert not torch.allclose(a.prediction, make("tfn", "tav", seed=1, **SIZES)[0](batch)
                              .prediction.detach())


def test_full_rank_lmf_reproduces_an_arbitrary_bimodal_tfn():
    tfn, batch = make("tfn", "ta", seed=3, **SIZES)
    d_t, d_a, hidden = 5, 3, 7
    rank = min(d_t, d_a) + 1
    lmf, _ = make("lmf", "ta", rank=rank, **SIZES)
    weight = tfn.fusion_layer.weight.detach().view(hidden, d_t + 1, d_a + 1)
    u, s, vh = torch.linalg.svd(weight)  # weight[o] = Σ_r s_r u_r v_rᵀ
    state = {k: v for k, v in tfn.state_dict().items() if not k.startswith("fusion_layer.")}
    state["fusion_layer.factors.0"] = (u[:, :, :rank] * s[:, None, :rank]).permute(2, 1, 0)
    state["fusion_layer.factors.1"] = vh[:, :rank, :].permute(1, 2, 0)
    state["fusion_layer.bias"] = tfn.fusion_layer.bias.detach()
    lmf.load_state_dict(state)
    assert torch.allclose(lmf.fusion_layer.full_weight(), tfn.fusion_layer.weight, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(lmf(batch).prediction, tfn(batch).prediction, atol=1e-5)


@pytest.mark.parametrize("out_dim", [64, 256])
def test_factors_start_as_the_authors_xavier_for_every_output_unit(out_dim):
    # Liu et al.'s code: xavier_normal_ on [rank, d+1, 1] -> std sqrt(2 / (rank + d + 1)),
    # whatever the fused width (a per-[d+1, out_dim] xavier shrank with out_dim; issue 18).
    torch.manual_seed(0)
    fusion = LowRankFusion([64, 16, 128], out_dim=out_dim, rank=3)
    for d, factor in zip([64, 16, 128], fusion.factors, strict=True):
        expected = (2 / (3 + d + 1)) ** 0.5
        assert abs(factor.std().item() / expected - 1) < 0.1, (d, factor.std().item(), expected)
        assert abs(factor.mean().item()) < 0.1 * expected


def test_three_modality_product_does_not_vanish_at_initialisation():
    """Issue 18: on mosi-poria (t, a, v) the fused output at initialisation had rms ~0.008
    (the product of three small terms), too little signal for the factors to outlearn Adam's
    weight decay; 4 of 5 seeds collapsed to a constant prediction. The h_m below have the scale
    the subnetworks give on mosi-poria at initialisation (rms 0.16 text; ReLU outputs with rms
    0.14 audio and 0.07 visual, about half zeros), with the preset's sizes."""
    rms = []
    for seed in range(5):
        torch.manual_seed(seed)
        fusion = LowRankFusion([64, 16, 128], out_dim=64, rank=3)
        h = [0.16 * torch.randn(256, 64), torch.relu(0.2 * torch.randn(256, 16)),
             torch.relu(0.1 * torch.randn(256, 128))]
        with torch.no_grad():
            fused = fusion(h)
        assert torch.isfinite(fused).all()
        rms.append(fused.pow(2).mean().sqrt().item())
        # the fused units vary across samples (not a constant carried by the bias rows alone)
        assert fused.std(0).mean().item() > 0.25 * rms[-1]
    assert min(rms) > 0.015 and max(rms) < 1.0, rms


def test_rank_must_be_positive():
    with pytest.raises(ConfigError, match=r"model.rank=0 is not allowed.*int >= 1"):
        make("lmf", "ta", rank=0)


def test_tiny_run_is_deterministic_and_a_penalty_attaches(tmp_path):
    cfg = tiny_cfg("lmf", "model.vision_dim=8", "model.hidden=16")
    assert_trains_deterministically(cfg, tmp_path)
    assert_js_penalty_attaches(cfg, tmp_path)
