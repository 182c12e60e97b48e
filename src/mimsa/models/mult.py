"""`mult`: Multimodal Transformer for unaligned sequences (Tsai et al., ACL 2019).

Tsai, Bai, Liang, Kolter, Morency, Salakhutdinov: "Multimodal Transformer for Unaligned
Multimodal Language Sequences", ACL 2019.

Inputs, per present modality m, a sequence X_m [B, T_m, D_m] with its real length (the
modalities may have different lengths: nothing is aligned):
  text     the configured text encoder's token states (a pretrained transformer's last layer,
           or the local encoders' LSTM outputs) with the token mask, after Dropout(text_dropout)
  audio    the frames, as given
  vision
Padded positions are set to 0 first, so nothing beyond a sequence's end reaches the model.

  1. Temporal convolution: P_m = Conv1d(D_m → d, kernel k_m, 'same' padding, no bias)(X_m)
     [B, T_m, d] (paper: temporal convolutions).
  2. Each transformer below first embeds its inputs as Dropout(√d · P + PE) with sinusoidal
     positions PE (paper: positional embedding; the published code).
  3. Crossmodal transformer source → target for every ordered pair of present modalities
     (paper: crossmodal transformers): `layers` pre-norm blocks, each
         Y ← Y + Dropout(MHA(LN(Y), LN(X), LN(X)))     queries: the target's steps; keys and
                                                       values: the source's, padding masked
         Y ← Y + Dropout(FFN(LN(Y)))                   FFN = Linear(d, 4d) → ReLU → Dropout →
                                                       Linear(4d, d)
     then a final LayerNorm. X is the embedded source, the same at every block.
  4. Per target m: its crossmodal outputs concatenated, Z_m [B, T_m, (n−1)·d], through a
     self-attention transformer (`self_layers` blocks of the same form with X = Y, width
     (n−1)·d); its output at the target's LAST REAL step (index length − 1) is h_m.
  5. c = concat_m h_m → residual MLP: f = c + Linear(Dropout(ReLU(Linear(c)))) → score =
     Linear(f) (paper: self-attention transformers and prediction; the published code's
     output block).

Any two or three modalities give the published model. ONE modality has no crossmodal pair: its
projected sequence goes straight to its self-attention transformer (width d) — a unimodal
transformer encoder, so that single-modality runs and ablations work like the other models.

reps: "t", "a", "v" = h_m, the vector each target contributes at the point of fusion, width
(n−1)·d (d with one modality); "fusion" = f, width n·(n−1)·d (d with one modality).

Differences from the published code (read, not copied): it applies no padding mask (sequences
were padded to fixed lengths) and, by default, a causal ("future") attention mask; here keys
are masked at padding and nothing is causal. It normalises queries and keys with one LayerNorm
per block; here they have one each. Its sinusoidal positions skip entries whose first feature is
0 (its padding convention); here positions are 0..T−1. Dropout on attention weights is one
`attn_dropout` for every target (the code has one per target modality).

On our data: `mosi` has text + ONE audio frame per utterance (no vision), so the text target
attends to a single audio key (its softmax is 1: each text step receives the same audio value
vector), the audio target attends over the text tokens, and the audio self-attention runs on
one step; `mosi-poria` has text + one audio and one visual frame (the same reduction for both);
`synthetic` has real frame sequences (10-40 frames, text 5-30 tokens), where the whole path runs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import build_text_encoder
from mimsa.encoders.sequence import lengths_to_mask
from mimsa.errors import ConfigError
from mimsa.models.base import (
    Count,
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None
                         ) -> torch.Tensor:
    """Return PE [length, dim]: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same)
    (Vaswani et al. 2017)."""
    position = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device)
                     * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(position * rate)
    pe[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return pe


def any_key(mask: torch.Tensor) -> torch.Tensor:
    """Return the key mask [B, T] (True = real) with position 0 marked real in rows that have
    no real position, so attention over them stays finite (it reads the zeroed padding)."""
    empty = ~mask.any(dim=1)
    if bool(empty.any()):
        mask = mask.clone()
        mask[empty, 0] = True
    return mask


class CrossmodalBlock(nn.Module):
    """One pre-norm transformer block; queries [B, Tq, d] attend over keys [B, Tk, d] whose
    real positions are `key_mask` [B, Tk] (True = real). Returns [B, Tq, d]."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, relu_dropout: float,
                 res_dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = (nn.LayerNorm(dim) for _ in range(3))
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attn_dropout,
                                               batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(relu_dropout),
                                nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(res_dropout)

    def forward(self, y: torch.Tensor, x: torch.Tensor | None,
                key_mask: torch.Tensor) -> torch.Tensor:
        query = self.norm_q(y)
        keys = query if x is None else self.norm_kv(x)
        attended, _ = self.attention(query, keys, keys, key_padding_mask=~key_mask,
                                     need_weights=False)
        y = y + self.dropout(attended)
        return y + self.dropout(self.ff(self.norm_ff(y)))


class CrossmodalTransformer(nn.Module):
    """`layers` blocks: target [B, Tq, d] attends over source [B, Tk, d] (real where
    `source_mask` [B, Tk]); source None = self-attention over the target (mask of the target).
    Inputs are embedded as Dropout(√d · x + PE); returns LayerNorm(output) [B, Tq, d]."""

    def __init__(self, dim: int, heads: int, layers: int, attn_dropout: float = 0.1,
                 relu_dropout: float = 0.1, res_dropout: float = 0.1,
                 embed_dropout: float = 0.25) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ConfigError(f"model 'mult': width {dim} must be a positive multiple of "
                              f"heads={heads} (model.dim, model.heads; the self-attention width "
                              f"is (modalities − 1)·dim)")
        self.scale = math.sqrt(dim)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.blocks = nn.ModuleList(CrossmodalBlock(dim, heads, attn_dropout, relu_dropout,
                                                    res_dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        positions = sinusoidal_positions(x.shape[1], x.shape[2], x.device)
        return self.embed_dropout(self.scale * x + positions)

    def forward(self, target: torch.Tensor, source: torch.Tensor | None,
                source_mask: torch.Tensor) -> torch.Tensor:
        y = self.embed(target)
        x = None if source is None else self.embed(source)
        key_mask = any_key(source_mask)
        for block in self.blocks:
            y = block(y, x, key_mask)
        return self.norm(y)


@register_model("mult")
class MulT(Model):
    """Multimodal Transformer: crossmodal transformers for every ordered modality pair, a
    self-attention transformer per target, the last real steps → residual MLP → score.

    See the module docstring; works with any non-empty subset of t, a, v.
    """

    def __init__(self, spec: InputSpec, dim: Width = 30, heads: Width = 5, layers: Count = 5,
                 self_layers: Count = 5, text_kernel: Width = 1, audio_kernel: Width = 1,
                 vision_kernel: Width = 1, text_dropout: Dropout = 0.25,
                 embed_dropout: Dropout = 0.25, attn_dropout: Dropout = 0.1,
                 relu_dropout: Dropout = 0.1, res_dropout: Dropout = 0.1,
                 out_dropout: Dropout = 0.0) -> None:
        super().__init__()
        require_modalities("mult", spec)
        self.modalities = spec.modalities
        kernels = {"t": text_kernel, "a": audio_kernel, "v": vision_kernel}
        in_dims: dict[str, int] = {}
        if "t" in spec.modalities:
            self.text_encoder = build_text_encoder(spec.text, spec.dims, spec.encoder, dim,
                                                   text_dropout)
            in_dims["t"] = int(self.text_encoder.state_dim)
        in_dims.update({m: spec.dims[name] for m, name in (("a", "audio"), ("v", "vision"))
                        if m in spec.modalities})
        self.text_dropout = nn.Dropout(text_dropout)
        self.project = nn.ModuleDict()
        for m in self.modalities:
            if kernels[m] < 1 or kernels[m] % 2 == 0:
                raise ConfigError(f"model 'mult': kernel sizes must be odd and >= 1 (a 'same' "
                                  f"convolution); got {kernels[m]} for {m} (model.text_kernel, "
                                  f"audio_kernel, vision_kernel)")
            self.project[m] = nn.Conv1d(in_dims[m], dim, kernels[m], padding=kernels[m] // 2,
                                        bias=False)
        transformer = dict(heads=heads, attn_dropout=attn_dropout, relu_dropout=relu_dropout,
                           res_dropout=res_dropout, embed_dropout=embed_dropout)
        self.cross = nn.ModuleDict(
            {f"{source}_to_{target}": CrossmodalTransformer(dim, layers=layers, **transformer)
             for target in self.modalities for source in self.modalities if source != target})
        width = dim * max(1, len(self.modalities) - 1)
        self.memory = nn.ModuleDict(
            {m: CrossmodalTransformer(width, layers=self_layers, **transformer)
             for m in self.modalities})
        combined = width * len(self.modalities)
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out_dropout = nn.Dropout(out_dropout)
        self.head = nn.Linear(combined, 1)
        self.reps_dims = {m: width for m in self.modalities}
        self.reps_dims["fusion"] = combined

    def sequences(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Return {m: (X_m [B, T_m, D_m] with padding zeroed, mask [B, T_m] bool)}."""
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if "t" in self.modalities:
            text = self.text_encoder(batch)
            out["t"] = (self.text_dropout(text.states), text.mask.bool())
        for m, frames, lengths in (("a", batch.audio, batch.audio_lengths),
                                   ("v", batch.vision, batch.vision_lengths)):
            if m in self.modalities:
                out[m] = (frames, lengths_to_mask(lengths.to(frames.device),
                                                  frames.shape[1]).bool())
        return {m: (x * mask.unsqueeze(-1).to(x.dtype), mask) for m, (x, mask) in out.items()}

    def forward(self, batch: Batch) -> ModelOutput:
        inputs = self.sequences(batch)
        projected = {m: self.project[m](x.transpose(1, 2)).transpose(1, 2)
                     for m, (x, _) in inputs.items()}
        reps: dict[str, torch.Tensor] = {}
        for target in self.modalities:
            mask = inputs[target][1]
            parts = [self.cross[f"{source}_to_{target}"](projected[target], projected[source],
                                                         inputs[source][1])
                     for source in self.modalities if source != target]
            z = torch.cat(parts, dim=-1) if parts else projected[target]
            states = self.memory[target](z, None, mask)
            last = (mask.long().sum(1) - 1).clamp(min=0)
            reps[target] = states[torch.arange(states.shape[0], device=states.device), last]
        c = torch.cat([reps[m] for m in self.modalities], dim=-1)
        fusion = c + self.proj2(self.out_dropout(torch.relu(self.proj1(c))))
        reps["fusion"] = fusion
        return ModelOutput(self.head(fusion).squeeze(-1), reps)
