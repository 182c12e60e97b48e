"""The typed schema of a run configuration: every key's type, range and choices.

`check_values(cfg)` validates a resolved configuration once, at resolution time, and returns it
with values converted to their declared types (a YAML string "1e-3" becomes the float 0.001);
the first bad value is a one-line `ConfigError` naming the key, the value and what is allowed.
The free sections `model` and `objectives` are checked here for shape only; their options are
checked against the constructors' signatures when the run is prepared
(`mimsa.models.base.check_model_options`, `mimsa.objectives.base.check_objective_options`).
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mimsa.errors import ConfigError

PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
# The metric keys a run can select on (MMSA names, see mimsa.metrics) and the task loss.
SELECT_METRICS = ("MAE", "Corr", "Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
                  "Mult_acc_5", "Mult_acc_7", "loss")


class _Section(BaseModel):
    # NaN and ±inf are never a usable setting (an infinite lr or weight fails at the first
    # batch with a message about the loss, far from the cause)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ContextSection(_Section):
    before: NonNegativeInt = 0
    after: NonNegativeInt = 0

    @model_validator(mode="after")
    def _some_context(self) -> ContextSection:
        if not self.before and not self.after:
            raise ValueError("before and after are both 0; use data.context: null for no "
                             "context")
        return self


class DataSection(_Section):
    name: str
    root: str | None = None
    modalities: str | None = None
    nan_policy: Literal["error", "zero"] = "error"
    trust_pickle: bool = False
    cross_split_duplicates: Literal["error", "drop"] = "error"
    batch_size: PositiveInt = 32
    eval_batch_size: PositiveInt = 128
    length_bucketing: bool = False
    synthetic_seed: int = 0
    synthetic_sizes: dict[Literal["train", "valid", "test"], PositiveInt] | None = None
    augment: dict[str, Any] | list[dict[str, Any]] | None = None
    context: ContextSection | None = None
    standardize: bool = False

    @field_validator("modalities")
    @classmethod
    def _subset_of_tav(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or any(m not in "tav" for m in value) or len(set(value)) != len(value):
            raise ValueError("must be a non-empty subset of 't', 'a', 'v' such as 'ta', or null "
                             "for every modality the dataset has")
        return value

    @field_validator("root", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)


class EncoderSection(_Section):
    name: str = "auto"
    pooling: Literal["cls", "mean", "segment"] = "cls"
    max_length: PositiveInt = 50
    freeze: bool = False
    lr: PositiveFloat = 5e-5
    emb_dim: PositiveInt = 64
    hidden: PositiveInt = 64

    @field_validator("name", mode="before")
    @classmethod
    def _name_as_text(cls, value: Any) -> Any:
        return str(value) if value is not None else value


class OptimizerSection(_Section):
    lr: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None


class StepSection(_Section):
    optimizer: str | list[str] = "main"
    terms: dict[str, float] | None = None
    repeat: PositiveInt = 1


class StageSection(_Section):
    name: str = "main"
    optimizer: str | list[str] | None = None
    terms: dict[str, float] | None = None
    repeat: PositiveInt | None = None
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    steps: list[StepSection] | None = None


class TrainSection(_Section):
    epochs: PositiveInt = 30
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    clip: NonNegativeFloat | None = 1.0
    patience: PositiveInt = 6
    loss: Literal["l1", "mse", "smooth_l1"] = "l1"
    select_metric: Literal[SELECT_METRICS] = "MAE"  # type: ignore[valid-type]
    stages: Annotated[list[StageSection], Field(min_length=1)]
    optimizers: dict[str, OptimizerSection] = Field(default_factory=dict)
    term_weights: dict[str, float] = Field(default_factory=dict)
    threads: PositiveInt | None = None
    device: str = "auto"
    warmup: Annotated[float, Field(ge=0, lt=1)] = 0.0
    decay: Literal["none", "linear"] = "none"

    @field_validator("device")
    @classmethod
    def _a_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            raise ValueError("use auto, cpu, cuda or cuda:N (train/device.py)")
        return value


class PenaltySection(_Section):
    kind: Literal["kl", "js", "wasserstein"] | None = None
    weight: float = 0.1
    critic_steps: PositiveInt = 1
    critic_reps: Literal["fresh", "reuse"] = "fresh"
    critic_lr: PositiveFloat = 1e-4
    hidden: PositiveInt = 64
    depth: PositiveInt = 2
    activation: Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "softplus"] = "relu"
    reps: str | list[str] | None = None
    ema: Annotated[float, Field(gt=0, lt=1)] | None = None
    gamma: NonNegativeFloat = 10.0
    lipschitz: Literal["penalty", "spectral"] = "penalty"

    @field_validator("kind", mode="before")
    @classmethod
    def _off_is_null(cls, value: Any) -> Any:
        if value is False or (isinstance(value, str) and value.lower() in ("", "none", "null",
                                                                           "off")):
            return None
        return value.lower() if isinstance(value, str) else value


# numpy's and torch's generators take seeds in [0, 2**32): the range every seed must be in.
SEED_RANGE = (0, 2**32 - 1)


class RunConfig(_Section):
    seed: Annotated[int, Field(ge=SEED_RANGE[0], le=SEED_RANGE[1])] = 1111
    protocol: Literal["clean", "legacy"] = "clean"
    model: dict[str, Any]
    data: DataSection
    encoder: EncoderSection
    train: TrainSection
    objectives: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    penalty: PenaltySection

    @field_validator("model")
    @classmethod
    def _model_has_name(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise ValueError("model.name must name a registered model (see `mimsa models`)")
        return value

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives_mapping(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            for name, options in value.items():
                if options is not None and not isinstance(options, dict):
                    raise ValueError(f"objectives.{name} takes a mapping of the objective's "
                                     f"options, e.g. objectives.{name}={{}} for its defaults "
                                     f"(`mimsa objectives` lists them)")
        return value


def describe_error(err: ValidationError, cfg: dict) -> str:
    """Return one line for the first error of `err`: the dotted key, the bad value and what
    is allowed (pydantic's message, starting in lower case)."""
    first = err.errors()[0]
    key, value = _config_path(cfg, [str(part) for part in first["loc"]])
    message = str(first["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    # the schema's class names mean nothing to a user: "a valid dictionary or instance of
    # ContextSection" is "a valid dictionary"
    message = re.sub(r" or instance of \w+", "", message)
    if first["type"] == "extra_forbidden":
        parent, _, name = key.rpartition(".")
        keys = _section_keys([str(p) for p in first["loc"][:-1] if not _is_type_tag(str(p))])
        message = f"{parent} has no key {name}" + (f"; valid keys: {', '.join(keys)}" if keys
                                                   else "")
    if first["type"] == "missing":
        return f"config key {key} is missing: give it a value (see `mimsa config`)"
    return f"config value {key}={_show(value)} is not allowed: {message}"


def _section_keys(loc: list[str]) -> list[str]:
    """Return the keys of the schema section at `loc` (e.g. ["data", "context"], or
    ["train", "stages", "0"]: a list index or mapping key is skipped), or []."""
    model: Any = RunConfig
    for part in loc:
        if not isinstance(model, type):
            return []
        field = model.model_fields.get(part)
        if field is not None:
            model = _section_class(field.annotation)
    return list(model.model_fields) if isinstance(model, type) else []


def _section_class(annotation: Any) -> Any:
    """Return the `_Section` subclass inside a field's annotation (Optional, list), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_class(arg)
        if found is not None:
            return found
    return None


def check_values(cfg: dict) -> dict:
    """Return `cfg` with every value converted to its declared type; raise `ConfigError`
    (one line: key, value, what is allowed) on the first value the schema refuses."""
    try:
        checked = RunConfig.model_validate(cfg)
    except ValidationError as err:
        raise ConfigError(describe_error(err, cfg)) from None
    out = dict(cfg)
    for section in ("data", "encoder", "penalty"):
        out[section] = {**cfg[section], **getattr(checked, section).model_dump(
            include=set(cfg[section]))}
    train = dict(cfg["train"])
    dumped = checked.train.model_dump(exclude={"stages", "optimizers"})
    train.update({k: v for k, v in dumped.items() if k in cfg["train"]})
    out["train"] = train
    out["seed"], out["protocol"] = checked.seed, checked.protocol
    return out


def _config_path(cfg: Any, loc: list[str]) -> tuple[str, Any]:
    """Return (dotted key, value) of the config entry `loc` points at. pydantic adds the union
    member's name to `loc` (e.g. 'int', 'list[str]'); parts that are not keys are left out."""
    node, keys = cfg, []
    for part in loc:
        if _is_type_tag(part):
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict | list):
            keys.append(part)  # a missing key, or an extra one that pydantic refused
            node = None
            continue
        else:
            continue
        keys.append(part)
    return ".".join(keys), node


def _is_type_tag(part: str) -> bool:
    """Return True for the name of a union member that pydantic puts in an error's loc."""
    return "[" in part or part in ("str", "int", "float", "bool", "none", "dict", "list") \
        or part.startswith(("function-", "constrained-"))


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
