"""`mecam`: MMIM with talking-heads cross-attention from audio/vision to text (Wang et al., 2025).

MECAM keeps MMIM's encoders, fusion network and two-stage schedule, and adds:

  text     the configured text encoder (as mmim): h_t = its vector, and its token states
           S [B, T_t, d_s] with mask (a pretrained transformer's last layer, or the local
           encoders' LSTM outputs)
  audio    LSTM over the frames (as mmim) → per-frame states s_a [B, T_a, audio_hidden]
           → x = Linear(audio_hidden, attn_dim)(s_a)
           → y = LayerNorm(x + Dropout(TalkingHeads(x, S, mask)))      (queries: the frames;
             keys/values: the text states, padding masked; see encoders/attention.py)
           → h_a = Linear(attn_dim, audio_out)(Dropout(mean of y over the real frames))
  vision   the same with its own modules (vision_hidden → attn_dim → vision_out)
  fusion   x = concat(h_t, h_a, h_v) → MMIM's fusion network → Z → ŷ = Linear(hidden, 1)

The attended, pooled h_a and h_v REPLACE MMIM's final-state vectors (the LSTMs' own output
layers are then unused). Degrading: without text there is nothing to attend to, and h_a/h_v
are MMIM's LSTM vectors (the model is mmim); without audio and vision it is mmim on text.
The head-mixing matrices start as the identity (plain multi-head attention) and are learned;
every other weight matrix outside the text encoder is xavier-normal initialised.

reps: "t", "a", "v" (those present) and "fusion" = Z. MECAM's training signals are objectives,
set in configs/mecam.yaml: `ba` and `entropy` as in mmim, and `contrastive` (supervised
contrastive loss inside each modality) in place of mmim's `cpc`.
"""

from __future__ import annotations

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.attention import CrossModalAttention, TalkingHeadsAttention
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
from mimsa.models.mmim import fusion_network


@register_model("mecam")
class MECAM(Model):
    """MMIM's encoders and fusion + talking-heads cross-attention from a/v frames to text."""

    def __init__(self, spec: InputSpec, text_dim: Width = 64, audio_hidden: Width = 16,
                 audio_out: Width = 16, vision_hidden: Width = 16, vision_out: Width = 32,
                 hidden: Width = 128, attn_dim: Width = 32, heads: Width = 4,
                 dropout: Dropout = 0.1, fusion_dropout: Dropout = 0.1,
                 attn_dropout: Dropout = 0.1) -> None:
        super().__init__()
        require_modalities("mecam", spec)
        self.modalities = spec.modalities
        self.encoders = UnimodalEncoders(spec, text_dim, audio_hidden, audio_out, vision_hidden,
                                         vision_out, dropout)
        self.reps_dims = dict(self.encoders.dims)
        self.cross = nn.ModuleDict()
        if "t" in spec.modalities:
            kv_dim = int(self.encoders.text_encoder.state_dim)
            sizes = {"a": (audio_hidden, audio_out), "v": (vision_hidden, vision_out)}
            for m in "av":
                if m in spec.modalities:
                    in_dim, out_dim = sizes[m]
                    self.cross[m] = CrossModalAttention(in_dim, kv_dim, attn_dim, out_dim,
                                                        heads, attn_dropout)
        width = sum(self.reps_dims.values())
        self.fusion = fusion_network(width, hidden, fusion_dropout)
        self.head = nn.Linear(hidden, 1)
        self.reps_dims["fusion"] = hidden
        xavier_init(self)
        for module in self.modules():
            if isinstance(module, TalkingHeadsAttention):
                module.reset_mixing()

    def forward(self, batch: Batch) -> ModelOutput:
        reps: dict[str, torch.Tensor] = {}
        text = None
        if "t" in self.modalities:
            text = self.encoders.text_encoder(batch)
            reps["t"] = text.vector
        for m, encoder, frames, lengths in (
                ("a", "audio_encoder", batch.audio, batch.audio_lengths),
                ("v", "vision_encoder", batch.vision, batch.vision_lengths)):
            if m not in self.modalities:
                continue
            vector, states = getattr(self.encoders, encoder)(frames, lengths)
            if m in self.cross:
                reps[m] = self.cross[m](states, lengths, text.states, text.mask)
            else:
                reps[m] = vector
        z = self.fusion(torch.cat(list(reps.values()), dim=-1))
        reps["fusion"] = z
        return ModelOutput(self.head(z).squeeze(-1), reps)
