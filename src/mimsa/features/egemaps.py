"""openSMILE eGeMAPS v02 (Eyben et al., IEEE Trans. Affective Computing 2016) via the
`opensmile` Python package (audEERING; no SMILExtract binary needed).

- "egemaps_lld": the 25 low-level descriptors (loudness, spectral slopes and ratios, MFCC 1-4,
  F0 in semitones, jitter, shimmer, HNR, H1-H2, H1-A3, formants F1-F3), 10 ms hop
  (100 frames/s), descriptor windows 20-60 ms; float32 [T, 25], T ~ 100 * seconds. Times are
  the centres of openSMILE's 20-ms frames (k * 10 ms + 10 ms). Pitch-based descriptors are 0
  in unvoiced frames (openSMILE's convention), so every frame is `present`.
- "egemaps_functionals": the 88 functionals over the whole clip (means, percentiles,
  slopes, rates of voiced segments ...); float32 [1, 88], time = the clip's midpoint.

Licence: openSMILE (and the `opensmile` wheel, whatever its MIT classifier says: its LICENSE file
is the audEERING Research License) is free for non-commercial use only (teaching, academic
research, personal experimentation); commercial use needs a licence from audEERING. `librosa`
(ISC licence) is the permissively licensed alternative in mimsa (extractor "librosa").
"""

from __future__ import annotations

import numpy as np

from mimsa.features.base import Extractor, Features, package_version, register_extractor
from mimsa.features.clip import Clip

REVISION = "mimsa-1"


class _EGeMAPS(Extractor):
    modality = "audio"
    requires = {"opensmile": "features"}
    level = ""

    def _load(self) -> None:
        import opensmile

        levels = {"lld": opensmile.FeatureLevel.LowLevelDescriptors,
                  "functionals": opensmile.FeatureLevel.Functionals}
        self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                      feature_level=levels[self.level])

    def _process(self, clip: Clip):
        return self._smile.process_signal(clip.audio, clip.sample_rate)


@register_extractor
class EGeMAPSLowLevel(_EGeMAPS):
    """eGeMAPS v02 low-level descriptors: float32 [T, 25] at 100 frames/s (opensmile)."""

    name = "egemaps_lld"
    summary = "openSMILE eGeMAPS v02 low-level descriptors, 25-d, 100 frames/s (research licence)"
    version = f"opensmile {package_version('opensmile')}; eGeMAPSv02 LLD; {REVISION}"
    dim = 25
    rate_hz = 100.0
    level = "lld"

    def _extract(self, clip: Clip) -> Features:
        table = self._process(clip)
        starts = table.index.get_level_values("start").total_seconds().to_numpy()
        ends = table.index.get_level_values("end").total_seconds().to_numpy()
        values = np.nan_to_num(table.to_numpy(dtype=np.float32), nan=0.0)
        width = float(np.median(ends - starts)) if len(starts) else 0.0  # 20 ms; the last
        # frame's end is cut at the end of the signal, so the centre is start + width / 2
        return Features(values=values, times=starts + width / 2,
                        present=np.ones(len(values), bool), rate_hz=self.rate_hz,
                        names=[str(c) for c in table.columns])


@register_extractor
class EGeMAPSFunctionals(_EGeMAPS):
    """eGeMAPS v02 functionals: float32 [1, 88], one vector per clip (opensmile)."""

    name = "egemaps_functionals"
    summary = "openSMILE eGeMAPS v02 functionals, 88-d, one vector per clip (research licence)"
    version = f"opensmile {package_version('opensmile')}; eGeMAPSv02 functionals; {REVISION}"
    dim = 88
    rate_hz = None
    level = "functionals"

    def _extract(self, clip: Clip) -> Features:
        table = self._process(clip)
        values = np.nan_to_num(table.to_numpy(dtype=np.float32), nan=0.0)[:1]
        midpoint = len(clip.audio) / clip.sample_rate / 2  # type: ignore[arg-type]
        return Features(values=values, times=np.array([midpoint]), present=np.ones(1, bool),
                        rate_hz=None, names=[str(c) for c in table.columns])
