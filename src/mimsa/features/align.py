"""Word-level alignment: average frame features over each word's time span (the "aligned"
layout of CMU-MOSI/MOSEI that MAG-BERT-style models read, one audio/visual vector per word).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mimsa.features.base import Features


def align_to_words(features: Features,
                   words: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """Return float32 [W, D]: one row per word of `words` ((word, start_s, end_s)).

    Row w is the mean of the present frames whose time lies in [start_s, end_s]; when no
    present frame lies inside (a word shorter than a frame), the present frame nearest to the
    word's midpoint; zeros when `features` has no present frame at all. Utterance-level
    features (T = 1) give every word the same vector.

    Raises:
        ValueError: a word ends before it starts, or has a non-finite time.
    """
    times, present = features.times, features.present
    values = features.values
    out = np.zeros((len(words), values.shape[1]), np.float32)
    if not len(words):
        return out
    spans = np.array([(float(w[1]), float(w[2])) for w in words], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(spans).all(axis=1) | (spans[:, 1] < spans[:, 0]))
    if bad.size:
        w = words[int(bad[0])]
        raise ValueError(f"word {int(bad[0])} {w[0]!r} has the span {w[1]}..{w[2]} s; a word "
                         f"needs finite times with end >= start")
    if not present.any():
        return out
    kept_times, kept = times[present], values[present]
    order = np.argsort(kept_times, kind="stable")
    kept_times, kept = kept_times[order], kept[order]
    cumulative = np.vstack([np.zeros((1, kept.shape[1])), np.cumsum(kept, axis=0,
                                                                     dtype=np.float64)])
    lo = np.searchsorted(kept_times, spans[:, 0], side="left")
    hi = np.searchsorted(kept_times, spans[:, 1], side="right")
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if b > a:
            out[i] = (cumulative[b] - cumulative[a]) / (b - a)
        else:
            midpoint = spans[i].mean()
            j = int(np.clip(np.searchsorted(kept_times, midpoint), 1, len(kept_times) - 1)) \
                if len(kept_times) > 1 else 0
            if len(kept_times) > 1 and abs(kept_times[j - 1] - midpoint) <= abs(
                    kept_times[j] - midpoint):
                j -= 1
            out[i] = kept[j]
    return out
