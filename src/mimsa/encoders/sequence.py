"""Sequence encoders: padded [B, T, D] sequences with lengths → one vector per sample."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class LSTMEncoder(nn.Module):
    """LSTM over the unpadded sequence; final hidden state → dropout → Linear(hidden, out_dim).

    `forward` returns (vector [B, out_dim], per-step outputs [B, T, hidden * directions]).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional,
                            dropout=dropout if layers > 1 else 0.0)
        directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden * directions, out_dim)
        self.out_dim = out_dim
        self.state_dim = hidden * directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        outputs, (h_n, _) = self.lstm(packed)
        states, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
        if self.lstm.bidirectional:
            last = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        else:
            last = h_n[-1]
        return self.proj(self.dropout(last)), states


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return the mean of `states` [B, T, D] over positions where `mask` [B, T] is non-zero."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def lengths_to_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Return a [B, width] int64 mask with 1 on the first `lengths[b]` positions."""
    steps = torch.arange(width, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).long()
