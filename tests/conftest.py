"""Shared fixtures: a tiny synthetic config that trains in about a second."""

from __future__ import annotations

import copy

import pytest
import torch

from mimsa import config as config_mod

TINY_SIZES = {"train": 96, "valid": 48, "test": 48}


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_cfg() -> dict:
    """Return a resolved late_fusion/synthetic config on 96/48/48 samples, 3 epochs."""
    cfg = config_mod.resolve_config("late_fusion", "synthetic")
    cfg["data"]["synthetic_sizes"] = dict(TINY_SIZES)
    cfg["train"]["epochs"] = 3
    cfg["train"]["patience"] = 10
    return copy.deepcopy(cfg)
