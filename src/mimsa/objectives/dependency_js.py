"""`dependency_js`: the Jensen–Shannon dependency between modalities (f-divergence bound).

With the critic T and σ the logistic function,

    D = mean_joint(−softplus(−T)) − mean_shuffled(softplus(T))
      = mean_joint log σ(T) + mean_shuffled log(1 − σ(T)),

the f-GAN variational lower bound of 2·JS(P ‖ Q) − log 4 between the joint P of the modality
reps and the product of their marginals Q (a binary classifier's negative log loss): −log 4
when the modalities are independent, rising towards 0 as they become predictable from each
other. Bounded and low-variance, unlike the KL estimate.

Terms: "dependency" = D (into the reps), "critic_loss" = −D (critic only); see critic.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mimsa.models.base import Count, InputSpec, Width
from mimsa.objectives.base import register_objective
from mimsa.objectives.critic import DependencyObjective


@register_objective("dependency_js")
class DependencyJS(DependencyObjective):
    """D = mean_joint(−softplus(−T)) − mean_shuffled(softplus(T)) (see the module)."""

    kind = "js"

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int],
                 reps: Sequence[str] | str | None = None, hidden: Width = 64, depth: Count = 2,
                 activation: str = "relu") -> None:
        super().__init__(spec, reps_dims, reps, hidden, depth, activation)

    def estimate(self, t_joint: torch.Tensor, t_marginal: torch.Tensor,
                 update: bool = True) -> torch.Tensor:
        return (-F.softplus(-t_joint)).mean() - F.softplus(t_marginal).mean()
