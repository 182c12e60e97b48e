import math

import pytest
import torch

from mimsa.objectives.ba_bound import (
    LOGVAR_LIMIT,
    BABound,
    ba_lower_bound,
    gaussian_log_likelihood,
    parse_pair,
)
from mimsa.objectives.base import create_objective
from mimsa.objectives.entropy import gaussian_entropy, ml_logdet

from .helpers import SPEC, correlated_gaussians, output, true_mi


def train_q(ba: BABound, d: int, rho: float, steps: int, seed: int = 1) -> torch.Generator:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(ba.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = correlated_gaussians(256, d, rho, g)
        loss = -ba(output(t=x, v=y), None)["lld"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return g


def test_ba_bound_recovers_known_mutual_information():
    torch.manual_seed(0)
    d, rho = 4, 0.8
    mi = true_mi(d, rho)  # 2.04 nats
    ba = create_objective("ba", SPEC, {"t": d, "v": d, "fusion": 8}, pairs=["t->v"])
    g = train_q(ba, d, rho, steps=800)
    x, y = correlated_gaussians(20000, d, rho, g)
    with torch.no_grad():
        lld = ba(output(t=x, v=y), None)["lld"].item()
    analytic_h = d / 2 * math.log(2 * math.pi * math.e)  # H(Y), Y ~ N(0, I_d)
    bound = ba_lower_bound(analytic_h, lld, d)
    assert mi - 0.15 < bound < mi + 0.05
    estimated_h = gaussian_entropy(ml_logdet(y, eps=0.0).item(), d)
    assert estimated_h == pytest.approx(analytic_h, abs=0.05)
    assert ba_lower_bound(estimated_h, lld, d) == pytest.approx(bound, abs=0.05)


def test_faithful_and_full_differ_exactly_by_the_logvar_term():
    torch.manual_seed(0)
    dims = {"t": 6, "v": 3, "a": 5, "fusion": 8}
    full = BABound(SPEC, dims, likelihood="full")
    faithful = BABound(SPEC, dims, likelihood="faithful")
    faithful.load_state_dict(full.state_dict())
    reps = {m: torch.randn(7, n) for m, n in dims.items()}
    gap = 0.0
    for pair in full.pairs:
        _, logvar = full.q[pair](reps[pair[0]])
        gap = gap - 0.5 * logvar.sum(-1).mean()
    difference = full(output(**reps), None)["lld"] - faithful(output(**reps), None)["lld"]
    assert difference.item() == pytest.approx(gap.item(), rel=1e-5, abs=1e-5)
    y, mu, logvar = torch.randn(3, 4, 5).unbind(0)
    exact = torch.distributions.Normal(mu, (logvar / 2).exp()).log_prob(y).sum(-1)
    assert torch.allclose(gaussian_log_likelihood(y, mu, logvar) - 5 * 0.5 * math.log(2 * math.pi),
                          exact, atol=1e-5)
    assert torch.allclose(gaussian_log_likelihood(y, mu, logvar, "faithful"),
                          -(y - mu).pow(2).div(2 * logvar.exp()).sum(-1), atol=1e-6)


def test_faithful_likelihood_inflates_the_variance():
    """Without −½·logvar, maximising lld over the logvar net drives the variance up."""
    torch.manual_seed(0)
    ba = BABound(SPEC, {"t": 4, "v": 4}, pairs=["tv"], likelihood="faithful")
    full = BABound(SPEC, {"t": 4, "v": 4}, pairs=["tv"])
    full.load_state_dict(ba.state_dict())
    g = train_q(ba, 4, 0.8, steps=150)
    train_q(full, 4, 0.8, steps=150)
    x, _ = correlated_gaussians(512, 4, 0.8, g)
    # The true conditional log-variance is log(1 − 0.8²) = −1.02.
    assert ba.q["tv"](x)[1].mean().item() > 3.0
    assert full.q["tv"](x)[1].mean().item() < 0.0
    assert ba.q["tv"](x)[1].max().item() <= LOGVAR_LIMIT


def test_pairs_default_skip_absent_and_validate():
    both = BABound(SPEC, {"t": 4, "a": 3, "v": 2, "fusion": 8})
    assert both.pairs == ["tv", "ta"] and both.optimizer == "mi"
    assert BABound(SPEC, {"t": 4, "a": 3, "fusion": 8}).pairs == ["ta"]
    text_only = BABound(SPEC, {"t": 4, "fusion": 8})
    assert text_only.pairs == [] and not list(text_only.parameters())
    assert text_only(output(t=torch.randn(5, 4), fusion=torch.randn(5, 8)), None)["lld"] == 0
    assert BABound(SPEC, {"t": 4, "a": 3, "v": 2}, pairs=["v→a", "t->v"]).pairs == ["va", "tv"]
    assert parse_pair("t -> a") == "ta"
    with pytest.raises(ValueError, match="not a pair"):
        BABound(SPEC, {"t": 4, "v": 2}, pairs=["tt"])
    with pytest.raises(ValueError, match="likelihood 'exact' is unknown"):
        BABound(SPEC, {"t": 4, "v": 2}, likelihood="exact")


def test_extreme_inputs_stay_finite_and_gradients_reach_x_and_y():
    ba = BABound(SPEC, {"t": 4, "v": 4}, pairs=["tv"])
    x = torch.full((6, 4), 1e4, requires_grad=True)
    y = torch.zeros(6, 4, requires_grad=True)
    lld = ba(output(t=x, v=y), None)["lld"]
    assert torch.isfinite(lld)
    lld.backward()
    assert x.grad is not None and y.grad is not None
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_detach_target_keeps_the_gradient_out_of_y():
    ba = BABound(SPEC, {"t": 4, "v": 4}, pairs=["tv"], detach_target=True)
    x = torch.randn(6, 4, requires_grad=True)
    y = torch.randn(6, 4, requires_grad=True)
    ba(output(t=x, v=y), None)["lld"].backward()
    assert y.grad is None and x.grad.abs().sum() > 0
