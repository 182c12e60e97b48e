"""Token ids for a pretrained text encoder: load its tokenizer, tokenise a dataset once.

Token ids are kept in two places: in an `EncoderCache` when the caller passes one (a run does),
and on disk in <cache>/tokens/<key>.npz, where the key is a sha1 over the tokenizer folder and
files, max_length and the texts; so a dataset is tokenised once per tokenizer and length, and
a later run reads the arrays back. Tokenizers load offline (local_files_only=True).

With conversational context (`data.context`, `mimsa.data.context`), a sample's ids are the
tokenizer's pair encoding of (own transcript, context): the segment's own words come first and
whole, so the model always knows which utterance it scores (and BERT-style encoders' pooled
[CLS] sits next to them); the second sequence holds the neighbours in time order with the
separator token between them and the mask token where the segment itself stands:
`[CLS] own [SEP] b2 [SEP] b1 [SEP] [MASK] [SEP] a1 [SEP]` (see `context_ids`).

`tokenizer_words` describes how the tokenizer's ids make words, which the text corruptions need
(data/corruptions.py): the caller computes it here and hands it to `Corruption.bind`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimsa.data.context import ContextWindow, neighbours
from mimsa.data.corruptions import TokenizerWords
from mimsa.encoders.weights import cache_root
from mimsa.errors import ConfigError, DataError

if TYPE_CHECKING:
    from mimsa.data.dataset import MultimodalDataset
    from mimsa.encoders.cache import EncoderCache

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                   "sentencepiece.bpe.model")


def load_tokenizer(tokenizer_dir: str | Path, cache: EncoderCache | None = None):
    """Return the tokenizer saved in `tokenizer_dir`, offline; kept in `cache` when given."""
    folder = str(Path(tokenizer_dir).expanduser().resolve())
    if cache is not None and folder in cache.tokenizers:
        return cache.tokenizers[folder]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if cache is not None:
        cache.tokenizers[folder] = tokenizer
    return tokenizer


def pad_token_id(tokenizer_dir: str | Path, cache: EncoderCache | None = None) -> int:
    """Return the tokenizer's pad id (else its eos id, else 0: the mask hides pads anyway)."""
    return _pad_id(load_tokenizer(tokenizer_dir, cache))


def _pad_id(tokenizer) -> int:
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if value is not None:
            return int(value)
    return 0


def tokenize_texts(texts: list[str], tokenizer_dir: str | Path, max_length: int = 50,
                   cache: EncoderCache | None = None) -> list[np.ndarray]:
    """Return one int64 id array per text (special tokens included, truncated, not padded).

    Kept in `cache` (when given) and on disk (<cache>/tokens), keyed by the tokenizer directory
    and files, `max_length` and the texts. Raises ValueError when `max_length` < 2 or exceeds
    the tokenizer's own limit.
    """
    return _tokenize(texts, tokenizer_dir, max_length, cache)[0]


def attach_token_ids(dataset: MultimodalDataset, tokenizer_dir: str | Path,
                     max_length: int = 50, cache: EncoderCache | None = None,
                     context: ContextWindow | None = None) -> int:
    """Set `dataset.text_ids` from its transcripts with this tokenizer; return the pad id.

    With `context`, each sample's ids also hold its neighbours' transcripts (the module
    docstring; `context_ids`). Raises DataError when the dataset has no transcripts,
    ConfigError when its ids do not give the neighbours or the tokenizer has no separator or
    mask token.
    """
    if dataset.text is None:
        raise DataError(f"dataset {dataset.name} has no raw text; a pretrained text encoder "
                        f"needs transcripts (use encoder.name=features or a dataset with text)")
    if context is not None:
        ids, pad_id = _tokenize_with_context(dataset, context, tokenizer_dir, max_length, cache)
        dataset.text_ids = list(ids)
        dataset.vocab_size = None
        dataset.card.dims.pop("vocab", None)
        return pad_id
    ids, pad_id = _tokenize(dataset.text, tokenizer_dir, max_length, cache)
    dataset.text_ids = list(ids)
    dataset.vocab_size = None
    dataset.card.dims.pop("vocab", None)
    return pad_id


def tokenizer_words(tokenizer_dir: str | Path,
                    cache: EncoderCache | None = None) -> TokenizerWords:
    """Return how the tokenizer's ids make words (unknown token, special ids, word starts).

    A token starts a word unless it is a WordPiece "##" continuation, or lacks the
    sentencepiece "▁" / byte-BPE "Ġ" word marker in a vocabulary that uses one. Kept in `cache`
    when given.
    """
    folder = str(Path(tokenizer_dir).expanduser().resolve())
    if cache is not None and folder in cache.tokenizer_words:
        return cache.tokenizer_words[folder]
    tokenizer = load_tokenizer(folder, cache)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    tokens = ["" if t is None else str(t) for t in tokens]
    if any(t.startswith("##") for t in tokens):
        starts = np.array([not t.startswith("##") for t in tokens])
    elif any(t.startswith("▁") for t in tokens):
        starts = np.array([t.startswith("▁") for t in tokens])
    elif any(t.startswith("Ġ") for t in tokens):
        starts = np.array([t.startswith("Ġ") for t in tokens])
    else:
        starts = np.ones(len(tokens), dtype=bool)
    unk_id = tokenizer.unk_token_id
    words = TokenizerWords(
        unk_id=None if unk_id is None else int(unk_id),
        unk_token=None if unk_id is None else str(tokenizer.unk_token),
        special=frozenset(int(i) for i in tokenizer.all_special_ids), starts=starts,
        source=folder)
    if cache is not None:
        cache.tokenizer_words[folder] = words
    return words


# Models whose position ids start after the padding index (position = pad_id + 1 + i).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer")


def position_limit(folder: Path) -> int | None:
    """Return the most tokens the encoder in `folder` can take: the smaller of its config's
    `max_position_embeddings` (less the padding offset of RoBERTa-style position ids) and the
    tokenizer's declared `model_max_length`; None when neither file says. Reads the JSON
    files only (no model is loaded)."""
    limits = []
    config = _read_json(folder / "config.json")
    if isinstance(config.get("max_position_embeddings"), int):
        offset = 0
        if config.get("model_type") in _OFFSET_POSITIONS:
            offset = int(config.get("pad_token_id") or 0) + 1
        limits.append(config["max_position_embeddings"] - offset)
    declared = _read_json(folder / "tokenizer_config.json").get("model_max_length")
    if isinstance(declared, int | float) and 0 < declared < 1_000_000:
        limits.append(int(declared))
    return min(limits) if limits else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _tokenize(texts: list[str], tokenizer_dir: str | Path, max_length: int,
              cache: EncoderCache | None) -> tuple[list[np.ndarray], int]:
    folder = Path(tokenizer_dir).expanduser().resolve()
    _check_length(folder, max_length)
    def encode():
        tokenizer = load_tokenizer(folder, cache)
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length,
                            return_attention_mask=False, return_token_type_ids=False)
        return encoded["input_ids"], _pad_id(tokenizer)

    return _cached_ids(_token_key(folder, max_length, texts), len(texts), cache, encode)


def _cached_ids(key: str, count: int, cache: EncoderCache | None, encode
                ) -> tuple[list[np.ndarray], int]:
    """Return the `count` id arrays and pad id stored under `key`: from `cache`, else from
    <cache>/tokens/<key>.npz, else made by `encode()` -> (id lists, pad id) and stored in
    both."""
    if cache is not None and key in cache.token_ids:
        return cache.token_ids[key]
    path = cache_root() / "tokens" / f"{key}.npz"
    result = _read_tokens(path, count)
    if result is None:
        lists, pad_id = encode()
        lengths = np.array([len(x) for x in lists], dtype=np.int64)
        flat = np.fromiter((t for x in lists for t in x), dtype=np.int64, count=int(lengths.sum()))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        _write_tokens(path, flat, offsets, pad_id)
        result = _split(flat, offsets), pad_id
    if cache is not None:
        cache.token_ids[key] = result
    return result


def context_ids(own: list[int], before: list[list[int]], after: list[list[int]], room: int,
                sep: list[int], marker: int) -> tuple[list[int], list[int]]:
    """Return (own ids, context ids) that fit in `room` tokens together (special tokens of
    the pair encoding not counted).

    own     the segment's token ids (no special tokens); kept whole unless it alone exceeds
            `room`, then cut to `room` and the context left out
    before  earlier neighbours' ids, nearest last; `after`: later ones, nearest first
    sep     the separator ids put between neighbours; `marker`: the id standing for the
            segment itself inside the context (the tokenizer's mask token)

    Neighbours are added nearest first, alternating before/after (b1, a1, b2, a2, ...); the
    first that does not fit is trimmed at its far end (an earlier one loses its start, a
    later one its end) and the rest are left out. The context keeps time order:
    b_k sep ... b_1 sep marker sep a_1 ... sep a_k.
    """
    own = own[:room]
    left = room - len(own) - 1  # the marker
    if left < 0:
        return own, []
    kept_before: list[list[int]] = []
    kept_after: list[list[int]] = []
    nearest_before = list(reversed(before))
    order = [(side[k], side is nearest_before)
             for k in range(max(len(before), len(after)))
             for side in (nearest_before, after) if k < len(side)]
    for ids, earlier in order:
        cost = len(ids) + len(sep)
        if cost > left:
            keep = left - len(sep)
            if keep > 0:
                piece = ids[len(ids) - keep:] if earlier else ids[:keep]
                (kept_before if earlier else kept_after).append(piece)
            break
        (kept_before if earlier else kept_after).append(ids)
        left -= cost
    context: list[int] = []
    for ids in reversed(kept_before):
        context += [*ids, *sep]
    context.append(marker)
    for ids in kept_after:
        context += [*sep, *ids]
    return own, context


def _tokenize_with_context(dataset: MultimodalDataset, window: ContextWindow,
                           tokenizer_dir: str | Path, max_length: int,
                           cache: EncoderCache | None) -> tuple[list[np.ndarray], int]:
    folder = Path(tokenizer_dir).expanduser().resolve()
    found = neighbours(dataset, window)
    texts = dataset.text
    keyed = [f"{window.before}:{window.after}\x1f{texts[i]}\x1f"
             + "\x1e".join(texts[j] for j in before) + "\x1f" + "\x1e".join(texts[j] for j in after)
             for i, (before, after) in enumerate(found)]
    def encode():
        _check_length(folder, max_length)
        tokenizer = load_tokenizer(folder, cache)
        if tokenizer.sep_token_id is None or tokenizer.mask_token_id is None:
            raise ConfigError(f"data.context needs a tokenizer with a separator and a mask "
                              f"token; the one in {folder} lacks one; use data.context: null")
        plain = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                          return_token_type_ids=False)["input_ids"]
        prefix, middle, suffix = _pair_template(tokenizer)
        room = max_length - len(prefix) - len(middle) - len(suffix)
        if room < 2:
            raise ConfigError(f"encoder.max_length {max_length} leaves no room for a segment "
                              f"and its context; use a larger encoder.max_length")
        lists = []
        for i, (before, after) in enumerate(found):
            own, context = context_ids(plain[i], [plain[j] for j in before],
                                       [plain[j] for j in after], room,
                                       [tokenizer.sep_token_id], tokenizer.mask_token_id)
            lists.append([*prefix, *own, *middle, *context, *suffix])
        return lists, _pad_id(tokenizer)

    key = "context-" + _token_key(folder, max_length, keyed)
    return _cached_ids(key, len(texts), cache, encode)


def _pair_template(tokenizer) -> tuple[list[int], list[int], list[int]]:
    """Return the special ids a pair encoding puts before, between and after its two
    sequences (BERT: [CLS] | [SEP] | [SEP]; MPNet/RoBERTa: <s> | </s></s> | </s>), read off
    the tokenizer's encoding of two lone mask tokens."""
    mask = tokenizer.mask_token
    ids = tokenizer(mask, mask, return_attention_mask=False,
                    return_token_type_ids=False)["input_ids"]
    where = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    if len(where) != 2:
        raise ConfigError(f"data.context: the tokenizer {tokenizer.name_or_path} does not "
                          f"encode a pair of texts as expected; use data.context: null")
    return ids[:where[0]], ids[where[0] + 1:where[1]], ids[where[1] + 1:]


def _check_length(folder: Path, max_length: int) -> None:
    if max_length < 2:
        raise ConfigError(f"encoder.max_length {max_length} cannot hold the special tokens; "
                          f"use >= 2")
    limit = position_limit(folder)
    if limit is not None and max_length > limit:
        raise ConfigError(f"encoder.max_length {max_length} exceeds the {limit} positions the "
                          f"encoder in {folder} has; use encoder.max_length <= {limit}")


def _token_key(folder: Path, max_length: int, texts: list[str]) -> str:
    """Return a sha1 over the tokenizer folder and files, max_length and the texts."""
    key = hashlib.sha1(f"{folder}\n{max_length}\n".encode())
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            key.update(name.encode() + hashlib.sha1((folder / name).read_bytes()).digest())
    joined = hashlib.sha1()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        joined.update(f"{len(data)}:".encode() + data)
    key.update(joined.digest())
    return key.hexdigest()


def _split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    flat.flags.writeable = False  # shared by every caller of the cache
    return np.split(flat, offsets[1:-1])


def _read_tokens(path: Path, count: int) -> tuple[list[np.ndarray], int] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            flat, offsets = data["ids"].astype(np.int64), data["offsets"].astype(np.int64)
            pad_id = int(data["pad_id"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if (offsets.shape != (count + 1,) or offsets[0] != 0 or offsets[-1] != flat.size
            or np.any(np.diff(offsets) < 0)):
        return None
    return _split(flat, offsets), pad_id


def _write_tokens(path: Path, flat: np.ndarray, offsets: np.ndarray, pad_id: int) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            np.savez(out, ids=flat, offsets=offsets, pad_id=np.int64(pad_id))
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        warnings.warn(f"could not write the token cache {path} ({err}); tokenising again next "
                      f"run", stacklevel=3)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
