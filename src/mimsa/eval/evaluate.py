"""Predict with a model over a split and score it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mimsa.data.batch import iterate_batches
from mimsa.data.dataset import MultimodalDataset
from mimsa.eval.metrics import compute_metrics


@torch.no_grad()
def predict(model: nn.Module, dataset: MultimodalDataset, index: np.ndarray, *,
            modalities: str, batch_size: int = 128, pad_id: int = 0,
            transform=None) -> np.ndarray:
    """Return the model's predictions (float64, dataset order of `index`) in eval mode.

    `transform(batch) -> batch` is applied before the model (e.g. a modality drop).
    """
    was_training = model.training
    model.eval()
    out = []
    for batch in iterate_batches(dataset, index, batch_size, modalities=modalities,
                                 pad_id=pad_id):
        if transform is not None:
            batch = transform(batch)
        out.append(model(batch).prediction.detach().cpu().double().numpy().reshape(-1))
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def score(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Return the MMSA metrics of `predictions` against `labels`."""
    return compute_metrics(np.asarray(labels, np.float64), predictions)
