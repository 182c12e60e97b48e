"""Re-evaluate a finished run: its selected checkpoint on valid and test, optionally on
transformed inputs (a modality drop, a corruption)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mimsa.data.batch import BatchTransform
from mimsa.data.dataset import MultimodalDataset
from mimsa.encoders.builder import text_words
from mimsa.encoders.cache import EncoderCache
from mimsa.metrics import score
from mimsa.models.base import InputSpec, Model, modalities_read
from mimsa.train.inference import predict
from mimsa.train.run import load_run


def bind_transform(transform: BatchTransform | None, dataset: MultimodalDataset,
                   spec: InputSpec, model: Model, cache: EncoderCache | None = None
                   ) -> BatchTransform | None:
    """Return `transform` bound to a run's data (see `mimsa.data.batch.BatchTransform`; the
    tokenizer's words go with it when the run reads text through a pretrained tokenizer).
    It sees only the modalities `model` reads, so dropping or corrupting one the model
    ignores (audio for `text_only`) is refused. Raises ConfigError when it does not fit."""
    if transform is None:
        return None
    read = replace(spec, modalities=modalities_read(model, spec))
    return transform.bind(dataset, read, text_words(spec.text, cache))


def evaluate_run(run_dir: Path, transform: BatchTransform | None = None, *,
                 cache: EncoderCache | None = None) -> dict[str, dict[str, float]]:
    """Return valid and test metrics of a finished run's selected checkpoint.

    `transform(batch) -> batch` is applied before the model, bound first (`bind_transform`).
    `cache` (e.g. one shared by several evaluations of frozen-encoder runs) keeps the frozen
    states between calls. Raises RunError when `run_dir` is not a finished run.
    """
    return evaluate_loaded(load_run(run_dir, cache), transform, cache=cache)


def evaluate_loaded(loaded: tuple[dict, Model, MultimodalDataset, InputSpec],
                    transform: BatchTransform | None = None, *,
                    cache: EncoderCache | None = None) -> dict[str, dict[str, float]]:
    """`evaluate_run` on a run already loaded (`load_run`'s (cfg, model, dataset, spec)), so
    several transforms of one run load it once."""
    cfg, model, dataset, spec = loaded
    transform = bind_transform(transform, dataset, spec, model, cache)
    out = {}
    for split in ("valid", "test"):
        index = dataset.indices(split)
        preds = predict(model, dataset, index, modalities=spec.modalities,
                        batch_size=int(cfg["data"]["eval_batch_size"]),
                        pad_id=spec.text.pad_id, transform=transform)
        out[split] = score(dataset.labels[index], preds)
    return out
