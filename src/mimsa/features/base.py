"""Features, the Extractor base class and the registry of extractors by name.

An extractor turns a decoded `Clip` into `Features` (a [T, D] array with frame times and a
per-frame `present` mask). Each one records what produced its numbers (`record()`: name,
version of the packages and of our code, configuration, dim, rate), so a dataset or a run can
say exactly which features it holds and `mimsa predict` can rebuild them.

    extractor = get_extractor("egemaps_lld")       # ConfigError / MissingExtraError
    features = extractor.extract(decode_clip(path))  # DataError naming the file

Subclasses set the class attributes `name`, `modality`, `summary`, `version`, `dim`,
`rate_hz`, `requires` (importable module -> extra) and `defaults` (options with typed
defaults), and implement `_load()` (import packages, load models; called once) and
`_extract(clip)`. The base class validates options, the clip (the modality is present, the
clip is long enough) and the output (shape, dtype, finite values).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from mimsa.errors import ConfigError, DataError, MissingExtraError
from mimsa.features.clip import Clip

Modality = Literal["audio", "visual"]
BUILTIN_MODULES = ("egemaps", "librosa_audio", "face_emotion", "face_mesh")


@dataclass
class Features:
    """Frame-level (or utterance-level) features of one clip.

    Attributes:
        values: float32 [T, D]; rows where `present` is False are all 0 (never invented).
        times: float64 [T] seconds from the start of the clip, the centre of each frame.
        present: bool [T]; False where the frame has nothing to describe (e.g. no face).
        rate_hz: frames per second, or None for one utterance-level vector (T = 1).
        names: D column names, when they mean something (eGeMAPS descriptors, emotions).
    """

    values: np.ndarray
    times: np.ndarray
    present: np.ndarray
    rate_hz: float | None
    names: list[str] | None = None

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64)
        self.present = np.asarray(self.present, dtype=bool)
        if self.values.ndim != 2:
            raise ValueError(f"Features.values must be [T, D], got shape {self.values.shape}")
        n = len(self.values)
        if self.times.shape != (n,) or self.present.shape != (n,):
            raise ValueError(f"Features: times {self.times.shape} and present "
                             f"{self.present.shape} must both be ({n},)")
        if self.names is not None and len(self.names) != self.values.shape[1]:
            raise ValueError(f"Features: {len(self.names)} names for "
                             f"{self.values.shape[1]} columns")

    @property
    def dim(self) -> int:
        """D, the number of columns."""
        return int(self.values.shape[1])


def package_version(distribution: str) -> str:
    """Return the installed version of a distribution, or "absent" (never imports it)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


class Extractor:
    """Base class of every extractor: options, loading, checks and the `record()`.

    Class attributes a subclass sets:
        name: registry name, e.g. "egemaps_lld".
        modality: "audio" (reads clip.audio) or "visual" (reads clip.frames).
        summary: one line for listings.
        version: package version(s) + our extractor revision, e.g.
            "opensmile 2.6.0; eGeMAPSv02 LLD; mimsa-1".
        dim: D of the output (an instance may change it from its options).
        rate_hz: output frames per second, None for one vector per clip. A visual extractor
            has the option `fps` and produces one row per sampled frame at that rate.
        requires: {importable module: extra} checked by `get_extractor`.
        defaults: the options and their defaults; `__init__` accepts only these keys, and
            values of the defaults' types (an int is accepted for a float).
        min_duration_s: clips shorter than this raise DataError.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[Modality] = "audio"
    summary: ClassVar[str] = ""
    version: ClassVar[str] = ""
    dim: int = 0
    rate_hz: float | None = None
    requires: ClassVar[dict[str, str]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    min_duration_s: ClassVar[float] = 0.5

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"extractor '{self.name}' has no option {unknown[0]!r}; "
                              f"options: {allowed}")
        merged = dict(self.defaults)
        for key, value in options.items():
            merged[key] = _check_option(self.name, key, value, self.defaults[key])
        self.options: dict[str, Any] = merged
        self._loaded = False
        if self.modality == "visual" and "fps" in merged:
            self.rate_hz = float(merged["fps"])

    # -- what it is ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Return a copy of the options (JSON-friendly values)."""
        return dict(self.options)

    def record(self) -> dict[str, Any]:
        """Return {"name", "version", "config", "dim", "rate_hz", "modality"}: what to store
        next to the features so that they can be rebuilt exactly."""
        return {"name": self.name, "version": self.version, "config": self.config(),
                "dim": self.dim, "rate_hz": self.rate_hz, "modality": self.modality}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def check_installed(cls) -> None:
        """Raise MissingExtraError naming the extra when a required module is missing."""
        for module, extra in cls.requires.items():
            if importlib.util.find_spec(module) is None:
                raise MissingExtraError(f"extractor '{cls.name}' needs the optional package "
                                        f"'{module}'; install it with: pip install -e "
                                        f"\".[{extra}]\"")

    def load(self) -> Extractor:
        """Import the packages and load the models now (else on the first `extract`); return
        self. Idempotent; call it before timing or forking workers."""
        if not self._loaded:
            self.check_installed()
            self._load()
            self._loaded = True
        return self

    def _load(self) -> None:
        """Subclasses: import packages, build models; keep them on self."""

    def __getstate__(self) -> dict[str, Any]:
        # loaded models (interpreters, openSMILE objects) do not pickle: a worker reloads them
        return {"options": self.options, "dim": self.dim, "rate_hz": self.rate_hz}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.options, self.dim, self.rate_hz = state["options"], state["dim"], state["rate_hz"]
        self._loaded = False

    # -- extraction ---------------------------------------------------------------------------
    def extract(self, clip: Clip) -> Features:
        """Return the features of `clip`.

        Raises:
            DataError: one line naming clip.path and the reason (no audio stream, no video
                stream, clip shorter than `min_duration_s`, or the extractor's own reason such
                as no face in any frame).
            ConfigError: a visual extractor gets a clip decoded at another frame rate.
            MissingExtraError: a required package is not installed.
        """
        self._check_clip(clip)
        self.load()
        features = self._extract(clip)
        if features.dim != self.dim:
            raise RuntimeError(f"extractor {self.name} returned {features.dim} columns, "
                               f"declared {self.dim}")
        if not np.isfinite(features.values).all():
            raise RuntimeError(f"extractor {self.name} returned non-finite values for "
                               f"{clip.path}")
        return features

    def _extract(self, clip: Clip) -> Features:
        raise NotImplementedError

    def _check_clip(self, clip: Clip) -> None:
        if self.modality == "audio" and not clip.has_audio:
            raise DataError(f"{clip.path}: no audio stream (extractor {self.name} needs one)")
        if self.modality == "visual":
            if not clip.has_video:
                raise DataError(f"{clip.path}: no video stream (extractor {self.name} needs "
                                f"one)")
            if self.rate_hz is not None and abs(clip.fps - self.rate_hz) > 1e-6:
                raise ConfigError(f"extractor {self.name} samples {self.rate_hz:g} frames/s "
                                  f"but {clip.path} was decoded at {clip.fps:g}; decode with "
                                  f"decode_clip(path, fps={self.rate_hz:g})")
        if self.modality == "audio":
            length = len(clip.audio) / clip.sample_rate  # type: ignore[arg-type]
        else:
            length = len(clip.frames) / clip.fps  # type: ignore[arg-type]
        if length < self.min_duration_s:
            raise DataError(f"{clip.path}: clip shorter than {self.min_duration_s:g} s "
                            f"({length:.2f} s of {self.modality}); extractor {self.name} "
                            f"needs at least that much")


def _check_option(extractor: str, key: str, value: Any, default: Any) -> Any:
    """Return `value` if it has the type of `default` (int accepted for float); else raise."""
    kind = type(default)
    if default is None or isinstance(value, kind) and not (
            isinstance(value, bool) and kind is not bool):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"extractor '{extractor}' option {key!r} must be {kind.__name__}, "
                      f"got {value!r}")


# -- registry -------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Extractor]] = {}


def register_extractor(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator: register `cls` under `cls.name` (a name registered twice is a bug)."""
    if not cls.name or cls.modality not in ("audio", "visual"):
        raise TypeError(f"{cls.__name__} needs a name and a modality 'audio' or 'visual'")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"extractor '{cls.name}' is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _import_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"mimsa.features.{module}")


def list_extractors() -> list[str]:
    """Return the registered extractor names, sorted (audio first, then visual)."""
    _import_builtin()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].modality != "audio", n))


def extractor_class(name: str) -> type[Extractor]:
    """Return the class registered as `name`; ConfigError listing the names otherwise."""
    _import_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown extractor {name!r}; registered: "
                          f"{', '.join(list_extractors())}")
    return _REGISTRY[name]


def get_extractor(name: str, **options: Any) -> Extractor:
    """Return a new extractor `name` with `options` (nothing is loaded until `load()` or the
    first `extract`).

    Raises:
        ConfigError: unknown name (lists the registered ones) or a bad option.
        MissingExtraError: a package it needs is missing (names the extra to install).
    """
    cls = extractor_class(name)
    cls.check_installed()
    return cls(**options)
