"""`soft_orthogonality`: the difference loss between invariant and specific vectors (MISA).

For two batches H_1 [B, D_1], H_2 [B, D_2], each centred over the batch and each row scaled to
unit L2 norm (Ĥ), the soft orthogonality constraint (Bousmalis et al., NeurIPS 2016; MISA,
Hazarika et al., ACM MM 2020, difference loss) is

    ‖Ĥ_1ᵀ Ĥ_2‖_F²   (reduction "sum", as the paper writes it)

or its mean over the D_1·D_2 entries (reduction "mean", the published code, whose loss weights
were tuned with it; the default). It is zero when every dimension of H_1 is orthogonal, over the
batch, to every dimension of H_2. The published code detaches the row norms; here the gradient
flows through the normalisation too.

Term "diff" = the sum over the present modalities m of the constraint between inv_m and spec_m,
plus the sum over pairs of present modalities of the constraint between spec_m and spec_n (the
published code's six terms for three modalities), minimised by the main optimizer (weight α in
the paper). It reads reps "inv_*" and "spec_*" (a model like `misa` provides them).
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput
from mimsa.objectives.base import Objective, register_objective
from mimsa.objectives.cmd import keyed_modalities

REDUCTIONS = ("mean", "sum")


def soft_orthogonality(h1: torch.Tensor, h2: torch.Tensor, reduction: str = "mean"
                       ) -> torch.Tensor:
    """Return ‖Ĥ_1ᵀ Ĥ_2‖_F² ("sum") or its mean over entries ("mean"); Ĥ = centred over the
    batch [B, D], rows L2-normalised (see the module)."""
    a = F.normalize(h1 - h1.mean(0, keepdim=True), dim=1, eps=1e-6)
    b = F.normalize(h2 - h2.mean(0, keepdim=True), dim=1, eps=1e-6)
    squares = (a.T @ b).pow(2)
    return squares.sum() if reduction == "sum" else squares.mean()


@register_objective("soft_orthogonality")
class SoftOrthogonality(Objective):
    """Term "diff": soft orthogonality of (inv_m, spec_m) per modality and of specific pairs."""

    optimizer = "main"
    terms = ("diff",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int],
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f"objective 'soft_orthogonality': reduction '{reduction}' is "
                              f"unknown; valid: {', '.join(REDUCTIONS)}")
        self.reduction = reduction
        self.modalities = keyed_modalities("soft_orthogonality", reps_dims)
        keyed_modalities("soft_orthogonality", reps_dims, "spec")

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        reps = output.reps
        pairs = [(f"inv_{m}", f"spec_{m}") for m in self.modalities]
        pairs += [(f"spec_{m}", f"spec_{n}") for m, n in combinations(self.modalities, 2)]
        diff = output.prediction.new_zeros(())
        for a, b in pairs:
            diff = diff + soft_orthogonality(reps[a], reps[b], self.reduction)
        return {"diff": diff}
