"""The registered extractors: registry and options, shapes and rates, what they measure on
generated clips, one-line refusals, and the real MOSI clip through all of them."""

from __future__ import annotations

import importlib.util
import json
import pickle

import numpy as np
import pytest

from mimsa.errors import ConfigError, DataError, MissingExtraError
from mimsa.features import Extractor, Features, get_extractor, list_extractors
from mimsa.features.base import extractor_class

from .clips import write_clip
from .real_clip import real_clip_path

BUILTIN = {"egemaps_lld", "egemaps_functionals", "librosa", "fer_emotion", "mediapipe_mesh"}
AUDIO = ("egemaps_lld", "egemaps_functionals", "librosa")


def extractor(name: str, **options) -> Extractor:
    """Return the extractor, skipping the test when its extra is not installed."""
    try:
        return get_extractor(name, **options)
    except MissingExtraError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Decoded generated clips: "face" (2 s, tone + cartoon face), "shapes" (no face),
    "silent" (no audio), "sound" (no video), "short" (0.2 s)."""
    pytest.importorskip("av", reason="decoding needs the features extra")
    from mimsa.features.decode import decode_clip

    folder = tmp_path_factory.mktemp("extractors")
    made = {"face": write_clip(folder / "face.mp4", 2.0, face=True),
            "shapes": write_clip(folder / "shapes.mp4", 1.0, size=(160, 120)),
            "silent": write_clip(folder / "silent.mp4", 1.0, audio=False, size=(160, 120)),
            "sound": write_clip(folder / "sound.mp4", 1.0, video=False),
            "short": write_clip(folder / "short.mp4", 0.2, size=(160, 120))}
    return {key: decode_clip(path) for key, path in made.items()}


# -- registry and options -------------------------------------------------------------------
def test_registry_lists_the_builtin_extractors_and_refuses_unknown_names():
    assert set(list_extractors()) >= BUILTIN
    with pytest.raises(ConfigError, match="registered: .*egemaps_lld"):
        get_extractor("openface")


@pytest.mark.parametrize(("name", "options", "words"), [
    ("librosa", {"n_mfcc": 13, "hop": 5}, "no option 'hop'"),
    ("librosa", {"n_mfcc": "13"}, "must be int"),
    ("librosa", {"n_mfcc": True}, "must be int"),
    ("librosa", {"fmin": 600.0}, "out of range"),
    ("fer_emotion", {"min_face": 2.0}, "out of range"),
])
def test_bad_options_are_config_errors(name, options, words):
    with pytest.raises(ConfigError, match=words):
        extractor_class(name)(**options)


def test_options_set_dim_and_rate_and_every_record_is_json():
    lib = extractor_class("librosa")(n_mfcc=20, hop_ms=20)
    assert lib.dim == 25 and lib.rate_hz == 50.0 and lib.config()["hop_ms"] == 20.0
    assert extractor_class("fer_emotion")(fps=5).rate_hz == 5.0
    for name in BUILTIN:
        record = extractor_class(name)().record()
        assert set(record) >= {"name", "version", "config", "dim", "rate_hz", "modality"}
        assert record["name"] == name and "mimsa-1" in record["version"]
        assert json.loads(json.dumps(record)) == record


def test_mediapipe_missing_names_its_own_extra():
    if importlib.util.find_spec("mediapipe") is not None:
        pytest.skip("mediapipe is installed here")
    with pytest.raises(MissingExtraError, match=r'mediapipe\]" && pip install --no-deps '
                                                r'mediapipe==0\.10\.21'):
        get_extractor("mediapipe_mesh")


# -- what the extractors measure on generated clips -----------------------------------------
def check_frames(features: Features, rate: float, dim: int, seconds: float) -> None:
    """Shape, dtype, rate and frame times of frame-level features."""
    assert features.values.dtype == np.float32 and features.values.shape[1] == dim
    assert features.rate_hz == pytest.approx(rate)
    assert abs(len(features.values) - rate * seconds) <= 0.05 * rate * seconds + 3
    assert np.allclose(np.diff(features.times), 1 / rate, atol=1e-6)
    assert features.times[0] < 2 / rate and features.times[-1] <= seconds + 0.1


def test_egemaps_on_a_tone(clips):
    clip = clips["face"]
    lld = extractor("egemaps_lld").extract(clip)
    check_frames(lld, 100.0, 25, len(clip.audio) / 16000)
    assert lld.names[0] == "Loudness_sma3" and lld.present.all()
    semitones = lld.values[:, lld.names.index("F0semitoneFrom27.5Hz_sma3nz")]
    voiced = semitones[semitones > 0]
    assert voiced.size > 0.5 * len(semitones)  # the tone is voiced throughout
    # 220 Hz is 12 * log2(220 / 27.5) = 36 semitones above 27.5 Hz
    assert np.median(voiced) == pytest.approx(36.0, abs=1.0)
    functionals = extractor("egemaps_functionals").extract(clip)
    assert functionals.values.shape == (1, 88) and functionals.rate_hz is None
    assert functionals.times[0] == pytest.approx(len(clip.audio) / 16000 / 2)
    f0_mean = functionals.values[0, functionals.names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    assert f0_mean == pytest.approx(36.0, abs=1.0)


@pytest.mark.slow  # librosa's first import takes 3-5 s on 2 busy cores
def test_librosa_on_a_tone(clips):
    clip = clips["face"]
    features = extractor("librosa").extract(clip)
    check_frames(features, 100.0, 18, len(clip.audio) / 16000)
    column = {name: features.values[:, i] for i, name in enumerate(features.names)}
    voiced = column["f0_hz"] > 0
    assert voiced.mean() > 0.8
    assert np.median(column["f0_hz"][voiced]) == pytest.approx(220, rel=0.03)
    assert np.median(column["periodicity"][voiced]) > 0.9
    assert -40 < np.median(column["rms_db"]) < 0
    assert np.median(column["centroid_hz"]) == pytest.approx(330, rel=0.35)  # f0 + harmonics


@pytest.mark.slow
def test_librosa_finds_no_pitch_in_noise(clips):
    from mimsa.features.clip import Clip

    rng = np.random.default_rng(0)
    noise = Clip(clips["sound"].path, (0.1 * rng.standard_normal(16000)).astype(np.float32),
                 16000, None, None, 10.0, 1.0)
    features = extractor("librosa").extract(noise)
    f0 = features.values[:, features.names.index("f0_hz")]
    assert (f0 > 0).mean() < 0.1


def test_face_emotion_finds_the_drawn_face(clips):
    clip = clips["face"]
    features = extractor("fer_emotion").extract(clip)
    check_frames(features, 10.0, 11, clip.duration_s)
    assert features.present.mean() >= 0.9
    shown = features.values[features.present]
    assert np.allclose(shown[:, :7].sum(axis=1), 1.0, atol=1e-3)
    x, y, w, h = shown[:, 7:].T
    assert ((x >= 0) & (x + w <= 1.01) & (y >= 0) & (y + h <= 1.01)).all()
    # the face is drawn 2 x 60 pixels high in a 240-pixel frame; the cascade's box is larger
    assert 0.4 < np.median(h) < 0.9
    assert (features.values[~features.present] == 0).all()


def test_face_emotion_tracking_matches_full_search(clips):
    clip = clips["face"]
    tracked = extractor("fer_emotion").extract(clip)
    searched = extractor("fer_emotion", redetect_every=1).extract(clip)
    assert (tracked.present == searched.present).all()
    both = tracked.present
    assert np.abs(tracked.values[both, 7:] - searched.values[both, 7:]).max() < 0.05


def test_no_face_is_a_data_error_naming_the_clip(clips):
    with pytest.raises(DataError, match="no face in any of its 10 sampled frames") as caught:
        extractor("fer_emotion").extract(clips["shapes"])
    assert str(clips["shapes"].path) in str(caught.value)


@pytest.mark.parametrize("name", [*AUDIO, "fer_emotion"])
def test_refusals_name_the_clip_and_the_reason(clips, name):
    audio = name in AUDIO
    wrong = clips["silent"] if audio else clips["sound"]
    with pytest.raises(DataError, match="no audio stream" if audio else "no video stream"):
        extractor(name).extract(wrong)
    with pytest.raises(DataError, match=r"shorter than 0\.5 s") as caught:
        extractor(name).extract(clips["short"])
    assert str(clips["short"].path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_visual_extractor_refuses_another_frame_rate(clips):
    with pytest.raises(ConfigError, match=r"decode_clip\(path, fps=5\)"):
        extractor("fer_emotion", fps=5).extract(clips["face"])


def test_a_loaded_extractor_pickles_for_worker_processes(clips):
    original = extractor("fer_emotion").load()
    copy = pickle.loads(pickle.dumps(original))
    assert copy.config() == original.config()
    assert np.array_equal(copy.extract(clips["face"]).values,
                          original.extract(clips["face"]).values)


@pytest.mark.slow
def test_mediapipe_mesh_where_it_is_installed(clips):
    mesh = extractor("mediapipe_mesh")
    features = mesh.extract(clips["face"])
    check_frames(features, 10.0, 1404, clips["face"].duration_s)
    assert features.present.mean() >= 0.9
    xy = features.values[features.present].reshape(-1, 468, 3)[..., :2]
    assert ((xy > 0) & (xy < 1)).all()  # every landmark inside the frame
    with pytest.raises(DataError, match="no face"):
        mesh.extract(clips["shapes"])


# -- the real clip --------------------------------------------------------------------------
@pytest.mark.real_data
@pytest.mark.slow
def test_the_real_mosi_clip_through_every_extractor():
    pytest.importorskip("av", reason="decoding needs the features extra")
    from mimsa.features.decode import decode_clip

    clip = decode_clip(real_clip_path())
    seconds = len(clip.audio) / clip.sample_rate  # 7.44 s
    lld = extractor("egemaps_lld").extract(clip)
    check_frames(lld, 100.0, 25, seconds)
    assert 735 <= len(lld.values) <= 745
    assert extractor("egemaps_functionals").extract(clip).values.shape == (1, 88)
    lib = extractor("librosa").extract(clip)
    check_frames(lib, 100.0, 18, seconds)
    f0 = lib.values[:, lib.names.index("f0_hz")]
    assert 0.2 < (f0 > 0).mean() < 0.95 and 70 < np.median(f0[f0 > 0]) < 300  # speech
    face = extractor("fer_emotion").extract(clip)
    check_frames(face, 10.0, 11, clip.duration_s)
    assert 73 <= len(face.values) <= 75
    assert face.present.mean() >= 0.8, f"face in {face.present.mean():.0%} of the frames"
    assert np.allclose(face.values[face.present, :7].sum(axis=1), 1.0, atol=1e-3)
