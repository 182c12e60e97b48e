"""Feature standardisation (`data.standardize: true`): z-scores with the train split's statistics.

The shipped MOSI/MOSEI audio and visual vectors are far from unit scale (MOSI's openSMILE
utterance vector has a median norm near 190 and per-dimension standard deviations from 0 to
53). Models that add a projection of them to pretrained token states (MAG-BERT's gate, Rahman et
al. 2020, Eq. 7–8) or multiply them with other vectors (TFN's outer product) see that scale
directly. With the option on, every feature field the run reads (`audio`, `vision`, and
`text_feats` when the text input is features) is mapped per dimension d to

    z_d = (x_d − μ_d) / s_d,   s_d = max(σ_d, 0.01 · median of the field's positive σ),

where μ_d and σ_d are the mean and standard deviation over all frames of the train split's
samples (each frame weighs the same, so long sequences weigh more, and zero padding a reader
kept counts as frames). The floor on s_d keeps a dimension that is nearly constant on train
(MOSI audio has one with σ = 0.002) from turning a small shift on test into a z of 70. A
dimension constant on train (σ_d = 0) carries nothing the model could learn and is set to 0
(recorded as scale 0). The statistics come from train alone, so valid and test never shape them.

A standardised feature is 0 at the train mean, so a modality dropped with zero fill (`mimsa
evaluate --drop a`), zero padding and `data.nan_policy=zero` all put the train mean there.

The statistics are recorded in the run's model.json (`inputs.scaling`, {field: {"mean": [D],
"scale": [D]}}) and every later use of the run (resume, evaluate, robustness, predict on a new
clip) applies the recorded ones, never statistics of the data at hand.
"""

from __future__ import annotations

import math

import numpy as np

from mimsa.data.dataset import MultimodalDataset
from mimsa.errors import DataError, RunError

#: The feature fields of each modality that standardisation touches.
SCALED_FIELDS = {"t": ("text_feats",), "a": ("audio",), "v": ("vision",)}
#: s_d is at least this fraction of the median positive σ of its field.
SCALE_FLOOR = 0.01


def scaled_fields(dataset: MultimodalDataset, modalities: str, text_kind: str) -> list[str]:
    """Return the feature fields a run reads: audio with "a", vision with "v", text_feats
    with "t" when the text input is features (`text_kind` "features"), if the data have them."""
    wanted = [f for m in modalities for f in SCALED_FIELDS.get(m, ())
              if f != "text_feats" or text_kind == "features"]
    return [f for f in wanted if getattr(dataset, f, None) is not None]


def fit_scaling(dataset: MultimodalDataset, fields: list[str]) -> dict[str, dict[str, list]]:
    """Return {field: {"mean": [D], "scale": [D]}} over all train frames of each of `fields`
    (two passes in float64, one sample at a time; see the module docstring for the scale).

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
        frames = sum(int(values[i].shape[0]) for i in train)
        mean = sum(np.asarray(values[i], np.float64).sum(axis=0) for i in train) / frames
        var = sum(((np.asarray(values[i], np.float64) - mean) ** 2).sum(axis=0)
                  for i in train) / frames
        std = np.sqrt(var)
        positive = std[std > 0]
        floor = SCALE_FLOOR * float(np.median(positive)) if positive.size else 0.0
        scale = np.where(std > 0, np.maximum(std, floor), 0.0)
        scaling[field] = {"mean": mean.tolist(), "scale": scale.tolist()}
    return scaling


def check_scaling(scaling: object, where: str) -> dict[str, dict[str, list]]:
    """Return `scaling` (model.json's `inputs.scaling`) when it is well formed: {field: {"mean":
    [D], "scale": [D]}} for known feature fields, finite numbers, scales >= 0.

    Raises:
        RunError: one line naming `where`, the field and what is wrong.
    """
    if not isinstance(scaling, dict):
        raise RunError(f"{where}: model.json inputs.scaling is {type(scaling).__name__}, not a "
                       f"mapping of feature fields; restore model.json from a copy of the "
                       f"run, or re-train")
    known = {f for fields in SCALED_FIELDS.values() for f in fields}
    for field, stats in scaling.items():
        problem = _stats_problem(stats) if field in known else (
            f"is not a feature field ({', '.join(sorted(known))})")
        if problem:
            raise RunError(f"{where}: model.json inputs.scaling.{field} {problem}; restore "
                           f"model.json from a copy of the run, or re-train")
    return scaling


def _stats_problem(stats: object) -> str | None:
    if not isinstance(stats, dict) or set(stats) != {"mean", "scale"}:
        return "must hold exactly 'mean' and 'scale'"
    for key in ("mean", "scale"):
        values = stats[key]
        if not isinstance(values, list) or not values or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in values):
            return f"'{key}' must be a non-empty list of finite numbers"
    if len(stats["mean"]) != len(stats["scale"]):
        return f"has {len(stats['mean'])} means and {len(stats['scale'])} scales"
    if any(v < 0 for v in stats["scale"]):
        return "has a negative scale"
    return None


def apply_scaling(dataset: MultimodalDataset, scaling: dict[str, dict[str, list]],
                  where: str) -> None:
    """Replace each field named in `scaling` by its z-scores (a new list of float32 [T, D]
    arrays; the old arrays are not modified) and add a note to the dataset card.

    Raises:
        RunError: `scaling` is malformed (`check_scaling`), the data lack a recorded field, or
            its dims differ from the statistics' (naming `where`, the run or file the
            statistics came from).
    """
    check_scaling(scaling, where)
    for field, stats in scaling.items():
        values = getattr(dataset, field, None)
        if values is None:
            raise RunError(f"{where}: standardised {field} in training, and the data "
                           f"({dataset.name}) have no {field}; use the data the run was "
                           f"trained on")
        mean = np.asarray(stats["mean"], np.float64)
        scale = np.asarray(stats["scale"], np.float64)
        dim = int(values[0].shape[1])
        if mean.shape != (dim,):
            raise RunError(f"{where}: the recorded {field} statistics (inputs.scaling) have "
                           f"{mean.shape[0]} dims, the data {dim}; use the data the run was "
                           f"trained on, or re-train")
        inverse = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
        setattr(dataset, field, [((np.asarray(x, np.float64) - mean) * inverse)
                                 .astype(np.float32) for x in values])
    if scaling:
        dataset.card.notes.append(f"{', '.join(scaling)} standardised with the train split's "
                                  f"per-dimension mean and std (data.standardize)")
