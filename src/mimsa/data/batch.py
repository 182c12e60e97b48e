"""Collation: samples of a `MultimodalDataset` → a padded `Batch` of tensors with lengths."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch

from mimsa.data.dataset import MultimodalDataset


@dataclass
class Batch:
    """Padded tensors for whichever modalities exist; absent ones are None.

    text_ids [B, T] int64 with text_mask [B, T] (1 = real token); text_feats / audio / vision
    [B, T, D] float32 zero-padded, with *_lengths [B] int64. labels [B] float32.
    """

    ids: list[str]
    labels: torch.Tensor
    text: list[str] | None = None
    text_ids: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None
    text_feats: torch.Tensor | None = None
    text_feats_lengths: torch.Tensor | None = None
    audio: torch.Tensor | None = None
    audio_lengths: torch.Tensor | None = None
    vision: torch.Tensor | None = None
    vision_lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> Batch:
        """Return the batch with every tensor moved to `device`."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[key] = value.to(device)
        return Batch(**moved)


def pad_sequences(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (zero-padded [B, T_max, D] float tensor, lengths [B] int64)."""
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    out = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return torch.from_numpy(out), torch.from_numpy(lengths)


def pad_tokens(seqs: Sequence[np.ndarray], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (padded [B, T_max] int64 ids, mask [B, T_max] int64 with 1 on real tokens)."""
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def collate(dataset: MultimodalDataset, index: Sequence[int], modalities: str = "tav",
            pad_id: int = 0) -> Batch:
    """Return the `Batch` of samples `index`, keeping only the requested modalities."""
    index = [int(i) for i in index]
    batch = Batch(ids=[dataset.ids[i] for i in index],
                  labels=torch.from_numpy(dataset.labels[index].copy()))
    if "t" in modalities:
        if dataset.text is not None:
            batch.text = [dataset.text[i] for i in index]
        if dataset.text_ids is not None:
            batch.text_ids, batch.text_mask = pad_tokens([dataset.text_ids[i] for i in index],
                                                         pad_id)
        if dataset.text_feats is not None:
            batch.text_feats, batch.text_feats_lengths = pad_sequences(
                [dataset.text_feats[i] for i in index])
    if "a" in modalities and dataset.audio is not None:
        batch.audio, batch.audio_lengths = pad_sequences([dataset.audio[i] for i in index])
    if "v" in modalities and dataset.vision is not None:
        batch.vision, batch.vision_lengths = pad_sequences([dataset.vision[i] for i in index])
    return batch


def batch_indices(index: np.ndarray, batch_size: int, *, shuffle: bool,
                  rng: np.random.Generator | None = None,
                  lengths: np.ndarray | None = None, min_last: int = 2) -> list[np.ndarray]:
    """Return the list of index batches for one pass.

    With `lengths`, batches group samples of similar length (sorted within shuffled chunks of
    50 batches) so padding is small; batch order is still shuffled. A final batch smaller than
    `min_last` is merged into the previous one: a batch of one sample breaks batch statistics
    (covariances, in-batch negatives) in the objectives.
    """
    index = np.asarray(index)
    if shuffle:
        if rng is None:
            raise ValueError("batch_indices: shuffle=True needs an rng")
        index = index[rng.permutation(len(index))]
    if lengths is not None:
        chunk = batch_size * 50
        parts = [index[i: i + chunk] for i in range(0, len(index), chunk)]
        index = np.concatenate([p[np.argsort(lengths[p], kind="stable")] for p in parts])
    batches = [index[i: i + batch_size] for i in range(0, len(index), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < min_last:
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    if shuffle and lengths is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def iterate_batches(dataset: MultimodalDataset, index: np.ndarray, batch_size: int, *,
                    modalities: str, shuffle: bool = False,
                    rng: np.random.Generator | None = None,
                    length_bucketing: bool = False, pad_id: int = 0) -> Iterator[Batch]:
    """Yield collated batches over `index` (see `batch_indices` for the order)."""
    lengths = None
    if length_bucketing and dataset.text_ids is not None:
        lengths = np.array([len(x) for x in dataset.text_ids])
    for chunk in batch_indices(index, batch_size, shuffle=shuffle, rng=rng, lengths=lengths):
        yield collate(dataset, chunk, modalities, pad_id)


class BatchTransform(Protocol):
    """The contract of a test-time batch transform (`mimsa.data.drop.ModalityDrop`, the
    corruptions of `mimsa.data.corruptions`): bound once to a run's data, then applied to every
    evaluation batch before the model.

      bind(dataset, spec, words=None) -> bound transform
          dataset: the run's MultimodalDataset (e.g. for training-split statistics); spec: the
          run's InputSpec; words: the tokenizer's word table when text is read by a pretrained
          tokenizer (`mimsa.encoders.builder.text_words`), else None
      __call__(batch) -> batch   the same sample ids and tensor shapes [B, T, D], new content
    """

    def bind(self, dataset: MultimodalDataset, spec: Any, words: Any = None
             ) -> BatchTransform: ...

    def __call__(self, batch: Batch) -> Batch: ...

