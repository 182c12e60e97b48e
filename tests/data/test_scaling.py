"""data.standardize: train-split statistics, applied as recorded in every later use of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mimsa.data.scaling import apply_scaling, fit_scaling, scaled_fields
from mimsa.data.synthetic import make_synthetic
from mimsa.errors import RunError

SIZES = {"train": 16, "valid": 8, "test": 8}


def _frames(dataset, field, split):
    return np.concatenate([getattr(dataset, field)[i] for i in dataset.indices(split)])


def test_statistics_come_from_the_train_split_alone():
    dataset = make_synthetic(seed=0, sizes=SIZES)
    before = fit_scaling(dataset, ["audio"])
    for i in dataset.indices("test"):  # a shifted test split leaves the statistics alone
        dataset.audio[i] = dataset.audio[i] + 100.0
    after = fit_scaling(dataset, ["audio"])
    assert after == before
    train = _frames(dataset, "audio", "train").astype(np.float64)
    assert np.allclose(before["audio"]["mean"], train.mean(axis=0))
    assert np.allclose(before["audio"]["std"], train.std(axis=0))


def test_applied_statistics_give_z_scores_and_only_centre_a_constant_dimension():
    dataset = make_synthetic(seed=0, sizes=SIZES)
    for i in range(len(dataset.ids)):
        dataset.vision[i][:, 0] = 5.0  # constant everywhere: std 0
    scaling = fit_scaling(dataset, ["audio", "vision"])
    apply_scaling(dataset, scaling, "RUN")
    for field in ("audio", "vision"):
        train = _frames(dataset, field, "train")
        assert train.dtype == np.float32
        assert np.allclose(train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(_frames(dataset, "audio", "train").std(axis=0), 1.0, atol=1e-4)
    assert np.all(_frames(dataset, "vision", "test")[:, 0] == 0.0)
    assert any("data.standardize" in note for note in dataset.card.notes)


def test_text_features_are_scaled_only_when_the_text_input_is_features():
    dataset = make_synthetic(seed=0, sizes=SIZES)
    dataset.text_feats = [a.copy() for a in dataset.audio]
    assert scaled_fields(dataset, "tav", "pretrained") == ["audio", "vision"]
    assert scaled_fields(dataset, "ta", "features") == ["text_feats", "audio"]


@pytest.mark.parametrize("broken", [{"mean": [0.0], "std": [1.0]}, {"mean": []}])
def test_statistics_of_other_dims_are_one_line_naming_the_run(broken):
    dataset = make_synthetic(seed=0, sizes=SIZES)
    with pytest.raises(RunError) as err:
        apply_scaling(dataset, {"audio": broken}, "runs/x")
    message = str(err.value)
    assert "\n" not in message and message.startswith("runs/x") and "audio" in message


def test_a_standardised_run_records_its_statistics_and_evaluates_with_them(tmp_path, tiny_cfg):
    from mimsa.eval.evaluate import evaluate_run
    from mimsa.train.run import prepare_data, train_run

    tiny_cfg["data"]["standardize"] = True
    tiny_cfg["train"]["epochs"] = 2
    metrics = train_run(tiny_cfg, tmp_path / "run")
    inputs = json.loads((tmp_path / "run" / "model.json").read_text())["inputs"]
    assert set(inputs["scaling"]) == {"audio", "vision"}
    assert evaluate_run(tmp_path / "run")["test"] == pytest.approx(metrics["test"])
    # later uses apply the recorded statistics, not ones refitted on the data at hand
    shifted = {f: {"mean": [m + 1.0 for m in s["mean"]], "std": s["std"]}
               for f, s in inputs["scaling"].items()}
    fitted, _ = prepare_data(tiny_cfg)
    recorded, _ = prepare_data(tiny_cfg, saved_scaling=shifted)
    assert np.allclose(fitted.audio[0] - recorded.audio[0],
                       1.0 / np.where(np.array(inputs["scaling"]["audio"]["std"]) > 0,
                                      inputs["scaling"]["audio"]["std"], 1.0), atol=1e-4)


def test_an_unstandardised_run_records_no_statistics(tmp_path, tiny_cfg):
    from mimsa.train.run import train_run

    tiny_cfg["train"]["epochs"] = 1
    train_run(tiny_cfg, tmp_path / "run")
    assert "scaling" not in json.loads((tmp_path / "run" / "model.json").read_text())["inputs"]
