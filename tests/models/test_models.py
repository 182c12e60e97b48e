import pytest
import torch

from mimsa.data.batch import collate
from mimsa.data.synthetic import make_synthetic
from mimsa.encoders.builder import prepare_text
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, create_model, list_models

SIZES = {"train": 12, "valid": 4, "test": 4}


def spec_for(modalities: str, encoder: str = "auto") -> tuple:
    ds = make_synthetic(sizes=SIZES)
    enc = {"name": encoder, "hidden": 16, "emb_dim": 8}
    text = prepare_text(ds, enc) if "t" in modalities else None
    spec = InputSpec(modalities, ds.feature_dims(), text or InputSpec("", {}).text, enc)
    return ds, spec


def test_text_only_and_vocab_encoder():
    ds, spec = spec_for("t", encoder="vocab")
    model = create_model("text_only", spec)
    out = model(collate(ds, range(3), "t"))
    assert set(out.reps) == {"t", "fusion"}
    out.prediction.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_text_only_needs_text():
    _, spec = spec_for("a")
    with pytest.raises(ValueError, match="text_only' needs modality t"):
        create_model("text_only", spec)


def test_unknown_model_and_option_list_valid_ones():
    _, spec = spec_for("tav")
    with pytest.raises(ConfigError, match="registered models: .*late_fusion"):
        create_model("nope", spec)
    with pytest.raises(ConfigError, match="no option widht; valid options: .*hidden"):
        create_model("late_fusion", spec, widht=3)
    assert {"text_only", "late_fusion", "ef_lstm"} <= set(list_models())


def test_ef_lstm_alignment_is_identity_on_equal_lengths():
    from mimsa.models.ef_lstm import align_to

    x = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    lengths = torch.tensor([4, 3])
    assert torch.equal(align_to(x, lengths, lengths, 4)[:, :3], x[:, :3])
    stretched = align_to(x[:, :2], torch.tensor([2, 2]), torch.tensor([4, 4]), 4)
    assert stretched[0, :, 0].tolist() == [0, 0, 1, 1]
