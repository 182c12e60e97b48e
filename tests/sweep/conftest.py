"""Shared fixtures of the sweep tests: one local Ray cluster for the whole test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """Start a local Ray cluster of 2 CPUs once per test session (skip without the extra)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e \".[sweep]\"")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
