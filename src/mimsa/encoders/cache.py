"""What pretrained text encoders keep in memory, as one object a run owns.

An `EncoderCache` holds, for the run that created it (or the runs it is passed to):
  tokenizers        loaded tokenizers, per tokenizer folder
  token ids         token id arrays and pad id, per (tokenizer files, max_length, texts) key
                    (the disk copy under <cache>/tokens stays; see encoders/tokens.py)
  tokenizer words   the word segmentation text corruptions use, per tokenizer folder
  frozen states     a frozen encoder's last-layer states per token-id sequence, per weights
                    folder, bounded by $MIMSA_FROZEN_CACHE_MB (default 4096 MiB, read when the
                    cache is created)
  weight digests    the sha256 of a frozen encoder's weights, per weights folder

`train_run` makes a fresh one unless given one; `train_seeds` passes one to all its seeds, so a
frozen encoder encodes each transcript once for every seed. Nothing here is module state:
dropping the object frees its memory.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from mimsa.errors import ConfigError

FROZEN_CACHE_ENV = "MIMSA_FROZEN_CACHE_MB"
DEFAULT_FROZEN_CACHE_MB = 4096.0


def frozen_cache_limit() -> float:
    """Return the frozen-state budget in bytes from $MIMSA_FROZEN_CACHE_MB (MiB, default 4096).

    Raises ConfigError when the variable is not a number >= 0.
    """
    text = os.environ.get(FROZEN_CACHE_ENV)
    if text is None or not text.strip():
        return DEFAULT_FROZEN_CACHE_MB * 2**20
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{FROZEN_CACHE_ENV}='{text}' is not a size; set it to a number of "
                          f"MiB >= 0 (default {DEFAULT_FROZEN_CACHE_MB:g}) or unset it")
    return value * 2**20


class EncoderCache:
    """Tokenizers, token ids, tokenizer words, frozen states and weight digests (see module).

    `frozen_limit_bytes` defaults to $MIMSA_FROZEN_CACHE_MB, read here, once.
    """

    def __init__(self, frozen_limit_bytes: float | None = None) -> None:
        self.frozen_limit = (frozen_cache_limit() if frozen_limit_bytes is None
                             else float(frozen_limit_bytes))
        self.frozen_bytes = 0
        self.tokenizers: dict[str, Any] = {}
        self.token_ids: dict[str, tuple[list[np.ndarray], int]] = {}
        self.tokenizer_words: dict[str, Any] = {}
        self.frozen: dict[str, dict[bytes, torch.Tensor]] = {}
        self.weight_digests: dict[str, str] = {}

    def frozen_states(self, weights_dir: str) -> dict[bytes, torch.Tensor]:
        """Return the (shared, mutable) states of the frozen encoder from `weights_dir`:
        token-id bytes → last-layer states [T, H]."""
        return self.frozen.setdefault(str(weights_dir), {})

    def keep(self, row: torch.Tensor) -> bool:
        """Return True (and count its bytes) if `row` fits under the frozen-state budget: beyond
        it, e.g. with text corrupted afresh every epoch, new sequences are encoded, not kept."""
        size = row.numel() * row.element_size()
        if self.frozen_bytes + size > self.frozen_limit:
            return False
        self.frozen_bytes += size
        return True

    def clear(self) -> None:
        """Forget everything held (frees the memory; the disk token cache stays)."""
        self.frozen_bytes = 0
        for held in (self.tokenizers, self.token_ids, self.tokenizer_words, self.frozen,
                     self.weight_digests):
            held.clear()
