"""The run-owned encoder cache: its frozen-state budget, and no state at module level."""

from __future__ import annotations

import pytest
import torch

from mimsa.encoders.cache import EncoderCache
from mimsa.errors import ConfigError


def test_budget_is_read_when_the_cache_is_made(monkeypatch) -> None:
    monkeypatch.setenv("MIMSA_FROZEN_CACHE_MB", "1")
    cache = EncoderCache()
    monkeypatch.setenv("MIMSA_FROZEN_CACHE_MB", "0")  # later changes do not apply to it
    assert cache.frozen_limit == 2**20
    row = torch.zeros(2**18)  # 1 MiB of float32
    assert cache.keep(row) and cache.frozen_bytes == 2**20
    assert not cache.keep(torch.zeros(1))
    assert EncoderCache().frozen_limit == 0
    monkeypatch.delenv("MIMSA_FROZEN_CACHE_MB")
    assert EncoderCache().frozen_limit == 4096 * 2**20


@pytest.mark.parametrize("value", ["lots", "-1", "nan"])
def test_a_bad_budget_is_one_line(monkeypatch, value) -> None:
    monkeypatch.setenv("MIMSA_FROZEN_CACHE_MB", value)
    with pytest.raises(ConfigError, match=f"MIMSA_FROZEN_CACHE_MB='{value}' is not a size"):
        EncoderCache()


def test_caches_are_independent_and_clear() -> None:
    a, b = EncoderCache(), EncoderCache()
    a.frozen_states("/w")[b"x"] = torch.ones(2)
    a.weight_digests["/w"] = "d"
    assert b.frozen_states("/w") == {} and not b.weight_digests
    assert a.frozen_states("/w") is a.frozen_states("/w")
    a.keep(torch.ones(2))
    a.clear()
    assert a.frozen_states("/w") == {} and a.frozen_bytes == 0 and not a.weight_digests
