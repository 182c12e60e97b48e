"""cmd: zero for identical distributions, growing with a shift in mean or in spread."""

from __future__ import annotations

import math

import pytest
import torch

from mimsa.errors import ConfigError
from mimsa.objectives.base import create_objective
from mimsa.objectives.cmd import central_moment_discrepancy
from tests.objectives.helpers import SPEC, output


def test_zero_for_identical_distributions():
    x = torch.rand(64, 8, generator=torch.Generator().manual_seed(0))
    assert central_moment_discrepancy(x, x) == 0
    shuffled = x[torch.randperm(64, generator=torch.Generator().manual_seed(1))]
    assert central_moment_discrepancy(x, shuffled) < 1e-6  # the same empirical distribution


def test_grows_with_a_shift_in_mean_by_exactly_its_norm():
    x = torch.rand(64, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    values = [central_moment_discrepancy(x, x + shift).item() for shift in (0.1, 0.2, 0.4)]
    assert values == sorted(values) and values[0] > 0
    for shift, value in zip((0.1, 0.2, 0.4), values, strict=True):
        assert math.isclose(value, shift * math.sqrt(8), rel_tol=1e-9)  # centred moments equal


def test_grows_with_a_change_in_variance():
    x = torch.rand(64, 8, generator=torch.Generator().manual_seed(0))
    centred = x - x.mean(0)
    values = [central_moment_discrepancy(centred, scale * centred).item()
              for scale in (1.0, 1.2, 1.5, 2.0)]
    assert values[0] == 0 and values == sorted(values) and values[1] > 0


def test_objective_averages_over_pairs_and_has_a_finite_gradient_at_zero():
    g = torch.Generator().manual_seed(0)
    reps = {f"inv_{m}": torch.rand(16, 4, generator=g, requires_grad=True) for m in "tav"}
    objective = create_objective("cmd", SPEC, {k: 4 for k in reps} | {"fusion": 4})
    sim = objective(output(**reps), None)["sim"]
    pairs = [("t", "a"), ("t", "v"), ("a", "v")]
    expected = sum(central_moment_discrepancy(reps[f"inv_{m}"], reps[f"inv_{n}"])
                   for m, n in pairs) / 3
    assert torch.allclose(sim, expected)
    same = torch.rand(16, 4, generator=g, requires_grad=True)
    zero = objective(output(inv_t=same, inv_a=same, inv_v=same), None)["sim"]
    zero.backward()
    assert zero == 0 and torch.isfinite(same.grad).all()


def test_one_modality_gives_zero_and_a_model_without_invariant_reps_is_refused():
    objective = create_objective("cmd", SPEC, {"inv_t": 4, "fusion": 4})
    assert objective(output(inv_t=torch.rand(8, 4)), None)["sim"] == 0
    with pytest.raises(ConfigError, match="reads reps inv_t/inv_a/inv_v.*like misa"):
        create_objective("cmd", SPEC, {"t": 4, "a": 4, "fusion": 8})
    with pytest.raises(ConfigError, match=r"objectives.cmd.moments=0 is not allowed.*int >= 1"):
        create_objective("cmd", SPEC, {"inv_t": 4}, moments=0)
