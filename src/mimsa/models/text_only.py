"""`text_only`: the text encoder alone → MLP → score. The floor every fusion must beat."""

from __future__ import annotations

from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import build_text_encoder
from mimsa.models.base import (
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
)


@register_model("text_only")
class TextOnly(Model):
    """reps: "t" = the text vector, "fusion" = the MLP's hidden layer."""

    requires = "t"
    reads = "t"

    def __init__(self, spec: InputSpec, text_dim: Width = 64, hidden: Width = 64,
                 dropout: Dropout = 0.1) -> None:
        super().__init__()
        require_modalities("text_only", spec, "t")
        self.text_encoder = build_text_encoder(spec.text, spec.dims, spec.encoder, text_dim,
                                               dropout)
        self.hidden = nn.Sequential(nn.Dropout(dropout),
                                    nn.Linear(self.text_encoder.out_dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 1)
        self.reps_dims = {"t": self.text_encoder.out_dim, "fusion": hidden}

    def forward(self, batch: Batch) -> ModelOutput:
        h_t = self.text_encoder(batch).vector
        fusion = self.hidden(h_t)
        return ModelOutput(self.head(fusion).squeeze(-1), {"t": h_t, "fusion": fusion})
