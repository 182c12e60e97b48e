"""Feature standardisation (`data.standardize: true`): z-scores with the train split's statistics.

The shipped MOSI/MOSEI audio and visual vectors are far from unit scale (MOSI's openSMILE
utterance vector has a median norm near 190 and per-dimension standard deviations from 0 to
53). Models that add a projection of them to pretrained token states (MAG-BERT's gate, Rahman et
al. 2020, Eq. 7–8) or multiply them with other vectors (TFN's outer product) see that scale
directly. With the option on, every feature field the run reads (`audio`, `vision`,
`text_feats`) is mapped per dimension to (x − μ) / σ, where μ and σ are the mean and standard
deviation over all frames of the train split's samples; a dimension that is constant on train
(σ = 0) is only centred. The statistics come from train alone, so valid and test never shape
them.

The statistics are recorded in the run's model.json (`inputs.scaling`, {field: {"mean": [D],
"std": [D]}}) and every later use of the run (evaluate, robustness, predict on a new clip)
applies the recorded ones, never statistics of the data at hand.
"""

from __future__ import annotations

import numpy as np

from mimsa.data.dataset import MultimodalDataset
from mimsa.errors import DataError, RunError

#: The feature fields of each modality that standardisation touches.
SCALED_FIELDS = {"t": ("text_feats",), "a": ("audio",), "v": ("vision",)}


def fit_scaling(dataset: MultimodalDataset, fields: list[str]) -> dict[str, dict[str, list]]:
    """Return {field: {"mean": [D], "std": [D]}} over all train frames of each of `fields`
    (see `scaled_fields`; float64 statistics, stored as lists of floats).

    Raises:
        DataError: the dataset has no train samples to fit them on.
    """
    train = dataset.indices("train")
    if len(train) == 0:
        raise DataError(f"{dataset.card.source}: data.standardize needs train samples to fit "
                        f"the feature statistics on, and the dataset has none; turn it off")
    scaling: dict[str, dict[str, list]] = {}
    for field in fields:
        values = getattr(dataset, field)
        frames = np.concatenate([np.asarray(values[i], np.float64) for i in train])
        scaling[field] = {"mean": frames.mean(axis=0).tolist(),
                          "std": frames.std(axis=0).tolist()}
    return scaling


def apply_scaling(dataset: MultimodalDataset, scaling: dict[str, dict[str, list]],
                  where: str) -> None:
    """Replace each field named in `scaling` by its z-scores (float32 [T, D] per sample), in
    place, and add a note to the dataset card.

    Raises:
        RunError: a recorded field's statistics do not match the data's dims (naming `where`,
            the run or file the statistics came from) or the data lack the field.
    """
    for field, stats in scaling.items():
        values = getattr(dataset, field, None)
        mean = np.asarray(stats.get("mean", []), np.float64)
        std = np.asarray(stats.get("std", []), np.float64)
        if values is None:
            raise RunError(f"{where}: standardised {field} in training, and the data "
                           f"({dataset.name}) have no {field}; use the data the run was "
                           f"trained on")
        dim = int(values[0].shape[1])
        if mean.shape != (dim,) or std.shape != (dim,):
            raise RunError(f"{where}: the recorded {field} statistics (inputs.scaling) have "
                           f"{mean.size}/{std.size} entries for {dim}-dim data; restore "
                           f"model.json from a copy of the run, or re-train")
        divisor = np.where(std > 0, std, 1.0)
        setattr(dataset, field, [((np.asarray(x, np.float64) - mean) / divisor)
                                 .astype(np.float32) for x in values])
    if scaling:
        dataset.card.notes.append(f"{', '.join(scaling)} standardised with the train split's "
                                  f"per-dimension mean and std (data.standardize)")


def scaled_fields(dataset: MultimodalDataset, modalities: str, text_kind: str) -> list[str]:
    """Return the feature fields a run reads: audio with "a", vision with "v", text_feats
    with "t" when the text input is features (`text_kind` "features"), if the data have them."""
    wanted = [f for m in modalities for f in SCALED_FIELDS.get(m, ())
              if f != "text_feats" or text_kind == "features"]
    return [f for f in wanted if getattr(dataset, f, None) is not None]
