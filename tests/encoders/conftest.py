"""Fixtures for the encoder tests: a tiny BERT folder, and a private mimsa cache per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import save_tiny_bert


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A folder like a hub snapshot: config.json, weights, tokenizer ([PAD] has id 1)."""
    pytest.importorskip("transformers")
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSA_CACHE", str(tmp_path / "cache"))
