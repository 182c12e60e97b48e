"""`lmf`: Low-rank Multimodal Fusion (Liu et al., ACL 2018): tfn with a factorised fusion.

Liu, Shen, Lakshminarasimhan, Liang, Zadeh, Morency: "Efficient Low-rank Multimodal Fusion with
Modality-Specific Factors", ACL 2018.

TFN's first post-fusion layer maps z = vec(⊗_m [h_m; 1]) (size Π(d_m + 1)) to `hidden` units
with a weight tensor W [hidden, d_t+1, d_a+1, d_v+1]. LMF writes W as a sum of `rank` outer
products of modality-specific factors W_m^(r) [d_m+1, hidden] (Liu et al., section 3):

    W[o, i, j, k] = Σ_r W_t^(r)[i, o] · W_a^(r)[j, o] · W_v^(r)[k, o]

so that, swapping the sums, W·z = Σ_r Π_m ([h_m; 1] W_m^(r)) (Π elementwise over modalities)
and z is never formed: the cost is linear in Σ_m d_m instead of Π_m d_m.

    fused = Σ_r Π_m ([h_m; 1] W_m^(r)) + b          [B, hidden]   (`LowRankFusion`)

The subnetworks (h_m) and the layers after the fusion layer are TFN's (models/tfn.py): fused →
ReLU → Linear(hidden, hidden) → ReLU → Linear(hidden, 1). So lmf is exactly tfn with its first
post-fusion layer factorised: with tfn.fusion_layer.weight = `LowRankFusion.full_weight()` and
the same bias, subnetworks and later layers, the two models give the same output (in eval mode;
tfn's dropout on z has no counterpart here). Differences from the authors' code: it maps the
product straight to the score (output_dim 1) and scales the rank components by learned weights
(redundant with the factors); here the product has width `hidden` and TFN's remaining layers
follow, so that tfn and lmf differ only in the factorisation. The factors are initialised as
the authors' (xavier-normal on [rank, d_m+1, 1], i.e. N(0, 2/(rank + d_m + 1)) per entry), for
every output unit.

reps: "t", "a", "v" = h_m (those present); "fusion" = the last hidden layer [B, hidden].

On our data: `mosi` has text + ONE utterance-level audio vector per sample (no vision; a
bimodal product), `mosi-poria` one audio and one visual vector; `synthetic` has frame
sequences, averaged by the utterance subnetworks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import (
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
)
from mimsa.models.tfn import ModalitySubnets, post_fusion


class LowRankFusion(nn.Module):
    """fused = Σ_r Π_m ([h_m; 1] W_m^(r)) + b for vectors h_m [B, d_m] → [B, out_dim].

    `factors[i]` is W_m [rank, d_m + 1, out_dim] for the i-th of `dims` (the 1 is appended last,
    as in `tensor_fusion`)."""

    def __init__(self, dims: list[int], out_dim: int, rank: int) -> None:
        super().__init__()
        if rank < 1:
            raise ConfigError(f"model 'lmf': rank must be >= 1 (got {rank}; model.rank)")
        self.factors = nn.ParameterList(
            [nn.Parameter(torch.empty(rank, d + 1, out_dim)) for d in dims])
        # The authors' initialisation (Justin1904/Low-rank-Multimodal-Fusion, model.py; MMSA's
        # LMF.py likewise): xavier_normal_ on their factor [rank, d+1, 1], i.e. every entry
        # N(0, 2 / (rank + d + 1)). Here each of the out_dim output units gets that factor, so
        # the std does not shrink with out_dim (xavier on a [d+1, out_dim] component did: with
        # three modalities the product, and each factor's gradient, became so small that Adam's
        # coupled weight decay drove the factors to zero before they learnt; issue 18).
        for d, factor in zip(dims, self.factors, strict=True):
            nn.init.normal_(factor, std=math.sqrt(2.0 / (rank + d + 1)))
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        product = None
        for h, factor in zip(vectors, self.factors, strict=True):
            h1 = torch.cat([h, h.new_ones(h.shape[0], 1)], dim=-1)
            term = torch.einsum("bi,rio->rbo", h1, factor)  # [rank, B, out_dim]
            product = term if product is None else product * term
        return product.sum(0) + self.bias

    def full_weight(self) -> torch.Tensor:
        """Return the equivalent TFN weight [out_dim, Π(d_m + 1)] (row-major over modalities,
        as `tensor_fusion` flattens z): W·z + b equals `forward` for every input."""
        weight = None
        for factor in self.factors:  # [rank, d+1, out]
            weight = factor if weight is None else torch.einsum("rpo,rio->rpio", weight,
                                                                factor).flatten(1, 2)
        return weight.sum(0).T


@register_model("lmf")
class LMF(Model):
    """Low-rank Multimodal Fusion: TFN with its first post-fusion layer factorised at `rank`.

    See the module docstring; works with any non-empty subset of t, a, v.
    """

    def __init__(self, spec: InputSpec, text_dim: Width = 64, audio_dim: Width = 16,
                 vision_dim: Width = 128, hidden: Width = 64, rank: Width = 3,
                 text_dropout: Dropout = 0.3, audio_dropout: Dropout = 0.3,
                 vision_dropout: Dropout = 0.3) -> None:
        super().__init__()
        require_modalities("lmf", spec)
        self.subnets = ModalitySubnets(spec, text_dim, audio_dim, vision_dim, text_dropout,
                                       audio_dropout, vision_dropout)
        self.reps_dims = dict(self.subnets.dims)
        self.fusion_layer = LowRankFusion(list(self.reps_dims.values()), hidden, rank)
        self.post_fusion = post_fusion(hidden)
        self.head = nn.Linear(hidden, 1)
        self.reps_dims["fusion"] = hidden

    def forward(self, batch: Batch) -> ModelOutput:
        reps = self.subnets(batch)
        fusion = self.post_fusion(self.fusion_layer(list(reps.values())))
        reps["fusion"] = fusion
        return ModelOutput(self.head(fusion).squeeze(-1), reps)
