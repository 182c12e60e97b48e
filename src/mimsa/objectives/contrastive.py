"""`contrastive`: supervised contrastive loss inside each modality (MECAM, Wang et al. 2025).

MECAM's "removal of negative information": within one modality, the representations of samples
with the same sentiment are pulled together and those of different sentiment pushed apart, so
features that do not carry sentiment (noise, corruption) are suppressed. For each modality m in
`modalities` (default t, a, v; those the model produces), with z_i = h_m^i / ‖h_m^i‖ and
s_ij = <z_i, z_j> / τ:

    bin(y)   the label's class: `class7` (default) round(clip(y, −3, 3)) (7 classes −3..3, round
             half to even as in Acc-7), or `sign` sign(y) (3 bins: < 0, = 0, > 0)
    P(i)     positives {p ≠ i : bin_p = bin_i};   N(i) negatives {n : bin_n ≠ bin_i}
    D_i      Σ_{p∈P(i)} exp(s_ip) + w · Σ_{n∈N(i)} exp(s_in)    (w = `negative_weight`)
    ℓ_i      −(1 / |P(i)|) Σ_{p∈P(i)} [ s_ip − log D_i ]
    L_m      mean of ℓ_i over the anchors i with at least one positive (others are skipped;
             0 when no anchor has one)

Term "contrast" = Σ_m L_m, minimised by the main optimizer (weight α). With w = 1 this is the
supervised contrastive loss of Khosla et al. (2020, L_out); w < 1 weakens the push on
negatives in the denominator (w = 0: positives only). It is a loss, not a bound on a mutual
information. The published code compared labels by exact float equality; here they are binned.
Defaults: τ = 0.03, w = 0.8 (MECAM's README).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput, NonNegative, Positive
from mimsa.objectives.base import Objective, register_objective

BINS = ("class7", "sign")


def label_bins(labels: torch.Tensor, bins: str = "class7") -> torch.Tensor:
    """Return the bin of each label [B] (int64): round(clip(y, −3, 3)) or sign(y)."""
    if bins == "class7":
        return torch.round(labels.clamp(-3.0, 3.0)).long()
    if bins == "sign":
        return torch.sign(labels).long()
    raise ConfigError(f"objective 'contrastive': bins '{bins}' is unknown; valid: "
                     f"{', '.join(BINS)}")


def supervised_contrastive(h: torch.Tensor, bins: torch.Tensor, temperature: float = 0.03,
                           negative_weight: float = 0.8) -> torch.Tensor:
    """Return the loss L of one modality (see the module docstring) for reps h [B, d] with
    label bins [B]; 0 (differentiable) when no anchor has a positive."""
    z = F.normalize(h, dim=-1, eps=1e-8)
    scores = z @ z.T / temperature
    n = h.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=h.device)
    same = (bins[:, None] == bins[None, :]) & ~self_mask
    if negative_weight > 0:
        log_w = torch.where(same, 0.0, math.log(negative_weight))
        log_w = log_w.to(scores.dtype).masked_fill(self_mask, float("-inf"))
    else:
        log_w = torch.zeros_like(scores).masked_fill(~same, float("-inf"))
    log_denominator = torch.logsumexp(scores + log_w, dim=1)  # log D_i
    positives = same.sum(1)
    anchors = positives > 0
    if not bool(anchors.any()):
        return h.sum() * 0.0
    per_pair = (scores - log_denominator[:, None]).masked_fill(~same, 0.0)
    loss_i = -per_pair.sum(1)[anchors] / positives[anchors]
    return loss_i.mean()


@register_objective("contrastive")
class SupervisedContrastive(Objective):
    """Supervised contrastive loss per modality on binned labels: term "contrast"."""

    optimizer = "main"
    terms = ("contrast",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int], modalities: str = "tav",
                 temperature: Positive = 0.03, negative_weight: NonNegative = 0.8,
                 bins: str = "class7") -> None:
        super().__init__()
        if any(m not in "tav" for m in str(modalities)):
            raise ConfigError(f"objective 'contrastive': modalities '{modalities}' must be a "
                             f"subset of 'tav'")
        if bins not in BINS:
            raise ConfigError(f"objective 'contrastive': bins '{bins}' is unknown; valid: "
                             f"{', '.join(BINS)}")
        self.modalities = [m for m in "tav" if m in str(modalities) and m in reps_dims]
        self.temperature = float(temperature)
        self.negative_weight = float(negative_weight)
        self.bins = bins

    def losses(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Return L_m per modality m."""
        bins = label_bins(batch.labels.to(output.prediction.device), self.bins)
        return {m: supervised_contrastive(output.reps[m], bins, self.temperature,
                                          self.negative_weight) for m in self.modalities}

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        contrast = output.prediction.new_zeros(())
        for value in self.losses(output, batch).values():
            contrast = contrast + value
        return {"contrast": contrast}
