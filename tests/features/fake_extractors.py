"""Two small extractors for the extraction and prediction tests (fast, no model files).

`fake_audio`: per 20-ms frame the RMS, mean absolute value and zero-crossing rate of the
samples (times `gain`). `fake_face`: per sampled frame, the fraction of skin-coloured pixels
(the cartoon face `clips.write_clip(face=True)` draws), and where that fraction is above 1 %
the mean R, G, B of the frame; frames without one are absent (zeros), a clip with none fails
with "no face in any frame", like the real face extractor. Importing this module registers
both (a worker process imports it again: see `Plan.modules` in mimsa.features.extract).
"""

from __future__ import annotations

import numpy as np

from mimsa.errors import DataError
from mimsa.features.base import Extractor, Features, register_extractor

SKIN = np.array([220, 180, 150], dtype=np.int16)


@register_extractor
class FakeAudio(Extractor):
    name = "fake_audio"
    modality = "audio"
    summary = "test extractor: frame energy"
    version = "fake-audio 1"
    dim = 3
    rate_hz = 50.0
    defaults = {"gain": 1.0}

    def _extract(self, clip) -> Features:
        hop = clip.sample_rate // 50
        n = len(clip.audio) // hop
        frames = clip.audio[: n * hop].reshape(n, hop).astype(np.float64)
        rms = np.sqrt((frames ** 2).mean(1))
        level = np.abs(frames).mean(1)
        zcr = (np.diff(np.sign(frames), axis=1) != 0).mean(1)
        values = np.stack([rms, level, zcr], 1) * self.options["gain"]
        return Features(values, (np.arange(n) + 0.5) / 50.0, np.ones(n, bool), 50.0,
                        ["rms", "level", "zcr"])


@register_extractor
class FakeFace(Extractor):
    name = "fake_face"
    modality = "visual"
    summary = "test extractor: skin-coloured pixels"
    version = "fake-face 1"
    dim = 4
    rate_hz = 10.0
    defaults = {"fps": 10.0}

    def _extract(self, clip) -> Features:
        frames = clip.frames.astype(np.int16)
        skin = (np.abs(frames - SKIN).max(-1) < 40).mean((1, 2))
        present = skin > 0.01
        if not present.any():
            raise DataError(f"{clip.path}: no face in any frame")
        values = np.concatenate([frames.mean((1, 2)) / 255.0, skin[:, None]], 1)
        values[~present] = 0.0
        return Features(values, clip.frame_times, present, self.rate_hz,
                        ["r", "g", "b", "skin"])


@register_extractor
class FakeCrash(Extractor):
    """Kills its process on a clip whose file name contains "crash" (a native-library crash)."""

    name = "fake_crash"
    modality = "audio"
    summary = "test extractor: dies on clips named *crash*"
    version = "fake-crash 1"
    dim = 1
    rate_hz = None

    def _extract(self, clip) -> Features:
        if "crash" in clip.path.name:
            import os

            os._exit(3)
        return Features(np.zeros((1, 1)), np.zeros(1), np.ones(1, bool), None)
