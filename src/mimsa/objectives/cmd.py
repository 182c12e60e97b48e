"""`cmd`: central moment discrepancy between the modality-invariant vectors (MISA's similarity).

Central moment discrepancy (Zellinger et al., ICLR 2017), for samples X, Y [B, D] of two
distributions on [a, b]^D, with the moments taken over the batch (per dimension):

    CMD_K(X, Y) = ‖E X − E Y‖₂ / |b − a| + Σ_{k=2}^{K} ‖c_k(X) − c_k(Y)‖₂ / |b − a|^k,
    c_k(X) = E (X − E X)^k   (elementwise power)

It is zero exactly when the means and the central moments up to order K agree (a pseudo-metric;
with K → ∞ it is a metric on distributions on [a, b], Zellinger et al.), and grows with a shift
of the mean (first term) or of the spread (k = 2, ...). MISA (Hazarika et al., ACM MM 2020,
similarity loss) applies it to its invariant vectors, which are sigmoid outputs in [0, 1] (so
|b − a| = 1 and the scaling is 1; as in the published code, no scaling is applied), with K = 5.

Term "sim" = the mean of CMD_K(inv_m, inv_n) over the pairs of present modalities (the published
code: the three pairs summed and divided by 3), minimised by the main optimizer (weight β in
the paper). It reads reps "inv_t", "inv_a", "inv_v" (a model like `misa` provides them); with one
modality there is no pair and the term is 0.
"""

from __future__ import annotations

from itertools import combinations

import torch

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput, Width
from mimsa.objectives.base import Objective, register_objective


def central_moment_discrepancy(x: torch.Tensor, y: torch.Tensor, moments: int = 5
                               ) -> torch.Tensor:
    """Return CMD_K(x, y) for samples x [B1, D], y [B2, D] (see the module; no scaling)."""
    mean_x, mean_y = x.mean(0), y.mean(0)
    total = torch.linalg.vector_norm(mean_x - mean_y)
    centred_x, centred_y = x - mean_x, y - mean_y
    for k in range(2, moments + 1):
        total = total + torch.linalg.vector_norm(centred_x.pow(k).mean(0)
                                                 - centred_y.pow(k).mean(0))
    return total


def keyed_modalities(name: str, reps_dims: dict[str, int], prefix: str = "inv") -> list[str]:
    """Return the modalities m whose reps f"{prefix}_m" exist; raise ConfigError if none."""
    present = [m for m in "tav" if f"{prefix}_{m}" in reps_dims]
    if not present:
        raise ConfigError(f"objective '{name}' reads reps {prefix}_t/{prefix}_a/{prefix}_v, "
                          f"which this model does not produce (it has "
                          f"{', '.join(reps_dims)}); use it with a model like misa")
    return present


@register_objective("cmd")
class CMD(Objective):
    """Term "sim": mean CMD_K between the invariant vectors of every modality pair."""

    optimizer = "main"
    terms = ("sim",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int], moments: Width = 5) -> None:
        super().__init__()
        self.moments = moments
        self.modalities = keyed_modalities("cmd", reps_dims)

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        pairs = list(combinations(self.modalities, 2))
        sim = output.prediction.new_zeros(())
        for m, n in pairs:
            sim = sim + central_moment_discrepancy(output.reps[f"inv_{m}"],
                                                   output.reps[f"inv_{n}"], self.moments)
        return {"sim": sim / max(1, len(pairs))}
