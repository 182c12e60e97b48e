"""The canonical, validated multimodal dataset every reader produces.

Storage is columnar: one list (or array) per field, indexed by sample. Every modality is
optional, so any subset of text / audio / vision works. Validation happens once, here, at
construction; its errors are one line and name the source and the sample id.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from mimsa.errors import ConfigError, DataError  # DataError: importable from here too

SPLITS = ("train", "valid", "test")
SEQUENCE_FIELDS = ("text_feats", "audio", "vision")
NanPolicy = Literal["error", "zero"]
CrossSplitPolicy = Literal["error", "drop"]
CROSS_SPLIT_POLICIES = ("error", "drop")


def check_cross_split_policy(value: str) -> CrossSplitPolicy:
    """Return `value` when it is 'error' or 'drop'; anything else raises ConfigError."""
    if value not in CROSS_SPLIT_POLICIES:
        raise ConfigError(f"cross_split_duplicates must be 'error' or 'drop', not {value!r} "
                          f"(data.cross_split_duplicates / --drop-cross-split-duplicates)")
    return value  # type: ignore[return-value]


def cross_split_message(where: str, sample: str, first: str, later: str, count: int = 1) -> str:
    """Return the one-line error for an id found in two splits (`first` before `later`)."""
    more = f" ({count} such ids)" if count > 1 else ""
    return (f"{where}: sample id '{sample}' is in both {first} and {later}{more}; the same "
            f"sample in two splits leaks it from training into evaluation; remove it from one "
            f"split, or pass --drop-cross-split-duplicates (data.cross_split_duplicates=drop) "
            f"to drop it from the later split")


@dataclass
class DatasetCard:
    """What a dataset is: provenance, dims, sizes and label range, shown by `mimsa datasets`."""

    name: str
    source: str
    description: str = ""
    provenance: dict[str, str] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    label_range: tuple[float, float] = (-3.0, 3.0)
    notes: list[str] = field(default_factory=list)
    # How `mimsa extract` made the features from raw clips (`mimsa.features.extract`): the
    # extractors' records {"audio": [...], "visual": [...]} (name, version, config, dim,
    # rate_hz), decoding settings, layout and transcript sources; {} for any other dataset.
    extraction: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the card as a plain, JSON/YAML-serialisable dict."""
        out = asdict(self)
        out["label_range"] = list(self.label_range)
        return out

    def render(self) -> str:
        """Return the card as readable multi-line text."""
        lines = [f"{self.name}: {self.description}".rstrip(": "), f"  source: {self.source}"]
        sizes = ", ".join(f"{k} {v}" for k, v in self.split_sizes.items())
        lines.append(f"  splits: {sizes}")
        lo, hi = self.label_range
        lines.append(f"  labels: [{lo:g}, {hi:g}]")
        for modality, text in self.provenance.items():
            dim = self.dims.get(modality)
            dim_text = f" ({dim}-d)" if dim else ""
            lines.append(f"  {modality}{dim_text}: {text}")
        for modality in ("audio", "visual"):
            names = ", ".join(f"{r.get('name')} ({r.get('version')})"
                              for r in self.extraction.get(modality) or [])
            if names:
                lines.append(f"  {modality} extractors: {names}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


class MultimodalDataset:
    """Samples with an id, a split, a float label and any subset of the modalities.

    Fields (each per sample, or None when the dataset lacks it):
      text        raw transcript (str)
      text_ids    token ids, int64 [T] (over `vocab_size` or a tokenizer's vocabulary)
      text_feats  text feature sequence, float32 [T, D_t]
      audio       audio feature sequence, float32 [T_a, D_a]
      vision      visual feature sequence, float32 [T_v, D_v]

    An id found in two splits is leakage: `cross_split_duplicates="error"` (the default)
    raises DataError naming the id and both splits; "drop" keeps it only in its earliest
    split (train < valid < test), records the count in the card's notes and in
    `cross_split_dropped` ({split: samples dropped}). Repeats within one split raise DataError.
    Error messages name `location` (default: the card's source), e.g. the folder a stored
    dataset was read from.
    """

    def __init__(
        self,
        *,
        card: DatasetCard,
        ids: Sequence[str],
        splits: Sequence[str],
        labels: Sequence[float] | np.ndarray,
        text: Sequence[str] | None = None,
        text_ids: Sequence[np.ndarray] | None = None,
        text_feats: Sequence[np.ndarray] | None = None,
        audio: Sequence[np.ndarray] | None = None,
        vision: Sequence[np.ndarray] | None = None,
        vocab_size: int | None = None,
        nan_policy: NanPolicy = "error",
        require_splits: Sequence[str] = SPLITS,
        cross_split_duplicates: CrossSplitPolicy = "error",
        location: str | None = None,
    ) -> None:
        self.card = card
        source = location or card.source
        policy = check_cross_split_policy(cross_split_duplicates)
        self.ids = [str(i) for i in ids]
        self.splits = [str(s) for s in splits]
        self.labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        self.text = None if text is None else [("" if t is None else str(t)) for t in text]
        self.vocab_size = vocab_size
        self.text_ids = None if text_ids is None else [np.asarray(x, np.int64) for x in text_ids]
        self.text_feats = _as_sequences(text_feats)
        self.audio = _as_sequences(audio)
        self.vision = _as_sequences(vision)
        self.nan_report: dict[str, int] = {}
        self.cross_split_dropped: dict[str, int] = {}
        self._check_counts(source)
        self._resolve_cross_split(source, policy)
        self._validate(source, nan_policy, require_splits)
        counts = {s: self.splits.count(s) for s in SPLITS}
        self.card.split_sizes = {s: n for s, n in counts.items() if n}
        for name in SEQUENCE_FIELDS:
            seqs = getattr(self, name)
            if seqs is not None:
                self.card.dims[name] = int(seqs[0].shape[1])
        if self.vocab_size is not None:
            self.card.dims["vocab"] = int(self.vocab_size)

    # -- validation -------------------------------------------------------------------------
    _FIELDS = ("text", "text_ids", "text_feats", "audio", "vision")

    def _check_counts(self, source: str) -> None:
        """Check one entry per sample in every field and known split names."""
        n = len(self.ids)
        if n == 0:
            raise DataError(f"{source}: the dataset has no samples")
        for name in ("splits", "labels", *self._FIELDS):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise DataError(f"{source}: '{name}' has {len(values)} entries but there are "
                                f"{n} ids; every field needs one entry per sample")
        for sid, split in zip(self.ids, self.splits, strict=True):
            if split not in SPLITS:
                raise DataError(f"{source}: sample '{sid}' has split '{split}'; use one of "
                                f"{', '.join(SPLITS)}")

    def _resolve_cross_split(self, source: str, policy: CrossSplitPolicy) -> None:
        """Refuse (or, with policy 'drop', remove from later splits) ids found in two splits."""
        later = later_split_repeats(self.ids, self.splits)
        if not later:
            return
        first = earliest_splits(self.ids, self.splits)
        if policy == "error":
            i = later[0]
            count = len({self.ids[j] for j in later})
            raise DataError(cross_split_message(source, self.ids[i], first[self.ids[i]],
                                                self.splits[i], count))
        dropped = set(later)
        keep = [i for i in range(len(self.ids)) if i not in dropped]
        for split in SPLITS:
            count = sum(self.splits[i] == split for i in later)
            if count:
                self.cross_split_dropped[split] = count
        self.ids = [self.ids[i] for i in keep]
        self.splits = [self.splits[i] for i in keep]
        self.labels = self.labels[keep]
        for name in self._FIELDS:
            values = getattr(self, name)
            if values is not None:
                setattr(self, name, [values[i] for i in keep])
        detail = ", ".join(f"{k} {v}" for k, v in self.cross_split_dropped.items())
        many = len(later) != 1
        self.card.notes.append(f"{len(later)} sample{'s' if many else ''} whose id is also in "
                               f"an earlier split {'were' if many else 'was'} dropped from the "
                               f"later split (cross_split_duplicates=drop): {detail}")

    def _validate(self, source: str, nan_policy: NanPolicy, require_splits: Sequence[str]) -> None:
        seen: dict[str, int] = {}
        for i, sid in enumerate(self.ids):
            if sid in seen:
                raise DataError(f"{source}: duplicate sample id '{sid}' in split "
                                f"'{self.splits[i]}' (rows {seen[sid]} and {i}); ids must be "
                                f"unique")
            seen[sid] = i
        for split in require_splits:
            if split not in self.splits:
                raise DataError(f"{source}: split '{split}' is empty; every dataset needs "
                                f"samples in {', '.join(require_splits)}")
        bad = ~np.isfinite(self.labels)
        if bad.any():
            sid = self.ids[int(np.argmax(bad))]
            raise DataError(f"{source}: label of sample '{sid}' is not finite "
                            f"({int(bad.sum())} such labels); fix or drop those samples")
        lo, hi = self.card.label_range
        out = (self.labels < lo) | (self.labels > hi)
        if out.any():
            i = int(np.argmax(out))
            raise DataError(f"{source}: label {self.labels[i]:g} of sample '{self.ids[i]}' is "
                            f"outside the declared range [{lo:g}, {hi:g}] ({int(out.sum())} "
                            f"such labels)")
        if self.text_ids is not None:
            for sid, ids in zip(self.ids, self.text_ids, strict=True):
                if ids.ndim != 1:
                    raise DataError(f"{source}: text_ids of sample '{sid}' has shape "
                                    f"{ids.shape}; expected a 1-D token sequence")
                if self.vocab_size is not None and ids.size and (
                        ids.min() < 0 or ids.max() >= self.vocab_size):
                    raise DataError(f"{source}: text_ids of sample '{sid}' fall outside the "
                                    f"vocabulary [0, {self.vocab_size})")
        for name in SEQUENCE_FIELDS:
            seqs = getattr(self, name)
            if seqs is not None:
                self.nan_report[name] = _check_sequences(source, name, self.ids, seqs,
                                                         nan_policy)
        zeroed = {k: v for k, v in self.nan_report.items() if v}
        if zeroed:
            warnings.warn(f"{source}: replaced non-finite feature values with 0: "
                          + ", ".join(f"{k} {v}" for k, v in zeroed.items()), stacklevel=3)

    # -- access -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.card.name

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def modalities(self) -> str:
        """Return the modalities present, as a subset of 'tav' in that order."""
        has_text = any(x is not None for x in (self.text, self.text_ids, self.text_feats))
        return ("t" if has_text else "") + ("a" if self.audio is not None else "") + (
            "v" if self.vision is not None else "")

    def feature_dims(self) -> dict[str, int]:
        """Return the feature dimension of each sequence field present."""
        return {name: int(getattr(self, name)[0].shape[1]) for name in SEQUENCE_FIELDS
                if getattr(self, name) is not None}

    def indices(self, split: str) -> np.ndarray:
        """Return the sample indices of one split, in dataset order."""
        return np.flatnonzero(np.asarray(self.splits) == split)

    def subset(self, index: Sequence[int] | np.ndarray, name: str | None = None
               ) -> MultimodalDataset:
        """Return a new dataset with the selected samples (validated again)."""
        index = [int(i) for i in index]

        def pick(values):
            return None if values is None else [values[i] for i in index]

        card = DatasetCard(**{**self.card.to_dict(), "label_range": self.card.label_range,
                              "dims": {}, "split_sizes": {}})
        if name:
            card.name = name
        present = tuple(s for s in SPLITS if any(self.splits[i] == s for i in index))
        return MultimodalDataset(card=card, ids=pick(self.ids), splits=pick(self.splits),
                                 labels=self.labels[index], text=pick(self.text),
                                 text_ids=pick(self.text_ids), text_feats=pick(self.text_feats),
                                 audio=pick(self.audio), vision=pick(self.vision),
                                 vocab_size=self.vocab_size, require_splits=present)

    def summary(self) -> str:
        """Return a one-line description: name, sizes, modalities and dims."""
        sizes = "/".join(str(v) for v in self.card.split_sizes.values())
        dims = ", ".join(f"{k} {v}" for k, v in self.card.dims.items())
        return f"{self.name}: {sizes} samples, modalities {self.modalities}, dims {dims}"


def earliest_splits(ids: Sequence[str], splits: Sequence[str]) -> dict[str, str]:
    """Return {id: the earliest split (train < valid < test) it appears in}."""
    rank = {s: k for k, s in enumerate(SPLITS)}
    first: dict[str, str] = {}
    for sid, split in zip(ids, splits, strict=True):
        if sid not in first or rank.get(split, 99) < rank.get(first[sid], 99):
            first[sid] = split
    return first


def later_split_repeats(ids: Sequence[str], splits: Sequence[str]) -> list[int]:
    """Return the indices of samples whose id also appears in an earlier split, in order."""
    first = earliest_splits(ids, splits)
    return [i for i, (sid, split) in enumerate(zip(ids, splits, strict=True))
            if split != first[sid]]


def _as_sequences(values: Sequence[np.ndarray] | None) -> list[np.ndarray] | None:
    if values is None:
        return None
    return [np.asarray(v, dtype=np.float32) for v in values]


def _check_sequences(source: str, name: str, ids: list[str], seqs: list[np.ndarray],
                     nan_policy: NanPolicy) -> int:
    """Check shapes and finiteness of one sequence field; return how many values were zeroed."""
    dim = None
    zeroed = 0
    for i, (sid, seq) in enumerate(zip(ids, seqs, strict=True)):
        if seq.ndim == 1:
            seq = seq.reshape(1, -1)
            seqs[i] = seq
        if seq.ndim != 2 or seq.shape[0] == 0:
            raise DataError(f"{source}: {name} of sample '{sid}' has shape {seq.shape}; "
                            f"expected [T, D] with T >= 1")
        if dim is None:
            dim = seq.shape[1]
        elif seq.shape[1] != dim:
            raise DataError(f"{source}: {name} of sample '{sid}' has {seq.shape[1]} features "
                            f"but earlier samples have {dim}; all samples need the same D")
        bad = ~np.isfinite(seq)
        if bad.any():
            if nan_policy != "zero":
                raise DataError(f"{source}: {name} of sample '{sid}' holds {int(bad.sum())} "
                                f"NaN/inf values; clean the features or zero them (mimsa "
                                f"train --set data.nan_policy=zero; mimsa data ... "
                                f"--nan-policy zero)")
            seqs[i] = np.where(bad, np.float32(0), seq)
            zeroed += int(bad.sum())
    return zeroed
