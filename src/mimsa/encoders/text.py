"""A pretrained Hugging Face transformer as a text encoder: token ids → pooled vector + states.

The weights come from a local folder (`resolve_encoder` in encoders/weights.py: minilm, mpnet,
a directory, a hub id already in the local cache), loaded with local_files_only=True: nothing is
downloaded. Token ids come from encoders/tokens.py. A frozen encoder (`freeze=True`) encodes
each distinct token sequence once and keeps its states in an `EncoderCache`
(encoders/cache.py): its own by default, the run's after `share_cache(model, cache)`, which is
how later epochs and seeds of a run skip the transformer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from mimsa.encoders.cache import EncoderCache
from mimsa.encoders.tokens import load_tokenizer
from mimsa.encoders.weights import resolve_encoder
from mimsa.errors import ConfigError

POOLINGS = ("cls", "mean", "segment")


class TextEncoder(nn.Module):
    """A pretrained transformer (under `.pretrained`) → (pooled [B, H], states [B, T, H], mask).

    pooling: 'cls' = last-layer state of the first token (not the pooler head, which is dropped);
    'mean' = mean of the last-layer states over real tokens; 'segment' = mean over the tokens
    of the first segment only, between the first token and the first separator (with
    `data.context` the segment's own words, whose states have attended to the context;
    without context, the words without the special tokens). freeze=True: no gradients, the
    transformer stays in eval mode (no dropout), and each distinct token sequence is encoded
    once, unpadded (sequences of equal length together), then served from `cache` (states per
    weights folder, so every frozen encoder built from the same weights and given the same
    cache shares them; no padding reaches a sample's states). Padded positions are zero.
    `cache` defaults to a fresh `EncoderCache`; see `share_cache`. Raises ValueError on an
    unknown pooling and EncoderError when `source` cannot be resolved offline.
    """

    def __init__(self, source: str | Path | nn.Module, pooling: str = "cls",
                 freeze: bool = False, cache: EncoderCache | None = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"text encoder pooling '{pooling}' is unknown; use one of "
                             f"{', '.join(POOLINGS)}")
        if isinstance(source, nn.Module):
            model = source
        else:
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # one bar per load clutters every run's output
            model = AutoModel.from_pretrained(str(resolve_encoder(source)),
                                              local_files_only=True, dtype=torch.float32)
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # unused: keeps dead parameters out of the optimiser
        self.pretrained = model
        self.out_dim = int(model.config.hidden_size)
        self.pooling = pooling
        self.sep_id = _separator_id(source, model) if pooling == "segment" else None
        self.freeze = freeze
        # The folder the weights were loaded from (None for a module passed in): frozen weights
        # from a folder are left out of checkpoints and reloaded from it (train/checkpoint.py).
        self.weights_dir = None if isinstance(source, nn.Module) else str(resolve_encoder(source))
        self._frozen_states: dict[bytes, torch.Tensor] = {}
        self.use_cache(cache if cache is not None else EncoderCache())
        if freeze:
            self.pretrained.requires_grad_(False)
            self.pretrained.eval()

    def use_cache(self, cache: EncoderCache) -> None:
        """Keep frozen states and the weights digest in `cache` from now on (states of an
        encoder built from a module, not a folder, stay its own)."""
        self.cache = cache
        if self.reloadable:
            self._frozen_states = cache.frozen_states(self.weights_dir)

    @classmethod
    def from_config(cls, config, pooling: str = "cls", freeze: bool = False) -> TextEncoder:
        """Build a randomly initialised encoder from a `transformers` config (for tests)."""
        from transformers import AutoModel

        return cls(AutoModel.from_config(config), pooling=pooling, freeze=freeze)

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.freeze:
            self.pretrained.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """input_ids, attention_mask [B, T] → (pooled [B, H], states [B, T, H], mask [B, T])."""
        if self.freeze:
            states = self._cached_states(input_ids, attention_mask)
        else:
            states = self.pretrained(input_ids=input_ids,
                                     attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        elif self.pooling == "segment":
            pooled = first_segment_mean(states, input_ids, attention_mask, int(self.sep_id))
        else:
            weights = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return pooled, states, attention_mask

    @property
    def reloadable(self) -> bool:
        """True when the transformer is frozen and its weights come from a folder, so a
        checkpoint need not store them."""
        return self.freeze and self.weights_dir is not None

    def weights_sha256(self) -> str:
        """Return the sha256 of the transformer's weights (names and bytes, in name order);
        for a reloadable encoder computed once per cache and weights folder."""
        digests = self.cache.weight_digests
        if self.reloadable and self.weights_dir in digests:
            return digests[self.weights_dir]
        digest = hashlib.sha256()
        for name, tensor in sorted(self.pretrained.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        if self.reloadable:
            digests[self.weights_dir] = digest.hexdigest()
        return digest.hexdigest()

    @torch.no_grad()
    def _cached_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                       ) -> torch.Tensor:
        """Return the frozen last-layer states [B, T, H] (zeros on padding), encoding unseen
        sequences once, unpadded: those of equal length together, so no padding enters."""
        keys, unseen = [], {}
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            real = ids[mask.bool()]
            key = real.cpu().numpy().tobytes()
            keys.append(key)
            if key not in self._frozen_states:
                unseen[key] = real
        by_length: dict[int, list[bytes]] = {}
        for key, real in unseen.items():
            by_length.setdefault(len(real), []).append(key)
        for group in by_length.values():
            states = self.pretrained(input_ids=torch.stack([unseen[k] for k in group])
                                     ).last_hidden_state
            for key, row in zip(group, states, strict=True):
                unseen[key] = row.clone()
                if self.cache.keep(row):
                    self._frozen_states[key] = unseen[key]
        states = torch.zeros(len(keys), input_ids.shape[1], self.out_dim,
                             device=input_ids.device)
        for i, key in enumerate(keys):
            row = self._frozen_states[key] if key in self._frozen_states else unseen[key]
            states[i, : row.shape[0]] = row
        return states


def share_cache(model: nn.Module, cache: EncoderCache) -> int:
    """Make every `TextEncoder` inside `model` keep its frozen states and weights digest in
    `cache` (e.g. the run's, shared by its seeds); return how many there are."""
    encoders = [m for m in model.modules() if isinstance(m, TextEncoder)]
    for encoder in encoders:
        encoder.use_cache(cache)
    return len(encoders)


def first_segment_mean(states: torch.Tensor, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor, sep_id: int) -> torch.Tensor:
    """Return the mean of `states` [B, T, H] over positions 1 .. (first `sep_id` after
    position 0) - 1 of each row, real tokens only → [B, H]. A row whose first segment is empty
    falls back to the mean over all its real tokens."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    is_sep = (input_ids == sep_id) & (positions >= 1)
    first_sep = torch.where(is_sep, positions, input_ids.shape[1]).min(dim=1, keepdim=True).values
    weights = ((positions >= 1) & (positions < first_sep) & attention_mask.bool())
    empty = weights.sum(1, keepdim=True) == 0
    weights = torch.where(empty, attention_mask.bool(), weights).unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def _separator_id(source: str | Path | nn.Module, model: nn.Module) -> int:
    """Return the separator token id of the encoder's tokenizer (or its config's)."""
    if not isinstance(source, nn.Module):
        sep = load_tokenizer(resolve_encoder(source)).sep_token_id
    else:
        sep = getattr(model.config, "sep_token_id", None)
    if sep is None:
        raise ConfigError("encoder.pooling=segment needs a tokenizer with a separator token; "
                          "this encoder has none; use cls or mean")
    return int(sep)
