"""The dependency penalties' estimators, critic and shuffling on correlated Gaussians."""

from __future__ import annotations

import pytest
import torch

from mimsa.objectives.base import create_objective
from mimsa.objectives.critic import Critic, DependencyObjective, shuffle_marginals

from .helpers import SPEC, correlated_gaussians, output, true_mi

D = 2
DIMS = {"t": D, "v": D, "fusion": 4}
RHOS = (0.0, 0.5, 0.9)


def train_critic(kind: str, rho: float, steps: int = 300, seed: int = 0, **options
                 ) -> tuple[DependencyObjective, float, torch.Generator]:
    """Train the critic alone on batches of 128; return it, D on 8192 fresh samples, the rng."""
    torch.manual_seed(seed)
    objective = create_objective(f"dependency_{kind}", SPEC, DIMS, hidden=32, depth=1,
                                 **options)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(objective.parameters(), lr=5e-3)
    for _ in range(steps):
        x, y = correlated_gaussians(128, D, rho, g)
        loss = objective(output(t=x, v=y), None)["critic_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    objective.eval()
    x, y = correlated_gaussians(8192, D, rho, g)
    with torch.no_grad():
        reps = {"t": x, "v": y}
        value = objective.divergence(objective.joint(reps), objective.marginal(reps, g),
                                     update=False).item()
    return objective, value, g


@pytest.mark.parametrize("options", [{}, {"ema": 0.99}], ids=["plain", "ema"])
def test_dv_estimate_grows_with_correlation_and_stays_below_the_true_mi(options):
    estimates = [train_critic("kl", rho, **options)[1] for rho in RHOS]
    assert estimates[0] < estimates[1] < estimates[2]
    assert abs(estimates[0]) < 0.05
    for rho, value in zip(RHOS, estimates, strict=True):
        assert value < true_mi(D, rho) + 0.05  # a lower bound, up to sampling error
    assert estimates[2] > 0.7 * true_mi(D, 0.9)  # and not a trivial one


def test_js_estimate_grows_with_correlation_and_is_minus_log4_at_independence():
    estimates = [train_critic("js", rho)[1] for rho in RHOS]
    assert estimates[0] < estimates[1] < estimates[2] < 0
    assert estimates[0] == pytest.approx(-torch.log(torch.tensor(4.0)).item(), abs=0.02)


@pytest.mark.parametrize("lipschitz", ["penalty", "spectral"])
def test_wasserstein_critic_is_lipschitz_after_training(lipschitz):
    objective, value, g = train_critic("wasserstein", 0.9, lipschitz=lipschitz)
    assert value > 0.1
    x, y = correlated_gaussians(2048, D, 0.9, g)
    reps = {"t": x, "v": y}
    points = torch.cat([objective.joint(reps), objective.marginal(reps, g),
                        3 * torch.randn(2048, 2 * D, generator=g)])
    i = torch.randint(len(points), (20000,), generator=g)
    j = torch.randint(len(points), (20000,), generator=g)
    i, j = i[i != j], j[i != j]
    near = points + 0.01 * torch.randn(points.shape, generator=g)
    with torch.no_grad():
        values, near_values = objective.critic(points), objective.critic(near)
    far_ratio = (values[i] - values[j]).abs() / (points[i] - points[j]).norm(dim=1)
    near_ratio = (near_values - values).abs() / (near - points).norm(dim=1)
    assert far_ratio.max().item() <= 1.25
    assert near_ratio.max().item() <= 1.25


def test_wasserstein_estimate_grows_with_correlation():
    estimates = [train_critic("wasserstein", rho, steps=200)[1] for rho in RHOS]
    assert abs(estimates[0]) < 0.05
    assert estimates[0] < estimates[1] < estimates[2]


def test_shuffle_permutes_each_modality_independently():
    n = 64
    rows = torch.arange(n, dtype=torch.float32)[:, None]
    reps = {"t": rows.clone(), "a": rows.clone() + 1000, "v": rows.clone() + 2000}
    shuffled = shuffle_marginals(reps, "tav", torch.Generator().manual_seed(0))
    perms = {m: (shuffled[m][:, 0] - reps[m][0, 0]).long() for m in "tav"}
    for m in "tav":
        assert sorted(perms[m].tolist()) == list(range(n))  # a permutation of the rows
        assert not torch.equal(perms[m], torch.arange(n))
    assert not torch.equal(perms["t"], perms["a"])
    assert not torch.equal(perms["a"], perms["v"])
    assert not torch.equal(perms["t"], perms["v"])
    assert torch.equal(reps["t"], rows)  # the input is left alone


def test_shuffle_breaks_the_joint_and_is_reproducible():
    g = torch.Generator().manual_seed(3)
    x, y = correlated_gaussians(4096, 1, 0.9, g)
    joint = torch.corrcoef(torch.cat([x, y], 1).T)[0, 1].item()
    shuffled = shuffle_marginals({"t": x, "a": y}, ["t", "a"], torch.Generator().manual_seed(1))
    broken = torch.corrcoef(torch.cat([shuffled["t"], shuffled["a"]], 1).T)[0, 1].item()
    assert joint > 0.85
    assert abs(broken) < 0.06
    again = shuffle_marginals({"t": x, "a": y}, ["t", "a"], torch.Generator().manual_seed(1))
    assert all(torch.equal(again[m], shuffled[m]) for m in ("t", "a"))


def test_terms_dependency_reaches_the_reps_and_critic_loss_does_not():
    torch.manual_seed(0)
    objective = create_objective("dependency_js", SPEC, DIMS)
    x = torch.randn(16, D, requires_grad=True)
    y = torch.randn(16, D, requires_grad=True)
    terms = objective(output(t=x, v=y), None)
    assert set(terms) == {"dependency", "critic_loss"}
    assert terms["critic_loss"].item() == pytest.approx(-terms["dependency"].item(), abs=1e-6)
    terms["dependency"].backward(retain_graph=True)
    assert x.grad is not None and x.grad.abs().sum() > 0
    x.grad = None
    terms["critic_loss"].backward()
    assert x.grad is None  # computed on detached reps
    assert all(p.grad is not None for p in objective.critic.parameters())
    assert objective.optimizer == "critic"


def test_critic_options_and_reps_selection():
    dims = {"t": 3, "a": 4, "v": 5, "fusion": 6}
    default = create_objective("dependency_kl", SPEC, dims)
    assert default.reps == ["t", "a", "v"] and default.critic.in_dim == 12
    chosen = create_objective("dependency_kl", SPEC, dims, reps="av", hidden=8, depth=3,
                              activation="tanh")
    assert chosen.reps == ["a", "v"]
    assert sum(isinstance(m, torch.nn.Linear) for m in chosen.critic.modules()) == 4
    assert Critic(5, depth=0).net[0].in_features == 5
    with pytest.raises(ValueError, match="at least two modalities.*t, fusion"):
        create_objective("dependency_js", SPEC, {"t": 3, "fusion": 6})
    with pytest.raises(ValueError, match="not reps of the model"):
        create_objective("dependency_js", SPEC, dims, reps=["t", "x"])
    with pytest.raises(ValueError, match="names t more than once"):
        create_objective("dependency_js", SPEC, dims, reps=["t", "t"])
    with pytest.raises(ValueError, match="activation"):
        create_objective("dependency_js", SPEC, dims, activation="swish")
    with pytest.raises(ValueError, match="lipschitz"):
        create_objective("dependency_wasserstein", SPEC, dims, lipschitz="clip")
    with pytest.raises(ValueError, match="ema"):
        create_objective("dependency_kl", SPEC, dims, ema=1.5)


def test_kl_moving_average_is_saved_and_keeps_the_value():
    torch.manual_seed(0)
    plain = create_objective("dependency_kl", SPEC, DIMS)
    ema = create_objective("dependency_kl", SPEC, DIMS, ema=0.9)
    ema.critic.load_state_dict(plain.critic.state_dict())
    x, y = torch.randn(32, D), torch.randn(32, D)
    torch.manual_seed(1)
    first = plain(output(t=x, v=y), None)["dependency"]
    torch.manual_seed(1)
    second = ema(output(t=x, v=y), None)["dependency"]
    assert second.item() == pytest.approx(first.item(), abs=1e-6)
    assert torch.isfinite(ema.log_running)
    assert "log_running" in ema.state_dict()
