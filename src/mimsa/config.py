"""Run configuration: code defaults < presets < --config file < --set key=value.

Presets live in mimsa/configs/, plain YAML, applied in this order (later wins):
  <dataset>.yaml          what belongs to a dataset (batch grouping, epoch budget)
  <model>.yaml            the model's published hyperparameters
  <model>_<dataset>.yaml  only what differs for that model on that dataset
`resolve_config` returns the merged mapping after checking every key (unknown keys list the
valid ones) and every value against the typed schema in `mimsa.config_schema`;
`resolve_with_sources` also says where each value came from (`mimsa config` prints both).
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mimsa.config_schema import check_values
from mimsa.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "seed": 1111,
    "protocol": "clean",
    "model": {"name": "late_fusion"},
    "data": {
        "name": "synthetic",
        "root": None,
        "modalities": None,  # None = every modality the dataset has; else a subset of "tav"
        "nan_policy": "error",
        "trust_pickle": False,
        # An id in two splits leaks: "error" refuses it, "drop" removes it from the later split.
        "cross_split_duplicates": "error",
        "batch_size": 32,
        "eval_batch_size": 128,
        "length_bucketing": False,
        "synthetic_seed": 0,
        "synthetic_sizes": None,  # e.g. {train: 64, valid: 32, test: 32} for quick checks
        # Corrupt TRAINING batches: {name: text_missing, rate: 0.3, <options>} or a list of
        # such mappings, reseeded every epoch; see mimsa/data/corruptions.py. None = off.
        "augment": None,
        # Conversational context for a pretrained text encoder: {before: k, after: k}
        # neighbouring segments of the same video (mimsa/data/context.py). None = off.
        "context": None,
        # z-score the audio/visual (and text feature) dimensions with the train split's mean
        # and std, recorded in model.json for every later use (mimsa/data/scaling.py).
        "standardize": False,
    },
    "encoder": {
        "name": "auto",
        "pooling": "cls",
        "max_length": 50,
        "freeze": False,
        "lr": 5e-5,
        "emb_dim": 64,
        "hidden": 64,
    },
    "train": {
        "epochs": 30,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "clip": 1.0,
        "patience": 6,
        "loss": "l1",
        "select_metric": "MAE",
        "stages": [{"name": "main", "optimizer": "main", "terms": {"task": 1.0}}],
        "optimizers": {},
        "term_weights": {},  # {term or "stage/term": weight} replaces stage weights; 0 = off
        "threads": None,
        # where the arithmetic runs: auto (a CUDA GPU when torch sees one, else cpu), cpu,
        # cuda, cuda:N (train/device.py)
        "device": "auto",
        # learning-rate schedule of the main optimizer over the epoch budget (train/optim.py):
        # linear warm-up over this fraction of the steps, then "none" (constant) or "linear"
        # decay to 0
        "warmup": 0.0,
        "decay": "none",
    },
    "objectives": {},
    # A mutual-dependency penalty (Colombo et al.) on any model; see objectives/penalty_config.py.
    "penalty": {
        "kind": None,  # null | kl | js | wasserstein
        "weight": 0.1,  # λ: model loss = task − λ·D
        "critic_steps": 1,  # critic steps per model step
        # fresh: critic steps BEFORE the model step, on a no-grad forward of the current model;
        # reuse: AFTER it, on that step's detached reps (no extra forward; one update stale)
        "critic_reps": "fresh",
        "critic_lr": 1e-4,
        "hidden": 64,  # critic MLP width, depth (hidden layers), activation
        "depth": 2,
        "activation": "relu",
        "reps": None,  # null = the model's unimodal reps t/a/v
        "ema": None,  # kl only: MINE's moving-average gradient correction, e.g. 0.99
        "gamma": 10.0,  # wasserstein only: gradient-penalty weight
        "lipschitz": "penalty",  # wasserstein only: penalty | spectral
    },
}
FREE_SECTIONS = ("model", "objectives")
CONFIG_DIR = "configs"
DEFAULT_SOURCE = "default"
PRESET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # a preset name, never a path


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last
    one silently)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key '{key}' appears twice in one mapping",
                key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _unique_mapping)


def load_yaml_text(text: str) -> Any:
    """Return the YAML value of `text` (safe types only; a repeated key is a YAMLError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def parse_override(text: str, flag: str = "--set") -> tuple[list[str], Any]:
    """Return (dotted key path, YAML-parsed value) of one `key=value` override given with
    `flag` (named in the error)."""
    if "=" not in text:
        raise ConfigError(f"{flag} '{text}': expected key=value, e.g. "
                          f"{'train.epochs=5' if flag == '--set' else 'mode=remove'}")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml_text(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"{flag} '{text}': the value is not valid YAML "
                          f"({_yaml_problem(err)})") from None
    return key.strip().split("."), value


def check_key(path: list[str]) -> None:
    """Raise ConfigError unless `path` names a known section/key (model/objectives are free)."""
    section = path[0]
    if section not in DEFAULTS:
        raise ConfigError(f"unknown config key '{section}'; valid: {', '.join(DEFAULTS)}")
    known = DEFAULTS[section]
    if len(path) > 1 and section not in FREE_SECTIONS:
        if not isinstance(known, dict):
            raise ConfigError(f"config key '{section}' takes a value, not '{'.'.join(path)}'")
        if path[1] not in known:
            raise ConfigError(f"unknown config key '{section}.{path[1]}'; valid keys in "
                              f"{section}: {', '.join(known)}")


def set_path(cfg: dict, path: list[str], value: Any, sources: dict[str, str] | None = None,
             source: str = DEFAULT_SOURCE) -> None:
    """Set cfg[path[0]]...[path[-1]] = value after `check_key`; creates nested dicts. With
    `sources`, record `source` for the dotted key (and forget what was recorded below it)."""
    check_key(path)
    node = cfg
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    if sources is not None:
        dotted = ".".join(path)
        for key in [k for k in sources if k.startswith(dotted + ".")]:
            del sources[key]
        sources[dotted] = source


def merge(cfg: dict, update: dict, _path: tuple[str, ...] = (),
          sources: dict[str, str] | None = None, source: str = DEFAULT_SOURCE) -> dict:
    """Return `cfg` updated leaf by leaf from the nested mapping `update` (lists replace)."""
    for key, value in update.items():
        path = [*_path, str(key)]
        if isinstance(value, dict) and value:
            check_key(path)
            merge(cfg, value, tuple(path), sources, source)
        else:
            set_path(cfg, path, value, sources, source)
    return cfg


def read_text_file(path: Path, what: str = "config file", kind: str = "YAML file") -> str:
    """Return the UTF-8 text of `path`; a folder, a missing, unreadable or non-UTF-8 file is a
    one-line `ConfigError` naming it as `what` and asking for a `kind`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a {kind}")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not text (not UTF-8); give a {kind}") from None
    except OSError as err:
        raise ConfigError(f"{what} {path} cannot be read ({err.strerror})") from None


def load_yaml(path: Path) -> dict:
    """Return the mapping in YAML file `path`; every failure is one line naming the file."""
    path = Path(path)
    text = read_text_file(path)
    try:
        data = load_yaml_text(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(err)}"
                          ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level "
                          f"(e.g. 'train: {{epochs: 5}}'), not {type(data).__name__}")
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """Return a YAML error as one line: the problem and where (line, column)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}".replace("\n", " ")


def preset_names() -> list[str]:
    """Return the names of the shipped presets (file stems under mimsa/configs)."""
    root = resources.files("mimsa") / CONFIG_DIR
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict:
    """Return the shipped preset `name` ({} when there is none)."""
    if not PRESET_NAME.match(name):
        return {}
    path = resources.files("mimsa") / CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def resolve_config(model: str | None = None, dataset: str | None = None,
                   config_file: Path | None = None, overrides: list[str] | None = None) -> dict:
    """Return the full, checked run config: defaults, presets (dataset, model, model×dataset),
    file, overrides. Raises `ConfigError` (one line) on an unknown key or a bad value."""
    return resolve_with_sources(model, dataset, config_file, overrides)[0]


def resolve_with_sources(model: str | None = None, dataset: str | None = None,
                         config_file: Path | None = None, overrides: list[str] | None = None
                         ) -> tuple[dict, dict[str, str]]:
    """Return (config, {dotted key: where its value came from}) as `resolve_config` builds it.

    Sources: "default", "preset <name>.yaml", "file <path>", "--set", and "-m" / "-d"
    for the model and dataset names given as options."""
    cfg = copy.deepcopy(DEFAULTS)
    sources: dict[str, str] = {}
    file_cfg = load_yaml(config_file) if config_file else {}
    sets = [parse_override(o) for o in overrides or []]
    model, model_from = _name(model, "-m", sets, file_cfg, config_file, ["model", "name"])
    dataset, data_from = _name(dataset, "-d", sets, file_cfg, config_file, ["data", "name"])
    for preset in (dataset, model, f"{model}_{dataset}"):
        merge(cfg, load_preset(preset), sources=sources, source=f"preset {preset}.yaml")
    merge(cfg, file_cfg, sources=sources, source=f"file {config_file}")
    cfg["model"]["name"], cfg["data"]["name"] = model, dataset
    sources["model.name"], sources["data.name"] = model_from, data_from
    for path, value in sets:
        set_path(cfg, path, value, sources, "--set")
    # `objectives.<name>: null` (a file or --set) removes an objective a preset configured
    cfg["objectives"] = {k: v for k, v in (cfg.get("objectives") or {}).items() if v is not None}
    cfg = check_values(cfg)
    check_effective(cfg)
    _check_encoder_settings(cfg, sources)
    return cfg, sources


# Text encoders that are not pretrained transformers (see mimsa.encoders.builder); the
# pretrained-only settings below have no effect on them.
LOCAL_ENCODERS = ("auto", "embedding", "vocab", "features")
PRETRAINED_ONLY = ("freeze", "lr", "pooling", "max_length")


def _check_encoder_settings(cfg: dict, sources: dict[str, str]) -> None:
    """Raise `ConfigError` when a pretrained-only encoder setting is given explicitly (file or
    --set) for a local encoder, where it would have no effect."""
    if cfg["encoder"]["name"] not in LOCAL_ENCODERS:
        return
    for key in PRETRAINED_ONLY:
        source = sources.get(f"encoder.{key}", DEFAULT_SOURCE)
        if source == "--set" or source.startswith("file "):
            raise ConfigError(f"encoder.{key} applies to pretrained text encoders only (this "
                              f"run reads text with encoder.name={cfg['encoder']['name']}); "
                              f"set encoder.name=minilm|mpnet|<folder>, or drop it")


def _name(given: str | None, option: str, sets: list[tuple[list[str], Any]], file_cfg: dict,
          config_file: Path | None, path: list[str]) -> tuple[str, str]:
    """Return (model or dataset name, where it came from): the option, --set, file, default."""
    section = file_cfg.get(path[0]) if isinstance(file_cfg.get(path[0]), dict) else {}
    for value, source in ((given, option), (_find(sets, path), "--set"),
                          (section.get(path[1]), f"file {config_file}"),
                          (DEFAULTS[path[0]][path[1]], DEFAULT_SOURCE)):
        if value is not None:
            return str(value), source
    raise AssertionError("unreachable: DEFAULTS names a model and a dataset")


def _find(sets: list[tuple[list[str], Any]], path: list[str]) -> Any:
    for key, value in sets:
        if key == path:
            return value
    return None


def check_effective(cfg: dict) -> None:
    """Raise `ConfigError` for a setting that would be accepted and silently have no effect:
    penalty options without `penalty.kind`, synthetic-data options on another dataset,
    `data.context` without text."""
    penalty = cfg.get("penalty") or {}
    if penalty.get("kind") is None:
        changed = [k for k, v in penalty.items() if k != "kind" and v != DEFAULTS["penalty"][k]]
        if changed:
            raise ConfigError(f"penalty.{changed[0]}={penalty[changed[0]]} has no effect "
                              f"without penalty.kind; set penalty.kind=kl|js|wasserstein or "
                              f"drop it")
    modalities = cfg["data"].get("modalities")
    if cfg["data"].get("context") and modalities is not None and "t" not in modalities:
        raise ConfigError(f"data.context adds neighbouring transcripts to the text input, and "
                          f"data.modalities={modalities} reads no text; drop data.context")
    if cfg["data"]["name"] != "synthetic":
        for key in ("synthetic_sizes", "synthetic_seed"):
            if cfg["data"][key] != DEFAULTS["data"][key]:
                raise ConfigError(f"data.{key} applies to the synthetic dataset only (this run "
                                  f"reads {cfg['data']['name']}); drop it")


def explicit_values(cfg: dict, sources: dict[str, str]) -> dict[str, Any]:
    """Return {dotted key: value} of the settings given explicitly (options, --config, --set),
    as opposed to defaults and presets; `mimsa train --resume` compares them with the saved
    run's."""
    out = {}
    for key, source in sources.items():
        if source == DEFAULT_SOURCE or source.startswith("preset "):
            continue
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[key] = node
    return out


def render_with_sources(cfg: dict, sources: dict[str, str]) -> str:
    """Return `cfg` as YAML lines, each value followed by `# <where it came from>`."""
    lines: list[str] = []
    _render(cfg, sources, (), lines)
    width = max((len(line.split("  # ")[0]) for line in lines), default=0)
    aligned = []
    for line in lines:
        body, _, source = line.partition("  # ")
        aligned.append(f"{body.ljust(width)}  # {source}" if source else body)
    return "\n".join(aligned)


def _render(node: dict, sources: dict[str, str], path: tuple[str, ...],
            lines: list[str]) -> None:
    indent = "  " * len(path)
    for key, value in node.items():
        dotted = ".".join((*path, str(key)))
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            _render(value, sources, (*path, str(key)), lines)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{indent}{key}:  # {_source_of(dotted, sources)}")
            lines.extend(f"{indent}  - {_flow(v)}" for v in value)
        else:
            lines.append(f"{indent}{key}: {_flow(value)}  # {_source_of(dotted, sources)}")


def _source_of(dotted: str, sources: dict[str, str]) -> str:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in sources:
            return sources[key]
    return DEFAULT_SOURCE


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
    return text.strip().removesuffix("...").strip()


def dump(cfg: dict) -> str:
    """Return `cfg` as YAML text (key order kept)."""
    return yaml.safe_dump(cfg, sort_keys=False)
