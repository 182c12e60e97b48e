"""Shared fixtures: a tiny synthetic config that trains in about a second."""

from __future__ import annotations

import copy

import pytest
import torch

from mimsa import config as config_mod

TINY_SIZES = {"train": 96, "valid": 48, "test": 48}


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models gain nothing from a second thread, and two busy threads on two shared
    # cores slow every test several-fold.
    torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg() -> dict:
    """Return a resolved late_fusion/synthetic config on 96/48/48 samples, 3 epochs."""
    cfg = config_mod.resolve_config("late_fusion", "synthetic")
    cfg["data"]["synthetic_sizes"] = dict(TINY_SIZES)
    cfg["train"]["epochs"] = 3
    cfg["train"]["patience"] = 10
    return copy.deepcopy(cfg)


@pytest.fixture
def interrupt_run():
    """Return run(cfg, run_dir, epoch=2): trains with `train_run` and stops it with a
    KeyboardInterrupt right after `epoch`, leaving an interrupted run directory."""
    from mimsa.train.run import train_run

    def run(cfg: dict, run_dir, epoch: int = 2) -> None:
        def interrupt(finished: int, row: dict) -> None:
            if finished == epoch:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train_run(cfg, run_dir, on_epoch_end=interrupt)

    return run


@pytest.fixture
def mmim_cfg() -> dict:
    """The mmim preset (two stages, ba + entropy + cpc) on 96/48/48 synthetic samples, 2
    epochs."""
    cfg = config_mod.resolve_config("mmim", "synthetic")
    cfg["data"]["synthetic_sizes"] = dict(TINY_SIZES)
    cfg["train"]["epochs"] = 2
    return cfg

