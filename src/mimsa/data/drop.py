"""Modality drop at test time: a Batch transform that removes the information of some modalities.

    mimsa evaluate RUN_DIR --drop a --fill zero      (also --drop av, --drop a --drop v, t)

The model still receives every modality it was trained with, with the same lengths and masks;
only the content of the dropped ones is replaced:
  audio / vision / text features   zero  every real frame becomes the zero vector
                                   mean  every real frame becomes the modality's TRAINING-split
                                         mean feature vector (per dimension, over real frames,
                                         padding excluded)
  text as token ids (own vocabulary or a pretrained tokenizer)
                                   zero  every real token becomes the pad id, the mask is kept:
                                         the encoder reads a sequence of padding tokens of the
                                         original length (for the own-vocabulary encoder the pad
                                         embedding is the zero vector, so this equals zero
                                         features; a pretrained encoder gets no word at all)
                                   mean  not defined for discrete ids: an error
Padding stays zero and lengths are unchanged, so the encoders run exactly as in training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import torch

from mimsa.data.batch import Batch
from mimsa.data.dataset import MultimodalDataset
from mimsa.errors import ConfigError, DataError

FILLS = ("zero", "mean")
NAMES = {"t": "t", "text": "t", "a": "a", "audio": "a", "acoustic": "a", "v": "v",
         "vision": "v", "visual": "v", "video": "v"}
FIELDS = {"a": ("audio", "audio_lengths"), "v": ("vision", "vision_lengths"),
          "t": ("text_feats", "text_feats_lengths")}
FILL_TEXT = {"zero": "real frames set to 0; lengths and masks kept",
             "mean": "real frames set to the training-split mean feature vector; lengths "
                     "kept"}
TOKEN_TEXT = " (text as token ids: every token set to the pad id)"


def parse_drop(values: Iterable[str] | str) -> str:
    """Return the modalities to drop as a subset of "tav" in that order, from "av", "a,v",
    ["a", "v"] or names (audio, vision, text); raise a one-line error on anything else."""
    items = [values] if isinstance(values, str) else list(values)
    found = set()
    for item in items:
        for part in str(item).replace(",", " ").replace("+", " ").split():
            part = part.lower()
            if part in NAMES:
                found.add(NAMES[part])
            elif all(c in "tav" for c in part):
                found.update(part)
            else:
                raise ConfigError(f"--drop '{item}': not a modality; use t, a, v or a "
                                  f"combination such as av")
    if not found:
        raise ConfigError("--drop needs at least one modality (t, a, v)")
    return "".join(m for m in "tav" if m in found)


def training_mean(dataset: MultimodalDataset, field: str) -> np.ndarray:
    """Return the per-dimension mean of `field`'s frames over the TRAIN split (float32 [D])."""
    seqs = getattr(dataset, field)
    if seqs is None:
        raise DataError(f"{dataset.name} has no {field} features to average")
    total, count = None, 0
    for i in dataset.indices("train"):
        frames = np.asarray(seqs[i], np.float64)
        total = frames.sum(0) if total is None else total + frames.sum(0)
        count += frames.shape[0]
    if total is None or count == 0:
        raise DataError(f"{dataset.name}: the train split has no {field} frames to average")
    return (total / count).astype(np.float32)


class ModalityDrop:
    """`drop(batch) -> batch` replacing the content of modalities `drop` (see the module).

    Bind it to a run's data first (`bind(dataset, spec)`; `evaluate_run` does this): the fill
    "mean" needs the training means, text needs to know whether it arrives as ids or features.
    """

    def __init__(self, drop: Iterable[str] | str, fill: str = "zero") -> None:
        if fill not in FILLS:
            raise ConfigError(f"--fill '{fill}' is unknown; valid: {', '.join(FILLS)}")
        self.drop = parse_drop(drop)
        self.fill = fill
        self.means: dict[str, torch.Tensor] = {}
        self.text_kind = ""
        self.pad_id = 0
        self.bound = False

    def describe(self) -> str:
        """Return one line saying what is dropped and how it is filled."""
        tokens = TOKEN_TEXT if ("t" in self.drop and self.fill == "zero"
                                and self.text_kind != "features") else ""
        return (f"dropped at test time: {', '.join(self.drop)} (fill {self.fill}: "
                f"{FILL_TEXT[self.fill]}{tokens})")

    def bind(self, dataset: MultimodalDataset, spec, words: object = None) -> ModalityDrop:
        """Return a copy ready for the run whose data is `dataset` and inputs `spec` (`words`
        is unused: the `BatchTransform` contract passes it to every transform)."""
        missing = [m for m in self.drop if m not in spec.modalities]
        if missing:
            raise ConfigError(f"--drop {''.join(missing)}: the run's model reads modalities "
                              f"'{spec.modalities}' only")
        bound = ModalityDrop(self.drop, self.fill)
        bound.text_kind, bound.pad_id = spec.text.kind, int(spec.text.pad_id)
        if "t" in self.drop and bound.text_kind != "features" and self.fill == "mean":
            raise ConfigError(f"--fill mean is not defined for text given as token ids (text "
                              f"encoder '{spec.text.source or spec.text.kind}'); use --fill zero "
                              f"(every token becomes the pad id) or drop only a and v")
        if self.fill == "mean":
            for m in self.drop:
                field = FIELDS[m][0]
                bound.means[m] = torch.from_numpy(training_mean(dataset, field))
        bound.bound = True
        return bound

    def __call__(self, batch: Batch) -> Batch:
        if not self.bound:
            raise RuntimeError("ModalityDrop: call bind(dataset, spec) first (evaluate_run "
                               "does it)")
        changes = {}
        for m in self.drop:
            if m == "t" and self.text_kind != "features":
                if batch.text_ids is not None:
                    changes["text_ids"] = torch.full_like(batch.text_ids, self.pad_id)
                continue
            field, lengths_field = FIELDS[m]
            x = getattr(batch, field)
            if x is None:
                continue
            if self.fill == "zero":
                changes[field] = torch.zeros_like(x)
                continue
            lengths = getattr(batch, lengths_field)
            real = (torch.arange(x.shape[1], device=x.device)[None, :]
                    < lengths.to(x.device)[:, None]).unsqueeze(-1)
            mean = self.means[m].to(device=x.device, dtype=x.dtype)
            changes[field] = torch.where(real, mean.expand_as(x), torch.zeros_like(x))
        return replace(batch, **changes)
