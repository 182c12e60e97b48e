"""Tokenisation for pretrained encoders: ids, the run's cache, the disk cache, tokenizer words."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mimsa.data.dataset import DataError, DatasetCard, MultimodalDataset
from mimsa.encoders import tokens as K
from mimsa.encoders.cache import EncoderCache
from mimsa.encoders.text import TextEncoder
from mimsa.encoders.weights import cache_root
from mimsa.errors import ConfigError

from .helpers import WORDS

pytest.importorskip("transformers")

TEXTS = ["the movie was really good", "boring", "i liked it not at all the plot the actor was "
         "fun the movie was bad really bad"]


def _count_loads(monkeypatch) -> list:
    calls = []
    real = K.load_tokenizer
    monkeypatch.setattr(K, "load_tokenizer",
                        lambda d, cache=None: calls.append(d) or real(d, cache))
    return calls


def test_tokenize_truncates_without_padding(tiny_dir) -> None:
    ids = K.tokenize_texts(TEXTS, tiny_dir, max_length=8)
    assert [len(x) for x in ids] == [7, 3, 8]
    assert all(x.dtype == np.int64 for x in ids)
    assert ids[0].tolist() == [2, 5, 6, 7, 8, 9, 3]  # [CLS] the movie was really good [SEP]
    assert all(x[0] == 2 and x[-1] == 3 for x in ids)
    assert K.pad_token_id(tiny_dir) == 1


def test_tokenize_is_kept_in_the_given_cache(tiny_dir, monkeypatch) -> None:
    calls = _count_loads(monkeypatch)
    cache = EncoderCache()
    first = K.tokenize_texts(TEXTS, tiny_dir, max_length=8, cache=cache)
    (cache_root() / "tokens").rename(cache_root() / "gone")  # only the in-memory copy is left
    second = K.tokenize_texts(list(TEXTS), tiny_dir, max_length=8, cache=cache)
    assert len(calls) == 1 and len(cache.token_ids) == 1
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    K.tokenize_texts(TEXTS, tiny_dir, max_length=6, cache=cache)  # another key
    assert len(calls) == 2 and len(cache.tokenizers) == 1  # the tokenizer itself is kept


def test_tokenize_reuses_disk_cache(tiny_dir, monkeypatch) -> None:
    first = K.tokenize_texts(TEXTS, tiny_dir, max_length=8)
    assert len(list((cache_root() / "tokens").glob("*.npz"))) == 1

    def no_tokenizer(*_):
        raise AssertionError("the disk cache should have been used")

    monkeypatch.setattr(K, "load_tokenizer", no_tokenizer)
    second = K.tokenize_texts(TEXTS, tiny_dir, max_length=8, cache=EncoderCache())
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_without_a_cache_nothing_is_kept_in_memory(tiny_dir, monkeypatch) -> None:
    calls = _count_loads(monkeypatch)
    K.tokenize_texts(TEXTS, tiny_dir, max_length=8)
    K.tokenize_texts(TEXTS, tiny_dir, max_length=6)
    assert len(calls) == 2  # a fresh tokenizer each time: no process-wide state


def test_tokenize_rejects_length_beyond_the_encoder_positions(tiny_dir, tmp_path) -> None:
    short = tmp_path / "short"
    shutil.copytree(tiny_dir, short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 16}))
    (short / "tokenizer_config.json").unlink(missing_ok=True)  # no declared limit at all
    with pytest.raises(ConfigError, match="max_length 50 exceeds the 16 positions"):
        K.tokenize_texts(TEXTS, short, max_length=50, cache=EncoderCache())
    with pytest.raises(ConfigError, match="max_length 1 cannot hold"):
        K.tokenize_texts(TEXTS, tiny_dir, max_length=1)


def _dataset(text: list[str] | None) -> MultimodalDataset:
    n = 3
    return MultimodalDataset(card=DatasetCard(name="tiny", source="test"),
                             ids=[f"s{i}" for i in range(n)],
                             splits=["train", "valid", "test"], labels=[0.5, -1.0, 2.0],
                             text=text, audio=[np.ones((4, 2), np.float32)] * n)


def test_attach_token_ids(tiny_dir) -> None:
    from mimsa.data.batch import collate

    dataset = _dataset(TEXTS)
    dataset.vocab_size = 99
    pad = K.attach_token_ids(dataset, tiny_dir, max_length=8)
    assert pad == 1
    assert dataset.vocab_size is None
    assert [len(x) for x in dataset.text_ids] == [7, 3, 8]
    encoder = TextEncoder(tiny_dir).eval()
    batch = collate(dataset, [0, 1, 2], "t", pad_id=pad)
    pooled, states, _ = encoder(batch.text_ids, batch.text_mask)
    assert pooled.shape == (3, 32) and states.shape == (3, 8, 32)


def test_attach_token_ids_needs_text(tiny_dir) -> None:
    with pytest.raises(DataError, match="dataset tiny has no raw text; a pretrained text encoder "
                                        "needs transcripts"):
        K.attach_token_ids(_dataset(None), tiny_dir)


def test_tokenizer_words(tiny_dir) -> None:
    cache = EncoderCache()
    words = K.tokenizer_words(tiny_dir, cache)
    assert (words.unk_id, words.unk_token) == (0, "[UNK]")
    assert words.special == frozenset({0, 1, 2, 3, 4})  # [UNK] [PAD] [CLS] [SEP] [MASK]
    assert words.starts.all() and len(words.starts) == len(WORDS)  # no "##" pieces here
    assert K.tokenizer_words(str(tiny_dir), cache) is words  # kept per folder
