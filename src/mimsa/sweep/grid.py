"""Grid files: models × datasets × encoders × variants × seeds, each combination one named run.

A grid file is YAML:

    models: [late_fusion, mmim]          # or {mag_bert: [train.lr=1e-3], ...}: per-model sets
    datasets: [mosi, mosi-poria]         # or {poria: mosi-poria}: label → dataset name or path
    encoders: {minilm-frozen: [encoder.name=minilm, encoder.freeze=true]}   # optional
    variants: {"": [], js: [penalty.kind=js]}                                # optional
    seeds: [1111, 1112, 1113, 1114, 1115]
    sets: [train.epochs=30]              # optional, applied to every run

Every combination is one run named `<dataset label>_<model>[-<variant label>]_<encoder label>`
(no `_<encoder>` part without `encoders`; the variant label "" adds nothing), trained with the
overrides (`--set key=value`) of its encoder, then its model, then its variant, then `sets`
(a later override of the same key wins).

A file may hold several YAML documents separated by `---`, each one such product (for tables
that are not one product); a later document takes every key it leaves out from the first. A
run name may appear once per file.

Everything is checked here, before any run starts: unknown or missing keys, empty lists or
mappings, labels that cannot name a folder, seeds, and every override's key and YAML value.
Each problem is a one-line `ConfigError` naming the grid file and the key.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mimsa import config as config_mod
from mimsa.config_schema import SEED_RANGE
from mimsa.errors import ConfigError

KEYS = ("models", "datasets", "encoders", "variants", "seeds", "sets")
REQUIRED = ("models", "datasets", "seeds")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")  # folder-safe, no "_" (the name separator)
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: its name, model, dataset, overrides (in order) and seeds.

    `grid` is the file it came from and `document` its YAML document (1-based), for messages.
    """

    name: str
    model: str
    dataset: str
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]
    grid: Path = field(compare=False)
    document: int = field(compare=False, default=1)

    def where(self) -> str:
        """Return "grid FILE, run NAME" for messages."""
        return f"grid {self.grid}, run {self.name}"

    def train_command(self, out: Path | None = None, data_root: Path | None = None) -> str:
        """Return the equivalent `mimsa train` command line (with `--out out/NAME` and
        `--data-root` if given)."""
        parts = ["mimsa", "train", "-m", self.model, "-d", self.dataset]
        for override in self.overrides:
            parts += ["--set", override]
        parts += ["--seeds", *map(str, self.seeds)]
        if data_root is not None:
            parts += ["--data-root", str(data_root)]
        if out is not None:
            parts += ["--out", str(Path(out) / self.name)]
        return " ".join(shlex.quote(p) for p in parts)


def load_grid(path: str | Path) -> list[RunSpec]:
    """Return the runs of grid file `path`, in file order (dataset, model, variant, encoder).

    Raises:
        ConfigError: one line naming the file (and document, key) for a file that cannot be
            read, invalid YAML, an unknown, missing or empty key, a bad label, seed or override,
            or a run name that appears twice.
    """
    path = Path(path)
    documents = _read_documents(path)
    first = documents[0]
    runs: dict[str, RunSpec] = {}
    for number, document in enumerate(documents, start=1):
        where = f"grid {path}" + (f" (document {number})" if len(documents) > 1 else "")
        merged = {**first, **document} if number > 1 else document
        for spec in _expand(merged, where, path, number):
            if spec.name in runs:
                other = runs[spec.name].document
                twice = f"documents {other} and {number}" if other != number else "one document"
                raise ConfigError(f"grid {path}: run name '{spec.name}' appears twice ({twice}); "
                                  f"each combination must be named once: drop one or rename a "
                                  f"label")
            runs[spec.name] = spec
    return list(runs.values())


def _read_documents(path: Path) -> list[dict]:
    """Return the YAML documents of `path`, each checked to be a mapping of known keys."""
    text = config_mod.read_text_file(path, "grid", "grid YAML file")
    try:
        # the config loader refuses a key given twice in one mapping
        documents = list(yaml.load_all(text, Loader=config_mod._UniqueKeyLoader))  # noqa: S506
    except yaml.YAMLError as err:
        raise ConfigError(f"grid {path} is not valid YAML: {config_mod._yaml_problem(err)}"
                          ) from None
    documents = [d for d in documents if d is not None]  # e.g. after a trailing ---
    if not documents:
        raise ConfigError(f"grid {path} is empty; give at least models, datasets and seeds")
    for number, document in enumerate(documents, start=1):
        where = f"grid {path}" + (f" (document {number})" if len(documents) > 1 else "")
        if not isinstance(document, dict):
            raise ConfigError(f"{where} must be a mapping (models: ..., datasets: ..., seeds: "
                              f"...), not {type(document).__name__}")
        unknown = [str(k) for k in document if k not in KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}'; valid keys: "
                              f"{', '.join(KEYS)}")
    missing = [k for k in REQUIRED if k not in documents[0]]
    if missing:
        raise ConfigError(f"grid {path}: the key '{missing[0]}' is missing"
                          f"{' from the first document' if len(documents) > 1 else ''}; a grid "
                          f"names {', '.join(REQUIRED)} (and optionally encoders, variants, sets)")
    return documents


def _expand(grid: dict, where: str, path: Path, number: int) -> list[RunSpec]:
    """Return the runs of one (merged) grid document."""
    models = _labelled_sets(grid["models"], "models", where, MODEL, "a model name")
    datasets = _datasets(grid["datasets"], where)
    encoders = (_labelled_sets(grid["encoders"], "encoders", where, LABEL, "a label",
                               lists=False) if "encoders" in grid else {None: []})
    variants = (_labelled_sets(grid["variants"], "variants", where, LABEL, "a label",
                               lists=False, empty_label=True) if "variants" in grid
                else {"": []})
    seeds = _seeds(grid["seeds"], where)
    sets = _overrides(grid["sets"], "sets", where) if "sets" in grid else []
    if "sets" in grid and not sets:
        raise ConfigError(f"{where}: sets is empty; give key=value overrides or drop the key")
    runs = []
    for label, dataset in datasets.items():
        for model, model_sets in models.items():
            for variant, variant_sets in variants.items():
                for encoder, encoder_sets in encoders.items():
                    name = f"{label}_{model}{'-' + variant if variant else ''}" \
                           f"{'_' + encoder if encoder is not None else ''}"
                    overrides = (*encoder_sets, *model_sets, *variant_sets, *sets)
                    runs.append(RunSpec(name, model, dataset, tuple(overrides), tuple(seeds),
                                        path, number))
    return runs


def _labelled_sets(value: Any, key: str, where: str, pattern: re.Pattern, what: str,
                   lists: bool = True, empty_label: bool = False) -> dict[Any, list[str]]:
    """Return {label: overrides} of `key`: a list of labels (no overrides; only if `lists`) or a
    mapping label → list of overrides (null = none)."""
    if isinstance(value, list) and lists:
        mapping = {item: None for item in value}
        if len(mapping) < len(value):
            twice = next(v for v in value if value.count(v) > 1)
            raise ConfigError(f"{where}: {key} lists '{twice}' twice; give each once")
    elif isinstance(value, dict):
        mapping = value
    else:
        form = "a list of names or a mapping name → list of key=value overrides" if lists \
            else "a mapping label → list of key=value overrides"
        raise ConfigError(f"{where}: {key} must be {form}, not {_kind(value)}")
    if not mapping:
        raise ConfigError(f"{where}: {key} is empty; give at least one entry or drop the key"
                          if key in ("encoders", "variants") else
                          f"{where}: {key} is empty; give at least one")
    out: dict[Any, list[str]] = {}
    for label, sets in mapping.items():
        text = "" if label is None and empty_label else label
        if not isinstance(text, str) or not (pattern.match(text) or (empty_label and not text)):
            raise ConfigError(f"{where}: {key}: '{label}' is not {what} that can name a folder "
                              f"(letters, digits, '.', '-'{', _' if pattern is MODEL else ''}; "
                              f"quote it in YAML if it looks like a number)")
        out[text] = _overrides(sets, f"{key}.{text}", where) if sets is not None else []
    return out


def _datasets(value: Any, where: str) -> dict[str, str]:
    """Return {label: dataset name or path} of the `datasets` key."""
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: datasets is empty; give at least one")
        for item in value:
            if not isinstance(item, str) or not LABEL.match(item):
                raise ConfigError(f"{where}: datasets: '{item}' cannot name a folder; give it a "
                                  f"label: datasets: {{label: {item}}}")
        if len(set(value)) < len(value):
            twice = next(v for v in value if value.count(v) > 1)
            raise ConfigError(f"{where}: datasets lists '{twice}' twice; give each once")
        return {item: item for item in value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: datasets must be a list of dataset names or a mapping "
                          f"label → dataset name, not {_kind(value)}")
    if not value:
        raise ConfigError(f"{where}: datasets is empty; give at least one")
    for label, name in value.items():
        if not isinstance(label, str) or not LABEL.match(label):
            raise ConfigError(f"{where}: datasets: '{label}' is not a label that can name a "
                              f"folder (letters, digits, '.', '-')")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: datasets.{label} must be a dataset name or path, not "
                              f"{_kind(name)}")
    return dict(value)


def _seeds(value: Any, where: str) -> list[int]:
    """Return the checked seeds: a non-empty list of distinct integers in SEED_RANGE."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: seeds must be a list of integers, e.g. [1111, 1112], not "
                          f"{_kind(value)}")
    if not value:
        raise ConfigError(f"{where}: seeds is empty; give at least one seed, e.g. [1111]")
    low, high = SEED_RANGE
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high:
            raise ConfigError(f"{where}: seeds: '{seed}' is not a seed; a seed is an integer in "
                              f"[{low}, {high}]")
    if len(set(value)) < len(value):
        twice = next(s for s in value if value.count(s) > 1)
        raise ConfigError(f"{where}: seeds: {twice} is given twice; give each seed once")
    return list(value)


def _overrides(value: Any, key: str, where: str) -> list[str]:
    """Return the overrides of `key`, each checked (key=value, known key, valid YAML value)."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key} must be a list of key=value overrides, not "
                          f"{_kind(value)}")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: {key}: {item!r} is not a key=value string (quote an "
                              f"override whose value holds ': ', e.g. \"data.augment={{name: "
                              f"feature_noise, rate: 0.5}}\")")
        try:
            path, _ = config_mod.parse_override(item)
            config_mod.check_key(path)
        except ConfigError as err:
            raise ConfigError(f"{where}: {key}: {err}") from None
    return list(value)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
