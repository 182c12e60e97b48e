"""`mimsa predict`: extract → train → predict end to end, refusals, --json, the real clip.

The fast tests use the fake extractors of tests/features/fake_extractors.py on generated
clips (real decoding with `av`); the slow ones train on real data and run speech recognition.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("av", reason="prediction from clips needs the features extra "
                                 "(pip install -e .[features])")

from features import fake_extractors  # noqa: E402,F401  (registers fake_audio, fake_face)
from features.clip_folder import GOOD, make_clip_folder  # noqa: E402

from mimsa.cli import app  # noqa: E402
from mimsa.errors import RunError  # noqa: E402
from mimsa.features.extract import extract_dataset  # noqa: E402
from mimsa.metrics import class7  # noqa: E402
from mimsa.predict import Predictor, predict  # noqa: E402

runner = CliRunner()
KEYS = {"clip", "score", "class7", "class2", "transcript", "transcript_source", "drop",
        "features"}


def train(dataset: Path | str, out: Path, *args: str) -> Path:
    result = runner.invoke(app, ["train", "-d", str(dataset), "--out", str(out), "-q",
                                 "--set", "train.epochs=2", *args])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    videos, labels = make_clip_folder(root)
    target = root / "ds"
    extract_dataset(videos, labels, target, audio=["fake_audio"], visual=["fake_face"])
    return videos, target


@pytest.fixture(scope="module")
def fusion_run(extracted, tmp_path_factory):
    _, target = extracted
    return train(target, tmp_path_factory.mktemp("runs") / "lf", "-m", "late_fusion")


def clip_path(videos: Path, vid: str, cid: str, nested: bool) -> Path:
    return videos / vid / f"{cid}.mp4" if nested else videos / f"{vid}_{cid}.mp4"


@pytest.fixture(scope="module")
def standardised_run(extracted, tmp_path_factory):
    _, target = extracted
    return train(target, tmp_path_factory.mktemp("runs") / "std", "-m", "late_fusion",
                 "--set", "data.standardize=true")


@pytest.mark.parametrize("run", ["fusion_run", "standardised_run"])
def test_extract_train_predict_reproduces_the_run_s_own_predictions(extracted, run, request):
    videos, _ = extracted
    fusion_run = request.getfixturevalue(run)
    spec = json.loads((fusion_run / "model.json").read_text())
    records = spec["inputs"]["extraction"]
    assert [r["name"] for r in records["audio"]] == ["fake_audio"]
    assert [r["name"] for r in records["visual"]] == ["fake_face"]
    assert ("scaling" in spec["inputs"]) == (run == "standardised_run")
    with (fusion_run / "predictions.csv").open() as handle:
        saved = {row["id"]: float(row["prediction"]) for row in csv.DictReader(handle)}
    predictor = Predictor(fusion_run)
    checked = 0
    for vid, cid, text, _, mode, nested in GOOD:
        if mode == "train":
            continue
        result = predictor.predict_clip(clip_path(videos, vid, cid, nested), text)
        assert set(result) == KEYS
        assert result["score"] == pytest.approx(np.clip(saved[f"{vid}_{cid}"], -3, 3),
                                                abs=1e-4)
        assert result["class7"] == int(class7(result["score"]))
        assert result["class2"] == ("negative" if result["score"] < 0 else "non-negative")
        assert result["transcript"] == text and result["transcript_source"] == "given"
        assert set(result["drop"]) == {"t", "a", "v"}
        assert all(-3 <= s <= 3 for s in result["drop"].values())
        assert result["features"]["vision"]["rows"] == 10
        assert result["features"]["audio"]["extractors"] == [{"name": "fake_audio",
                                                              "version": "fake-audio 1"}]
        checked += 1
    assert checked == 4


def test_cli_json_prints_one_object_per_clip(extracted, fusion_run):
    videos, _ = extracted
    a = clip_path(videos, *GOOD[0][:2], GOOD[0][5])
    b = clip_path(videos, *GOOD[1][:2], GOOD[1][5])
    result = runner.invoke(app, ["predict", str(fusion_run), str(a), str(b), "--text", "good",
                                 "--text", "bad", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["clip"] for r in lines] == [str(a), str(b)]
    assert all(set(r) == KEYS for r in lines)
    assert [r["transcript"] for r in lines] == ["good", "bad"]
    result = runner.invoke(app, ["predict", str(fusion_run), str(a), "--text", "good"])
    assert result.exit_code == 0, result.output
    assert "score" in result.output and "class7" in result.output and "without a:" in \
        result.output
    result = runner.invoke(app, ["predict", str(fusion_run), str(a), str(b), "--text", "x"])
    assert result.exit_code == 2 and "1 --text for 2 clips" in result.output


def test_a_clip_without_the_run_s_inputs_is_one_line(extracted, fusion_run):
    videos, _ = extracted
    result = runner.invoke(app, ["predict", str(fusion_run), str(videos / "bad_noface.mp4"),
                                 "--text", "x"])
    assert result.exit_code == 2
    assert "cannot extract the run's inputs: fake_face: no face" in result.output
    result = runner.invoke(app, ["predict", str(fusion_run), str(videos / "nope.mp4"),
                                 "--text", "x"])
    assert result.exit_code == 2 and "file not found" in result.output


def test_text_only_run_needs_the_transcript_alone(extracted, tmp_path, monkeypatch):
    videos, target = extracted
    run = train(target, tmp_path / "t", "-m", "text_only")
    vid, cid, text, *_, nested = GOOD[0]
    (out,) = predict(run, clip_path(videos, vid, cid, nested), text=text)
    assert out["drop"] == {} and out["transcript_source"] == "given"
    assert set(out["features"]) == {"text", "layout"}  # nothing extracted from the media
    # a text file named .mp4 is fine: with the text given, nothing is decoded
    (junk,) = predict(run, videos / "bad_notmedia.mp4", text=text)
    assert junk["score"] == out["score"]
    # without a text: speech recognition, which needs the audio alone (no frame decoded)
    from mimsa.features import asr
    from mimsa.features import decode as decode_mod

    calls = []
    real = decode_mod.decode_clip
    monkeypatch.setattr(decode_mod, "decode_clip",
                        lambda *a, **k: (calls.append((k["video"], k["audio"])), real(*a, **k))[1])
    monkeypatch.setattr(asr, "transcribe", lambda audio, sample_rate=16000, model="m", **_:
                        asr.Transcript(text, [], "asr", model))
    monkeypatch.setattr("mimsa.predict.require_asr", lambda: None)  # no .[asr] needed here
    (heard,) = predict(run, clip_path(videos, vid, cid, nested))
    assert calls == [(False, True)]
    assert heard["transcript_source"] == "asr" and heard["score"] == out["score"]


def test_multi_seed_run_averages_its_seeds(extracted, tmp_path):
    videos, target = extracted
    out = tmp_path / "seeds"
    result = runner.invoke(app, ["train", "-m", "late_fusion", "-d", str(target), "--seeds",
                                 "1", "2", "--out", str(out), "-q", "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    vid, cid, text, *_, nested = GOOD[4]
    (res,) = predict(out, clip_path(videos, vid, cid, nested), text=text)
    assert set(res) == KEYS | {"seeds"} and set(res["seeds"]) == {"seed-1", "seed-2"}
    assert res["score"] == pytest.approx(np.clip(np.mean(list(res["seeds"].values())), -3, 3),
                                         abs=1e-6)


def test_synthetic_run_is_refused_in_one_line(tmp_path):
    run = tmp_path / "syn"
    result = runner.invoke(app, ["train", "-m", "late_fusion", "--out", str(run), "-q",
                                 "--set", "train.epochs=1", "--set",
                                 "data.synthetic_sizes={train: 32, valid: 16, test: 16}"])
    assert result.exit_code == 0, result.output
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"x")
    result = runner.invoke(app, ["predict", str(run), str(clip), "--text", "x"])
    assert result.exit_code == 2
    assert "no mimsa extractor reproduces" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(RunError, match="trained on synthetic's audio features"):
        Predictor(run)
    # text_only on synthetic: the text is the dataset's own token ids
    run = tmp_path / "syn_t"
    result = runner.invoke(app, ["train", "-m", "text_only", "--out", str(run), "-q",
                                 "--set", "train.epochs=1", "--set",
                                 "data.synthetic_sizes={train: 32, valid: 16, test: 16}"])
    assert result.exit_code == 0, result.output
    with pytest.raises(RunError, match="own token ids"):
        Predictor(run)


def test_precomputed_features_are_refused(tmp_path):
    """A run on text-CNN + openSMILE features (the form of mosi-poria) is refused."""
    from mimsa.data.dataset import DatasetCard, MultimodalDataset
    from mimsa.data.store import save_dataset

    rng = np.random.default_rng(0)
    n = 24
    card = DatasetCard(name="poria-like", source="test",
                       provenance={"text_feats": "Poria text-CNN utterance vector",
                                   "audio": "Poria openSMILE utterance vector"})
    ds = MultimodalDataset(card=card, ids=[f"s{i}" for i in range(n)],
                           splits=["train"] * 12 + ["valid"] * 6 + ["test"] * 6,
                           labels=rng.uniform(-3, 3, n),
                           text_feats=[rng.normal(size=(1, 8)) for _ in range(n)],
                           audio=[rng.normal(size=(1, 5)) for _ in range(n)])
    save_dataset(ds, tmp_path / "poria")
    run = train(tmp_path / "poria", tmp_path / "run", "-m", "late_fusion")
    with pytest.raises(RunError, match="Poria openSMILE utterance vector.*no mimsa extractor"):
        Predictor(run)
    run_t = train(tmp_path / "poria", tmp_path / "run_t", "-m", "late_fusion",
                  "--set", "data.modalities=t")
    with pytest.raises(RunError, match="text feature vectors .*text-CNN"):
        Predictor(run_t)


def test_python_api_is_not_re_exported_by_the_package():
    import mimsa

    assert not hasattr(mimsa, "predict") or not callable(getattr(mimsa, "predict", None))


# -- real extractors and real data -----------------------------------------------------------
@pytest.mark.slow
def test_real_extractors_end_to_end(tmp_path):
    """extract (librosa + fer_emotion, 2 worker processes) → train → predict gives the run's
    own predictions back: the features predict extracts are those training saw."""
    pytest.importorskip("librosa", reason="needs the features extra")
    pytest.importorskip("cv2", reason="needs the features extra")
    videos, labels = make_clip_folder(tmp_path)
    target = tmp_path / "ds"
    result = extract_dataset(videos, labels, target, audio=["librosa"],
                             visual=["fer_emotion"], workers=2)
    assert result.kept == len(GOOD)
    run = train(target, tmp_path / "run", "-m", "late_fusion")
    with (run / "predictions.csv").open() as handle:
        saved = {row["id"]: float(row["prediction"]) for row in csv.DictReader(handle)}
    predictor = Predictor(run)
    for vid, cid, text, _, mode, nested in GOOD:
        if mode != "train":
            out = predictor.predict_clip(clip_path(videos, vid, cid, nested), text)
            assert out["score"] == pytest.approx(np.clip(saved[f"{vid}_{cid}"], -3, 3),
                                                 abs=1e-4)


@pytest.mark.slow
@pytest.mark.real_data
def test_text_only_run_on_mosi_predicts_the_real_clip_from_asr(tmp_path):
    from features.real_clip import REAL_ROOT, real_clip_path, reference_text

    from mimsa.errors import MissingExtraError

    clip, reference = real_clip_path(), reference_text()
    try:
        from mimsa.features.asr import load_model

        load_model()
    except MissingExtraError as err:
        pytest.skip(str(err))
    run = train("mosi", tmp_path / "mosi_t", "-m", "text_only", "--set", "train.epochs=1",
                "--set", "encoder.name=vocab", "--data-root", str(REAL_ROOT))
    result = runner.invoke(app, ["predict", str(run), str(clip), "--json"])
    assert result.exit_code == 0, result.output
    (out,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert out["transcript_source"] == "asr" and -3 <= out["score"] <= 3
    assert out["drop"] == {} and out["features"]["text"]["tokens"] >= 5
    heard, said = set(out["transcript"].split()), set(reference.split())
    assert len(heard & said) >= len(said) // 3  # normalised ASR overlaps the reference


@pytest.mark.slow
@pytest.mark.real_data
def test_a_mosi_poria_run_is_refused_in_one_line(tmp_path):
    from features.real_clip import REAL_ROOT, real_clip_path

    clip = real_clip_path()
    run = train("mosi-poria", tmp_path / "poria", "-m", "late_fusion", "--set",
                "train.epochs=1", "--data-root", str(REAL_ROOT))
    result = runner.invoke(app, ["predict", str(run), str(clip), "--text", "x"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "mosi-poria's audio features (Poria openSMILE" in " ".join(result.output.split())
    assert "no mimsa extractor reproduces" in " ".join(result.output.split())


def test_text_count_message_counts_one_clip_in_the_singular(tmp_path):
    from mimsa.errors import ConfigError
    from mimsa.predict import check_inputs

    with pytest.raises(ConfigError, match=r"^2 --text for 1 clip; give one --text per clip"):
        check_inputs([tmp_path / "a.mp4"], ["x", "y"])
