"""Checkpoints leave frozen pretrained encoders out and reload them from their folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mimsa import config as config_mod
from mimsa.data.dataset import DatasetCard, MultimodalDataset
from mimsa.data.store import save_dataset
from mimsa.eval.evaluate import evaluate_run
from mimsa.train.run import RunError, load_run, train_run

transformers = pytest.importorskip("transformers")

WORDS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]",
         *"the movie was really good bad boring fun not".split()]


def _save_tiny_bert(folder, seed: int) -> None:
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(folder)
    transformers.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(folder)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """Return (config of a frozen-encoder text_only run on a tiny text+audio dataset, encoder
    folder)."""
    monkeypatch.setenv("MIMSA_CACHE", str(tmp_path / "cache"))
    encoder_dir = tmp_path / "bert"
    _save_tiny_bert(encoder_dir, seed=0)
    rng = np.random.default_rng(0)
    n = 48
    words = WORDS[5:]
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 7))) for _ in range(n)]
    labels = [3.0 * float("good" in t) - 1.5 * float("bad" in t) for t in texts]
    dataset = MultimodalDataset(
        card=DatasetCard(name="tiny-text", source="test"), ids=[f"s{i}" for i in range(n)],
        splits=["train"] * 32 + ["valid"] * 8 + ["test"] * 8, labels=labels, text=texts,
        audio=[rng.standard_normal((3, 4)).astype(np.float32) for _ in range(n)])
    save_dataset(dataset, tmp_path / "data")
    cfg = config_mod.resolve_config("text_only", str(tmp_path / "data"), overrides=[
        f"encoder.name={encoder_dir}", "encoder.freeze=true", "encoder.pooling=mean",
        "encoder.max_length=8", "train.epochs=3", "data.batch_size=16"])
    return cfg, encoder_dir


def test_frozen_encoder_is_left_out_and_reloaded(setup, tmp_path):
    cfg, encoder_dir = setup
    metrics = train_run(cfg, tmp_path / "run")
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert saved and not any(".pretrained." in k for k in saved)
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    (entry,) = spec["frozen_encoders"].values()
    assert entry["weights"] == str(encoder_dir) and len(entry["sha256"]) == 64
    assert evaluate_run(tmp_path / "run")["test"] == pytest.approx(metrics["test"])

    _save_tiny_bert(encoder_dir, seed=1)  # the folder now holds other weights
    with pytest.raises(ValueError, match="the encoder built now has other weights"):
        load_run(tmp_path / "run")


def test_fine_tuned_encoder_is_saved(setup, tmp_path):
    cfg, _ = setup
    cfg["encoder"]["freeze"] = False
    train_run(cfg, tmp_path / "run")
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert any(".pretrained." in k for k in saved)
    assert json.loads((tmp_path / "run" / "model.json").read_text())["frozen_encoders"] == {}


def test_frozen_run_resumes_from_a_state_without_the_encoder(setup, tmp_path, interrupt_run):
    cfg, _ = setup
    full = train_run(cfg, tmp_path / "full")
    interrupt_run(cfg, tmp_path / "cut")
    state = torch.load(tmp_path / "cut" / "resume.pt", weights_only=True)
    assert not any(".pretrained." in k for k in state["model"])
    with pytest.raises(RunError, match="interrupted run"):
        train_run(cfg, tmp_path / "cut")
    assert train_run(cfg, tmp_path / "cut", resume=True) == full


def test_a_frozen_run_saved_with_the_encoder_inside_still_loads(setup, tmp_path):
    from safetensors.torch import save_file

    cfg, _ = setup
    train_run(cfg, tmp_path / "run")
    shutil.copytree(tmp_path / "run", tmp_path / "old")
    _, model, _, _ = load_run(tmp_path / "run")
    full = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert any(".pretrained." in k for k in full)
    save_file(full, str(tmp_path / "old" / "model.safetensors"))  # as older versions wrote it
    spec = json.loads((tmp_path / "old" / "model.json").read_text())
    del spec["frozen_encoders"]
    (tmp_path / "old" / "model.json").write_text(json.dumps(spec))
    assert evaluate_run(tmp_path / "old") == evaluate_run(tmp_path / "run")
