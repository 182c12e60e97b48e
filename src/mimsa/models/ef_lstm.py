"""`ef_lstm`: early fusion — per-step features of all modalities concatenated → one LSTM.

Unaligned sequences are aligned to the first present modality's time axis (text if present):
step j of a sample with reference length L reads frame floor(j * l / L) of a modality of length
l (nearest-frame resampling; the identity on word-aligned data, a repetition for utterance-level
vectors).
"""

from __future__ import annotations

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import PretrainedTextEncoder
from mimsa.encoders.sequence import LSTMEncoder, lengths_to_mask, masked_mean
from mimsa.models.base import (
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
)


def align_to(x: torch.Tensor, lengths: torch.Tensor, ref_lengths: torch.Tensor,
             width: int) -> torch.Tensor:
    """Return x [B, T, D] resampled to [B, width, D] so sample b spans ref_lengths[b] steps."""
    steps = torch.arange(width, device=x.device)[None, :]
    index = (steps * lengths[:, None]) // ref_lengths[:, None].clamp(min=1)
    index = torch.minimum(index, (lengths[:, None] - 1).clamp(min=0))
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


@register_model("ef_lstm")
class EarlyFusionLSTM(Model):
    """Each modality's steps → Linear(D_m, step_dim); concat on the aligned axis → LSTM → MLP.

    reps: "t"/"a"/"v" = masked mean of that modality's projected steps; "fusion" = the LSTM
    output vector.
    """

    def __init__(self, spec: InputSpec, step_dim: Width = 32, hidden: Width = 64,
                 fusion_dim: Width = 64, emb_dim: Width = 64, dropout: Dropout = 0.1) -> None:
        super().__init__()
        require_modalities("ef_lstm", spec)
        self.modalities = spec.modalities
        self.text_kind = spec.text.kind
        if "t" in spec.modalities:
            if spec.text.kind == "embedding":
                self.text_embedding = nn.Embedding(int(spec.text.vocab_size), emb_dim,
                                                   padding_idx=0)
                text_in = emb_dim
            elif spec.text.kind == "pretrained":
                self.text_encoder = PretrainedTextEncoder(
                    str(spec.text.encoder_dir), str(spec.encoder.get("pooling", "cls")),
                    bool(spec.encoder.get("freeze", False)))
                text_in = self.text_encoder.state_dim
            else:
                text_in = spec.dims["text_feats"]
            self.text_proj = nn.Linear(text_in, step_dim)
        if "a" in spec.modalities:
            self.audio_proj = nn.Linear(spec.dims["audio"], step_dim)
        if "v" in spec.modalities:
            self.vision_proj = nn.Linear(spec.dims["vision"], step_dim)
        self.fusion = LSTMEncoder(step_dim * len(spec.modalities), hidden, fusion_dim,
                                  dropout=dropout)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(fusion_dim, 1))
        self.reps_dims = {**{m: step_dim for m in spec.modalities}, "fusion": fusion_dim}

    def _text_steps(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.text_kind == "embedding":
            return self.text_embedding(batch.text_ids), batch.text_mask.sum(1)
        if self.text_kind == "pretrained":
            out = self.text_encoder(batch)
            return out.states, out.mask.sum(1)
        return batch.text_feats, batch.text_feats_lengths

    def forward(self, batch: Batch) -> ModelOutput:
        steps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if "t" in self.modalities:
            x, lengths = self._text_steps(batch)
            steps["t"] = (self.text_proj(x), lengths)
        if "a" in self.modalities:
            steps["a"] = (self.audio_proj(batch.audio), batch.audio_lengths)
        if "v" in self.modalities:
            steps["v"] = (self.vision_proj(batch.vision), batch.vision_lengths)
        ref_x, ref_lengths = next(iter(steps.values()))
        width = ref_x.shape[1]
        reps, aligned = {}, []
        for m, (x, lengths) in steps.items():
            reps[m] = masked_mean(x, lengths_to_mask(lengths, x.shape[1]))
            aligned.append(align_to(x, lengths, ref_lengths, width))
        fused, _ = self.fusion(torch.cat(aligned, dim=-1), ref_lengths)
        reps["fusion"] = fused
        return ModelOutput(self.head(fused).squeeze(-1), reps)
