"""`synthetic`: the embedded default dataset, generated from a seed with no files.

Generative process (per sample i, all draws from one seeded numpy Generator):
  z_s ~ N(0, 1)                     shared sentiment factor, seen by every modality
  z_t, z_a, z_v ~ N(0, 1)           modality-specific factors, each seen by one modality
  y = clip(1.2 z_s + 0.8 z_t + 0.8 z_a + 0.8 z_v + 0.3 e, -3, 3), e ~ N(0, 1), rounded to 0.1
  text   (5-30 tokens): each token is a sentiment word with probability 0.35, positive with
         probability sigmoid(2 (z_s + z_t)), else a neutral word; ids over a 96-word vocabulary
         (0 = <pad>, 1 = <unk>); the raw text is the words joined by spaces
  audio  (10-40 frames, 74-d): x_k = (z_s + z_a) w_a (1 + 0.3 sin(k / 3)) + n_a u_a + 1.5 eps_k
  vision (10-40 frames, 35-d): x_k = (z_s + z_v) w_v (1 + 0.3 cos(k / 4)) + n_v u_v + 1.5 eps_k
         w_*, u_* fixed random unit-scale loadings; n_* ~ N(0, 1) a per-sample nuisance factor
Every modality alone sees z_s plus its own factor, so each explains part of y and only fusion
can explain all of it; the shared z_s makes the modalities statistically dependent.
"""

from __future__ import annotations

import numpy as np

from mimsa.data.dataset import DatasetCard, MultimodalDataset

POSITIVE = ("good great love excellent amazing fun best enjoyed wonderful nice brilliant happy "
            "beautiful perfect funny").split()
NEGATIVE = ("bad boring hate terrible awful worst dull waste poor annoying stupid sad ugly "
            "horrible weak").split()
NEUTRAL = ("the movie it was and i a this just plot actor scene story like film character "
           "about some there they he she we of to in that with for on at from had have "
           "watched saw think thought ending music time part first second then also one "
           "people really very so um uh well kind").split()
VOCAB = ["<pad>", "<unk>", *POSITIVE, *NEGATIVE, *NEUTRAL]
SPLIT_SIZES = {"train": 1284, "valid": 229, "test": 686}
AUDIO_DIM, VISION_DIM = 74, 35


def make_synthetic(seed: int = 0, sizes: dict[str, int] | None = None) -> MultimodalDataset:
    """Return the synthetic trimodal dataset for `seed` (see the module docstring)."""
    sizes = dict(SPLIT_SIZES if sizes is None else sizes)
    n = sum(sizes.values())
    rng = np.random.default_rng(seed)
    z_s, z_t, z_a, z_v, noise = rng.standard_normal((5, n))
    labels = np.clip(1.2 * z_s + 0.8 * (z_t + z_a + z_v) + 0.3 * noise, -3, 3).round(1)

    word_index = {w: i for i, w in enumerate(VOCAB)}
    text, text_ids = [], []
    for i in range(n):
        length = int(rng.integers(5, 31))
        p_positive = 1 / (1 + np.exp(-2 * (z_s[i] + z_t[i])))
        is_sentiment = rng.random(length) < 0.35
        is_positive = rng.random(length) < p_positive
        words = [
            (POSITIVE if pos else NEGATIVE)[rng.integers(15)] if sent
            else NEUTRAL[rng.integers(len(NEUTRAL))]
            for sent, pos in zip(is_sentiment, is_positive, strict=True)
        ]
        text.append(" ".join(words))
        text_ids.append(np.array([word_index[w] for w in words], dtype=np.int64))

    loadings = np.random.default_rng(12345).standard_normal((4, max(AUDIO_DIM, VISION_DIM)))
    audio = _frames(rng, z_s + z_a, loadings[0, :AUDIO_DIM], loadings[1, :AUDIO_DIM], np.sin, 3)
    vision = _frames(rng, z_s + z_v, loadings[2, :VISION_DIM], loadings[3, :VISION_DIM],
                     np.cos, 4)

    splits = np.repeat(list(sizes), list(sizes.values()))
    card = DatasetCard(
        name="synthetic",
        source=f"generated (seed {seed})",
        description="MOSI-sized synthetic trimodal sentiment data, made from a seed",
        provenance={
            "text": "token ids over a 96-word vocabulary with positive/negative words",
            "audio": "74-d frames, 10-40 per sample, carrying z_s + z_a",
            "vision": "35-d frames, 10-40 per sample, carrying z_s + z_v",
        },
        label_range=(-3.0, 3.0),
        notes=[line.strip() for line in (__doc__ or "").splitlines()[2:15] if line.strip()],
    )
    return MultimodalDataset(card=card, ids=[f"syn_{i:05d}" for i in range(n)], splits=splits,
                             labels=labels, text=text, text_ids=text_ids, audio=audio,
                             vision=vision, vocab_size=len(VOCAB))


def _frames(rng: np.random.Generator, signal: np.ndarray, loading: np.ndarray,
            nuisance_loading: np.ndarray, wave, period: float) -> list[np.ndarray]:
    """Return one [T, D] float32 sequence per sample carrying `signal` along `loading`."""
    out = []
    nuisance = rng.standard_normal(len(signal))
    for s, nu in zip(signal, nuisance, strict=True):
        steps = int(rng.integers(10, 41))
        envelope = 1 + 0.3 * wave(np.arange(steps) / period)
        x = (s * envelope[:, None] * loading + nu * nuisance_loading
             + 1.5 * rng.standard_normal((steps, loading.size)))
        out.append(x.astype(np.float32))
    return out
