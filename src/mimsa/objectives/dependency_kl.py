"""`dependency_kl`: the KL dependency between modalities, by Donsker–Varadhan (MINE).

For the joint P of the modality reps u = (z_t, z_a, z_v) and the product of marginals Q,

    KL(P ‖ Q) = sup_T  E_P[T] − log E_Q[e^T]   ≥   mean_joint T − log mean_shuffled e^T = D,

which is the total correlation of the modalities (the mutual information I(z_x; z_y) for two).
The log-mean-exp is computed as logsumexp(T) − log n. Its minibatch gradient is biased;
`ema` (e.g. 0.99) applies MINE's correction: the gradient of the log term uses a moving average
of mean_shuffled e^T in its denominator (the value of D stays the minibatch estimate). The
average is updated once per call in training mode and saved with the critic.

Terms: "dependency" = D (into the reps), "critic_loss" = −D (critic only); see critic.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mimsa.models.base import Count, Fraction, InputSpec, Width
from mimsa.objectives.base import register_objective
from mimsa.objectives.critic import DependencyObjective


def log_mean_exp(values: torch.Tensor) -> torch.Tensor:
    """Return log mean exp(values) over dim 0, computed stably."""
    return torch.logsumexp(values, dim=0) - math.log(values.shape[0])


@register_objective("dependency_kl")
class DependencyKL(DependencyObjective):
    """D = mean_joint T − log mean_shuffled exp(T) (Donsker–Varadhan; see the module)."""

    kind = "kl"

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int],
                 reps: Sequence[str] | str | None = None, hidden: Width = 64, depth: Count = 2,
                 activation: str = "relu", ema: Fraction | None = None) -> None:
        super().__init__(spec, reps_dims, reps, hidden, depth, activation)
        self.ema = None if ema is None else float(ema)
        if self.ema is not None:
            self.register_buffer("log_running", torch.tensor(float("nan")))

    def estimate(self, t_joint: torch.Tensor, t_marginal: torch.Tensor,
                 update: bool = True) -> torch.Tensor:
        log_term = log_mean_exp(t_marginal)
        if self.ema is None:
            return t_joint.mean() - log_term
        if update and self.training:
            with torch.no_grad():
                current = log_term.detach().to(self.log_running.dtype)
                if torch.isnan(self.log_running):
                    self.log_running.copy_(current)
                else:
                    self.log_running.copy_(torch.logaddexp(
                        math.log(self.ema) + self.log_running,
                        math.log(1.0 - self.ema) + current))
        if torch.isnan(self.log_running):
            return t_joint.mean() - log_term
        # value: log_term; gradient: ∇ mean e^T / running mean (MINE's bias correction)
        ratio = torch.exp(log_term - self.log_running)
        return t_joint.mean() - (log_term.detach() + ratio - ratio.detach())
