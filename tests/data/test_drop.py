"""Modality drop at test time: what replaces a dropped modality, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimsa import config as config_mod
from mimsa.data.batch import collate
from mimsa.data.drop import ModalityDrop, parse_drop, training_mean
from mimsa.train.run import prepare_data


@pytest.fixture(scope="module")
def data():
    cfg = config_mod.resolve_config("late_fusion", "synthetic")
    cfg["data"]["synthetic_sizes"] = {"train": 32, "valid": 16, "test": 16}
    dataset, spec = prepare_data(cfg)
    batch = collate(dataset, dataset.indices("test")[:8], spec.modalities, spec.text.pad_id)
    return dataset, spec, batch


@pytest.mark.parametrize("given, expected", [
    ("a", "a"), ("va", "av"), (["a", "v"], "av"), ("a,v", "av"), (["audio", "text"], "ta"),
    (["tav"], "tav"), ("visual", "v"),
])
def test_parse_drop(given, expected):
    assert parse_drop(given) == expected


@pytest.mark.parametrize("given", ["x", "ab", ""])
def test_parse_drop_rejects_non_modalities(given):
    with pytest.raises(ValueError, match="modality"):
        parse_drop(given)


def test_zero_fill_keeps_lengths_and_other_modalities(data):
    dataset, spec, batch = data
    dropped = ModalityDrop("a").bind(dataset, spec)(batch)
    assert torch.count_nonzero(dropped.audio) == 0
    assert torch.equal(dropped.audio_lengths, batch.audio_lengths)
    assert dropped.audio.shape == batch.audio.shape
    assert torch.equal(dropped.vision, batch.vision)
    assert torch.equal(dropped.text_ids, batch.text_ids)
    assert torch.count_nonzero(batch.audio) > 0  # the original batch is left alone


def test_mean_fill_uses_the_training_mean_on_real_frames_only(data):
    dataset, spec, batch = data
    frames = np.concatenate([dataset.vision[i] for i in dataset.indices("train")])
    expected = frames.mean(0)
    assert np.allclose(training_mean(dataset, "vision"), expected, atol=1e-6)
    dropped = ModalityDrop("v", "mean").bind(dataset, spec)(batch)
    for row, length in enumerate(batch.vision_lengths.tolist()):
        real = dropped.vision[row, :length].numpy()
        assert np.allclose(real, expected[None, :], atol=1e-6)
        assert torch.count_nonzero(dropped.vision[row, length:]) == 0


def test_token_text_zero_fill_is_padding_with_the_mask_kept(data):
    dataset, spec, batch = data
    dropped = ModalityDrop("t").bind(dataset, spec)(batch)
    assert torch.all(dropped.text_ids == spec.text.pad_id)
    assert torch.equal(dropped.text_mask, batch.text_mask)
    with pytest.raises(ValueError, match="not defined for text given as token ids"):
        ModalityDrop("t", "mean").bind(dataset, spec)


def test_drop_errors(data):
    dataset, spec, batch = data
    with pytest.raises(ValueError, match="--fill 'median'"):
        ModalityDrop("a", "median")
    with pytest.raises(RuntimeError, match="bind"):
        ModalityDrop("a")(batch)
    audio_only = type(spec)("tv", spec.dims, spec.text, spec.encoder)
    with pytest.raises(ValueError, match="reads modalities 'tv' only"):
        ModalityDrop("a").bind(dataset, audio_only)
