"""Seeded corruptions: identity at rate 0, the documented extreme at rate 1, determinism."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from mimsa import config as config_mod
from mimsa.data.batch import Batch, collate
from mimsa.data.corruptions import (
    CORRUPTIONS,
    Augmentation,
    choose,
    gaussian_smooth,
    make_corruption,
    rotate,
    training_std,
)
from mimsa.data.drop import ModalityDrop
from mimsa.encoders.builder import TextSpec, text_words
from mimsa.encoders.cache import EncoderCache
from mimsa.models.base import InputSpec
from mimsa.train.run import prepare_data, train_run

RANDOM = [n for n in CORRUPTIONS if n != "visual_blur"]  # visual_blur draws no random numbers


@pytest.fixture(scope="module")
def data():
    cfg = config_mod.resolve_config("late_fusion", "synthetic")
    cfg["data"]["synthetic_sizes"] = {"train": 48, "valid": 16, "test": 16}
    dataset, spec = prepare_data(cfg)
    batch = collate(dataset, dataset.indices("test")[:8], spec.modalities, spec.text.pad_id)
    return dataset, spec, batch


def real(batch: Batch, field: str, row: int) -> torch.Tensor:
    """The real (unpadded) part of one sample of a field."""
    if field == "text_ids":
        return batch.text_ids[row][batch.text_mask[row] > 0]
    lengths = getattr(batch, f"{field}_lengths")
    return getattr(batch, field)[row, : int(lengths[row])]


def same(a: Batch, b: Batch, rows_a=None, rows_b=None) -> bool:
    rows_a = range(len(a)) if rows_a is None else rows_a
    rows_b = range(len(b)) if rows_b is None else rows_b
    for ra, rb in zip(rows_a, rows_b, strict=True):
        if a.text[ra] != b.text[rb]:
            return False
        for field in ("text_ids", "audio", "vision"):
            if not torch.equal(real(a, field, ra), real(b, field, rb)):
                return False
    return True


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_rate_zero_is_the_identity(data, name):
    dataset, spec, batch = data
    out = make_corruption(name, 0.0, seed=3).bind(dataset, spec)(batch)
    assert same(out, batch)
    assert torch.equal(out.audio, batch.audio) and torch.equal(out.text_mask, batch.text_mask)


@pytest.mark.parametrize("name", RANDOM)
def test_same_seed_same_corruption_other_seed_differs(data, name):
    dataset, spec, batch = data
    a = make_corruption(name, 0.5, seed=1).bind(dataset, spec)
    assert same(a(batch), a(batch))
    assert same(a(batch), make_corruption(name, 0.5, seed=1).bind(dataset, spec)(batch))
    assert not same(a(batch), a.reseed(2)(batch))
    assert not same(a(batch), batch)


@pytest.mark.parametrize("name, options", [(n, {}) for n in CORRUPTIONS] + [
    ("text_missing", {"mode": "delete"}), ("frame_drop", {"mode": "remove"})])
def test_per_sample_corruption_ignores_batch_composition(data, name, options):
    dataset, spec, _ = data
    test = dataset.indices("test")
    first = collate(dataset, test[:8], spec.modalities, spec.text.pad_id)
    other = collate(dataset, [test[12], test[5], test[9], test[3]], spec.modalities,
                    spec.text.pad_id)
    corruption = make_corruption(name, 0.6, seed=7, **options).bind(dataset, spec)
    assert same(corruption(first), corruption(other), [5, 3], [1, 3])


def test_text_missing_rate_one_and_nested_rates(data):
    dataset, spec, batch = data
    unk = make_corruption("text_missing", 1.0).bind(dataset, spec)(batch)
    assert torch.equal(unk.text_mask, batch.text_mask)
    assert torch.all(unk.text_ids[batch.text_mask > 0] == 1)  # <unk> of the own vocabulary
    assert all(set(t.split()) == {"<unk>"} for t in unk.text)
    gone = make_corruption("text_missing", 1.0, mode="delete").bind(dataset, spec)(batch)
    assert gone.text_mask.sum(1).tolist() == [1] * len(batch)  # one <unk>, as for empty text
    assert torch.all(gone.text_ids[:, 0] == 1) and gone.text == [""] * len(batch)
    low = make_corruption("text_missing", 0.3).bind(dataset, spec)(batch)
    high = make_corruption("text_missing", 0.6).bind(dataset, spec)(batch)
    hit_low, hit_high = (low.text_ids == 1) & (batch.text_ids != 1), high.text_ids == 1
    assert hit_low.any() and torch.all(hit_high[hit_low])  # nested: low ⊆ high
    # raw text gets the same words replaced as the ids (the own vocabulary: one id per word)
    for row in range(len(batch)):
        words = low.text[row].split()
        assert [w == "<unk>" for w in words] == (real(low, "text_ids", row) == 1).tolist()


def test_text_shuffle_moves_every_word_at_rate_one(data):
    dataset, spec, batch = data
    out = make_corruption("text_shuffle", 1.0).bind(dataset, spec)(batch)
    for row in range(len(batch)):
        before, after = real(batch, "text_ids", row), real(out, "text_ids", row)
        assert sorted(before.tolist()) == sorted(after.tolist())
        assert sorted(batch.text[row].split()) == sorted(out.text[row].split())
    items = list("abcdefg")
    moved = rotate(items, range(7), choose(np.random.default_rng(0), 7, 1.0))
    assert sorted(moved) == items and all(m != i for m, i in zip(moved, items, strict=True))
    assert choose(np.random.default_rng(0), 7, 0.0).size == 0


def test_frame_drop_rate_one(data):
    dataset, spec, batch = data
    zero = make_corruption("frame_drop", 1.0).bind(dataset, spec)(batch)
    assert torch.count_nonzero(zero.audio) == 0 and torch.count_nonzero(zero.vision) == 0
    assert torch.equal(zero.audio_lengths, batch.audio_lengths)
    assert torch.equal(zero.text_ids, batch.text_ids)
    removed = make_corruption("frame_drop", 1.0, mode="remove", modalities="a").bind(
        dataset, spec)(batch)
    assert removed.audio.shape == (len(batch), 1, batch.audio.shape[2])
    assert removed.audio_lengths.tolist() == [1] * len(batch)
    assert torch.count_nonzero(removed.audio) == 0 and torch.equal(removed.vision, batch.vision)
    half = make_corruption("frame_drop", 0.5, mode="remove").bind(dataset, spec)(batch)
    expected = np.floor(0.5 * batch.audio_lengths.numpy())
    assert np.all(np.abs(half.audio_lengths.numpy() - (batch.audio_lengths.numpy() - expected))
                  <= 1)


def test_frame_drop_on_one_frame_sequences(data):
    dataset, spec, batch = data
    one = Batch(ids=batch.ids, labels=batch.labels, audio=batch.audio[:, :1].clone(),
                audio_lengths=torch.ones(len(batch), dtype=torch.int64))
    a_spec = InputSpec("a", spec.dims)
    out = make_corruption("frame_drop", 1.0).bind(dataset, a_spec)(one)
    assert torch.count_nonzero(out.audio) == 0 and out.audio_lengths.tolist() == [1] * 8
    out = make_corruption("frame_drop", 1.0, mode="remove").bind(dataset, a_spec)(one)
    assert out.audio.shape == one.audio.shape and torch.count_nonzero(out.audio) == 0
    half = make_corruption("frame_drop", 0.5).bind(dataset, a_spec)(one)
    zeroed = (half.audio.abs().sum((1, 2)) == 0).sum().item()
    assert 0 < zeroed < len(batch)  # the only frame is zeroed with probability r
    blur = make_corruption("visual_blur", 1.0, modalities="a").bind(dataset, a_spec)(one)
    assert torch.equal(blur.audio, one.audio)  # nothing to mix


def test_visual_blur_is_gaussian_smoothing_with_sigma_max(data):
    dataset, spec, batch = data
    out = make_corruption("visual_blur", 1.0, sigma_max=2.0).bind(dataset, spec)(batch)
    assert torch.equal(out.audio, batch.audio) and torch.equal(out.text_ids, batch.text_ids)
    x = real(batch, "vision", 0).numpy().astype(np.float64)
    t = np.arange(len(x))
    w = np.exp(-((t[:, None] - t[None, :]) ** 2) / 8.0) * (np.abs(t[:, None] - t[None, :]) <= 6)
    expected = (w / w.sum(1, keepdims=True)) @ x
    assert np.allclose(real(out, "vision", 0).numpy(), expected, atol=1e-5)
    half = make_corruption("visual_blur", 0.5, sigma_max=2.0).bind(dataset, spec)(batch)
    assert np.allclose(real(half, "vision", 0).numpy(), gaussian_smooth(x, 1.0), atol=1e-5)
    assert torch.count_nonzero(out.vision[0, int(batch.vision_lengths[0]):]) == 0
    constant = np.ones((6, 3), np.float32)
    assert np.allclose(gaussian_smooth(constant, 3.0), constant)


def test_feature_noise_scales_with_the_training_std(data):
    dataset, spec, batch = data
    std = training_std(dataset, "audio")
    frames = np.concatenate([dataset.audio[i] for i in dataset.indices("train")])
    assert np.allclose(std, frames.std(0), rtol=1e-5)
    full = collate(dataset, dataset.indices("train"), spec.modalities, spec.text.pad_id)
    noisy = make_corruption("feature_noise", 1.0).bind(dataset, spec)(full)
    real_frames = torch.arange(full.audio.shape[1])[None, :] < full.audio_lengths[:, None]
    diff = (noisy.audio - full.audio)[real_frames].numpy()
    assert np.allclose(diff.std(0) / std, 1.0, atol=0.15)
    assert torch.count_nonzero(noisy.audio[~real_frames]) == 0
    assert torch.equal(noisy.text_ids, full.text_ids)
    half = make_corruption("feature_noise", 0.5).bind(dataset, spec)(full)
    assert np.allclose((half.audio - full.audio)[real_frames].numpy(), diff / 2, atol=1e-4)


def test_modality_drop_rate_one_is_evaluate_drop(data):
    dataset, spec, batch = data
    out = make_corruption("modality_drop", 1.0).bind(dataset, spec)(batch)
    reference = ModalityDrop("tav").bind(dataset, spec)(batch)
    for field in ("text_ids", "audio", "vision", "text_mask", "audio_lengths"):
        assert torch.equal(getattr(out, field), getattr(reference, field))
    some = make_corruption("modality_drop", 0.5, modalities="a").bind(dataset, spec)(batch)
    dropped = (some.audio.abs().sum((1, 2)) == 0).sum().item()
    assert 0 < dropped < len(batch) and torch.equal(some.vision, batch.vision)


def test_pretrained_text_keeps_special_tokens_and_whole_words(tmp_path):
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "good", "un",
             "##bel", "##iev", "##able", "bad"]
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    tokenizer.save_pretrained(tmp_path)
    ids = tokenizer("the movie was unbelievable good")["input_ids"]
    assert ids == [2, 5, 6, 7, 9, 10, 11, 12, 8, 3]
    spec = InputSpec("t", {}, TextSpec("pretrained", str(tmp_path), None, 0, str(tmp_path)))
    words = text_words(spec.text, EncoderCache())  # the caller's part: the encoders layer
    assert words.unk_id == 1 and words.starts.tolist()[9:13] == [True, False, False, False]
    batch = Batch(ids=["s1"], labels=torch.zeros(1), text_ids=torch.tensor([ids + [0, 0]]),
                  text_mask=torch.tensor([[1] * len(ids) + [0, 0]]))
    unk = make_corruption("text_missing", 1.0).bind(None, spec, words)(batch)
    assert unk.text_ids.tolist() == [[2, 1, 1, 1, 1, 1, 3]]  # one [UNK] per word
    gone = make_corruption("text_missing", 1.0, mode="delete").bind(None, spec, words)(batch)
    assert gone.text_ids.tolist() == [[2, 3]] and gone.text_mask.tolist() == [[1, 1]]
    shuffled = make_corruption("text_shuffle", 1.0, seed=4).bind(None, spec, words)(batch)
    out = shuffled.text_ids[0].tolist()
    assert out[0] == 2 and out[-1] == 3 and sorted(out) == sorted(ids)
    start = out.index(9)
    assert out[start: start + 4] == [9, 10, 11, 12]  # the word's pieces stay together
    assert out != ids
    with pytest.raises(RuntimeError, match="needs its words: .*text_words"):
        make_corruption("text_missing", 0.5).bind(None, spec)
    no_unk = dataclasses.replace(words, unk_id=None, unk_token=None)
    with pytest.raises(ValueError, match="has no unknown token; text_missing needs one"):
        make_corruption("text_missing", 0.5).bind(None, spec, no_unk)
    assert text_words(TextSpec("embedding", "vocab", 10)) is None  # ids are words already


def test_text_features_are_words(data):
    dataset, spec, batch = data
    feats = Batch(ids=batch.ids, labels=batch.labels, text_feats=batch.audio.clone(),
                  text_feats_lengths=batch.audio_lengths.clone())
    f_spec = InputSpec("t", {"text_feats": batch.audio.shape[2]}, TextSpec("features"))
    out = make_corruption("text_missing", 1.0, mode="delete").bind(dataset, f_spec)(feats)
    assert out.text_feats_lengths.tolist() == [1] * len(batch)
    assert torch.count_nonzero(out.text_feats) == 0
    with pytest.raises(ValueError, match="not feature vectors"):
        make_corruption("feature_noise", 0.1, modalities="t").bind(dataset, spec)


@pytest.mark.parametrize("call, message", [
    (lambda: make_corruption("blur", 0.1), "unknown corruption 'blur'; valid: text_missing"),
    (lambda: make_corruption("text_missing", 1.5), "outside \\[0, 1\\]"),
    (lambda: make_corruption("text_missing", -0.1), "outside \\[0, 1\\]"),
    (lambda: make_corruption("text_missing", "x"), "not a number"),
    (lambda: make_corruption("text_missing", 0.1, mode="drop"), "mode 'drop' is unknown"),
    (lambda: make_corruption("frame_drop", 0.1, sigma=2), "has no option sigma"),
    (lambda: make_corruption("visual_blur", 0.1, sigma_max=0), "sigma_max must be"),
    (lambda: make_corruption("frame_drop", 0.1, seed=-1), "seed must be"),
])
def test_errors_are_one_line(call, message):
    with pytest.raises(ValueError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_bind_checks_the_run_modalities(data):
    dataset, spec, batch = data
    text_only = InputSpec("t", spec.dims, spec.text)
    with pytest.raises(ValueError, match="reads modalities 't' only"):
        make_corruption("frame_drop", 0.1).bind(dataset, text_only)
    with pytest.raises(ValueError, match="uses 'tav' only|subset of 'av'"):
        make_corruption("frame_drop", 0.1, modalities="t").bind(dataset, spec)
    with pytest.raises(RuntimeError, match="bind"):
        make_corruption("frame_drop", 0.1)(batch)
    no_text = InputSpec("av", spec.dims)
    with pytest.raises(ValueError, match="acts on text"):
        make_corruption("text_shuffle", 0.1).bind(dataset, no_text)


def test_augmentation_config(data):
    dataset, spec, batch = data
    assert Augmentation.from_config(None, 1) is None
    aug = Augmentation.from_config({"name": "frame_drop", "rate": 0.5}, 1).bind(dataset, spec)
    assert same(aug(batch, 1), aug(batch, 1)) and not same(aug(batch, 1), aug(batch, 2))
    both = Augmentation.from_config([{"name": "text_missing", "rate": 0.3},
                                     {"name": "feature_noise", "rate": 0.1}], 1)
    assert len(both.corruptions) == 2
    for bad, message in (({"name": "nope", "rate": 0.1}, "data.augment: unknown corruption"),
                         ({"rate": 0.1}, "needs a name and a rate"),
                         ("text_missing", "must be a mapping"),
                         ({"name": "text_missing", "rate": 2}, "outside")):
        with pytest.raises(ValueError, match=message):
            Augmentation.from_config(bad, 1)


def test_augmentation_corrupts_training_batches_only(tiny_cfg, tmp_path, monkeypatch):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["train"]["epochs"] = 2
    cfg["data"]["augment"] = {"name": "text_missing", "rate": 0.5}
    seen = []
    original = Augmentation.__call__

    def spy(self, batch, epoch):
        out = original(self, batch, epoch)
        seen.append((epoch, tuple(batch.ids), not same(out, batch)))
        return out

    monkeypatch.setattr(Augmentation, "__call__", spy)
    augmented = train_run(cfg, tmp_path / "aug")
    train_ids = {f"syn_{i:05d}" for i in range(96)}
    assert {e for e, _, _ in seen} == {1, 2} and len(seen) == 2 * 3  # 96 samples, batch 32
    assert all(set(ids) <= train_ids and changed for _, ids, changed in seen)
    monkeypatch.undo()
    assert train_run(cfg, tmp_path / "again") == augmented
    saved = config_mod.load_yaml(tmp_path / "aug" / "config.yaml")
    assert saved["data"]["augment"] == {"name": "text_missing", "rate": 0.5}
