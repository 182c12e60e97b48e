"""The objective tests train tiny networks for a few hundred steps: one thread is fastest."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads():
    """Overrides the suite's 2-thread setting: tiny matrices only pay for thread hand-offs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
