"""`late_fusion`: one encoder per modality → concat → MLP; works with any subset of t/a/v."""

from __future__ import annotations

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import build_text_encoder
from mimsa.encoders.sequence import LSTMEncoder
from mimsa.models.base import InputSpec, ModelOutput, register_model, require_modalities


@register_model("late_fusion")
class LateFusion(nn.Module):
    """Text: the configured text encoder; audio/vision: LSTM (final state → Linear).

    reps: the unimodal vectors ("t", "a", "v" for those present), "fusion" = the MLP's hidden
    layer on their concatenation.
    """

    def __init__(self, spec: InputSpec, text_dim: int = 64, audio_hidden: int = 32,
                 audio_dim: int = 32, vision_hidden: int = 32, vision_dim: int = 32,
                 hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        require_modalities("late_fusion", spec)
        self.modalities = spec.modalities
        self.reps_dims: dict[str, int] = {}
        if "t" in spec.modalities:
            self.text_encoder = build_text_encoder(spec.text, spec.dims, spec.encoder, text_dim,
                                                   dropout)
            self.reps_dims["t"] = self.text_encoder.out_dim
        if "a" in spec.modalities:
            self.audio_encoder = LSTMEncoder(spec.dims["audio"], audio_hidden, audio_dim,
                                             dropout=dropout)
            self.reps_dims["a"] = audio_dim
        if "v" in spec.modalities:
            self.vision_encoder = LSTMEncoder(spec.dims["vision"], vision_hidden, vision_dim,
                                              dropout=dropout)
            self.reps_dims["v"] = vision_dim
        width = sum(self.reps_dims.values())
        self.hidden = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU())
        self.reps_dims["fusion"] = hidden
        self.head = nn.Linear(hidden, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        reps: dict[str, torch.Tensor] = {}
        if "t" in self.modalities:
            reps["t"] = self.text_encoder(batch).vector
        if "a" in self.modalities:
            reps["a"], _ = self.audio_encoder(batch.audio, batch.audio_lengths)
        if "v" in self.modalities:
            reps["v"], _ = self.vision_encoder(batch.vision, batch.vision_lengths)
        fusion = self.hidden(torch.cat(list(reps.values()), dim=-1))
        reps["fusion"] = fusion
        return ModelOutput(self.head(fusion).squeeze(-1), reps)
