"""The main optimizer's learning-rate schedule: linear warm-up, then constant or linear decay
over the epoch budget; off by default; resumed exactly."""

from __future__ import annotations

import pytest

from mimsa import config as config_mod
from mimsa.errors import ConfigError
from mimsa.train.optim import lr_factor
from mimsa.train.run import train_run


def test_the_factor_warms_up_then_decays_to_zero():
    total = 10
    factors = [lr_factor(s, total, warmup=0.2, decay="linear") for s in range(total)]
    assert factors[:2] == pytest.approx([1 / 3, 2 / 3])  # 2 warm-up steps
    assert factors[2] == 1.0 and factors[-1] == pytest.approx(1 / 8)
    assert all(a > b for a, b in zip(factors[2:], factors[3:], strict=False))
    assert [lr_factor(s, total) for s in range(total)] == [1.0] * total
    assert lr_factor(9, 10, warmup=0.0, decay="linear") == pytest.approx(0.1)


def test_bad_schedule_settings_are_one_line():
    for bad in ("train.warmup=1.0", "train.warmup=-0.1", "train.decay=cosine"):
        with pytest.raises(ConfigError, match="train.(warmup|decay)"):
            config_mod.resolve_config("late_fusion", "synthetic", None, [bad])


def tiny(*sets: str) -> dict:
    return config_mod.resolve_config("late_fusion", "synthetic", None, [
        "data.synthetic_sizes={train: 64, valid: 32, test: 32}", "train.epochs=3", *sets])


def test_a_schedule_changes_training_and_resumes_exactly(tmp_path, interrupt_run):
    plain = train_run(tiny(), tmp_path / "plain")
    scheduled_cfg = tiny("train.warmup=0.3", "train.decay=linear")
    scheduled = train_run(scheduled_cfg, tmp_path / "full")
    assert scheduled["valid"] != plain["valid"]
    interrupt_run(scheduled_cfg, tmp_path / "cut", epoch=1)
    assert train_run(scheduled_cfg, tmp_path / "cut", resume=True) == scheduled
