"""The canonical, validated multimodal dataset every reader produces.

Storage is columnar: one list (or array) per field, indexed by sample. Every modality is
optional, so any subset of text / audio / vision works. Validation happens once, here, at
construction; its errors are one line and name the source and the sample id.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

SPLITS = ("train", "valid", "test")
SEQUENCE_FIELDS = ("text_feats", "audio", "vision")
NanPolicy = Literal["error", "zero"]


class DataError(ValueError):
    """A problem with input data; the message is one line that names source, key and sample."""


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
    ) -> None:
        self.card = card
        source = card.source
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
    def _validate(self, source: str, nan_policy: NanPolicy, require_splits: Sequence[str]) -> None:
        n = len(self.ids)
        if n == 0:
            raise DataError(f"{source}: the dataset has no samples")
        for name, values in (("splits", self.splits), ("labels", self.labels),
                             ("text", self.text), ("text_ids", self.text_ids),
                             ("text_feats", self.text_feats), ("audio", self.audio),
                             ("vision", self.vision)):
            if values is not None and len(values) != n:
                raise DataError(f"{source}: '{name}' has {len(values)} entries but there are "
                                f"{n} ids; every field needs one entry per sample")
        seen: dict[str, int] = {}
        for i, sid in enumerate(self.ids):
            if sid in seen:
                raise DataError(f"{source}: duplicate sample id '{sid}' (rows {seen[sid]} and "
                                f"{i}); ids must be unique")
            seen[sid] = i
        for sid, split in zip(self.ids, self.splits, strict=True):
            if split not in SPLITS:
                raise DataError(f"{source}: sample '{sid}' has split '{split}'; use one of "
                                f"{', '.join(SPLITS)}")
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
                                f"NaN/inf values; clean the features or pass "
                                f"nan_policy='zero' (--set data.nan_policy=zero) to zero them")
            seqs[i] = np.where(bad, np.float32(0), seq)
            zeroed += int(bad.sum())
    return zeroed
