"""Frame-level acoustic features with `librosa` (ISC licence): the permissively licensed
alternative to openSMILE's eGeMAPS.

"librosa": float32 [T, n_mfcc + 5] at 1000 / hop_ms frames/s (100 by default), frame t
centred at t * hop seconds (librosa's centred frames), columns:
  mfcc_1 ... mfcc_<n_mfcc>  MFCCs of a 40-band mel spectrogram (25 ms window, 512-point FFT)
  f0_hz                      pitch by YIN (de Cheveigné & Kawahara 2002) in [fmin, fmax] Hz,
                             0 in unvoiced frames
  periodicity                normalised autocorrelation of the 64 ms frame at the YIN period,
                             in [0, 1]; a frame is voiced when it is >= voicing_threshold and
                             the frame is louder than -50 dBFS
  rms_db                     RMS energy of the 25 ms frame in dBFS (floor -100)
  zcr                        zero-crossing rate of the 25 ms frame, in [0, 1]
  centroid_hz                spectral centroid in Hz
YIN plus this voicing rule is ~30x faster than librosa's probabilistic pYIN (0.1 s instead
of ~3 s for 7 s of audio on one core); the first call in a process pays librosa's import
(~2-3 s).
"""

from __future__ import annotations

import numpy as np

from mimsa.errors import ConfigError
from mimsa.features.base import Extractor, Features, package_version, register_extractor
from mimsa.features.clip import Clip

REVISION = "mimsa-1"
PITCH_FRAME_S = 0.064
WINDOW_S = 0.025
SILENCE_DB = -50.0


@register_extractor
class LibrosaAudio(Extractor):
    """MFCCs, YIN pitch with voicing, energy, zero-crossing rate, spectral centroid
    (float32 [T, n_mfcc + 5], 100 frames/s by default; librosa, ISC licence)."""

    name = "librosa"
    modality = "audio"
    summary = "librosa MFCC + pitch + energy + ZCR + centroid, 100 frames/s (ISC licence)"
    version = f"librosa {package_version('librosa')}; mfcc+yin+rms+zcr+centroid; {REVISION}"
    requires = {"librosa": "features"}
    defaults = {"n_mfcc": 13, "hop_ms": 10.0, "fmin": 65.0, "fmax": 500.0,
                "voicing_threshold": 0.5}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        o = self.options
        if not (1 <= o["n_mfcc"] <= 40 and 1.0 <= o["hop_ms"] <= 100.0
                and 20.0 <= o["fmin"] < o["fmax"] <= 2000.0
                and 0.0 <= o["voicing_threshold"] <= 1.0):
            raise ConfigError(f"extractor 'librosa' options out of range: {o}; allowed: "
                              f"1 <= n_mfcc <= 40, 1 <= hop_ms <= 100, "
                              f"20 <= fmin < fmax <= 2000, 0 <= voicing_threshold <= 1")
        self.dim = o["n_mfcc"] + 5
        self.rate_hz = 1000.0 / o["hop_ms"]

    @property
    def names(self) -> list[str]:
        """The D column names."""
        return [*(f"mfcc_{i + 1}" for i in range(self.options["n_mfcc"])),
                "f0_hz", "periodicity", "rms_db", "zcr", "centroid_hz"]

    def _load(self) -> None:
        import librosa
        import librosa.core.pitch  # noqa: F401  (the slow import, paid here, not per clip)
        import librosa.feature  # noqa: F401

        self._librosa = librosa

    def _extract(self, clip: Clip) -> Features:
        librosa, o = self._librosa, self.options
        y = np.asarray(clip.audio, dtype=np.float32)
        sr = clip.sample_rate
        hop = max(1, round(sr * o["hop_ms"] / 1000))
        win = max(16, round(sr * WINDOW_S))
        n_fft = 1 << (win - 1).bit_length()
        pitch_frame = 1 << (round(sr * PITCH_FRAME_S) - 1).bit_length()
        fmax = min(o["fmax"], sr / 4)
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=o["n_mfcc"], n_fft=n_fft,
                                    win_length=win, hop_length=hop, n_mels=40)
        f0 = librosa.yin(y, fmin=o["fmin"], fmax=fmax, sr=sr, frame_length=pitch_frame,
                         hop_length=hop)
        periodicity = _periodicity(y, f0, sr, pitch_frame, hop)
        rms = librosa.feature.rms(y=y, frame_length=win, hop_length=hop)[0]
        rms_db = librosa.amplitude_to_db(rms, ref=1.0, amin=1e-5, top_db=None)
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=win, hop_length=hop)[0]
        centroid = librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, win_length=win,
                                                     hop_length=hop)[0]
        n = min(mfcc.shape[1], len(f0), len(rms), len(zcr), len(centroid))
        voiced = (periodicity[:n] >= o["voicing_threshold"]) & (rms_db[:n] > SILENCE_DB)
        columns = [*mfcc[:, :n], np.where(voiced, f0[:n], 0.0), periodicity[:n], rms_db[:n],
                   zcr[:n], centroid[:n]]
        values = np.nan_to_num(np.stack(columns, axis=1).astype(np.float32))
        return Features(values=values, times=np.arange(n) * hop / sr,
                        present=np.ones(n, bool), rate_hz=sr / hop, names=self.names)


def _periodicity(y: np.ndarray, f0: np.ndarray, sr: int, frame_length: int,
                 hop: int) -> np.ndarray:
    """Return [T] in [0, 1]: the normalised autocorrelation of each centred frame at the lag
    sr / f0 (0 for silent frames)."""
    padded = np.pad(y, frame_length // 2)
    count = 1 + (len(padded) - frame_length) // hop
    starts = np.arange(min(count, len(f0))) * hop
    frames = padded[starts[:, None] + np.arange(frame_length)[None, :]]  # [T, N]
    lag = np.clip(np.round(sr / np.maximum(f0[: len(starts)], 1.0)), 1, frame_length - 1)
    lag = lag.astype(np.int64)
    j = np.arange(frame_length)[None, :]
    mask = j < frame_length - lag[:, None]
    a = frames * mask
    b = np.take_along_axis(frames, np.minimum(j + lag[:, None], frame_length - 1), axis=1) * mask
    num = (a * b).sum(axis=1)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    r = np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)
    out = np.zeros(len(f0))
    out[: len(r)] = np.clip(r, 0.0, 1.0)
    return out
