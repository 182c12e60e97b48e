"""align_to_words: per-word means of present frames, nearest frame, zeros, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from mimsa.features import Features, align_to_words


def frames(values, present=None, rate=10.0) -> Features:
    """Features with frame k at (k + 0.5) / rate seconds."""
    values = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    present = np.ones(len(values), bool) if present is None else np.asarray(present)
    return Features(values, (np.arange(len(values)) + 0.5) / rate, present, rate)


def test_each_word_is_the_mean_of_the_present_frames_in_its_span():
    feats = frames([[0, 10], [1, 11], [2, 12], [3, 13], [4, 14], [5, 15]],
                   present=[True, True, False, True, True, True])
    # frames at 0.05 0.15 0.25 0.35 0.45 0.55 s; the one at 0.25 s has no face
    words = [("one", 0.0, 0.2), ("two", 0.2, 0.4), ("three", 0.4, 0.6)]
    out = align_to_words(feats, words)
    assert out.dtype == np.float32 and out.shape == (3, 2)
    assert np.allclose(out, [[0.5, 10.5], [3, 13], [4.5, 14.5]])  # 2 at 0.25 s left out


def test_a_word_between_frames_takes_the_nearest_present_frame():
    feats = frames([[0.0], [1.0], [2.0]], present=[True, False, True], rate=1.0)
    # frames at 0.5, 1.5 (absent), 2.5 s
    out = align_to_words(feats, [("a", 0.9, 1.0), ("b", 1.6, 1.8), ("c", 5.0, 5.2)])
    assert out[:, 0].tolist() == [0.0, 2.0, 2.0]


def test_no_present_frame_gives_zeros_and_no_words_give_an_empty_array():
    feats = frames([[3.0, 4.0]] * 4, present=[False] * 4)
    assert (align_to_words(feats, [("a", 0.0, 0.3)]) == 0).all()
    assert align_to_words(frames([[1.0, 2.0]]), []).shape == (0, 2)


def test_utterance_level_features_repeat_for_every_word():
    feats = Features(np.array([[7.0, 8.0, 9.0]]), np.array([3.7]), np.array([True]), None)
    out = align_to_words(feats, [("a", 0.0, 0.5), ("b", 3.0, 4.0), ("c", 6.0, 7.0)])
    assert np.array_equal(out, np.tile([7.0, 8.0, 9.0], (3, 1)))


@pytest.mark.parametrize("word", [("back", 2.0, 1.0), ("nan", float("nan"), 1.0)])
def test_a_bad_span_is_refused_naming_the_word(word):
    with pytest.raises(ValueError, match=f"word 1 '{word[0]}'"):
        align_to_words(frames([[1.0]] * 3), [("ok", 0.0, 0.1), word])
