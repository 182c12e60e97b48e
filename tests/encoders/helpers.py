"""A tiny random BERT saved to disk, like a hub snapshot (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", *(
    "the movie was really good bad boring fun i liked it not at all plot actor".split())]


def tiny_config():
    """Return the config of a 2-layer BERT with hidden size 32 over `WORDS`."""
    import transformers

    return transformers.BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64,
                                   max_position_embeddings=64)


def save_tiny_bert(folder: Path) -> Path:
    """Write config.json, weights and tokenizer files ([PAD] has id 1) into `folder`."""
    import transformers

    torch.manual_seed(0)
    transformers.BertModel(tiny_config()).save_pretrained(folder)
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    tokenizer.save_pretrained(folder)  # writes vocab.txt, tokenizer.json, tokenizer_config.json
    return folder


def batch(ids: list[list[int]], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (input_ids, attention_mask) [B, T] of `ids` padded with `pad_id`."""
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(ids), width), dtype=torch.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return input_ids, mask
