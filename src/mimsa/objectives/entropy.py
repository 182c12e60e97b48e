"""`entropy`: a Gaussian estimate of the entropy H(Y) of unimodal representations (MMIM).

For a Gaussian Y ~ N(m, Σ) in R^k, H(Y) = ½·(k·log 2πe + log det Σ). MMIM estimates the H(Y)
of its Barber–Agakov bound (objective `ba`: I(X; Y) ≥ H(Y) + E log q(y | x)) per sentiment
class, for each y in `modalities` (default a and v, those the model produces):

  1. project y (d_y dims) to k = d_y // 4 dims: u = tanh(Linear(y))
  2. split the batch by label sign, > 0 and < 0 (zero labels are left out)
  3. pool each group with the DETACHED projections of the previous `memory` training batches
  4. Σ = the maximum-likelihood covariance of each pooled group
  5. H_y = 0.25·(log det Σ_pos + log det Σ_neg)   (MMIM's scale: half of the Gaussian entropy of
     each group, averaged over the two groups, without the constant k·log 2πe)

Term "H" = Σ_y H_y; the gradient flows through the current batch only.

Options:
  memory                batches of history per group (default 1). The memory starts empty at
                        each epoch (the trainer calls `reset()`), H is 0 until it holds `memory`
                        batches, and it is neither read nor written in eval mode.
  trainable_projection  false (default, as published: the projection never learns, a fixed
                        random projection) or true (it joins the optimizer "mi", so it learns
                        only in a step that steps "mi" with a non-zero weight on "H").
  eps                   added to the diagonal of Σ before `slogdet` (default 1e-4).

Numerics: a group with ≤ k samples, a constant group (zero variance, e.g. all-zero visual
features) or a non-finite log-determinant contributes 0 instead of −inf/NaN.
"""

from __future__ import annotations

import math
from collections import deque

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import Count, InputSpec, ModelOutput, Positive
from mimsa.objectives.base import Objective, register_objective

MIN_VARIANCE = 1e-10  # a group whose mean variance is below this is constant: skipped


def ml_logdet(u: torch.Tensor, eps: float = 1e-4) -> torch.Tensor | None:
    """Return log det(Σ + eps·I) of the ML covariance of rows `u` [n, k], or None.

    None when the estimate is meaningless: n ≤ k samples, a constant group, a non-finite value.
    """
    n, k = u.shape
    if n <= k:
        return None
    centred = u - u.mean(0, keepdim=True)
    sigma = centred.T @ centred / n
    if float(sigma.detach().diagonal().mean()) < MIN_VARIANCE:
        return None
    sign, logdet = torch.linalg.slogdet(sigma + eps * torch.eye(k, dtype=u.dtype,
                                                                device=u.device))
    if float(sign.detach()) <= 0 or not bool(torch.isfinite(logdet.detach())):
        return None
    return logdet


def gaussian_entropy(logdet: torch.Tensor | float, k: int) -> torch.Tensor | float:
    """Return the entropy ½·(k·log 2πe + log det Σ) of a k-dim Gaussian, in nats."""
    return 0.5 * (k * math.log(2 * math.pi * math.e) + logdet)


@register_objective("entropy")
class GaussianEntropy(Objective):
    """H(Y) per sentiment sign with a batch memory: term "H" (see the module docstring)."""

    optimizer = "mi"
    terms = ("H",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int], modalities: str = "av",
                 memory: Count = 1, trainable_projection: bool = False,
                 eps: Positive = 1e-4) -> None:
        super().__init__()
        if not modalities or any(m not in "tav" for m in modalities):
            raise ConfigError(f"config value objectives.entropy.modalities='{modalities}' is "
                              f"not allowed: give a subset of 'tav' (e.g. 'av')")
        self.modalities = [m for m in "tav" if m in modalities and m in reps_dims]
        self.memory, self.eps = int(memory), float(eps)
        self.projection = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(reps_dims[m], max(1, reps_dims[m] // 4)), nn.Tanh())
            for m in self.modalities})
        self.projection.requires_grad_(bool(trainable_projection))
        self._history: deque[dict[str, dict[str, torch.Tensor]]] = deque(maxlen=self.memory)

    def reset(self) -> None:
        """Empty the memory (the trainer calls this at the start of every epoch)."""
        self._history.clear()

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        h = output.prediction.new_zeros(())
        labels = batch.labels.to(h.device)
        groups = {"pos": labels > 0, "neg": labels < 0}
        use_memory = self.training and self.memory > 0
        current = {m: {g: self.projection[m](output.reps[m])[mask] for g, mask in groups.items()}
                   for m in self.modalities}
        if not use_memory or len(self._history) == self.memory:
            for m in self.modalities:
                for g in groups:
                    past = [old[m][g] for old in self._history] if use_memory else []
                    logdet = ml_logdet(torch.cat([current[m][g], *past]), self.eps)
                    if logdet is not None:
                        h = h + 0.25 * logdet
        if use_memory:
            self._history.append({m: {g: u.detach() for g, u in parts.items()}
                                  for m, parts in current.items()})
        return {"H": h}
