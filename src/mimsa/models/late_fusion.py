"""`late_fusion`: one encoder per modality → concat → MLP; works with any subset of t/a/v."""

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
)


@register_model("late_fusion")
class LateFusion(Model):
    """Text: the configured text encoder; audio/vision: LSTM (final state → Linear).

    reps: the unimodal vectors ("t", "a", "v" for those present), "fusion" = the MLP's hidden
    layer on their concatenation.
    """

    def __init__(self, spec: InputSpec, text_dim: Width = 64, audio_hidden: Width = 32,
                 audio_dim: Width = 32, vision_hidden: Width = 32, vision_dim: Width = 32,
                 hidden: Width = 64, dropout: Dropout = 0.1) -> None:
        super().__init__()
        require_modalities("late_fusion", spec)
        self.encoders = UnimodalEncoders(spec, text_dim, audio_hidden, audio_dim, vision_hidden,
                                         vision_dim, dropout)
        self.reps_dims = dict(self.encoders.dims)
        width = sum(self.reps_dims.values())
        self.hidden = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU())
        self.reps_dims["fusion"] = hidden
        self.head = nn.Linear(hidden, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        reps = self.encoders(batch)
        fusion = self.hidden(torch.cat(list(reps.values()), dim=-1))
        reps["fusion"] = fusion
        return ModelOutput(self.head(fusion).squeeze(-1), reps)
