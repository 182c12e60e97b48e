"""soft_orthogonality: zero for orthogonal inputs, positive otherwise, MISA's six pairs."""

from __future__ import annotations

import pytest
import torch

from mimsa.errors import ConfigError
from mimsa.objectives.base import create_objective
from mimsa.objectives.soft_orthogonality import soft_orthogonality
from tests.objectives.helpers import SPEC, output

# Columns 1-3 of the 4×4 Hadamard matrix: zero-mean, mutually orthogonal, and every row of any
# subset of them has the same norm, so orthogonality survives centring and row normalisation.
HADAMARD = torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])


def test_zero_for_orthogonal_inputs_whatever_their_offset_and_scale():
    h1, h2 = HADAMARD[:, [1]], HADAMARD[:, [2, 3]]
    assert soft_orthogonality(h1, h2) < 1e-12
    assert soft_orthogonality(3 * h1 + 5, 0.5 * h2 - 2, "sum") < 1e-12


def test_positive_for_dependent_inputs_and_sum_is_mean_times_entries():
    torch.manual_seed(0)
    h1 = torch.randn(32, 3)
    h2 = torch.cat([h1, torch.randn(32, 2)], dim=1)
    mean, total = soft_orthogonality(h1, h2), soft_orthogonality(h1, h2, "sum")
    assert mean > 0.01
    assert torch.allclose(total, mean * 3 * 5)


def test_objective_sums_invariant_specific_and_specific_pairs():
    g = torch.Generator().manual_seed(0)
    reps = {f"{k}_{m}": torch.randn(16, 4, generator=g) for k in ("inv", "spec") for m in "tav"}
    objective = create_objective("soft_orthogonality", SPEC, {k: 4 for k in reps})
    pairs = [("inv_t", "spec_t"), ("inv_a", "spec_a"), ("inv_v", "spec_v"),
             ("spec_t", "spec_a"), ("spec_t", "spec_v"), ("spec_a", "spec_v")]
    expected = sum(soft_orthogonality(reps[a], reps[b]) for a, b in pairs)
    assert torch.allclose(objective(output(**reps), None)["diff"], expected)
    with pytest.raises(ConfigError, match="reduction 'max' is unknown"):
        create_objective("soft_orthogonality", SPEC, {k: 4 for k in reps}, reduction="max")
    with pytest.raises(ConfigError, match="reads reps spec_t"):
        create_objective("soft_orthogonality", SPEC, {"inv_t": 4})
