"""The model contract and registry: every model returns `ModelOutput(prediction, reps)`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from mimsa.encoders.builder import TextSpec


@dataclass
class ModelOutput:
    """prediction [B] (sentiment score); reps: "t"/"a"/"v" for present modalities + "fusion"."""

    prediction: torch.Tensor
    reps: dict[str, torch.Tensor]


@dataclass
class InputSpec:
    """What the data offers a model: modalities (subset of "tav"), feature dims, text input."""

    modalities: str
    dims: dict[str, int]
    text: TextSpec = field(default_factory=TextSpec)
    encoder: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        return cls(modalities=data["modalities"], dims=dict(data["dims"]),
                   text=TextSpec(**data.get("text", {})), encoder=dict(data.get("encoder", {})))


_MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make the model constructible by `create_model(name, spec, **kw)`."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model '{name}' is registered twice")
        _MODELS[name] = cls
        cls.model_name = name
        return cls

    return wrap


def list_models() -> dict[str, type[nn.Module]]:
    """Return the registered models by name."""
    import mimsa.models.zoo  # noqa: F401  (registers the built-in models)

    return dict(sorted(_MODELS.items()))


def model_options(name: str) -> dict[str, object]:
    """Return the keyword options of model `name` with their defaults."""
    cls = _get(name)
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k not in ("self", "spec")}


def create_model(name: str, spec: InputSpec, **options) -> nn.Module:
    """Return a new model `name` for inputs `spec`; unknown names or options list valid ones."""
    cls = _get(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"model '{name}' has no option {', '.join(unknown)}; valid options: "
                         + ", ".join(f"{k}={v}" for k, v in valid.items()))
    return cls(spec, **options)


def _get(name: str) -> type[nn.Module]:
    models = list_models()
    if name not in models:
        raise KeyError(f"unknown model '{name}'; registered models: {', '.join(models)}")
    return models[name]


def require_modalities(name: str, spec: InputSpec, needed: str = "") -> None:
    """Raise a one-line error if `spec` lacks any modality in `needed`, or has none at all."""
    if not spec.modalities:
        raise ValueError(f"model '{name}' got no modality; the dataset offers none selected")
    missing = [m for m in needed if m not in spec.modalities]
    if missing:
        raise ValueError(f"model '{name}' needs modality {', '.join(missing)}; the data offers "
                         f"'{spec.modalities}' (check data.modalities)")


def xavier_init(module: nn.Module, skip: str = "text_encoder.") -> None:
    """Re-initialise weight matrices (xavier normal) outside the pretrained/text part."""
    for name, param in module.named_parameters():
        if param.dim() >= 2 and skip not in name and "pretrained." not in name:
            nn.init.xavier_normal_(param)
