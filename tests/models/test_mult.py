"""mult: masks make the output blind to padding and sensitive to every real step; crossmodal
transformers for every ordered pair; one modality is a self-attention transformer."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mimsa import config as config_mod
from mimsa.errors import ConfigError
from tests.models.zoo_checks import (
    assert_js_penalty_attaches,
    assert_trains_deterministically,
    make,
    tiny_cfg,
)

SMALL = {"dim": 8, "heads": 2, "layers": 2, "self_layers": 2, "text_kernel": 3,
         "audio_kernel": 3, "vision_kernel": 5}


def _garbage_in_padding(x: torch.Tensor, lengths: torch.Tensor, extra: int) -> torch.Tensor:
    """Return x with `extra` more steps and every padded step filled with large noise."""
    b, t, d = x.shape
    out = torch.randn(b, t + extra, d) * 100
    for i, n in enumerate(lengths.tolist()):
        out[i, :n] = x[i, :n]
    return out


def test_padding_changes_nothing_and_real_steps_change_the_output():
    model, batch = make("mult", "tav", **SMALL)
    assert batch.audio_lengths.unique().numel() > 1  # unequal lengths within the batch
    assert batch.audio.shape[1] != batch.vision.shape[1]  # and unaligned across modalities
    with torch.no_grad():
        out = model(batch)
        torch.manual_seed(5)
        ids = batch.text_ids.clone()
        ids[batch.text_mask == 0] = 7  # a real word id in every padded text slot
        padded = replace(
            batch, text_ids=ids,
            audio=_garbage_in_padding(batch.audio, batch.audio_lengths, 3),
            vision=_garbage_in_padding(batch.vision, batch.vision_lengths, 0))
        again = model(padded)
        assert torch.allclose(again.prediction, out.prediction, atol=1e-5)
        for key in out.reps:
            assert torch.allclose(again.reps[key], out.reps[key], atol=1e-5), key

        for field, lengths in (("audio", batch.audio_lengths), ("vision", batch.vision_lengths)):
            x = getattr(batch, field).clone()
            x[0, lengths[0] - 1] += 1.0  # the last real step of sample 0 only
            changed = model(replace(batch, **{field: x}))
            assert not torch.allclose(changed.prediction[0], out.prediction[0]), field
            assert torch.allclose(changed.prediction[1:], out.prediction[1:], atol=1e-5)
            x = getattr(batch, field).clone()
            x[0, 0] += 1.0  # the first real step reaches the output too
            assert not torch.allclose(model(replace(batch, **{field: x})).prediction[0],
                                      out.prediction[0])
        ids = batch.text_ids.clone()
        ids[0, 0] = (ids[0, 0] + 1) % 90 + 2
        assert not torch.allclose(model(replace(batch, text_ids=ids)).prediction[0],
                                  out.prediction[0])


def test_a_sample_does_not_depend_on_its_batch_companions():
    model, batch = make("mult", "tav", **SMALL)
    with torch.no_grad():
        together = model(batch).prediction
        for i in (0, 3):
            alone = replace(batch, ids=[batch.ids[i]], labels=batch.labels[i:i + 1],
                            text_ids=batch.text_ids[i:i + 1, :int(batch.text_mask[i].sum())],
                            text_mask=batch.text_mask[i:i + 1, :int(batch.text_mask[i].sum())],
                            audio=batch.audio[i:i + 1, :batch.audio_lengths[i]],
                            audio_lengths=batch.audio_lengths[i:i + 1],
                            vision=batch.vision[i:i + 1, :batch.vision_lengths[i]],
                            vision_lengths=batch.vision_lengths[i:i + 1])
            assert torch.allclose(model(alone).prediction, together[i:i + 1], atol=1e-5)


@pytest.mark.parametrize(("modalities", "pairs", "width"),
                         [("tav", 6, 16), ("ta", 2, 8), ("av", 2, 8), ("v", 0, 8)])
def test_one_crossmodal_transformer_per_ordered_pair(modalities, pairs, width):
    model, batch = make("mult", modalities, **SMALL)
    assert len(model.cross) == pairs and set(model.memory) == set(modalities)
    out = model(batch)
    for m in modalities:
        assert out.reps[m].shape == (6, width)
    assert out.reps["fusion"].shape == (6, width * len(modalities))


def test_bad_sizes_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="multiple of heads=3"):
        make("mult", "ta", dim=8, heads=3)
    with pytest.raises(ConfigError, match="kernel sizes must be odd"):
        make("mult", "ta", audio_kernel=2)


def test_preset_has_the_published_mosi_sizes():
    cfg = config_mod.resolve_config("mult", "mosi")
    model = cfg["model"]
    assert (model["dim"], model["layers"], model["heads"]) == (40, 4, 10)
    assert cfg["data"]["batch_size"] == 128 and cfg["train"]["clip"] == 0.8
    assert config_mod.resolve_config("mult", "mosei")["model"]["heads"] == 8


def test_tiny_run_is_deterministic_and_a_penalty_attaches(tmp_path):
    cfg = tiny_cfg("mult", "model.dim=8", "model.heads=2", "model.layers=1",
                   "model.self_layers=1")
    assert_trains_deterministically(cfg, tmp_path)
    assert_js_penalty_attaches(cfg, tmp_path)
