import math

import pytest
import torch

from mimsa.objectives.base import create_objective, list_objectives
from mimsa.objectives.cpc import CPC, info_nce, infonce_bound

from .helpers import SPEC, correlated_gaussians, output, true_mi


def cosine_ceiling(batch_size: int) -> float:
    """The largest log B − nce a temperature-free cosine critic can reach: s_ii = 1, s_ij = −1."""
    return math.log(batch_size) + 1 - math.log(math.e + (batch_size - 1) / math.e)


def bounds(cpc: CPC, d: int, rho: float, batch_size: int, batches: int,
           g: torch.Generator) -> list[float]:
    with torch.no_grad():
        return [cpc.mi_lower_bounds(output(t=y, fusion=x))["t"].item()
                for x, y in (correlated_gaussians(batch_size, d, rho, g) for _ in range(batches))]


def train(cpc: CPC, d: int, rho: float, batch_size: int, steps: int, g: torch.Generator) -> None:
    opt = torch.optim.Adam(cpc.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = correlated_gaussians(batch_size, d, rho, g)
        loss = cpc(output(t=y, fusion=x), None)["nce"]
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize(("d", "rho", "batch_size"), [(4, 0.6, 64), (4, 0.99, 4)])
def test_infonce_bound_rises_toward_min_of_mi_and_log_b_never_above_log_b(d, rho, batch_size):
    """I < log B (0.89 vs 4.16) and I ≫ log B (7.8 vs 1.39). Without a temperature the cosine
    critic cannot pass `cosine_ceiling(B)`, so "toward" is judged against that ceiling too."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    cpc = create_objective("cpc", SPEC, {"t": d, "fusion": d})
    target = min(true_mi(d, rho), math.log(batch_size), cosine_ceiling(batch_size))
    before = bounds(cpc, d, rho, batch_size, 200, g)
    train(cpc, d, rho, batch_size, 500, g)
    after = bounds(cpc, d, rho, batch_size, 500, g)
    mean_before, mean_after = sum(before) / len(before), sum(after) / len(after)
    assert mean_before < 0.1 < mean_after
    assert 0.4 * target < mean_after <= true_mi(d, rho)
    assert max(before + after) <= math.log(batch_size)
    assert max(before + after) <= cosine_ceiling(batch_size) + 1e-6


def test_info_nce_never_negative_even_for_a_perfect_critic():
    g = torch.Generator().manual_seed(0)
    for batch_size in (1, 2, 8, 64):
        h = torch.randn(batch_size, 5, generator=g)
        for predicted in (h, -h, torch.randn(batch_size, 5, generator=g), torch.zeros_like(h)):
            nce = info_nce(h, predicted)
            assert torch.isfinite(nce) and nce.item() >= -1e-6
            assert infonce_bound(nce.item(), batch_size) <= math.log(batch_size) + 1e-6


def test_nce_sums_over_present_modalities():
    torch.manual_seed(0)
    dims = {"t": 6, "a": 3, "fusion": 10}
    cpc = CPC(SPEC, dims)
    assert cpc.modalities == ["t", "a"] and cpc.optimizer == "main" and "cpc" in list_objectives()
    reps = {m: torch.randn(9, n) for m, n in dims.items()}
    per = cpc.nce_terms(output(**reps))
    assert set(per) == {"t", "a"}
    total = cpc(output(**reps), None)["nce"]
    assert total.item() == pytest.approx(sum(v.item() for v in per.values()), rel=1e-6)
    expected = info_nce(reps["a"], cpc.predictors["a"](reps["fusion"]))
    assert per["a"].item() == pytest.approx(expected.item())
    total.backward()
    assert all(p.grad is not None for p in cpc.parameters())
    assert CPC(SPEC, dims, modalities="a").modalities == ["a"]
    with pytest.raises(ValueError, match="'fusion'"):
        CPC(SPEC, {"t": 6})
