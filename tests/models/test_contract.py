"""The model contract, checked on every registered model and every modality subset it accepts:
forward, backward, `reps` keys and sizes, save and reload. A model added to the zoo is covered
without writing a test for it."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch
from safetensors.torch import load_file, save_file

from mimsa.data.batch import collate
from mimsa.data.synthetic import make_synthetic
from mimsa.encoders.builder import TextSpec, prepare_text
from mimsa.errors import ConfigError, ContractError
from mimsa.models.base import (
    InputSpec,
    Model,
    ModelOutput,
    Width,
    check_model_options,
    create_model,
    list_models,
    model_options,
    register_model,
)

SIZES = {"train": 12, "valid": 4, "test": 4}
SUBSETS = ["".join(c) for n in (1, 2, 3) for c in combinations("tav", n)]
# Models that live inside a pretrained transformer (they refuse other text encoders with a
# ConfigError) are checked on a tiny random BERT saved to a folder (tests/encoders/helpers.py).
TRANSFORMER_ONLY = {"mag_bert"}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    pytest.importorskip("transformers")
    from encoders.helpers import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def _cases() -> list[tuple[str, str]]:
    return [(name, subset) for name, cls in list_models().items() for subset in SUBSETS
            if all(m in subset for m in cls.requires)]


def _spec(modalities: str, encoder_name: str = "auto") -> tuple:
    dataset = make_synthetic(sizes=SIZES)
    encoder = {"name": encoder_name, "hidden": 16, "emb_dim": 8}
    text = prepare_text(dataset, encoder) if "t" in modalities else TextSpec()
    return dataset, InputSpec(modalities, dataset.feature_dims(), text, encoder)


@pytest.mark.parametrize(("name", "modalities"), _cases())
def test_every_model_keeps_the_contract(name, modalities, tmp_path, request, monkeypatch):
    encoder_name = "auto"
    if name in TRANSFORMER_ONLY:
        monkeypatch.setenv("MIMSA_CACHE", str(tmp_path / "cache"))  # token ids land there
        encoder_name = str(request.getfixturevalue("tiny_bert"))
    torch.manual_seed(0)
    dataset, spec = _spec(modalities, encoder_name)
    model = create_model(name, spec)
    assert isinstance(model, Model) and model.model_name == name
    batch = collate(dataset, range(6), modalities, spec.text.pad_id)
    out = model(batch)
    assert isinstance(out, ModelOutput)
    assert out.prediction.shape == (6,)
    assert "fusion" in out.reps and set(model.reps_dims) == set(out.reps)
    for m in modalities:
        if m in model.reps_dims:
            assert m in out.reps
    for key, rep in out.reps.items():
        assert rep.shape == (6, model.reps_dims[key]), key
    (out.prediction.sum() + sum(r.sum() for r in out.reps.values())).backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.manual_seed(1)
    again = create_model(name, spec)
    again.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    model.eval()
    again.eval()
    with torch.no_grad():
        assert torch.equal(model(batch).prediction, again(batch).prediction)


def test_every_model_refuses_a_subset_without_what_it_requires():
    for name, cls in list_models().items():
        if not cls.requires:
            continue
        lacking = "".join(m for m in "tav" if m not in cls.requires)
        _, spec = _spec(lacking)
        with pytest.raises(ConfigError, match=f"'{name}' needs modality"):
            create_model(name, spec)


def _register(name: str, cls: type) -> None:
    register_model(name)(cls)


def test_a_model_without_forward_fails_at_registration():
    class NoForward(Model):
        def __init__(self, spec: InputSpec, hidden: int = 4) -> None:
            super().__init__()

    with pytest.raises(ContractError, match="does not define forward"):
        _register("no_forward_model", NoForward)


def test_a_model_that_is_not_a_model_fails_at_registration():
    class Plain(torch.nn.Module):
        def forward(self, batch):
            return batch

    with pytest.raises(ContractError, match="must subclass mimsa.models.base.Model"):
        _register("plain_module_model", Plain)


def _no_spec(self, inputs: InputSpec, hidden: int = 4) -> None: ...
def _no_default(self, spec: InputSpec, hidden: int) -> None: ...
def _no_hint(self, spec: InputSpec, hidden=4) -> None: ...  # noqa: ANN001
def _var_keywords(self, spec: InputSpec, **options: int) -> None: ...


@pytest.mark.parametrize(("init", "message"), [
    (_no_spec, "must start with \\(self, spec\\)"),
    (_no_default, "option 'hidden' has no default"),
    (_no_hint, "option 'hidden' has no type hint"),
    (_var_keywords, "takes \\*options"),
])
def test_model_options_need_defaults_and_hints(init, message):
    cls = type("Broken", (Model,), {"__init__": init, "forward": lambda self, batch: None})
    with pytest.raises(ContractError, match=message):
        _register("broken_model", cls)
    assert "broken_model" not in list_models()


def _default_out_of_range(self, spec: InputSpec, hidden: Width = 0) -> None: ...


def test_a_default_outside_its_own_range_fails_at_registration():
    cls = type("Broken", (Model,), {"__init__": _default_out_of_range,
                                    "forward": lambda self, batch: None})
    with pytest.raises(ContractError, match="default hidden=0 breaks its own hint int >= 1"):
        _register("broken_range_model", cls)


@pytest.mark.parametrize("name", sorted(list_models()))
def test_every_width_and_dropout_option_refuses_values_outside_its_range(name):
    """A width of 0 once trained a model with an empty layer (Corr nan) and a text width of 0
    one that silently ignored the text: every int option is a width, count or rank, and every
    float option named *dropout is a probability, checked before any model is built."""
    for option, default in model_options(name).items():
        if isinstance(default, bool):
            continue
        if isinstance(default, int):
            bad = -1 if option in ("inject_after", "layers", "self_layers") else 0
        elif isinstance(default, float) and "dropout" in option:
            bad = 1.5
        else:
            continue
        with pytest.raises(ConfigError, match=f"model.{option}={bad} is not allowed"):
            check_model_options(name, {option: bad})


def test_a_model_that_forgets_reps_dims_fails_at_construction():
    class NoDims(Model):
        def __init__(self, spec: InputSpec, hidden: int = 4) -> None:
            super().__init__()

        def forward(self, batch):
            return None

    _register("no_dims_model", NoDims)
    try:
        _, spec = _spec("a")
        with pytest.raises(ContractError, match="must set reps_dims"):
            create_model("no_dims_model", spec)
    finally:
        from mimsa.models import base

        base._MODELS.pop("no_dims_model")
