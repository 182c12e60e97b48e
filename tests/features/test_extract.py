"""`mimsa extract`: dataset building, failures recorded, resume, refusals (fast extractors).

The extractors here are the two fakes of fake_extractors.py (real decoding with `av`, fake
features), so these tests check what extract does around the extractors; the real extractors
have their own tests, and the slow end-to-end test runs one of them through extract.
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest

pytest.importorskip("av", reason="extraction needs the features extra (pip install -e .[features])")

from features import fake_extractors  # noqa: E402,F401  (registers fake_audio, fake_face)
from features.clip_folder import BAD, GOOD, make_clip_folder  # noqa: E402
from mimsa.data.registry import load_dataset  # noqa: E402
from mimsa.errors import ConfigError, DataError, MissingExtraError  # noqa: E402
from mimsa.features.extract import extract_dataset, join_features, read_labels  # noqa: E402

FAKES = {"audio": ["fake_audio"], "visual": ["fake_face"]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_clip_folder(tmp_path_factory.mktemp("clips"))


def read_failures(target):
    with (target / "failures.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_builds_a_dataset_and_records_every_failure(folder, tmp_path):
    videos, labels = folder
    target = tmp_path / "ds"
    result = extract_dataset(videos, labels, target, **FAKES)
    assert result.kept == len(GOOD)
    failures = {row["clip"]: row for row in read_failures(target)}
    assert set(failures) == {f"{vid}_{cid}" for vid, cid, _, _ in BAD}
    for vid, cid, how, stage in BAD:
        row = failures[f"{vid}_{cid}"]
        assert row["stage"] == stage, (how, row)
        assert row["reason"] and "\n" not in row["reason"]
    assert "no face" in failures["bad_noface"]["reason"]
    assert "no audio" in failures["bad_noaudio"]["reason"]
    assert "no video" in failures["bad_audioonly"]["reason"]
    assert "shorter" in failures["bad_short"]["reason"]
    ds = load_dataset(str(target))
    assert ds.ids == [f"{vid}_{cid}" for vid, cid, *_ in GOOD]
    assert ds.text == [t for _, _, t, *_ in GOOD]
    assert np.allclose(ds.labels, [g[3] for g in GOOD])
    assert ds.card.split_sizes == {"train": 4, "valid": 2, "test": 2}
    # 1-s clips: ~50 audio frames of 3 values (AAC pads a little), 10 video frames of 4 values
    assert all(a.shape[1] == 3 and 50 <= a.shape[0] <= 53 for a in ds.audio)
    assert {v.shape for v in ds.vision} == {(10, 4)}
    card = ds.card.extraction
    assert [r["name"] for r in card["audio"]] == ["fake_audio"]
    assert card["audio"][0]["version"] == "fake-audio 1"
    assert card["audio"][0]["config"] == {"gain": 1.0}
    assert card["visual"][0]["config"] == {"fps": 10.0}
    assert card["decode"]["fps"] == 10.0 and card["layout"] == "sequence"
    assert card["text"]["given"] == len(GOOD) and card["text"]["asr"] == 0
    assert 0.5 < card["present_fraction"]["visual"] <= 1.0
    clips = json.loads((target / "clips.json").read_text())
    assert clips["vidA_1"]["transcript"] == {"text": "a good happy movie", "source": "given",
                                             "model": None, "words": []}
    assert clips["vidA_1"]["rows"] == {"audio": len(ds.audio[0]), "vision": 10}
    assert "fake_audio (fake-audio 1)" in ds.card.render()


def test_face_less_frames_are_zero_rows_marked_in_the_present_fraction(tmp_path):
    from features.clips import write_clip
    from mimsa.features.decode import decode_clip
    from mimsa.features.extract import ExtractorChoice, Plan, clip_features, instance

    path = write_clip(tmp_path / "c.mp4", 1.0, face=True, size=(160, 120), fps=10)
    plan = Plan(visual=(ExtractorChoice("fake_face", (("fps", 10.0),)),))
    features = instance(plan.visual[0]).extract(decode_clip(path))
    features.present[:3] = False
    features.values[:3] = 0.0
    values, times, present = join_features([features])
    assert present.mean() == pytest.approx(0.7) and not values[:3].any()
    out = clip_features(path, plan, "x")
    assert out.present["visual"] == 1.0 and out.fields["vision"].shape == (10, 4)


def test_join_puts_every_extractor_on_the_first_framed_grid():
    from mimsa.features.base import Features

    fast = Features(np.arange(20, dtype=np.float32)[:, None], (np.arange(20) + 0.5) / 100,
                    np.ones(20, bool), 100.0)
    slow = Features(np.array([[1.0], [2.0]]), np.array([0.025, 0.175]),
                    np.array([True, False]), 10.0)
    utterance = Features(np.array([[7.0, 8.0]]), np.array([0.1]), np.ones(1, bool), None)
    values, times, present = join_features([utterance, fast, slow])
    assert values.shape == (20, 4) and np.allclose(times, fast.times)
    assert np.allclose(values[:, :2], [7.0, 8.0]) and np.allclose(values[:, 2], np.arange(20))
    assert values[0, 3] == 1.0 and values[-1, 3] == 2.0  # nearest in time
    assert present[0] and not present[-1]


def test_aligned_layout_has_one_row_per_word_and_asr_fills_empty_texts(folder, tmp_path,
                                                                       monkeypatch):
    from mimsa.features import asr

    words = [("so", 0.05, 0.2), ("good", 0.3, 0.55), ("really", 0.6, 0.95)]
    calls = []

    def fake_transcribe(audio, sample_rate=16000, model="whisper-base", **_):
        calls.append(model)
        return asr.Transcript("So good, really.", list(words), "asr", "fake asr 1")

    monkeypatch.setattr(asr, "transcribe", fake_transcribe)
    monkeypatch.setattr(asr, "load_model", lambda model="whisper-base", threads=None: None)
    videos, _ = folder
    labels = tmp_path / "label.csv"
    rows = ["video_id,clip_id,text,label,mode", "vidA,1,,1,train", "vidA,2,given words,1,valid",
            "vidB,1,,-1,test"]
    labels.write_text("\n".join(rows) + "\n")
    target = tmp_path / "ds"
    extract_dataset(videos, labels, target, asr=True, aligned=True, **FAKES)
    assert len(calls) == 3  # aligned: every clip needs word timings
    ds = load_dataset(str(target))
    assert {a.shape for a in ds.audio} == {(3, 3)} and {v.shape for v in ds.vision} == {(3, 4)}
    assert ds.text == ["So good, really.", "given words", "So good, really."]
    card = ds.card.extraction
    assert card["layout"] == "aligned"
    assert card["text"]["given"] == 1 and card["text"]["asr"] == 2
    assert card["text"]["asr_model"] == "whisper-base"
    clips = json.loads((target / "clips.json").read_text())
    assert clips["vidA_1"]["transcript"]["source"] == "asr"
    assert clips["vidA_1"]["transcript"]["words"][1] == ["good", 0.3, 0.55]
    assert clips["vidA_2"]["transcript"]["source"] == "given"


def test_an_empty_text_needs_asr_and_nothing_is_written(tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    labels = tmp_path / "label.csv"
    labels.write_text("id,text,label,mode\na,hello,1,train\nb,,0.5,test\n")
    with pytest.raises(DataError, match=r"line 3: clip 'b' has an empty text.*--asr"):
        extract_dataset(videos, labels, tmp_path / "out", **FAKES)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, match", [
    ("video_id,clip_id,text,label,mode\na,1,x,4,train\n", r"line 2: label '4' .*outside \[-3, 3\]"),
    ("video_id,clip_id,text,label,mode\na,1,x,1,train\na,1,y,1,test\n", "already on line 2"),
    ("video,clip,text,label,mode\na,1,x,1,train\n", "missing column 'video_id'"),
    ("id,text,label,mode\na,x,1,holdout\n", "holdout"),
])
def test_label_csv_problems_are_one_line(tmp_path, content, match):
    labels = tmp_path / "label.csv"
    labels.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        read_labels(labels, tmp_path)
    assert "\n" not in str(info.value)


def test_mimsa_id_form_finds_clips_by_id(folder, tmp_path):
    videos, _ = folder
    labels = tmp_path / "label.csv"
    labels.write_text("id,text,label,mode\nvidB_1,x,1,train\nvidA_1,y,1,test\n")
    rows = read_labels(labels, videos)
    assert rows[0].path == str(videos / "vidB_1.mp4")
    assert rows[1].path is None  # nested layout needs video_id and clip_id columns


def test_nothing_succeeds_is_one_error_and_nothing_is_written(folder, tmp_path):
    videos, _ = folder
    labels = tmp_path / "label.csv"
    labels.write_text("video_id,clip_id,text,label,mode\nbad,notmedia,x,1,train\n"
                      "bad,truncated,z,1,valid\nbad,missing,y,1,test\n")
    target = tmp_path / "deep" / "ds"
    with pytest.raises(DataError, match="no clip could be extracted .*nothing was written"):
        extract_dataset(videos, labels, target, **FAKES)
    assert not (tmp_path / "deep").exists()


def test_interrupted_extraction_resumes_from_the_cache(folder, tmp_path, monkeypatch):
    videos, labels = folder
    target = tmp_path / "ds"
    done = []

    def stop_after_three(count, total, failed):
        done.append(count)
        if count == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_dataset(videos, labels, target, progress=stop_after_three, **FAKES)
    assert not (target / "manifest.json").exists()
    cached = sorted(p.name for p in (target / ".extract").glob("*.json"))
    assert len(cached) >= 1
    result = extract_dataset(videos, labels, target, **FAKES)
    assert result.from_cache == len(cached) and result.kept == len(GOOD)
    fresh = extract_dataset(videos, labels, tmp_path / "fresh", **FAKES)
    a, b = load_dataset(str(target)), load_dataset(str(tmp_path / "fresh"))
    assert a.ids == b.ids and all(np.array_equal(x, y) for x, y in zip(a.audio, b.audio,
                                                                       strict=True))
    assert fresh.from_cache == 0
    # a finished dataset is refused without --overwrite; with it, the cache is reused
    with pytest.raises(DataError, match="already holds a dataset; pass --overwrite"):
        extract_dataset(videos, labels, target, **FAKES)
    again = extract_dataset(videos, labels, target, overwrite=True, **FAKES)
    assert again.from_cache == len(GOOD)
    # a changed option changes the key: nothing is taken from the cache
    changed = extract_dataset(videos, labels, target, overwrite=True,
                              options={"fake_audio": {"gain": 2.0}}, **FAKES)
    assert changed.from_cache == 0
    assert np.allclose(load_dataset(str(target)).audio[0], 2 * b.audio[0], atol=1e-6)


def test_settings_are_checked_before_anything_is_written(folder, tmp_path, monkeypatch):
    videos, labels = folder
    target = tmp_path / "ds"
    with pytest.raises(ConfigError, match="unknown extractor 'nope'"):
        extract_dataset(videos, labels, target, audio=["nope"], visual=[])
    with pytest.raises(ConfigError, match="visual extractor; give it with --visual"):
        extract_dataset(videos, labels, target, audio=["fake_face"], visual=[])
    with pytest.raises(ConfigError, match="--workers 0"):
        extract_dataset(videos, labels, target, workers=0, **FAKES)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(MissingExtraError, match=r"\.\[sweep\]"):
        extract_dataset(videos, labels, target, backend="ray", **FAKES)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds other files"):
        extract_dataset(videos, labels, tmp_path / "other", **FAKES)
    assert not target.exists()


def test_asr_missing_is_named_before_any_clip(tmp_path, monkeypatch):
    labels = tmp_path / "label.csv"
    labels.write_text("id,text,label,mode\na,,1,train\n")
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "faster_whisper" else find(name, *a))
    with pytest.raises(MissingExtraError, match=r"\.\[asr\]"):
        extract_dataset(tmp_path, labels, tmp_path / "out", asr=True, **FAKES)
    assert not (tmp_path / "out").exists()


def test_cli_extract_prints_a_summary(folder, tmp_path):
    from typer.testing import CliRunner

    from mimsa.cli import app

    videos, labels = folder
    target = tmp_path / "ds"
    result = CliRunner().invoke(app, ["extract", str(videos), "--labels", str(labels), "--to",
                                      str(target), "--audio", "fake_audio", "--visual",
                                      "fake_face", "-q"])
    assert result.exit_code == 0, result.output
    assert f"{len(GOOD)} clips kept, {len(BAD)} failed" in result.output
    assert "failed bad_noface at fake_face" in result.output
    result = CliRunner().invoke(app, ["extract", str(videos), "--labels", str(labels), "--to",
                                      str(target), "--audio", "fake_audio", "-q"])
    assert result.exit_code == 2 and "already holds a dataset" in result.output


@pytest.mark.slow
def test_two_worker_processes_give_the_same_dataset(folder, tmp_path):
    videos, labels = folder
    one = extract_dataset(videos, labels, tmp_path / "one", **FAKES)
    two = extract_dataset(videos, labels, tmp_path / "two", workers=2, **FAKES)
    assert one.kept == two.kept and one.failures == two.failures
    a, b = load_dataset(str(tmp_path / "one")), load_dataset(str(tmp_path / "two"))
    assert all(np.array_equal(x, y) for x, y in zip(a.vision, b.vision, strict=True))


@pytest.mark.slow
def test_a_clip_that_kills_its_worker_process_is_recorded_not_fatal(tmp_path):
    from features.clips import write_clip

    videos = tmp_path / "v"
    videos.mkdir()
    lines = ["id,text,label,mode"]
    for i, sid in enumerate(["a", "b", "crash", "c", "d"]):
        write_clip(videos / f"{sid}.mp4", 1.0, video=False, seed=i)
        lines.append(f"{sid},words,1,{ {'c': 'valid', 'd': 'test'}.get(sid, 'train')}")
    (tmp_path / "label.csv").write_text("\n".join(lines) + "\n")
    result = extract_dataset(videos, tmp_path / "label.csv", tmp_path / "ds",
                             audio=["fake_crash"], visual=[], workers=2)
    assert result.kept == 4
    assert result.failures == [("crash", "worker", "the extraction process died on this clip "
                                                    "(a crash in a native library?)")]


@pytest.mark.slow
def test_ray_backend_gives_the_same_dataset(folder, tmp_path):
    pytest.importorskip("ray", reason="the ray backend needs the sweep extra")
    videos, labels = folder
    one = extract_dataset(videos, labels, tmp_path / "one", **FAKES)
    two = extract_dataset(videos, labels, tmp_path / "two", workers=2, backend="ray", **FAKES)
    assert one.kept == two.kept and one.failures == two.failures
    a, b = load_dataset(str(tmp_path / "one")), load_dataset(str(tmp_path / "two"))
    assert all(np.array_equal(x, y) for x, y in zip(a.audio, b.audio, strict=True))


@pytest.mark.slow
@pytest.mark.real_data
def test_the_real_clip_with_real_extractors_asr_and_word_alignment(tmp_path):
    from features.real_clip import CLIP_ID, real_clip_path, reference_text
    from mimsa.errors import MissingExtraError

    clip = real_clip_path()
    reference = reference_text()
    try:
        from mimsa.features.asr import load_model

        load_model()
    except MissingExtraError as err:
        pytest.skip(str(err))
    labels = tmp_path / "label.csv"
    labels.write_text(f"id,text,label,mode\n{CLIP_ID},,1.0,train\n")
    result = extract_dataset(clip.parent, labels, tmp_path / "ds", audio=["librosa"],
                             visual=["fer_emotion"], asr=True, aligned=True,
                             splits=("train",))  # one clip: a look, not a training set
    assert result.kept == 1 and not result.failures
    ds = load_dataset(str(tmp_path / "ds"))
    clips = json.loads((tmp_path / "ds" / "clips.json").read_text())
    transcript = clips[CLIP_ID]["transcript"]
    words = transcript["words"]
    assert transcript["source"] == "asr" and len(words) >= 5
    assert ds.audio[0].shape == (len(words), 18) and ds.vision[0].shape == (len(words), 11)
    heard = set(transcript["text"].lower().replace(",", " ").replace(".", " ").split())
    assert len(heard & set(reference.split())) >= len(set(reference.split())) // 3
    assert clips[CLIP_ID]["present"]["visual"] > 0.5  # the speaker faces the camera


def test_only_the_streams_the_plan_reads_are_decoded(tmp_path, monkeypatch):
    from features.clips import write_clip
    from mimsa.features import asr
    from mimsa.features import decode as decode_mod
    from mimsa.features.decode import decode_clip
    from mimsa.features.extract import ExtractorChoice, Plan, clip_features, instance

    path = write_clip(tmp_path / "c.mp4", 1.0, face=True, size=(160, 120), fps=10)
    calls = []
    real = decode_mod.decode_clip
    monkeypatch.setattr(decode_mod, "decode_clip",
                        lambda *a, **k: (calls.append((k["video"], k["audio"])), real(*a, **k))[1])
    monkeypatch.setattr(asr, "transcribe", lambda audio, sample_rate=16000, model="m", **_:
                        asr.Transcript("heard words", [("heard", 0.1, 0.3)], "asr", model))
    audio = Plan(audio=(ExtractorChoice("fake_audio"),))
    visual = Plan(visual=(ExtractorChoice("fake_face", (("fps", 10.0),)),))
    speech = Plan(asr_model="whisper-base")
    out_a = clip_features(path, audio, "x")
    out_v = clip_features(path, visual, "x")
    out_t = clip_features(path, speech, None)
    assert calls == [(False, True), (True, False), (False, True)]
    full = decode_clip(path)  # what a full decode gives: the same features
    assert np.array_equal(out_a.fields["audio"], instance(audio.audio[0]).extract(full).values)
    assert np.array_equal(out_v.fields["vision"],
                          instance(visual.visual[0]).extract(full).values)
    assert out_t.transcript["text"] == "heard words" and out_t.fields == {}
