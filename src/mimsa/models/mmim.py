"""`mmim`: MultiModal InfoMax (Han, Chen, Poria, EMNLP 2021); works with any subset of t/a/v.

  text     the configured text encoder: a pretrained transformer gives the last-layer state of
           the first token ([CLS], `encoder.pooling: cls`); a local encoder its LSTM vector
  audio    LSTM over the unpadded frames, final state → dropout → Linear(hidden, out)
  vision   the same (defaults hidden 16, out 16, 1 layer, unidirectional)
  fusion   x = concat(h_t, h_a, h_v) → Dropout → tanh(Linear(·, hidden))
           → Z = tanh(Linear(hidden, hidden)) → ŷ = Linear(hidden, 1)

reps: "t", "a", "v" (those present) and "fusion" = Z. MMIM's training signals are objectives
read from these reps, set in the preset (configs/mmim.yaml): `ba` (Barber–Agakov bound t→v,
t→a), `entropy` (H(Y) of that bound) and `cpc` (InfoNCE between Z and each modality), with the
two-stage schedule as `train.stages`. Weight matrices outside the text encoder are
xavier-normal initialised.
"""

from __future__ import annotations

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.unimodal import UnimodalEncoders
from mimsa.models.base import (
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
    xavier_init,
)


def fusion_network(width: int, hidden: int, dropout: float) -> nn.Sequential:
    """Return MMIM's fusion network: x [B, width] → Dropout → tanh(Linear(width, hidden))
    → Z = tanh(Linear(hidden, hidden)), Z [B, hidden]."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.Tanh(),
                         nn.Linear(hidden, hidden), nn.Tanh())


@register_model("mmim")
class MMIM(Model):
    """MMIM's encoders and fusion network; the MI objectives live in `mimsa.objectives`."""

    def __init__(self, spec: InputSpec, text_dim: Width = 64, audio_hidden: Width = 16,
                 audio_out: Width = 16, vision_hidden: Width = 16, vision_out: Width = 16,
                 hidden: Width = 128, dropout: Dropout = 0.1,
                 fusion_dropout: Dropout = 0.1) -> None:
        super().__init__()
        require_modalities("mmim", spec)
        self.encoders = UnimodalEncoders(spec, text_dim, audio_hidden, audio_out, vision_hidden,
                                         vision_out, dropout)
        self.reps_dims = dict(self.encoders.dims)
        width = sum(self.reps_dims.values())
        self.fusion = fusion_network(width, hidden, fusion_dropout)
        self.head = nn.Linear(hidden, 1)
        self.reps_dims["fusion"] = hidden
        xavier_init(self)

    def forward(self, batch: Batch) -> ModelOutput:
        reps = self.encoders(batch)
        z = self.fusion(torch.cat(list(reps.values()), dim=-1))
        reps["fusion"] = z
        return ModelOutput(self.head(z).squeeze(-1), reps)
