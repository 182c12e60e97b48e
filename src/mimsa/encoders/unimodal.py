"""One encoder per present modality, the front half that late-fusion-style models share."""

from __future__ import annotations

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import build_text_encoder
from mimsa.encoders.sequence import LSTMEncoder


class UnimodalEncoders(nn.Module):
    """Text: the configured text encoder; audio/vision: LSTM (final state → Linear).

    `dims` maps each present modality ("t", "a", "v") to its vector size; `forward` returns
    {modality: vector [B, dims[m]]} in the order t, a, v.
    """

    def __init__(self, spec, text_dim: int, audio_hidden: int, audio_dim: int,
                 vision_hidden: int, vision_dim: int, dropout: float) -> None:
        super().__init__()
        self.modalities = spec.modalities
        self.dims: dict[str, int] = {}
        if "t" in spec.modalities:
            self.text_encoder = build_text_encoder(spec.text, spec.dims, spec.encoder, text_dim,
                                                   dropout)
            self.dims["t"] = self.text_encoder.out_dim
        if "a" in spec.modalities:
            self.audio_encoder = LSTMEncoder(spec.dims["audio"], audio_hidden, audio_dim,
                                             dropout=dropout)
            self.dims["a"] = audio_dim
        if "v" in spec.modalities:
            self.vision_encoder = LSTMEncoder(spec.dims["vision"], vision_hidden, vision_dim,
                                              dropout=dropout)
            self.dims["v"] = vision_dim

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        reps: dict[str, torch.Tensor] = {}
        if "t" in self.modalities:
            reps["t"] = self.text_encoder(batch).vector
        if "a" in self.modalities:
            reps["a"], _ = self.audio_encoder(batch.audio, batch.audio_lengths)
        if "v" in self.modalities:
            reps["v"], _ = self.vision_encoder(batch.vision, batch.vision_lengths)
        return reps
