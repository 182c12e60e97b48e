"""decode_clip: sampling times, resampled audio, partial files, and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av", reason="decoding needs the features extra (pip install -e .[features])")

from mimsa.errors import DataError  # noqa: E402
from mimsa.features.decode import decode_clip  # noqa: E402

from .clips import write_clip, write_not_media, write_truncated  # noqa: E402
from .real_clip import real_clip_path  # noqa: E402

SIZE = (160, 120)


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("decode") / "both.mp4", 2.0, size=SIZE, fps=25)


def red_square_left(frame: np.ndarray) -> int:
    """Return the left edge of the red square that clips.write_clip moves across the frame."""
    red = (frame[..., 0] > 180) & (frame[..., 1] < 110) & (frame[..., 2] < 110)
    columns = np.flatnonzero(red.any(axis=0))
    assert columns.size, "no red square in the frame"
    return int(columns[0])


def test_frames_are_the_pictures_on_screen_at_the_centre_of_each_slot(clip_path):
    clip = decode_clip(clip_path, fps=10.0)
    assert clip.frames.shape == (20, SIZE[1], SIZE[0], 3) and clip.frames.dtype == np.uint8
    assert np.allclose(clip.frame_times, (np.arange(20) + 0.5) / 10)
    # the square's left edge is (W - side) * t / duration at the 25-fps picture shown at t_k
    side = max(8, min(SIZE) // 5)
    shown = np.floor(clip.frame_times * 25) / 25
    expected = ((SIZE[0] - side) * shown / 2.0).astype(int)
    measured = np.array([red_square_left(f) for f in clip.frames])
    assert np.abs(measured - expected).max() <= 2, (measured, expected)
    assert clip.duration_s == pytest.approx(2.0, abs=0.1)


def test_other_rates_and_sizes(clip_path):
    clip = decode_clip(clip_path, fps=4.0, max_side=80)
    assert clip.frames.shape == (8, 60, 80, 3)
    assert clip.fps == 4.0 and np.allclose(np.diff(clip.frame_times), 0.25)
    assert decode_clip(clip_path, fps=25.0, max_side=None).frames.shape[0] == 50


def test_audio_is_16k_mono_and_keeps_the_pitch(clip_path):
    clip = decode_clip(clip_path)
    assert clip.sample_rate == 16000 and clip.audio.dtype == np.float32 and clip.audio.ndim == 1
    assert len(clip.audio) / 16000 == pytest.approx(2.0, abs=0.1)  # AAC pads < 0.1 s
    assert np.abs(clip.audio).max() <= 1.0
    spectrum = np.abs(np.fft.rfft(clip.audio[4000:20000]))
    peak_hz = np.fft.rfftfreq(16000, 1 / 16000)[spectrum.argmax()]
    assert peak_hz == pytest.approx(220, abs=8)  # the tone's fundamental (±3 % vibrato)
    low = decode_clip(clip_path, sample_rate=8000)
    assert len(low.audio) == pytest.approx(len(clip.audio) / 2, abs=40)


def test_a_missing_stream_is_none_not_an_error(tmp_path):
    silent = decode_clip(write_clip(tmp_path / "silent.mp4", 1.0, audio=False, size=SIZE))
    assert silent.audio is None and not silent.has_audio
    assert silent.frames.shape[0] == 10 and silent.has_video
    sound = decode_clip(write_clip(tmp_path / "sound.mp4", 1.0, video=False))
    assert sound.frames is None and sound.frame_times is None and not sound.has_video
    assert len(sound.audio) / 16000 == pytest.approx(1.0, abs=0.1)


def test_a_very_short_clip_decodes(tmp_path):
    clip = decode_clip(write_clip(tmp_path / "short.mp4", 0.2, size=SIZE))
    assert clip.frames.shape[0] == 2 and clip.duration_s < 0.4


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: write_truncated(p), "truncated"),
    (lambda p: write_truncated(p, faststart=False), "not a readable media file"),
    (write_not_media, "not a readable media file"),
])
def test_broken_files_raise_one_line_naming_the_file(tmp_path, make, words):
    path = make(tmp_path / "broken.mp4")
    with pytest.raises(DataError) as caught:
        decode_clip(path)
    message = str(caught.value)
    assert str(path) in message and words in message and "\n" not in message


def test_a_missing_file_and_bad_arguments(tmp_path, clip_path):
    with pytest.raises(DataError, match="no such file"):
        decode_clip(tmp_path / "absent.mp4")
    with pytest.raises(ValueError, match="fps"):
        decode_clip(clip_path, fps=0)


@pytest.mark.real_data
def test_the_real_mosi_clip():
    clip = decode_clip(real_clip_path())
    assert clip.audio.shape[0] / 16000 == pytest.approx(7.44, abs=0.05)
    assert 73 <= clip.frames.shape[0] <= 75  # 7.4-7.5 s at 10 fps
    assert clip.frames.shape[1:] == (360, 480, 3)
    assert 0.05 < np.abs(clip.audio).max() <= 1.0  # speech, not silence


def test_skipping_a_stream_decodes_the_other_identically(clip_path, monkeypatch):
    from mimsa.features import decode as decode_mod

    both = decode_clip(clip_path, fps=10.0)
    seen = []
    add_video = decode_mod._Decoder._add_video
    monkeypatch.setattr(decode_mod._Decoder, "_add_video",
                        lambda self, frame: (seen.append(frame), add_video(self, frame)))
    sound = decode_clip(clip_path, fps=10.0, video=False)
    assert not seen  # no video frame was decoded
    assert sound.frames is None and sound.frame_times is None and not sound.has_video
    assert np.array_equal(sound.audio, both.audio)
    assert sound.duration_s == pytest.approx(len(both.audio) / 16000)
    picture = decode_clip(clip_path, fps=10.0, audio=False)
    assert seen and picture.audio is None and not picture.has_audio
    assert np.array_equal(picture.frames, both.frames)
    assert np.array_equal(picture.frame_times, both.frame_times)
    with pytest.raises(ValueError, match="video=True or audio=True"):
        decode_clip(clip_path, video=False, audio=False)


def test_skipping_a_stream_the_file_lacks_or_on_a_broken_file(tmp_path):
    silent = write_clip(tmp_path / "silent.mp4", 1.0, audio=False, size=SIZE)
    empty = decode_clip(silent, video=False)  # nothing asked for is there: not an error here
    assert empty.audio is None and empty.frames is None and empty.duration_s == 0.0
    sound = decode_clip(write_clip(tmp_path / "sound.mp4", 1.0, video=False), audio=False)
    assert sound.audio is None and sound.frames is None
    broken = write_truncated(tmp_path / "broken.mp4")
    with pytest.raises(DataError, match="truncated"):
        decode_clip(broken, video=False)
    with pytest.raises(DataError, match="not a readable media file"):
        decode_clip(write_not_media(tmp_path / "text.mp4"), video=False)


@pytest.mark.real_data
def test_the_real_clip_audio_alone_is_the_same_audio():
    path = real_clip_path()
    assert np.array_equal(decode_clip(path, video=False).audio, decode_clip(path).audio)
