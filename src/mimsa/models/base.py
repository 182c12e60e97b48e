"""The model contract and registry: every model returns `ModelOutput(prediction, reps)`.

A model is a subclass of `Model` registered with `@register_model("name")`. Registration checks
the declared contract (see `Model`) and fails at import with a `ContractError` naming what is
missing; construction checks `reps_dims`. Options (every keyword of `__init__` after `spec`)
have defaults and type hints, and values given in the configuration are checked against those
hints (`check_model_options`) before a run starts.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import TextSpec
from mimsa.errors import ConfigError, ContractError

# Option types that carry their allowed range. An option hinted with one is checked, with its
# key and value named, whenever a configuration is (train, sweep and tune plans), before any
# data are loaded or a run directory is created, not only when the model is built.
Width = typing.Annotated[int, Field(ge=1)]  #: a layer width, a count of heads, a rank
Count = typing.Annotated[int, Field(ge=0)]  #: a number of layers/batches that may be 0
Dropout = typing.Annotated[float, Field(ge=0, le=1)]  #: a dropout probability
NonNegative = typing.Annotated[float, Field(ge=0)]
Positive = typing.Annotated[float, Field(gt=0)]
Fraction = typing.Annotated[float, Field(gt=0, lt=1)]  #: e.g. a moving-average rate


@dataclass
class ModelOutput:
    """prediction [B] (sentiment score); reps: "t"/"a"/"v" for present modalities + "fusion"."""

    prediction: torch.Tensor
    reps: dict[str, torch.Tensor]


@dataclass
class InputSpec:
    """What the data offers a model: modalities (subset of "tav"), feature dims, text input,
    and the train-split feature statistics the data were standardised with ({field: {"mean":
    [D], "scale": [D]}}; {} when `data.standardize` is off; see `mimsa.data.scaling`)."""

    modalities: str
    dims: dict[str, int]
    text: TextSpec = field(default_factory=TextSpec)
    encoder: dict = field(default_factory=dict)
    scaling: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the spec as plain data; "scaling" only when the data were standardised."""
        out = asdict(self)
        if not out["scaling"]:
            del out["scaling"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        return cls(modalities=data["modalities"], dims=dict(data["dims"]),
                   text=TextSpec(**data.get("text", {})), encoder=dict(data.get("encoder", {})),
                   scaling=data.get("scaling", {}))


class Model(nn.Module):
    """The contract of every registered model.

    Construction: `Model(spec: InputSpec, **options)`; every option has a default and a type
    hint (they are the model's configuration keys, `model.<option>`).

    Declared members:
      model_name: str            set by `@register_model`
      requires: str              modalities the model cannot work without ("" = any non-empty
                                 subset of the data's t/a/v; "t" = text must be present)
      reads: str | None          modalities its forward pass uses (None = every present one;
                                 "t" = text only, whatever else the data hold)
      reps_dims: dict[str, int]  set in `__init__`: the width D of each entry of `reps`,
                                 "fusion" and one per unimodal vector it exposes ("t", "a", "v"
                                 for present modalities; models may add documented keys)
      run_record() -> dict       optional: facts recorded in model.json (default {})
      forward(batch: Batch) -> ModelOutput
                                 prediction [B] (sentiment score, unbounded; the task loss
                                 compares it with labels in [-3, 3]); reps {key: [B, D]} with
                                 D = reps_dims[key]
    Objectives read `reps` (never the model) and size their networks from `reps_dims`.
    """

    model_name: ClassVar[str] = ""
    requires: ClassVar[str] = ""
    reads: ClassVar[str | None] = None
    reps_dims: dict[str, int]

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - the contract
        raise NotImplementedError

    def run_record(self) -> dict[str, Any]:
        """Return facts about how the model read its inputs during training, written into the
        run's model.json with every checkpoint (JSON-serialisable; e.g. mag_bert's alignment of
        audio/visual frames to tokens). The default records nothing."""
        return {}


def modalities_read(model: Model, spec: InputSpec) -> str:
    """Return the modalities of `spec` that `model` reads (its `reads`, else all present): a
    test-time transform of any other modality would change nothing."""
    if model.reads is None:
        return spec.modalities
    return "".join(m for m in spec.modalities if m in model.reads)


_MODELS: dict[str, type[Model]] = {}


def register_model(name: str) -> Callable[[type[Model]], type[Model]]:
    """Class decorator: make the model constructible by `create_model(name, spec, **kw)`.

    Raises `ContractError` (at import) when the class breaks the `Model` contract."""

    def wrap(cls: type[Model]) -> type[Model]:
        if name in _MODELS:
            raise ContractError(f"model '{name}' is registered twice ({_MODELS[name].__module__}"
                                f" and {cls.__module__})")
        check_model_class(name, cls)
        _MODELS[name] = cls
        cls.model_name = name
        return cls

    return wrap


def check_model_class(name: str, cls: type) -> None:
    """Raise `ContractError` naming the first member of the `Model` contract `cls` lacks."""
    where = f"model '{name}' ({cls.__module__}.{cls.__qualname__})"
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ContractError(f"{where} must subclass mimsa.models.base.Model")
    if cls.forward is Model.forward:
        raise ContractError(f"{where} does not define forward(batch) -> ModelOutput")
    if not isinstance(cls.requires, str) or any(m not in "tav" for m in cls.requires):
        raise ContractError(f"{where}: requires must be a subset of 'tav', not "
                            f"{cls.requires!r}")
    check_options_signature(where, cls.__init__, ("self", "spec"))


def check_options_signature(where: str, init: Callable, leading: tuple[str, ...]) -> None:
    """Raise `ContractError` unless `init` takes `leading` positionally, then only keyword
    options that each have a default and a type hint."""
    params = list(inspect.signature(init).parameters.values())
    names = tuple(p.name for p in params[:len(leading)])
    if names != leading:
        raise ContractError(f"{where}: __init__ must start with ({', '.join(leading)}), not "
                            f"({', '.join(names)})")
    hints = _hints(init)
    for param in params[len(leading):]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ContractError(f"{where}: __init__ takes *{param.name}; list every option "
                                f"as a keyword with a default")
        if param.default is param.empty:
            raise ContractError(f"{where}: option '{param.name}' has no default")
        if param.name not in hints:
            raise ContractError(f"{where}: option '{param.name}' has no type hint (options "
                                f"are checked against their hints)")
        try:
            TypeAdapter(hints[param.name], config=_LAX).validate_python(param.default)
        except ValidationError as err:
            raise ContractError(f"{where}: the default {param.name}={param.default!r} breaks "
                                f"its own hint {_type_name(hints[param.name])} "
                                f"({err.errors()[0]['msg']})") from None


def _hints(init: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(init, include_extras=True)  # keep the ranges (Annotated)
    except Exception as err:  # a hint that does not resolve is the contract's problem
        raise ContractError(f"{init.__qualname__}: type hints do not resolve ({err})") from None


def list_models() -> dict[str, type[Model]]:
    """Return the registered models by name."""
    import mimsa.models.zoo  # noqa: F401  (registers the built-in models)

    return dict(sorted(_MODELS.items()))


def model_options(name: str) -> dict[str, object]:
    """Return the keyword options of model `name` with their defaults."""
    return signature_options(_get(name).__init__, 2)


def signature_options(init: Callable, leading: int) -> dict[str, object]:
    params = list(inspect.signature(init).parameters.values())[leading:]
    return {p.name: p.default for p in params}


def check_options(where: str, key: str, init: Callable, leading: int,
                  options: dict[str, Any]) -> dict[str, Any]:
    """Return `options` converted to the types of `init`'s hints; raise `ConfigError` (one
    line) on an unknown option (listing the valid ones with defaults) or a value of the wrong
    type. `key` is the config prefix the options come from (e.g. "model", "objectives.ba")."""
    valid = signature_options(init, leading)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(f"{k}={v}" for k, v in valid.items()) or "(none)"
        raise ConfigError(f"unknown config key {key}.{unknown[0]}: {where} has no option "
                          f"{', '.join(unknown)}; valid options: {listed}")
    hints = _hints(init)
    checked = {}
    for option, value in options.items():
        try:
            checked[option] = TypeAdapter(hints[option], config=_LAX).validate_python(value)
        except ValidationError as err:
            message = str(err.errors()[0]["msg"])
            raise ConfigError(f"config value {key}.{option}={value!r} is not allowed: "
                              f"{message[:1].lower() + message[1:]} ({where}, option "
                              f"{option}: {_type_name(hints[option])} = "
                              f"{valid[option]!r})") from None
    return checked


# NaN and ±inf are never a usable option value (a scale, a rate, a bound): refused here.
_LAX = ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False)


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _type_name(hint: Any) -> str:
    """Return a hint as users read it: "int >= 1", "float >= 0, <= 1", "float | None"."""
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        constraints = [c for e in extras for c in getattr(e, "metadata", [e])]
        bounds = [f"{sign} {getattr(c, attr)}" for c in constraints for attr, sign in _BOUNDS
                  if getattr(c, attr, None) is not None]
        return f"{_type_name(base)} {', '.join(bounds)}".strip()
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_model_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return the options of model `name` checked and converted (see `check_options`)."""
    return check_options(f"model '{name}'", "model", _get(name).__init__, 2, options)


def create_model(name: str, spec: InputSpec, **options) -> Model:
    """Return a new model `name` for inputs `spec`; unknown names or options list valid ones.

    Raises `ConfigError` for a bad option, `ContractError` when the model did not declare
    `reps_dims` with a "fusion" entry."""
    cls = _get(name)
    checked = check_model_options(name, options)
    model = build_with_options(f"model '{name}'", "model", lambda: cls(spec, **checked),
                               checked)
    dims = getattr(model, "reps_dims", None)
    if not isinstance(dims, dict) or "fusion" not in dims:
        raise ContractError(f"model '{name}' ({cls.__module__}.{cls.__qualname__}) must set "
                            f"reps_dims (a dict with a 'fusion' entry) in __init__")
    return model


def build_with_options(where: str, key: str, build: Callable[[], Any],
                       options: dict[str, Any]) -> Any:
    """Return `build()`; when it fails with a ValueError, TypeError or RuntimeError while
    options were given, raise a one-line `ConfigError` naming them (a constructor refusing a
    value, e.g. a dropout above 1 or a width that heads do not divide, is the user's to fix).
    Without options such a failure is a bug in mimsa and propagates."""
    try:
        return build()
    except (ValueError, TypeError, RuntimeError) as err:
        if not options or isinstance(err, ConfigError):
            raise
        given = ", ".join(f"{key}.{k}={v!r}" for k, v in options.items())
        if len(given) > 160:
            given = given[:157] + "..."
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError(f"{where} cannot be built with {given}: {reason}; check these "
                          f"values (`mimsa models` lists the defaults)") from err


def _get(name: str) -> type[Model]:
    models = list_models()
    if name not in models:
        raise ConfigError(f"unknown model '{name}'; registered models: {', '.join(models)}")
    return models[name]


def require_modalities(name: str, spec: InputSpec, needed: str = "") -> None:
    """Raise a one-line error if `spec` lacks any modality in `needed`, or has none at all."""
    if not spec.modalities:
        raise ConfigError(f"model '{name}' got no modality; the dataset offers none selected")
    missing = [m for m in needed if m not in spec.modalities]
    if missing:
        raise ConfigError(f"model '{name}' needs modality {', '.join(missing)}; the data offers "
                         f"'{spec.modalities}' (check data.modalities)")


def xavier_init(module: nn.Module, skip: str = "text_encoder.") -> None:
    """Re-initialise weight matrices (xavier normal) outside the pretrained/text part."""
    for name, param in module.named_parameters():
        if param.dim() >= 2 and skip not in name and "pretrained." not in name:
            nn.init.xavier_normal_(param)
