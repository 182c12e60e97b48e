"""`dependency_wasserstein`: the Wasserstein-1 dependency between modalities.

By Kantorovich–Rubinstein duality, for the joint P of the modality reps and the product of
their marginals Q,

    W1(P, Q) = sup_{T 1-Lipschitz} E_P[T] − E_Q[T]   ≥   mean_joint T − mean_shuffled T = D.

The Lipschitz constraint is enforced by
  lipschitz: penalty   (default) a gradient penalty added to the critic loss,
                       γ · mean (‖∇T(û)‖ − 1)², on û = ε·u_joint + (1 − ε)·u_shuffled,
                       ε ~ U(0, 1) per sample (WGAN-GP; γ = `gamma`, default 10)
  lipschitz: spectral  spectral normalisation of every Linear of the critic (no penalty)
Unlike KL and JS, D is a distance in the reps' own geometry: it grows with their scale.

Terms: "dependency" = D (into the reps), "critic_loss" = −D + penalty (critic only); see
critic.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mimsa.errors import ConfigError
from mimsa.models.base import Count, InputSpec, NonNegative, Width
from mimsa.objectives.base import register_objective
from mimsa.objectives.critic import DependencyObjective

LIPSCHITZ = ("penalty", "spectral")


@register_objective("dependency_wasserstein")
class DependencyWasserstein(DependencyObjective):
    """D = mean_joint T − mean_shuffled T with T (about) 1-Lipschitz (see the module)."""

    kind = "wasserstein"

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int],
                 reps: Sequence[str] | str | None = None, hidden: Width = 64, depth: Count = 2,
                 activation: str = "relu", gamma: NonNegative = 10.0,
                 lipschitz: str = "penalty") -> None:
        if lipschitz not in LIPSCHITZ:
            raise ConfigError(f"objective 'dependency_wasserstein': lipschitz '{lipschitz}' is "
                             f"unknown; valid: {', '.join(LIPSCHITZ)}")
        super().__init__(spec, reps_dims, reps, hidden, depth, activation,
                         spectral=lipschitz == "spectral")
        self.lipschitz = lipschitz
        self.gamma = float(gamma)

    def estimate(self, t_joint: torch.Tensor, t_marginal: torch.Tensor,
                 update: bool = True) -> torch.Tensor:
        return t_joint.mean() - t_marginal.mean()

    def critic_penalty(self, joint: torch.Tensor, marginal: torch.Tensor) -> torch.Tensor:
        if self.lipschitz != "penalty" or self.gamma == 0:
            return joint.new_zeros(())
        eps = torch.rand(joint.shape[0], 1, device=joint.device, dtype=joint.dtype)
        points = (eps * joint.detach() + (1 - eps) * marginal.detach()).requires_grad_(True)
        with torch.enable_grad():
            values = self.critic(points)
            (grad,) = torch.autograd.grad(values.sum(), points, create_graph=True)
        norm = torch.sqrt(grad.pow(2).sum(dim=-1) + 1e-12)
        return self.gamma * (norm - 1).pow(2).mean()
