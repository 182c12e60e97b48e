"""`reconstruction`: mean squared error between reconstructed and original vectors (MISA).

MISA (Hazarika et al., ACM MM 2020, reconstruction loss) decodes h_m^c + h_m^p back to the projected
utterance vector u_m and penalises L_recon = (1/n) Σ_m ‖u_m − û_m‖₂² / d_m, the mean squared
error per entry averaged over the n present modalities (the published code: the three MSEs
summed and divided by 3). Gradients reach both u_m and û_m, as in the published code.

Term "recon", minimised by the main optimizer (weight γ in the paper). It reads reps
"recon_m" (the reconstruction) and "m" (the target) for every m with a "recon_m" entry (a model
like `misa` provides them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput
from mimsa.objectives.base import Objective, register_objective
from mimsa.objectives.cmd import keyed_modalities


@register_objective("reconstruction")
class Reconstruction(Objective):
    """Term "recon": mean over modalities of MSE(reps["recon_m"], reps["m"])."""

    optimizer = "main"
    terms = ("recon",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int]) -> None:
        super().__init__()
        self.modalities = keyed_modalities("reconstruction", reps_dims, "recon")
        missing = [m for m in self.modalities if m not in reps_dims]
        if missing:
            raise ConfigError(f"objective 'reconstruction': the model has recon_{missing[0]} "
                              f"but no rep '{missing[0]}' to compare it with")

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        losses = [F.mse_loss(output.reps[f"recon_{m}"], output.reps[m]) for m in self.modalities]
        return {"recon": torch.stack(losses).mean()}
