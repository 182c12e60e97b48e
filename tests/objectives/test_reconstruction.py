"""reconstruction: the mean over modalities of the per-entry squared error."""

from __future__ import annotations

import pytest
import torch

from mimsa.errors import ConfigError
from mimsa.objectives.base import create_objective
from tests.objectives.helpers import SPEC, output


def test_zero_for_a_perfect_reconstruction_and_mean_mse_otherwise():
    u_t, u_a = torch.ones(4, 3), torch.zeros(4, 3)
    objective = create_objective("reconstruction", SPEC, {"t": 3, "a": 3, "recon_t": 3,
                                                          "recon_a": 3})
    assert objective(output(t=u_t, a=u_a, recon_t=u_t, recon_a=u_a), None)["recon"] == 0
    value = objective(output(t=u_t, a=u_a, recon_t=u_t + 2, recon_a=u_a), None)["recon"]
    assert value == pytest.approx((4.0 + 0.0) / 2)
    with pytest.raises(ConfigError, match="reads reps recon_t"):
        create_objective("reconstruction", SPEC, {"t": 3, "fusion": 3})
