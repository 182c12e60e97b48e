"""Seeding: one call makes a run repeatable on its device."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA generators), and ask torch for deterministic
    kernels. cuBLAS needs a fixed workspace for those (CUBLAS_WORKSPACE_CONFIG, set here
    unless the user set it; it must be set before the first CUDA matrix product)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """Return the batch-order generator of one epoch; it depends on (seed, epoch) only, so a
    resumed run shuffles exactly like an uninterrupted one."""
    return np.random.default_rng([seed, epoch])
