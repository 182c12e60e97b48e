"""`Clip`: one decoded media file, audio and sampled video frames in memory (see decode.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Clip:
    """A decoded clip; the part a file lacks (no audio stream, no video stream) is None.

    Attributes:
        path: the file it was decoded from (named in every error about it).
        audio: float32 [S] mono samples in [-1, 1] at `sample_rate`, or None.
        sample_rate: samples per second of `audio` (16000 unless asked otherwise).
        frames: uint8 [F, H, W, 3] RGB frames sampled at `fps`, or None.
        frame_times: float64 [F] seconds from the start of the file: frame k is the picture
            shown at (k + 0.5) / fps, the centre of its 1/fps-long slot; or None.
        fps: the video sampling rate in frames per second (also set when there is no video).
        duration_s: the longer of the decoded audio and video, in seconds.
    """

    path: Path
    audio: np.ndarray | None
    sample_rate: int
    frames: np.ndarray | None
    frame_times: np.ndarray | None
    fps: float
    duration_s: float

    @property
    def has_audio(self) -> bool:
        """True when the clip has a non-empty audio track."""
        return self.audio is not None and self.audio.size > 0

    @property
    def has_video(self) -> bool:
        """True when the clip has at least one video frame."""
        return self.frames is not None and len(self.frames) > 0
