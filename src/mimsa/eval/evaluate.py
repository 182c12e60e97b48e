"""Re-evaluate a finished run: its selected checkpoint on valid and test, optionally on
transformed inputs (a modality drop, a corruption)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mimsa.data.corruptions import Corruption
from mimsa.data.dataset import MultimodalDataset
from mimsa.encoders.builder import text_words
from mimsa.encoders.cache import EncoderCache
from mimsa.metrics import score
from mimsa.models.base import InputSpec
from mimsa.train.inference import predict
from mimsa.train.run import load_run


def bind_transform(transform: Any, dataset: MultimodalDataset, spec: InputSpec,
                   cache: EncoderCache | None = None) -> Any:
    """Return `transform` bound to a run's data: a `Corruption` with the tokenizer's words
    (pretrained text), anything else with a `bind(dataset, spec)` method (e.g. `ModalityDrop`)
    through it, the rest (None, plain callables) unchanged. Raises ConfigError when it does not
    fit the run."""
    if isinstance(transform, Corruption):
        return transform.bind(dataset, spec, text_words(spec.text, cache))
    if callable(getattr(transform, "bind", None)):
        return transform.bind(dataset, spec)
    return transform


def evaluate_run(run_dir: Path, transform: Any = None, *, cache: EncoderCache | None = None
                 ) -> dict[str, dict[str, float]]:
    """Return valid and test metrics of a finished run's selected checkpoint.

    `transform(batch) -> batch` is applied before the model, bound first (`bind_transform`).
    `cache` (e.g. one shared by several evaluations of frozen-encoder runs) keeps the frozen
    states between calls. Raises RunError when `run_dir` is not a finished run.
    """
    cfg, model, dataset, spec = load_run(run_dir, cache)
    transform = bind_transform(transform, dataset, spec, cache)
    out = {}
    for split in ("valid", "test"):
        index = dataset.indices(split)
        preds = predict(model, dataset, index, modalities=spec.modalities,
                        batch_size=int(cfg["data"]["eval_batch_size"]),
                        pad_id=spec.text.pad_id, transform=transform)
        out[split] = score(dataset.labels[index], preds)
    return out
