"""Run configuration: code defaults < preset YAML < --config file < --set key=value.

Presets live in mimsa/configs/: `<model>.yaml` and `<model>_<dataset>.yaml`, plain YAML.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

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
        "batch_size": 32,
        "eval_batch_size": 128,
        "length_bucketing": False,
        "synthetic_seed": 0,
        "synthetic_sizes": None,  # e.g. {train: 64, valid: 32, test: 32} for quick checks
        # Corrupt TRAINING batches: {name: text_missing, rate: 0.3, <options>} or a list of
        # such mappings, reseeded every epoch; see mimsa/data/corruptions.py. None = off.
        "augment": None,
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


class ConfigError(ValueError):
    """A bad configuration key or value; the message names the key and the valid choices."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """Return (dotted key path, YAML-parsed value) of one `key=value` override."""
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected key=value, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set '{text}': the value is not valid YAML ({err})") from err
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


def set_path(cfg: dict, path: list[str], value: Any) -> None:
    """Set cfg[path[0]]...[path[-1]] = value after `check_key`; creates nested dicts."""
    check_key(path)
    node = cfg
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def merge(cfg: dict, update: dict, _path: tuple[str, ...] = ()) -> dict:
    """Return `cfg` updated leaf by leaf from the nested mapping `update` (lists replace)."""
    for key, value in update.items():
        path = [*_path, str(key)]
        if isinstance(value, dict) and value:
            check_key(path)
            merge(cfg, value, tuple(path))
        else:
            set_path(cfg, path, value)
    return cfg


def load_yaml(path: Path) -> dict:
    """Return the mapping in YAML file `path` (errors name the file)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path} does not exist") from err
    except yaml.YAMLError as err:
        message = f"config file {path} is not valid YAML: {err}".replace("\n", " ")
        raise ConfigError(message) from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def preset_names() -> list[str]:
    """Return the names of the shipped presets (file stems under mimsa/configs)."""
    root = resources.files("mimsa") / CONFIG_DIR
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict:
    """Return the shipped preset `name` ({} when there is none)."""
    path = resources.files("mimsa") / CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def resolve_config(model: str | None = None, dataset: str | None = None,
                   config_file: Path | None = None, overrides: list[str] | None = None) -> dict:
    """Return the full run config: defaults, then presets for model×dataset, file, overrides."""
    cfg = copy.deepcopy(DEFAULTS)
    file_cfg = load_yaml(config_file) if config_file else {}
    sets = [parse_override(o) for o in overrides or []]
    model = model or _find(sets, ["model", "name"]) or file_cfg.get("model", {}).get("name") \
        or cfg["model"]["name"]
    dataset = dataset or _find(sets, ["data", "name"]) or file_cfg.get("data", {}).get("name") \
        or cfg["data"]["name"]
    for preset in (model, f"{model}_{dataset}"):
        merge(cfg, load_preset(preset))
    merge(cfg, file_cfg)
    cfg["model"]["name"], cfg["data"]["name"] = model, dataset
    for path, value in sets:
        set_path(cfg, path, value)
    return cfg


def _find(sets: list[tuple[list[str], Any]], path: list[str]) -> Any:
    for key, value in sets:
        if key == path:
            return value
    return None


def dump(cfg: dict) -> str:
    """Return `cfg` as YAML text (key order kept)."""
    return yaml.safe_dump(cfg, sort_keys=False)
