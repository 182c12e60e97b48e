"""`cpc`: contrastive predictive coding between the fusion vector and each modality (MMIM).

InfoNCE lower bound (van den Oord et al. 2018; Poole et al. 2019): for a batch of B pairs
(h^i, Z^i) drawn from p(h, Z) and any critic s,

    I(H; Z) ≥ log B − nce,   nce = −mean_i [ s(h^i, Z^i) − log Σ_j exp s(h^i, Z^j) ],

and the bound can never exceed log B. MMIM's critic: G_m = Linear(d_fusion, d_m) predicts h_m
from Z = reps["fusion"]; both are L2-normalised and s is their dot product (no temperature, so
s ∈ [−1, 1], which caps the bound further, below log B). Negatives are the other samples of
the batch. Term "nce" = Σ_m nce_m over m in `modalities` (default t, a, v; those the model
produces), minimised by the main optimizer (a positive weight, α in MMIM).
`mi_lower_bounds` returns log B − nce_m per modality.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput
from mimsa.objectives.base import Objective, register_objective


def info_nce(h: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Return nce = −mean_i [s_ii − logsumexp_j s_ij], s_ij = <ĥ_i, ĝ_j> on unit vectors."""
    scores = F.normalize(h, dim=-1, eps=1e-8) @ F.normalize(predicted, dim=-1, eps=1e-8).T
    return -(scores.diagonal() - torch.logsumexp(scores, dim=1)).mean()


def infonce_bound(nce: torch.Tensor | float, batch_size: int) -> torch.Tensor | float:
    """Return the InfoNCE lower bound on the mutual information, log B − nce (≤ log B)."""
    return math.log(batch_size) - nce


@register_objective("cpc")
class CPC(Objective):
    """InfoNCE between Z = reps["fusion"] and each h_m: term "nce" (see the module docstring)."""

    optimizer = "main"
    terms = ("nce",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int],
                 modalities: str = "tav") -> None:
        super().__init__()
        unknown = [m for m in modalities if m not in "tav"]
        if unknown:
            raise ConfigError(f"objective 'cpc': modalities '{modalities}' must be a subset of "
                             f"'tav'")
        if "fusion" not in reps_dims:
            raise ConfigError("objective 'cpc' needs a model with a 'fusion' representation")
        self.modalities = [m for m in "tav" if m in modalities and m in reps_dims]
        self.predictors = nn.ModuleDict({m: nn.Linear(reps_dims["fusion"], reps_dims[m])
                                         for m in self.modalities})

    def nce_terms(self, output: ModelOutput) -> dict[str, torch.Tensor]:
        """Return nce_m per modality m."""
        z = output.reps["fusion"]
        return {m: info_nce(output.reps[m], self.predictors[m](z)) for m in self.modalities}

    def mi_lower_bounds(self, output: ModelOutput) -> dict[str, torch.Tensor]:
        """Return the InfoNCE bound log B − nce_m on I(h_m; Z) per modality m, in nats."""
        batch_size = output.reps["fusion"].shape[0]
        return {m: infonce_bound(v, batch_size) for m, v in self.nce_terms(output).items()}

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        nce = output.prediction.new_zeros(())
        for value in self.nce_terms(output).values():
            nce = nce + value
        return {"nce": nce}
