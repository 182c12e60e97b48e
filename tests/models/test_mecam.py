"""mecam: talking-heads cross-attention from audio/vision to text, on MMIM's encoders."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mimsa import config as config_mod
from mimsa.data.batch import collate
from mimsa.data.synthetic import make_synthetic
from mimsa.encoders.attention import TalkingHeadsAttention
from mimsa.encoders.builder import prepare_text
from mimsa.models.base import InputSpec, create_model
from mimsa.train.run import build_model, prepare_data, train_run

ENC = {"name": "auto", "hidden": 16, "emb_dim": 8}
REAL_ROOT = Path(os.environ.get("MIMSA_DATA")
                 or Path(__file__).parents[2] / "../shared/data").resolve()


def make(modalities: str = "tav", **options):
    ds = make_synthetic(sizes={"train": 12, "valid": 4, "test": 8})
    text = prepare_text(ds, ENC) if "t" in modalities else InputSpec("", {}).text
    torch.manual_seed(0)
    model = create_model("mecam", InputSpec(modalities, ds.feature_dims(), text, ENC), **options)
    return model, collate(ds, range(6), modalities)


@pytest.mark.parametrize("modalities", ["t", "a", "v", "ta", "av", "tav"])
def test_mecam_takes_any_subset(modalities):
    model, batch = make(modalities)
    out = model(batch)
    assert out.prediction.shape == (6,)
    assert set(out.reps) == set(modalities) | {"fusion"}
    for key, rep in out.reps.items():
        assert rep.shape == (6, model.reps_dims[key])
    expected = set(modalities) & set("av") if "t" in modalities else set()
    assert set(model.cross) == expected  # attention only where there is text to attend to
    assert model.reps_dims.get("a", 16) == 16 and model.reps_dims.get("v", 32) == 32


def test_without_text_audio_and_vision_are_the_lstm_vectors():
    model, batch = make("av")
    model.eval()
    out = model(batch)
    vector, _ = model.encoders.audio_encoder(batch.audio, batch.audio_lengths)
    assert torch.equal(out.reps["a"], vector)


def test_attention_is_registered_and_receives_gradients():
    model, batch = make("tav")
    keys = set(model.state_dict())
    for m in "av":
        for part in ("attention.mix_logits", "attention.mix_weights", "attention.q.weight",
                     "attention.k.weight", "attention.v.weight", "attention.out.weight",
                     "project.weight", "norm.weight", "output.weight"):
            assert f"cross.{m}.{part}" in keys
        mixing = model.cross[m].attention.mix_logits
        assert torch.equal(mixing, torch.eye(4))  # starts as plain multi-head attention
    params = dict(model.named_parameters())
    model(batch).prediction.sum().backward()
    for name, param in params.items():
        if name.startswith("cross."):
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert params["encoders.text_encoder.embedding.weight"].grad.abs().sum() > 0


def test_output_depends_on_audio_and_on_text():
    model, batch = make("tav")
    model.eval()
    out = model(batch)
    louder = replace(batch, audio=batch.audio * 2 + 1)
    changed = model(louder)
    assert not torch.allclose(changed.reps["a"], out.reps["a"])
    assert not torch.allclose(changed.prediction, out.prediction)
    assert torch.equal(changed.reps["v"], out.reps["v"])
    other_text = replace(batch, text_ids=batch.text_ids.flip(0), text_mask=batch.text_mask.flip(0))
    assert not torch.allclose(model(other_text).reps["a"], out.reps["a"])
    # utterance-level audio (one frame, as in mosi): the frame still reaches the output
    one = replace(batch, audio=batch.audio[:, :1], audio_lengths=torch.ones(6, dtype=torch.int64))
    assert not torch.allclose(model(one).reps["a"],
                              model(replace(one, audio=one.audio * 2 + 1)).reps["a"])


def test_talking_heads_mixing_masking_and_query_dependence():
    torch.manual_seed(0)
    attn = TalkingHeadsAttention(8, 6, heads=2)
    queries, keys = torch.randn(2, 3, 8), torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = attn(queries, keys, mask)
    weights = attn.last_weights
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 3))  # identity mixing: softmax
    assert torch.all(weights[0, :, :, 3:] == 0)  # padding gets no weight
    padded = keys.clone()
    padded[0, 3:] = 100.0
    assert torch.allclose(attn(queries, padded, mask)[0], out[0])
    assert not torch.allclose(attn(queries + 1, keys, mask), out)
    with torch.no_grad():
        attn.mix_logits.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # heads swap logits
    assert not torch.allclose(attn(queries, keys, mask), out)
    nothing = attn(queries, keys, torch.zeros(2, 5, dtype=torch.int64))
    assert torch.isfinite(nothing).all()
    with pytest.raises(ValueError, match="multiple of the number of heads"):
        TalkingHeadsAttention(10, 6, heads=4)


@pytest.fixture
def mecam_cfg() -> dict:
    cfg = config_mod.resolve_config("mecam", "synthetic")
    cfg["data"]["synthetic_sizes"] = {"train": 96, "valid": 48, "test": 48}
    cfg["train"]["epochs"] = 2
    return cfg


def test_preset_replaces_cpc_by_the_contrastive_loss(mecam_cfg):
    assert set(mecam_cfg["objectives"]) == {"ba", "entropy", "contrastive"}
    main = mecam_cfg["train"]["stages"][1]["terms"]
    assert main == {"task": 1.0, "contrast": 0.2, "lld": -0.05, "H": -0.05}
    assert mecam_cfg["train"]["lr"] == 5e-4 and mecam_cfg["train"]["patience"] == 5
    assert mecam_cfg["model"]["vision_out"] == 32
    mosei = config_mod.resolve_config("mecam", "mosei")
    assert mosei["data"]["batch_size"] == 64 and mosei["train"]["term_weights"] == {
        "lld": 0.0, "H": 0.0}
    assert mosei["train"]["stages"][1]["terms"]["contrast"] == 0.1
    assert config_mod.resolve_config("mecam", "mosi")["train"]["epochs"] == 40


def test_tiny_run_is_deterministic(mecam_cfg, tmp_path):
    a = train_run(mecam_cfg, tmp_path / "a")
    b = train_run(mecam_cfg, tmp_path / "b")
    assert a == b
    rows = [json.loads(x) for x in (tmp_path / "a" / "history.jsonl").read_text().splitlines()]
    assert {"mi/lld", "main/task", "main/contrast", "main/lld", "main/H"} <= set(rows[0])
    assert not any("nce" in key for key in rows[0])
    spec = json.loads((tmp_path / "a" / "model.json").read_text())
    assert spec["model"] == "mecam" and spec["objectives"] == ["ba", "entropy", "contrastive"]


@pytest.mark.real_data
@pytest.mark.parametrize("name, cross", [("mosi", {"a"}), ("mosi-poria", {"a", "v"}),
                                         ("mosei", set())])
def test_builds_on_the_real_datasets(name, cross):
    if not (REAL_ROOT / "mosi" / "label.csv").is_file():
        pytest.skip(f"real data not found at {REAL_ROOT}; set MIMSA_DATA")
    cfg = config_mod.resolve_config("mecam", name)
    cfg["data"]["root"] = str(REAL_ROOT)
    dataset, spec = prepare_data(cfg)
    model, objectives = build_model(cfg, spec)
    assert set(model.cross) == cross
    out = model(collate(dataset, dataset.indices("test")[:4], spec.modalities, spec.text.pad_id))
    assert out.prediction.shape == (4,) and torch.isfinite(out.prediction).all()
    assert set(objectives) == {"ba", "entropy", "contrastive"}
