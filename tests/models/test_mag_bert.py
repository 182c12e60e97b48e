"""mag_bert: the Multimodal Adaptation Gate hooked into a pretrained transformer.

Every model here is built on a tiny random BERT saved to a temporary folder (2 layers, hidden
32; tests/encoders/helpers.py), so the real "local BERT folder" path runs in well under a
second per test."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch

from mimsa import config as config_mod
from mimsa.data.batch import Batch, collate
from mimsa.data.synthetic import make_synthetic
from mimsa.encoders.builder import prepare_text
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, create_model
from mimsa.models.mag_bert import (
    AdaptationGate,
    alignment_cases,
    frames_to_tokens,
    injection_site,
    scaled_shift,
    shifting_output,
)
from mimsa.train.run import train_run

transformers = pytest.importorskip("transformers")
from encoders.helpers import save_tiny_bert  # noqa: E402  (tests/encoders/helpers.py)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSA_CACHE", str(tmp_path / "cache"))


def make(tiny_bert, modalities: str = "tav", seed: int = 0, **options):
    """Return (model, batch of 6 synthetic samples, dataset, spec)."""
    ds = make_synthetic(sizes={"train": 12, "valid": 4, "test": 4})
    encoder = {"name": str(tiny_bert)}
    spec = InputSpec(modalities, ds.feature_dims(), prepare_text(ds, encoder), encoder)
    torch.manual_seed(seed)
    model = create_model("mag_bert", spec, **options)
    return model, collate(ds, range(6), modalities, spec.text.pad_id), ds, spec


def zeroed(batch: Batch) -> Batch:
    return Batch(**{**batch.__dict__, "audio": torch.zeros_like(batch.audio),
                    "vision": torch.zeros_like(batch.vision)})


# -- the gate ------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.0, 0.01, 0.5, 1.0, 5.0])
def test_the_shift_is_at_most_beta_times_the_state_norm(beta):
    torch.manual_seed(0)
    z = torch.randn(4, 7, 16)
    h = torch.randn(4, 7, 16) * torch.logspace(-3, 3, 7)[None, :, None]  # tiny to huge
    shift = scaled_shift(z, h, beta)
    norm, bound = shift.norm(dim=-1), beta * z.norm(dim=-1)
    assert (norm <= bound + 1e-5).all() and (norm <= h.norm(dim=-1) + 1e-5).all()
    small = h.norm(dim=-1) * 1.001 < bound  # α = 1: H passes unchanged
    assert torch.equal(shift[small], h[small])


def test_the_gate_bounds_its_shift_before_the_layer_norm():
    torch.manual_seed(0)
    gate = AdaptationGate(16, {"a": 5, "v": 3}, beta_shift=0.3, dropout=0.0)
    z = torch.randn(2, 6, 16)
    feats = {"a": 100 * torch.randn(2, 6, 5), "v": 100 * torch.randn(2, 6, 3)}
    projected = {m: gate.project(m, x) for m, x in feats.items()}
    h = gate.displacement(z, feats, projected)
    shift = scaled_shift(z, h, 0.3)
    assert (shift.norm(dim=-1) <= 0.3 * z.norm(dim=-1) + 1e-5).all()
    assert torch.allclose(gate(z, feats, projected), gate.norm(z + shift))


def test_zero_features_give_no_displacement_and_finite_gradients():
    gate = AdaptationGate(16, {"a": 5}, beta_shift=1.0, dropout=0.0)
    z = torch.randn(2, 4, 16, requires_grad=True)
    feats = {"a": torch.zeros(2, 4, 5)}
    h = gate.displacement(z, feats, {"a": gate.project("a", feats["a"])})
    assert torch.equal(h, torch.zeros_like(h))
    gate(z, feats, {"a": gate.project("a", feats["a"])}).sum().backward()
    assert torch.isfinite(z.grad).all()


# -- the model: hooking, equivalences -------------------------------------------------------------
def test_zero_audio_and_vision_leave_only_the_gate_layer_norm(tiny_bert):
    """With zero audio/visual input, H = 0 exactly, so (eval mode) the model's pooled state
    equals the plain transformer run with Z <- LayerNorm_gate(Z) at the injection site."""
    model, batch, _, _ = make(tiny_bert)
    model.eval()
    plain = zeroed(batch)
    with torch.no_grad():
        out = model(plain)
        site = model.transformer.get_submodule(model.site)
        with shifting_output(site, model.gate.norm):
            ref = model.transformer(input_ids=plain.text_ids,
                                    attention_mask=plain.text_mask).last_hidden_state
        assert torch.equal(out.reps["fusion"], ref[:, 0])
        assert torch.equal(out.prediction, model.head(ref[:, 0]).squeeze(-1))
        assert not torch.allclose(model(batch).prediction, out.prediction)  # a/v matter
        # beta_shift = 0 switches the shift off for any input
        model.gate.beta_shift = 0.0
        assert torch.equal(model(batch).prediction, out.prediction)


def test_the_hook_is_gone_after_forward_and_transformer_classes_are_untouched(tiny_bert):
    model, batch, _, _ = make(tiny_bert, inject_after=1)
    embeddings_forward = type(model.transformer.embeddings).forward
    model(batch).prediction.sum().backward()
    bert = transformers.models.bert.modeling_bert
    assert type(model.transformer) is transformers.BertModel
    assert type(model.transformer.embeddings).forward is bert.BertEmbeddings.forward
    assert embeddings_forward is bert.BertEmbeddings.forward
    for module in model.transformer.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert "forward" not in vars(module)
    assert type(model.transformer.get_submodule(model.site)).forward is bert.BertLayer.forward

    def boom(*_):
        raise RuntimeError("boom")

    model.gate.forward = boom  # the shift fails inside the transformer's forward
    with pytest.raises(RuntimeError, match="boom"):
        model(batch)
    assert not any(m._forward_hooks for m in model.transformer.modules())
    del model.gate.forward
    assert model(batch).prediction.shape == (6,)  # usable again


def test_inject_after_zero_and_one_both_work_and_differ(tiny_bert):
    torch.manual_seed(0)
    outs = {}
    for k, site in ((0, "embeddings"), (1, "encoder.layer.0"), (2, "encoder.layer.1")):
        model, batch, _, _ = make(tiny_bert, inject_after=k)
        assert model.site == site
        model.eval()
        with torch.no_grad():
            outs[k] = model(batch).prediction
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    with pytest.raises(ConfigError, match="inject_after=3 is outside the text encoder's depth"):
        make(tiny_bert, inject_after=3)


@pytest.mark.parametrize("beta, message", [
    (-1.0, "model.beta_shift=-1.0 is not allowed: input should be greater than or equal to 0"),
    (float("nan"), "model.beta_shift=nan is not allowed: input should be a finite number"),
    (float("inf"), "model.beta_shift=inf is not allowed: input should be a finite number"),
])
def test_a_negative_or_non_finite_beta_shift_is_one_line(tiny_bert, beta, message):
    with pytest.raises(ConfigError) as err:
        make(tiny_bert, beta_shift=beta)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_refuses_a_text_encoder_that_is_not_a_transformer():
    ds = make_synthetic(sizes={"train": 12, "valid": 4, "test": 4})
    encoder = {"name": "auto"}
    spec = InputSpec("tav", ds.feature_dims(), prepare_text(ds, encoder), encoder)
    with pytest.raises(ConfigError, match="needs a pretrained transformer text encoder"):
        create_model("mag_bert", spec)


def test_text_alone_is_the_plain_encoder_with_its_head(tiny_bert):
    model, batch, _, _ = make(tiny_bert, "t")
    model.eval()
    with torch.no_grad():
        out = model(batch)
        states = model.transformer(input_ids=batch.text_ids,
                                   attention_mask=batch.text_mask).last_hidden_state
    assert model.gate is None and set(out.reps) == {"t", "fusion"}
    assert torch.equal(out.reps["fusion"], states[:, 0])


def test_the_hook_works_on_mpnet_layers_that_return_tuples():
    config = transformers.MPNetConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=32,
                                      max_position_embeddings=40)
    mpnet = transformers.MPNetModel(config).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    with torch.no_grad():
        plain = mpnet(input_ids=ids).last_hidden_state
        for k in (0, 1, 2):
            with shifting_output(mpnet.get_submodule(injection_site(mpnet, k)),
                                 lambda s: s + 1.0) as calls:
                shifted = mpnet(input_ids=ids).last_hidden_state
            assert calls == [1] and not torch.allclose(shifted, plain)
    assert not any(m._forward_hooks for m in mpnet.modules())


# -- frames to tokens ----------------------------------------------------------------------------
def test_frames_are_interpolated_onto_real_tokens_and_padding_is_excluded():
    x = torch.tensor([[0.0, 10.0, 20.0, 999.0]]).unsqueeze(-1)  # 3 real frames + a pad frame
    out = frames_to_tokens(x, torch.tensor([3]), torch.tensor([5]), width=7)[0, :, 0]
    assert torch.allclose(out, torch.tensor([0.0, 5.0, 10.0, 15.0, 20.0, 0.0, 0.0]))
    same = torch.randn(2, 6, 4)
    assert torch.equal(frames_to_tokens(same, torch.tensor([6, 4]), torch.tensor([6, 4]), 6)[0],
                       same[0])  # as many frames as tokens: the identity
    aligned = frames_to_tokens(same, torch.tensor([6, 4]), torch.tensor([6, 4]), 6)[1]
    assert torch.equal(aligned[:4], same[1, :4]) and not aligned[4:].any()
    assert alignment_cases(torch.tensor([1, 6, 3]), torch.tensor([5, 6, 5])) == [
        "broadcast", "word_aligned", "resampled"]


def test_an_utterance_vector_is_broadcast_to_every_real_token(tiny_bert):
    model, batch, _, _ = make(tiny_bert, "ta")
    vector = torch.randn(6, 1, batch.audio.shape[-1])
    utterance = Batch(**{**batch.__dict__, "audio": vector,
                         "audio_lengths": torch.ones(6, dtype=torch.int64)})
    feats = model.token_features(utterance)["a"]
    mask = utterance.text_mask.bool()
    assert torch.equal(feats[mask], vector.expand(-1, mask.shape[1], -1)[mask])
    assert not feats[~mask].any()
    assert model.alignment_used == {"a": {"broadcast": 6}}
    model(utterance)  # the same ids again: counted once
    assert model.alignment_used == {"a": {"broadcast": 6}}


# -- training ------------------------------------------------------------------------------------
@pytest.fixture
def mag_cfg(tiny_bert) -> dict:
    cfg = config_mod.resolve_config("mag_bert", "synthetic", overrides=[
        f"encoder.name={tiny_bert}", "train.lr=1e-3", "encoder.lr=1e-3"])
    cfg["data"]["synthetic_sizes"] = {"train": 32, "valid": 16, "test": 16}
    cfg["data"]["batch_size"] = 8
    cfg["train"]["epochs"] = 2
    return cfg


def test_a_tiny_run_trains_and_is_deterministic(mag_cfg, tmp_path):
    a = train_run(mag_cfg, tmp_path / "a")
    b = train_run(copy.deepcopy(mag_cfg), tmp_path / "b")
    assert a == b
    rows = [json.loads(r) for r in (tmp_path / "a" / "history.jsonl").read_text().splitlines()]
    assert rows[1]["main/task"] < rows[0]["main/task"]
    spec = json.loads((tmp_path / "a" / "model.json").read_text())
    assert spec["model"] == "mag_bert" and spec["model_config"]["inject_after"] == 0


def test_a_frozen_encoder_trains_only_the_gate_and_head(tiny_bert, mag_cfg, tmp_path):
    _, batch, _, spec = make(tiny_bert, "ta")
    model = create_model("mag_bert", replace(spec, encoder={**spec.encoder, "freeze": True}))
    model.train()
    assert not model.transformer.training  # no dropout inside the frozen transformer
    model(batch).prediction.sum().backward()
    assert all(p.grad is None for p in model.transformer.parameters())
    assert all(p.grad is not None for p in model.gate.parameters())
    cfg = copy.deepcopy(mag_cfg)
    cfg["encoder"]["freeze"] = True
    train_run(cfg, tmp_path / "frozen")
    spec = json.loads((tmp_path / "frozen" / "model.json").read_text())
    assert list(spec["frozen_encoders"]) == ["text_encoder.pretrained."]


def test_penalty_and_mmim_objectives_attach_by_configuration(mag_cfg, tmp_path):
    cfg = copy.deepcopy(mag_cfg)
    cfg["penalty"] = {**cfg["penalty"], "kind": "js"}
    train_run(cfg, tmp_path / "js")
    rows = (tmp_path / "js" / "history.jsonl").read_text().splitlines()
    assert {"main/dependency", "main/critic_loss"} <= set(json.loads(rows[-1]))

    cfg = copy.deepcopy(mag_cfg)
    cfg["objectives"] = {"ba": {}, "entropy": {}, "cpc": {}}
    cfg["train"]["stages"] = [
        {"name": "mi", "optimizer": "mi", "terms": {"lld": -1.0}},
        {"name": "main", "optimizer": "main",
         "terms": {"task": 1.0, "nce": 0.1, "lld": -0.1, "H": -0.1}}]
    train_run(cfg, tmp_path / "mmim")
    row = json.loads((tmp_path / "mmim" / "history.jsonl").read_text().splitlines()[-1])
    assert {"mi/lld", "main/nce", "main/lld", "main/H"} <= set(row)
    assert all(v == v for v in row.values() if isinstance(v, float))  # no NaN


def test_mmsa_aligned_pickles_are_read_as_word_aligned(tiny_bert):
    """An MMSA aligned_50.pkl carries one frame per BERT token (cut to the mask length by the
    reader); re-tokenised with the same WordPiece vocabulary, every sample maps 1:1."""
    import numpy as np

    from mimsa.data.readers.mmsa import from_object

    words = "the movie was really good bad boring fun i liked it not".split()
    rng = np.random.default_rng(0)
    obj = {}
    for split, n in (("train", 4), ("valid", 2), ("test", 2)):
        texts = [" ".join(words[i: i + 2 + i % 3]) for i in range(n)]
        width = 8
        mask = np.array([[1.0] * (len(t.split()) + 2) + [0.0] * (width - len(t.split()) - 2)
                         for t in texts])  # [CLS] words [SEP], padded
        obj[split] = {"id": np.array([f"{split}v$_${i}" for i in range(n)], dtype=object),
                      "raw_text": np.array(texts, dtype=object),
                      "text_bert": np.stack([mask * 5, mask, 0 * mask], axis=1),
                      "audio": rng.standard_normal((n, width, 5)).astype(np.float32),
                      "vision": rng.standard_normal((n, width, 3)).astype(np.float32),
                      "regression_labels": rng.uniform(-3, 3, n).astype(np.float32)}
    ds = from_object(obj, tiny_bert.parent / "aligned_50.pkl")
    encoder = {"name": str(tiny_bert)}
    spec = InputSpec("tav", ds.feature_dims(), prepare_text(ds, encoder), encoder)
    model = create_model("mag_bert", spec)
    model(collate(ds, range(len(ds.ids)), "tav", spec.text.pad_id))
    assert model.alignment_used == {"a": {"word_aligned": 8}, "v": {"word_aligned": 8}}
