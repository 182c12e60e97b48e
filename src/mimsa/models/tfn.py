"""`tfn`: Tensor Fusion Network (Zadeh et al., EMNLP 2017): fusion by an outer product.

Zadeh, Chen, Poria, Cambria, Morency: "Tensor Fusion Network for Multimodal Sentiment
Analysis", EMNLP 2017.

Each present modality m gets a small subnetwork that gives one vector h_m [B, d_m]:

  text     the configured text encoder's vector (local encoders: LSTM final state → Dropout →
           Linear(encoder.hidden, text_dim), as the paper's language subnetwork; a pretrained
           encoder: its pooled state → Dropout → Linear(hidden size, text_dim))
  audio    utterance-level subnetwork (`UtteranceSubNet`): mean over the real frames →
  vision   BatchNorm → Dropout → 3 × (Linear → ReLU), width audio_dim / vision_dim (the paper's
           acoustic and visual subnetworks: three ReLU layers on the average over frames; the
           input BatchNorm is from the LMF authors' code, which also served as their TFN)

Fusion (the paper's tensor fusion layer): z = vec(⊗_m [h_m; 1]) over the present modalities in
the order t, a, v (`tensor_fusion`), of size Π_m(d_m + 1). The appended 1 keeps every unimodal
and bimodal term: z viewed as [B, d_t+1, d_a+1, d_v+1] holds h_t at [:, :d_t, d_a, d_v], h_a at
[:, d_t, :d_a, d_v], their outer product at [:, :d_t, :d_a, d_v], and 1 at [:, d_t, d_a, d_v].
Then the sentiment inference subnetwork: Dropout(z) → Linear(Π(d_m+1), hidden) → ReLU →
Linear(hidden, hidden) → ReLU → Linear(hidden, 1) (paper: two hidden ReLU layers).

reps: "t", "a", "v" = h_m (those present); "fusion" = the second hidden layer [B, hidden].
z itself is not in reps: it has Π(d_m+1) entries (140,481 with the preset's sizes) and an
objective sized from it (a critic, a CPC predictor) would dwarf the model; `fuse(batch)`
returns it.

On our data: `mosi` has text + ONE utterance-level audio vector per sample (no vision), so the
audio "mean over frames" is that vector and z has (d_t+1)(d_a+1) entries; `mosi-poria` has one
audio and one visual vector (trimodal z); `synthetic` has frame sequences, averaged here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import build_text_encoder
from mimsa.encoders.sequence import lengths_to_mask, masked_mean
from mimsa.models.base import (
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
)


def tensor_fusion(vectors: list[torch.Tensor]) -> torch.Tensor:
    """Return z = vec([h_1; 1] ⊗ [h_2; 1] ⊗ ...) [B, Π(d_m + 1)] for h_m [B, d_m].

    The flattening is row-major with the first vector's index slowest, so
    z.view(B, d_1+1, d_2+1, ...)[:, i, j, ...] = [h_1;1]_i · [h_2;1]_j · ... (Zadeh et al.
    2017, tensor fusion layer). One vector gives z = [h_1; 1]."""
    z = None
    for h in vectors:
        h1 = torch.cat([h, h.new_ones(h.shape[0], 1)], dim=-1)
        z = h1 if z is None else (z.unsqueeze(-1) * h1.unsqueeze(1)).flatten(1)
    if z is None:
        raise ValueError("tensor_fusion: no vector to fuse")
    return z


class UtteranceSubNet(nn.Module):
    """Frames [B, T, D] with lengths [B] → mean over the real frames → BatchNorm1d(D) →
    Dropout → 3 × (Linear → ReLU) → h [B, out_dim]."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.layers = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_dim, out_dim), nn.ReLU(),
            nn.Linear(out_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim), nn.ReLU())

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths.to(frames.device), frames.shape[1])
        return self.layers(self.norm(masked_mean(frames, mask)))


class ModalitySubnets(nn.Module):
    """TFN's modality embedding subnetworks (shared with `lmf`): `forward(batch)` returns
    {m: h_m [B, dims[m]]} for the present modalities in the order t, a, v."""

    def __init__(self, spec: InputSpec, text_dim: int, audio_dim: int, vision_dim: int,
                 text_dropout: float, audio_dropout: float, vision_dropout: float) -> None:
        super().__init__()
        self.modalities = spec.modalities
        self.dims: dict[str, int] = {}
        if "t" in spec.modalities:
            self.text_encoder = build_text_encoder(spec.text, spec.dims, spec.encoder, text_dim,
                                                   text_dropout)
            out = int(self.text_encoder.out_dim)
            self.text_proj = (nn.Identity() if out == text_dim else
                              nn.Sequential(nn.Dropout(text_dropout), nn.Linear(out, text_dim)))
            self.dims["t"] = text_dim
        if "a" in spec.modalities:
            self.audio_subnet = UtteranceSubNet(spec.dims["audio"], audio_dim, audio_dropout)
            self.dims["a"] = audio_dim
        if "v" in spec.modalities:
            self.vision_subnet = UtteranceSubNet(spec.dims["vision"], vision_dim, vision_dropout)
            self.dims["v"] = vision_dim

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        reps: dict[str, torch.Tensor] = {}
        if "t" in self.modalities:
            reps["t"] = self.text_proj(self.text_encoder(batch).vector)
        if "a" in self.modalities:
            reps["a"] = self.audio_subnet(batch.audio, batch.audio_lengths)
        if "v" in self.modalities:
            reps["v"] = self.vision_subnet(batch.vision, batch.vision_lengths)
        return reps


def post_fusion(hidden: int) -> nn.Sequential:
    """The layers after the first post-fusion layer: ReLU → Linear(hidden, hidden) → ReLU."""
    return nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())


@register_model("tfn")
class TFN(Model):
    """Tensor Fusion Network: z = vec(⊗_m [h_m; 1]) → 2 hidden ReLU layers → score.

    See the module docstring; works with any non-empty subset of t, a, v.
    """

    def __init__(self, spec: InputSpec, text_dim: Width = 32, audio_dim: Width = 32,
                 vision_dim: Width = 32, hidden: Width = 64, text_dropout: Dropout = 0.3,
                 audio_dropout: Dropout = 0.3, vision_dropout: Dropout = 0.3,
                 fusion_dropout: Dropout = 0.5) -> None:
        super().__init__()
        require_modalities("tfn", spec)
        self.subnets = ModalitySubnets(spec, text_dim, audio_dim, vision_dim, text_dropout,
                                       audio_dropout, vision_dropout)
        self.reps_dims = dict(self.subnets.dims)
        self.fused_dim = math.prod(d + 1 for d in self.reps_dims.values())
        self.dropout = nn.Dropout(fusion_dropout)
        self.fusion_layer = nn.Linear(self.fused_dim, hidden)
        self.post_fusion = post_fusion(hidden)
        self.head = nn.Linear(hidden, 1)
        self.reps_dims["fusion"] = hidden

    def fuse(self, batch: Batch) -> torch.Tensor:
        """Return z [B, Π(d_m + 1)] for `batch` (see `tensor_fusion`)."""
        return tensor_fusion(list(self.subnets(batch).values()))

    def forward(self, batch: Batch) -> ModelOutput:
        reps = self.subnets(batch)
        z = tensor_fusion(list(reps.values()))
        fusion = self.post_fusion(self.fusion_layer(self.dropout(z)))
        reps["fusion"] = fusion
        return ModelOutput(self.head(fusion).squeeze(-1), reps)
