"""Choose and build the text encoder a model uses, from the data and the `encoder` config.

Text input kinds:
  embedding   the dataset's own token ids (e.g. `synthetic`) → Embedding → LSTM
  vocab       raw transcripts split on whitespace, a word vocabulary built on the TRAIN split
              (words seen fewer than twice map to <unk>) → Embedding → LSTM
  features    the dataset's text feature sequences (e.g. GloVe, text-CNN) → LSTM
  <name>      a pretrained transformer (`minilm`, `mpnet`, a hub id in the local cache, a path)
  auto        embedding if the dataset has token ids with their own vocabulary, else vocab if
              it has transcripts, else features (token ids of a pretrained tokenizer, e.g. the
              BERT ids of an MMSA pickle, need that tokenizer's model: name it)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.data.context import ContextWindow
from mimsa.data.corruptions import TokenizerWords
from mimsa.data.dataset import DataError, MultimodalDataset
from mimsa.encoders.cache import EncoderCache
from mimsa.encoders.sequence import LSTMEncoder, lengths_to_mask
from mimsa.encoders.text import TextEncoder
from mimsa.encoders.tokens import attach_token_ids, tokenizer_words
from mimsa.encoders.weights import resolve_encoder
from mimsa.errors import ConfigError

LOCAL_KINDS = ("auto", "embedding", "vocab", "features")


@dataclass
class TextSpec:
    """How text reaches the model; saved with every checkpoint so evaluation rebuilds it."""

    kind: str = ""  # "embedding" | "features" | "pretrained" | "" (no text)
    source: str = ""  # the encoder name the user asked for
    vocab_size: int | None = None
    pad_id: int = 0
    encoder_dir: str | None = None
    words: list[str] | None = field(default=None, repr=False)
    # data.context ({before, after}) the token ids were built with; None: the segment alone
    context: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TextOutput:
    """A text encoder's result: vector [B, D], token states [B, T, D_s], mask [B, T]."""

    vector: torch.Tensor
    states: torch.Tensor
    mask: torch.Tensor


AUTO_CHOICES = {
    "embedding": "the dataset's own token ids and vocabulary",
    "vocab": "the transcripts, with a word vocabulary built on the train split",
    "features": "the dataset's text feature sequences",
}


def auto_text_kind(dataset: MultimodalDataset) -> str:
    """Return the text input kind `encoder.name=auto` picks for `dataset` (see the module
    docstring); raises DataError when the dataset offers no text input at all."""
    if dataset.text_ids is not None and dataset.vocab_size is not None:
        return "embedding"
    if dataset.text is not None:
        return "vocab"
    if dataset.text_feats is not None:
        return "features"
    raise DataError(f"{dataset.name}: no text input a local encoder can read (no transcripts, "
                    f"no text features, token ids without a vocabulary); name a pretrained "
                    f"encoder with encoder.name=<folder>, or drop text with data.modalities")


def prepare_text(dataset: MultimodalDataset, encoder_cfg: dict,
                 saved: TextSpec | None = None, cache: EncoderCache | None = None,
                 context: dict | None = None) -> TextSpec:
    """Decide the text input kind, attach token ids to `dataset` if needed; return the spec.

    `context` (`data.context`) adds each segment's neighbours to a pretrained encoder's
    token ids (`mimsa.encoders.tokens`). `saved` (from a checkpoint) reuses the recorded
    vocabulary so ids match the trained model;
    `cache` (the run's) keeps the tokenizer and token ids of a pretrained encoder. Raises
    DataError when the dataset lacks what the kind needs, EncoderError when a pretrained
    encoder cannot be found offline.
    """
    name = str(encoder_cfg.get("name", "auto"))
    if "t" not in dataset.modalities:
        return TextSpec()
    if name == "auto":
        name = auto_text_kind(dataset)
    if context and name in ("embedding", "vocab", "features"):
        raise ConfigError(f"data.context needs a pretrained text encoder (this run reads text "
                          f"with '{name}'); set encoder.name=minilm|mpnet|<folder>, or "
                          f"data.context: null")
    if name == "embedding":
        if dataset.text_ids is None or dataset.vocab_size is None:
            raise DataError(f"{dataset.name}: encoder 'embedding' needs token ids with a "
                            f"vocabulary; this dataset has none (try encoder.name=vocab)")
        return TextSpec("embedding", name, dataset.vocab_size, 0)
    if name == "vocab":
        if dataset.text is None:
            raise DataError(f"{dataset.name}: encoder 'vocab' needs transcripts; this "
                            f"dataset has none")
        words = saved.words if saved and saved.words else build_vocabulary(dataset)
        index = {w: i for i, w in enumerate(words)}
        dataset.text_ids = [np.array([index.get(w, 1) for w in t.lower().split()] or [1],
                                     dtype=np.int64) for t in dataset.text]
        dataset.vocab_size = len(words)
        return TextSpec("embedding", name, len(words), 0, words=words)
    if name == "features":
        if dataset.text_feats is None:
            raise DataError(f"{dataset.name}: encoder 'features' needs text feature "
                            f"sequences; this dataset has none (try encoder.name=vocab, or "
                            f"minilm for a model that needs a pretrained transformer)")
        return TextSpec("features", name)
    encoder_dir = resolve_encoder(name)
    window = ContextWindow.from_config(context)
    pad_id = attach_token_ids(dataset, encoder_dir, int(encoder_cfg.get("max_length", 50)),
                              cache, window)
    return TextSpec("pretrained", name, None, pad_id, str(encoder_dir),
                    context=None if window is None else asdict(window))


def text_words(spec: TextSpec, cache: EncoderCache | None = None) -> TokenizerWords | None:
    """Return the word segmentation the text corruptions need for text given as `spec`: the
    tokenizer's for a pretrained encoder, None otherwise (own-vocabulary ids are words, and
    feature frames are words). Pass it to `Corruption.bind` / `Augmentation.bind`."""
    if spec.kind != "pretrained":
        return None
    return tokenizer_words(str(spec.encoder_dir), cache)


def build_vocabulary(dataset: MultimodalDataset, min_count: int = 2) -> list[str]:
    """Return the word list (<pad>, <unk>, then train-split words seen >= min_count times)."""
    counts = Counter(w for i in dataset.indices("train") for w in dataset.text[i].lower().split())
    return ["<pad>", "<unk>", *sorted(w for w, c in counts.items() if c >= min_count)]


class EmbeddingTextEncoder(nn.Module):
    """Token ids → trainable embedding → LSTM (see `LSTMEncoder`)."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden: int, out_dim: int,
                 dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.lstm = LSTMEncoder(emb_dim, hidden, out_dim, dropout=dropout)
        self.out_dim = out_dim
        self.state_dim = hidden

    def forward(self, batch: Batch) -> TextOutput:
        lengths = batch.text_mask.sum(1)
        vector, states = self.lstm(self.embedding(batch.text_ids), lengths)
        return TextOutput(vector, states, batch.text_mask)


class FeatureTextEncoder(nn.Module):
    """Text feature sequences → LSTM (see `LSTMEncoder`)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.lstm = LSTMEncoder(in_dim, hidden, out_dim, dropout=dropout)
        self.out_dim = out_dim
        self.state_dim = hidden

    def forward(self, batch: Batch) -> TextOutput:
        vector, states = self.lstm(batch.text_feats, batch.text_feats_lengths)
        mask = lengths_to_mask(batch.text_feats_lengths, batch.text_feats.shape[1])
        return TextOutput(vector, states, mask)


class PretrainedTextEncoder(nn.Module):
    """A pretrained transformer; its parameters live under `.encoder.pretrained`."""

    def __init__(self, encoder_dir: str, pooling: str, freeze: bool) -> None:
        super().__init__()
        self.encoder = TextEncoder(encoder_dir, pooling=pooling, freeze=freeze)
        self.out_dim = self.encoder.out_dim
        self.state_dim = self.encoder.out_dim

    def forward(self, batch: Batch) -> TextOutput:
        vector, states, mask = self.encoder(batch.text_ids, batch.text_mask)
        return TextOutput(vector, states, mask)


def build_text_encoder(spec: TextSpec, dims: dict[str, int], encoder_cfg: dict,
                       out_dim: int, dropout: float = 0.1) -> nn.Module:
    """Return the text encoder module for `spec` (its `.out_dim` is the vector size)."""
    hidden = int(encoder_cfg.get("hidden", 64))
    if spec.kind == "embedding":
        return EmbeddingTextEncoder(int(spec.vocab_size), int(encoder_cfg.get("emb_dim", 64)),
                                    hidden, out_dim, dropout)
    if spec.kind == "features":
        return FeatureTextEncoder(dims["text_feats"], hidden, out_dim, dropout)
    if spec.kind == "pretrained":
        return PretrainedTextEncoder(str(spec.encoder_dir), str(encoder_cfg.get("pooling", "cls")),
                                     bool(encoder_cfg.get("freeze", False)))
    raise ValueError(f"no text encoder for text kind '{spec.kind}'")
