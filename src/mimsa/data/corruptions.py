"""Seeded input corruptions ("negative information"): test-time batch transforms that also serve
as training augmentation.

    mimsa robustness RUN_DIR --corruption text_missing --rates 0 0.1 0.3 0.5 0.7 0.9
    mimsa train ... --set data.augment='{name: text_missing, rate: 0.3}'

Every corruption takes a rate r in [0, 1]; rate 0 is the identity (the batch comes back
unchanged). Units are words for text and frames for audio/vision; "k of n" below means that a
sample with n units has k = ⌊r·n + u⌋ of them chosen (u ~ U[0, 1) per sample: stochastic
rounding, so E[k] = r·n exactly, k = 0 at r = 0 and k = n at r = 1), uniformly without
replacement.

name           definition (per sample)                                  rate 0    rate 1
-------------  -------------------------------------------------------  --------  -------------
text_missing   k of n words become the unknown token (mode: unk,        identity  every word
               default), or are deleted (mode: delete)                            unknown /
                                                                                  none left
text_shuffle   k of n words are permuted among their own positions by   identity  every word
               a uniformly random cyclic permutation (each chosen word            moved (n ≥ 2)
               leaves its place when k ≥ 2)
frame_drop     k of n frames of each modality in `modalities` (default  identity  all frames 0
               a and v) are zeroed (mode: zero, default; lengths kept)            / one zero
               or removed (mode: remove; lengths updated; a sample                frame left
               left with no frame keeps one zero frame)
visual_blur    temporal Gaussian smoothing with σ = rate · sigma_max    identity  σ = sigma_max
               frames (sigma_max default 5; `modalities` default v):
               frame t becomes Σ_s w(t−s)·x_s / Σ_s w(t−s) over the
               real frames s with |t−s| ≤ ⌈3σ⌉, w(d) = exp(−d²/2σ²)
feature_noise  x + σ_d·ε, ε ~ N(0, 1) per frame and dimension, σ_d =    identity  noise std =
               rate · the TRAIN-split std of dimension d (over real               the feature's
               frames) of each modality in `modalities` (default every            own std
               feature modality: a, v, and t when text is features);
               padding stays 0
modality_drop  each modality in `modalities` (default every one of the  identity  every listed
               run) is removed from a sample with probability rate,               modality gone
               independently, as `mimsa evaluate --drop` does (fill:              from every
               zero, default: frames 0, token ids → pad id, lengths and           sample
               masks kept, raw transcript ""; fill: mean: the train-split
               mean frame)

Text. The model's text is what gets corrupted: token ids when text is read as ids (the
`embedding`/`vocab` kinds, where an id is a word and id 1 is <unk>; or a pretrained tokenizer,
where a word is a run of sub-word tokens — a WordPiece "##" piece, or a token without the
sentencepiece "▁" / byte-BPE "Ġ" word marker, continues the previous word — and the unknown
token is the tokenizer's own, one per word), text feature frames when text is `features` (a
frame is a word; "unknown" is the zero frame). Special tokens ([CLS], [SEP], <s>, ...) are never
chosen, replaced or moved. A deleted-to-empty sequence keeps what the encoder needs: the special
tokens (pretrained), a single <unk> (own vocabulary, as an empty transcript is encoded) or one
zero frame (features). Raw transcripts (`Batch.text`, which no built-in model reads) get the same
operation on whitespace-separated words, with the same random numbers, so they agree with the
ids whenever the word counts agree (the own-vocabulary kinds).

Utterance-level features (mosi, mosi-poria: one audio/visual frame per sample): with n = 1,
`frame_drop` zeroes the only frame with probability r (`remove` leaves one zero frame, which is
the same input), `visual_blur` has nothing to mix and is the identity (use `feature_noise` or
`frame_drop` there), and `text_shuffle` leaves one-word transcripts alone.

Determinism. Each sample draws from its own generator, seeded by (seed, corruption name,
modality, sample id) through a hash, so the same (seed, rate, sample id) gives the same
corruption whatever else is in the batch and in whatever order. The draws do not depend on the
rate, so corruptions are nested: the words/frames/samples hit at rate r are also hit at any
higher rate, and `feature_noise` scales one fixed ε. A different seed gives a different
corruption. As training augmentation (`data.augment`), the seed of epoch e is derived from
(run seed, e), so every epoch sees new corruptions and a resumed run sees the same ones.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from mimsa.data.batch import Batch, pad_sequences, pad_tokens
from mimsa.data.dataset import MultimodalDataset
from mimsa.data.drop import ModalityDrop
from mimsa.errors import ConfigError, DataError

MODALITY_FIELDS = {"t": ("text_feats", "text_feats_lengths"), "a": ("audio", "audio_lengths"),
                   "v": ("vision", "vision_lengths")}
LOCAL_UNK_ID, LOCAL_UNK_WORD = 1, "<unk>"


# -- randomness ---------------------------------------------------------------------------------
def sample_rng(seed: int, *keys: str) -> np.random.Generator:
    """Return the generator of one (seed, keys...) combination, e.g. (0, "frame_drop", "a", id).

    The keys are hashed (sha256), so the stream depends on nothing else: not the batch, not the
    order of samples, not the process.
    """
    digest = hashlib.sha256("\x1f".join(keys).encode("utf-8", "surrogatepass")).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32)
    return np.random.default_rng([int(seed), *(int(w) for w in words)])


def choose(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Return the positions (in random order) of the k = ⌊rate·n + u⌋ units chosen among n.

    The draws (u, then a permutation of n) do not depend on `rate`, so the choice at a lower
    rate is a prefix of the choice at a higher one.
    """
    u = rng.random()
    order = rng.permutation(n)
    k = min(n, int(math.floor(rate * n + u)))
    return order[:k]


def derive_seed(*parts: int) -> int:
    """Return a seed in [0, 2**32) derived from integers `parts` (e.g. run seed and epoch)."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1)[0])


# -- word-level operations on a list of items ------------------------------------------------------
def drop_or_replace(items: list, slots: Sequence[int], chosen: np.ndarray, replacement: Any,
                    delete: bool) -> list:
    """Return `items` with the chosen slots (indices into `slots`) replaced or deleted."""
    hit = {slots[int(c)] for c in chosen}
    if delete:
        return [x for i, x in enumerate(items) if i not in hit]
    return [replacement if i in hit else x for i, x in enumerate(items)]


def rotate(items: list, slots: Sequence[int], chosen: np.ndarray) -> list:
    """Return `items` with the chosen slots cyclically permuted (each chosen item moves on to
    the next chosen slot in the random order of `chosen`: one uniformly random k-cycle)."""
    out = list(items)
    positions = [slots[int(c)] for c in chosen]
    for j, pos in enumerate(positions):
        out[pos] = items[positions[(j + 1) % len(positions)]]
    return out


# -- text segmentation -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TokenizerWords:
    """How a pretrained tokenizer's ids make words (see the module), for the text corruptions.

    Built in the encoders layer (`mimsa.encoders.tokens.tokenizer_words`, or
    `mimsa.encoders.builder.text_words(spec.text)`) and passed to `Corruption.bind`.
    """

    unk_id: int | None  # None: the tokenizer has no unknown token
    unk_token: str | None
    special: frozenset[int]  # never chosen, replaced or moved
    starts: np.ndarray  # [vocab] bool: the token begins a word
    source: str = ""  # the tokenizer folder, for messages


def word_segments(ids: Sequence[int], special: frozenset[int],
                  starts: np.ndarray | None) -> tuple[list[list[int]], list[int]]:
    """Return (segments, word slots): the id sequence cut into special tokens (one segment
    each) and words (runs of sub-word ids, see the module), and the indices of the words."""
    segments: list[list[int]] = []
    slots: list[int] = []
    for t in ids:
        t = int(t)
        if t in special:
            segments.append([t])
            continue
        new_word = starts is None or t >= len(starts) or bool(starts[t])
        if new_word or not slots or slots[-1] != len(segments) - 1:
            slots.append(len(segments))
            segments.append([t])
        else:
            segments[-1].append(t)
    return segments, slots


# -- the corruptions ------------------------------------------------------------------------------
class Corruption:
    """A seeded batch transform `corruption(batch) -> batch` at rate in [0, 1] (see the module).

    Bind it to a run's data first (`bind(dataset, spec, words)`; `evaluate_run` and the
    robustness evaluation do this): it needs to know how text reaches the model (with a
    pretrained tokenizer, its `TokenizerWords`) and, for some, statistics of the training split.
    `with_rate` and `reseed` return bound copies.
    """

    name = ""
    summary = ""
    options: dict[str, tuple] = {}  # option: (default, allowed values or None)

    def __init__(self, rate: float, seed: int = 0, **options) -> None:
        self.rate = check_rate(rate, self.name)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"corruption seed must be an integer >= 0 (got {seed!r})")
        self.seed = int(seed)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(f"{k} (default {v[0]})" for k, v in self.options.items())
            raise ConfigError(f"corruption '{self.name}' has no option {', '.join(unknown)}; "
                              f"valid: {valid or 'none'}")
        self.opts = {k: options.get(k, default) for k, (default, _) in self.options.items()}
        for key, (_, allowed) in self.options.items():
            if allowed is not None and self.opts[key] not in allowed:
                raise ConfigError(f"corruption '{self.name}': {key} '{self.opts[key]}' is "
                                  f"unknown; valid: {', '.join(map(str, allowed))}")
        self._check()
        self.modalities = ""
        self.text_kind = ""
        self.pad_id = 0
        self.words: TokenizerWords | None = None
        self.bound = False

    def _check(self) -> None:
        """Subclasses: validate option values (one-line ConfigError)."""

    # -- life cycle ----------------------------------------------------------------------------
    def definition(self) -> str:
        """Return one line: the corruption, its seed and options, and what it does."""
        opts = ", ".join(f"{k}={v}" for k, v in self.opts.items() if v is not None)
        return (f"{self.name} (seed {self.seed}" + (f"; {opts}" if opts else "")
                + f"): {self.summary}")

    def describe(self) -> str:
        """Return one line: `definition()` with the rate."""
        return f"{self.definition()}; rate {self.rate:g}"

    def bind(self, dataset: MultimodalDataset, spec,
             words: TokenizerWords | None = None) -> Corruption:
        """Return a copy ready for the run whose data is `dataset` and inputs `spec` (an
        `InputSpec`); `words` is the tokenizer's word segmentation, which the text corruptions
        need when text reaches the model through a pretrained tokenizer. Raises ConfigError when
        the corruption does not fit the run."""
        bound = copy.copy(self)
        bound.opts = dict(self.opts)
        bound.text_kind = spec.text.kind if "t" in spec.modalities else ""
        bound.pad_id = int(spec.text.pad_id)
        bound.modalities = spec.modalities
        bound.words = words
        bound._bind(dataset, spec)
        bound.bound = True
        return bound

    def _bind(self, dataset: MultimodalDataset, spec) -> None:
        """Subclasses: check the run's inputs and prepare what `_apply` needs."""

    def with_rate(self, rate: float) -> Corruption:
        """Return a copy at another rate (bound state kept)."""
        out = copy.copy(self)
        out.rate = check_rate(rate, self.name)
        return out

    def reseed(self, seed: int) -> Corruption:
        """Return a copy with another seed (bound state kept)."""
        out = copy.copy(self)
        out.seed = int(seed)
        return out

    def __call__(self, batch: Batch) -> Batch:
        if not self.bound:
            raise RuntimeError(f"corruption '{self.name}': call bind(dataset, spec, words) "
                               f"first (evaluate_run and the robustness evaluation do it)")
        if self.rate == 0:
            return batch
        return self._apply(batch)

    def _apply(self, batch: Batch) -> Batch:
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------------
    def rng(self, stream: str, sample_id: str) -> np.random.Generator:
        """Return the generator of one sample and stream (e.g. a modality)."""
        return sample_rng(self.seed, self.name, stream, sample_id)

    def _modalities(self, wanted: str | None, allowed: str, what: str) -> str:
        """Return the modalities to corrupt: `wanted` (default: those of `allowed` the run
        has), checked against the run; a one-line error names the problem."""
        if wanted is None:
            chosen = "".join(m for m in allowed if m in self.modalities)
            if not chosen:
                raise ConfigError(f"corruption '{self.name}' acts on {what}; the run's model "
                                  f"reads modalities '{self.modalities}' only")
            return chosen
        text = str(wanted)
        if not text or any(m not in allowed for m in text):
            raise ConfigError(f"corruption '{self.name}': modalities '{wanted}' must be a "
                              f"non-empty subset of '{allowed}'")
        missing = [m for m in text if m not in self.modalities]
        if missing:
            raise ConfigError(f"corruption '{self.name}': modalities '{wanted}' but the run's "
                              f"model reads '{self.modalities}' only")
        return "".join(m for m in "tav" if m in text)


def check_rate(rate: float, name: str = "") -> float:
    """Return `rate` as a float after checking it lies in [0, 1]; raise a one-line error."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"corruption rate '{rate}' is not a number; use a value in "
                          f"[0, 1]") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"corruption rate {rate} is outside [0, 1]"
                          + (f" (corruption '{name}')" if name else "")
                          + "; 0 leaves the input clean, 1 is the strongest corruption")
    return value


def map_sequences(batch: Batch, field: str, lengths_field: str,
                  fn: Callable[[np.ndarray, str], np.ndarray]) -> dict[str, torch.Tensor]:
    """Return {field, lengths_field} after `fn(frames [L, D], sample id) -> frames` on the real
    frames of every sample, re-padded (a different length is allowed)."""
    x, lengths = getattr(batch, field), getattr(batch, lengths_field)
    array = x.detach().cpu().numpy()
    seqs = [np.asarray(fn(array[i, : int(n)].copy(), sid), dtype=np.float32)
            for i, (sid, n) in enumerate(zip(batch.ids, lengths.tolist(), strict=True))]
    padded, new_lengths = pad_sequences(seqs)
    return {field: padded.to(x.device, x.dtype),
            lengths_field: new_lengths.to(lengths.device)}


class _TextCorruption(Corruption):
    """Shared by text_missing and text_shuffle: word-level edits of ids, frames and raw text."""

    def _bind(self, dataset: MultimodalDataset, spec) -> None:
        if "t" not in spec.modalities:
            raise ConfigError(f"corruption '{self.name}' acts on text; the run's model reads "
                              f"modalities '{spec.modalities}' only")
        self.unk_id, self.unk_word = LOCAL_UNK_ID, LOCAL_UNK_WORD
        self.special: frozenset[int] = frozenset({int(spec.text.pad_id)})
        self.starts: np.ndarray | None = None
        if spec.text.kind == "pretrained":
            words = self.words
            if words is None:
                raise RuntimeError(f"corruption '{self.name}' on text from a pretrained "
                                   f"tokenizer needs its words: bind(dataset, spec, "
                                   f"words=mimsa.encoders.builder.text_words(spec.text))")
            if words.unk_id is None:
                raise ConfigError(f"the tokenizer in {spec.text.encoder_dir} has no unknown "
                                  f"token; text_missing needs one (use mode=delete)")
            self.unk_id, self.unk_word = words.unk_id, str(words.unk_token)
            self.special, self.starts = words.special, words.starts

    def edit(self, items: list, slots: Sequence[int], rng: np.random.Generator,
             unknown: Any) -> list:
        """Return `items` edited at the word slots `slots` (subclasses)."""
        raise NotImplementedError

    def _apply(self, batch: Batch) -> Batch:
        changes: dict[str, Any] = {}
        if batch.text is not None:
            texts = []
            for sid, text in zip(batch.ids, batch.text, strict=True):
                words = text.split()
                words = self.edit(words, range(len(words)), self.rng("t", sid), self.unk_word)
                texts.append(" ".join(words))
            changes["text"] = texts
        if self.text_kind == "features" and batch.text_feats is not None:
            def frames(x: np.ndarray, sid: str) -> np.ndarray:
                rows = self.edit(list(x), range(len(x)), self.rng("t", sid),
                                 np.zeros(x.shape[1], np.float32))
                return np.stack(rows) if rows else np.zeros((1, x.shape[1]), np.float32)

            changes.update(map_sequences(batch, "text_feats", "text_feats_lengths", frames))
        elif self.text_kind in ("embedding", "pretrained") and batch.text_ids is not None:
            seqs = []
            ids, mask = batch.text_ids.cpu().numpy(), batch.text_mask.cpu().numpy()
            for i, sid in enumerate(batch.ids):
                real = ids[i][mask[i] > 0]
                segments, slots = word_segments(real, self.special, self.starts)
                segments = self.edit(segments, slots, self.rng("t", sid), [self.unk_id])
                flat = [t for seg in segments for t in seg] or [self.unk_id]
                seqs.append(np.array(flat, dtype=np.int64))
            new_ids, new_mask = pad_tokens(seqs, self.pad_id)
            changes["text_ids"] = new_ids.to(batch.text_ids.device)
            changes["text_mask"] = new_mask.to(batch.text_mask.device, batch.text_mask.dtype)
        return replace(batch, **changes)


class TextMissing(_TextCorruption):
    name = "text_missing"
    summary = ("k of n words become the unknown token (mode unk) or are deleted (mode delete); "
               "special tokens kept")
    options = {"mode": ("unk", ("unk", "delete"))}

    def edit(self, items: list, slots: Sequence[int], rng: np.random.Generator,
             unknown: Any) -> list:
        chosen = choose(rng, len(slots), self.rate)
        return drop_or_replace(items, slots, chosen, unknown, self.opts["mode"] == "delete")


class TextShuffle(_TextCorruption):
    name = "text_shuffle"
    summary = "k of n words permuted among their positions (a random cycle: each one moves)"
    options = {}

    def edit(self, items: list, slots: Sequence[int], rng: np.random.Generator,
             unknown: Any) -> list:
        return rotate(items, slots, choose(rng, len(slots), self.rate))


class FrameDrop(Corruption):
    name = "frame_drop"
    summary = ("k of n audio/visual frames zeroed (mode zero, lengths kept) or removed "
               "(mode remove, at least one zero frame kept)")
    options = {"mode": ("zero", ("zero", "remove")), "modalities": (None, None)}

    def _bind(self, dataset: MultimodalDataset, spec) -> None:
        self.targets = self._modalities(self.opts["modalities"], "av", "audio/vision frames")

    def _apply(self, batch: Batch) -> Batch:
        changes: dict[str, Any] = {}
        remove = self.opts["mode"] == "remove"
        for m in self.targets:
            field, lengths_field = MODALITY_FIELDS[m]
            if getattr(batch, field) is None:
                continue

            def drop(x: np.ndarray, sid: str, m: str = m) -> np.ndarray:
                chosen = choose(self.rng(m, sid), len(x), self.rate)
                if remove:
                    keep = np.setdiff1d(np.arange(len(x)), chosen)
                    return x[keep] if keep.size else np.zeros((1, x.shape[1]), np.float32)
                x[chosen] = 0.0
                return x

            changes.update(map_sequences(batch, field, lengths_field, drop))
        return replace(batch, **changes)


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Return frames `x` [L, D] smoothed over time: Σ_s w(t−s)·x_s / Σ_s w(t−s), |t−s| ≤ ⌈3σ⌉,
    w(d) = exp(−d²/2σ²), the weights renormalised over the frames that exist."""
    if sigma <= 0 or len(x) < 2:
        return x
    steps = np.arange(len(x))
    d = steps[:, None] - steps[None, :]
    w = np.exp(-(d.astype(np.float64) ** 2) / (2 * sigma**2)) * (np.abs(d) <= math.ceil(3 * sigma))
    w /= w.sum(1, keepdims=True)
    return (w @ x.astype(np.float64)).astype(np.float32)


class VisualBlur(Corruption):
    name = "visual_blur"
    summary = "temporal Gaussian smoothing of the frames with sigma = rate * sigma_max frames"
    options = {"sigma_max": (5.0, None), "modalities": (None, None)}

    def _check(self) -> None:
        sigma_max = self.opts["sigma_max"]
        if isinstance(sigma_max, bool) or not isinstance(sigma_max, (int, float)) or not (
                math.isfinite(sigma_max) and sigma_max > 0):
            raise ConfigError(f"corruption 'visual_blur': sigma_max must be a number > 0 "
                              f"(frames; got {sigma_max!r})")

    def _bind(self, dataset: MultimodalDataset, spec) -> None:
        wanted = self.opts["modalities"]
        self.targets = (self._modalities(None, "v", "visual frames (option modalities: a, v)")
                        if wanted is None else self._modalities(wanted, "av", "frames"))

    def _apply(self, batch: Batch) -> Batch:
        sigma = self.rate * float(self.opts["sigma_max"])
        changes: dict[str, Any] = {}
        for m in self.targets:
            field, lengths_field = MODALITY_FIELDS[m]
            if getattr(batch, field) is not None:
                changes.update(map_sequences(batch, field, lengths_field,
                                             lambda x, sid: gaussian_smooth(x, sigma)))
        return replace(batch, **changes)


def training_std(dataset: MultimodalDataset, field: str) -> np.ndarray:
    """Return the per-dimension std (ddof 0) of `field`'s frames over the TRAIN split [D]."""
    seqs = getattr(dataset, field)
    if seqs is None:
        raise DataError(f"{dataset.name} has no {field} features")
    frames = [np.asarray(seqs[i], np.float64) for i in dataset.indices("train")]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise DataError(f"{dataset.name}: the train split has no {field} frames")
    return np.concatenate(frames).std(0).astype(np.float32)


class FeatureNoise(Corruption):
    name = "feature_noise"
    summary = "additive Gaussian noise, std = rate * the feature's train-split std per dimension"
    options = {"modalities": (None, None)}

    def _bind(self, dataset: MultimodalDataset, spec) -> None:
        allowed = ("t" if spec.text.kind == "features" else "") + "av"
        wanted = self.opts["modalities"]
        if wanted is not None and "t" in str(wanted) and "t" not in allowed:
            raise ConfigError(f"corruption 'feature_noise': text is read as token ids (encoder "
                              f"'{spec.text.source or spec.text.kind}'), not feature vectors; "
                              f"use text_missing or text_shuffle for text")
        self.targets = self._modalities(wanted, allowed, "feature vectors")
        self.stds = {m: training_std(dataset, MODALITY_FIELDS[m][0]) for m in self.targets}

    def _apply(self, batch: Batch) -> Batch:
        changes: dict[str, Any] = {}
        for m in self.targets:
            field, lengths_field = MODALITY_FIELDS[m]
            if getattr(batch, field) is None:
                continue
            scale = self.rate * self.stds[m]

            def noisy(x: np.ndarray, sid: str, m: str = m, scale: np.ndarray = scale
                      ) -> np.ndarray:
                eps = self.rng(m, sid).standard_normal(x.shape)
                return (x + scale * eps).astype(np.float32)

            changes.update(map_sequences(batch, field, lengths_field, noisy))
        return replace(batch, **changes)


class ModalityDropout(Corruption):
    name = "modality_drop"
    summary = ("each listed modality removed from a sample with probability rate, as "
               "`mimsa evaluate --drop` does (lengths and masks kept)")
    options = {"modalities": (None, None), "fill": ("zero", ("zero", "mean"))}

    def _bind(self, dataset: MultimodalDataset, spec) -> None:
        self.targets = self._modalities(self.opts["modalities"], "tav", "whole modalities")
        self.drops = {m: ModalityDrop(m, self.opts["fill"]).bind(dataset, spec)
                      for m in self.targets}

    def _apply(self, batch: Batch) -> Batch:
        changes: dict[str, Any] = {}
        for m in self.targets:
            hit = [i for i, sid in enumerate(batch.ids) if self.rng(m, sid).random() < self.rate]
            if not hit:
                continue
            dropped = self.drops[m](batch)
            if m == "t" and batch.text is not None:
                texts = changes.get("text", batch.text)
                changes["text"] = ["" if i in hit else t for i, t in enumerate(texts)]
            rows = torch.zeros(len(batch), dtype=torch.bool)
            rows[hit] = True
            for field in ("text_ids", "text_feats", "audio", "vision"):
                new = getattr(dropped, field)
                old = changes.get(field, getattr(batch, field))
                if new is None or new is getattr(batch, field):
                    continue
                shape = (-1,) + (1,) * (new.dim() - 1)
                changes[field] = torch.where(rows.view(shape).to(new.device), new, old)
        return replace(batch, **changes)


CORRUPTIONS: dict[str, type[Corruption]] = {
    c.name: c for c in (TextMissing, TextShuffle, FrameDrop, VisualBlur, FeatureNoise,
                        ModalityDropout)}


def make_corruption(name: str, rate: float, seed: int = 0, **options) -> Corruption:
    """Return the (unbound) corruption `name` at `rate`; unknown names list the valid ones."""
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption '{name}'; valid: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name](rate, seed, **options)


# -- training augmentation -----------------------------------------------------------------------
class Augmentation:
    """The `data.augment` config: corruptions applied to TRAINING batches, reseeded per epoch.

    `data.augment` is one mapping or a list of them, each {name, rate, <options>}:
        --set data.augment='{name: text_missing, rate: 0.3}'
        --set data.augment='[{name: frame_drop, rate: 0.2, mode: remove},
                             {name: feature_noise, rate: 0.1}]'
    They are applied in order; the i-th corruption of epoch e has seed
    `derive_seed(run seed, e, i)`. Validation and test batches are never corrupted.
    """

    def __init__(self, corruptions: list[Corruption], seed: int) -> None:
        self.corruptions = corruptions
        self.seed = int(seed)

    @classmethod
    def from_config(cls, value: Any, seed: int) -> Augmentation | None:
        """Return the augmentation for config value `value` (None/empty: None)."""
        if value is None or value == [] or value == {}:
            return None
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise ConfigError(f"data.augment must be a mapping {{name: ..., rate: ...}} or a list "
                              f"of them (got {value!r}); e.g. --set "
                              f"data.augment='{{name: text_missing, rate: 0.3}}'")
        corruptions = []
        for item in items:
            options = dict(item)
            if "name" not in options or "rate" not in options:
                raise ConfigError(f"data.augment entry {item!r} needs a name and a rate; valid "
                                  f"names: {', '.join(CORRUPTIONS)}")
            name, rate = str(options.pop("name")), options.pop("rate")
            try:
                corruptions.append(make_corruption(name, rate, 0, **options))
            except ValueError as err:
                raise ConfigError(f"data.augment: {err}") from None
        return cls(corruptions, seed)

    def bind(self, dataset: MultimodalDataset, spec,
             words: TokenizerWords | None = None) -> Augmentation:
        """Return a copy whose corruptions are bound to the run's data (see `Corruption.bind`;
        raises ConfigError naming data.augment when one does not fit the run)."""
        try:
            return Augmentation([c.bind(dataset, spec, words) for c in self.corruptions],
                                self.seed)
        except ValueError as err:
            raise ConfigError(f"data.augment: {err}") from None

    def __call__(self, batch: Batch, epoch: int) -> Batch:
        for i, corruption in enumerate(self.corruptions):
            batch = corruption.reseed(derive_seed(self.seed, epoch, i))(batch)
        return batch
