"""Talking-heads cross-attention: one modality's frames (queries) attend over text token states.

Talking-heads attention (Shazeer et al., 2020) is multi-head attention whose heads exchange
information through two learned H×H mixing matrices, one on the attention logits before the
softmax and one on the attention weights after it. With queries Q = X W_q (from the frames X,
[B, T_q, d_q]) and keys/values K = S W_k, V = S W_v (from the text states S, [B, T_k, d_k]),
all of width d split into H heads of width d_h = d / H:

    L[b, h, i, j]  = <Q_h[b, i], K_h[b, j]> / √d_h               per-head logits
    L'[b, g, i, j] = Σ_h L[b, h, i, j] · P_logits[h, g]          mixed across heads
    A[b, g, i, :]  = softmax_j L'[b, g, i, j] over the real text tokens j (padding excluded;
                     a sample without any text token gets A = 0)
    A'[b, f, i, j] = Σ_g A[b, g, i, j] · P_weights[g, f]         mixed again
    O[b, i]        = W_o · concat_f (Σ_j A'[b, f, i, j] V_f[b, j])

P_logits and P_weights are parameters (in `state_dict()`, trained with the model), initialised
to the identity, where the module is standard multi-head attention; the model learns how much
the heads talk. `CrossModalAttention` wraps it for a model: it projects the frames to width d,
adds the attention output as a residual, applies layer norm, and pools over the real frames.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mimsa.encoders.sequence import masked_mean


class TalkingHeadsAttention(nn.Module):
    """Multi-head cross-attention with talking heads (see the module docstring).

    `forward(queries [B, Tq, d], keys [B, Tk, d_kv], key_mask [B, Tk])` returns the attended
    values [B, Tq, d] (after the output projection W_o); `last_weights` keeps the mixed weights
    A' [B, H, Tq, Tk] of the last call, for inspection.
    """

    def __init__(self, dim: int, kv_dim: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"talking-heads attention: width {dim} must be a positive multiple "
                             f"of the number of heads {heads} (model option attn_dim / heads)")
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.mix_logits = nn.Parameter(torch.eye(heads))
        self.mix_weights = nn.Parameter(torch.eye(heads))
        self.dropout = nn.Dropout(dropout)
        self.last_weights: torch.Tensor | None = None

    def reset_mixing(self) -> None:
        """Set both head-mixing matrices to the identity (plain multi-head attention)."""
        with torch.no_grad():
            self.mix_logits.copy_(torch.eye(self.heads))
            self.mix_weights.copy_(torch.eye(self.heads))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [B, H, T, d_h]

    def forward(self, queries: torch.Tensor, keys: torch.Tensor,
                key_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.q(queries)), self._split(self.k(keys)), self._split(self.v(keys))
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, H, Tq, Tk]
        logits = torch.einsum("bhij,hg->bgij", logits, self.mix_logits)
        real = key_mask.bool()[:, None, None, :]
        logits = logits.masked_fill(~real, torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits, dim=-1)
        has_keys = real.any(-1, keepdim=True).to(weights.dtype)
        weights = weights * has_keys  # a sample without any text token attends to nothing
        weights = torch.einsum("bgij,gf->bfij", weights, self.mix_weights)
        self.last_weights = weights.detach()
        attended = self.dropout(weights) @ v  # [B, H, Tq, d_h]
        b, _, t, _ = attended.shape
        return self.out(attended.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class CrossModalAttention(nn.Module):
    """Frames of one modality attend over text states; returns one vector per sample.

    h = W_out · masked_mean_frames( LayerNorm( x + Dropout(TalkingHeads(x, S, mask_S)) ) ),
    x = W_in · frames, where frames [B, T, d_in] are real for t < lengths, S [B, T_k, d_kv]
    the text states with mask [B, T_k]. Returns h [B, out_dim].
    """

    def __init__(self, in_dim: int, kv_dim: int, dim: int, out_dim: int, heads: int = 4,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, dim)
        self.attention = TalkingHeadsAttention(dim, kv_dim, heads, dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, out_dim)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor, states: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        x = self.project(frames)
        x = self.norm(x + self.dropout(self.attention(x, states, mask)))
        steps = torch.arange(frames.shape[1], device=frames.device)
        frame_mask = steps[None, :] < lengths.to(frames.device).clamp(min=1)[:, None]
        return self.output(self.dropout(masked_mean(x, frame_mask)))
