"""Batch prediction: a model's scores over some samples of a dataset, in eval mode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mimsa.data.batch import Batch, iterate_batches
from mimsa.data.dataset import MultimodalDataset
from mimsa.train.device import module_device


@torch.no_grad()
def predict(model: nn.Module, dataset: MultimodalDataset, index: np.ndarray, *,
            modalities: str, batch_size: int = 128, pad_id: int = 0,
            transform: Callable[[Batch], Batch] | None = None) -> np.ndarray:
    """Return the model's predictions [len(index)] (float64, in the order of `index`), computed
    in eval mode without gradients; the model's train/eval mode is restored afterwards.

    `transform(batch) -> batch` is applied before the model (e.g. a modality drop or a
    corruption, already bound to the run), on the CPU; the batch then moves to the model's
    device.
    """
    device = module_device(model)
    was_training = model.training
    model.eval()
    out = []
    for batch in iterate_batches(dataset, index, batch_size, modalities=modalities,
                                 pad_id=pad_id):
        if transform is not None:
            batch = transform(batch)
        out.append(model(batch.to(device)).prediction.detach().cpu().double().numpy().reshape(-1))
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)
