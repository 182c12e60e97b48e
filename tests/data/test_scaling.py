"""data.standardize: train-split statistics, applied as recorded in every later use of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mimsa.data.scaling import (
    SCALE_FLOOR,
    apply_scaling,
    check_scaling,
    fit_scaling,
    scaled_fields,
)
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
    assert np.allclose(before["audio"]["scale"], train.std(axis=0))


def test_applied_statistics_give_z_scores_and_zero_a_constant_dimension():
    dataset = make_synthetic(seed=0, sizes=SIZES)
    originals = [a.copy() for a in dataset.vision]
    for i in range(len(dataset.ids)):
        dataset.vision[i][:, 0] = 5.0  # constant on train: nothing to learn from it
    dataset.vision[dataset.indices("test")[0]][:, 0] = 9.0  # ... and shifted on test
    scaling = fit_scaling(dataset, ["audio", "vision"])
    assert scaling["vision"]["scale"][0] == 0.0
    kept = dataset.vision
    apply_scaling(dataset, scaling, "RUN")
    for field in ("audio", "vision"):
        train = _frames(dataset, field, "train")
        assert train.dtype == np.float32
        assert np.allclose(train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(_frames(dataset, "audio", "train").std(axis=0), 1.0, atol=1e-4)
    assert np.all(_frames(dataset, "vision", "test")[:, 0] == 0.0)
    assert any("data.standardize" in note for note in dataset.card.notes)
    assert np.array_equal(kept[1][:, 1:], originals[1][:, 1:])  # a new list, old arrays kept


def test_a_nearly_constant_dimension_is_divided_by_the_floor_not_its_tiny_std():
    dataset = make_synthetic(seed=0, sizes=SIZES)
    rng = np.random.default_rng(0)
    for i in range(len(dataset.ids)):
        dataset.audio[i][:, 0] = 1.0 + 1e-6 * rng.standard_normal(len(dataset.audio[i]))
    scale = np.array(fit_scaling(dataset, ["audio"])["audio"]["scale"])
    assert scale[0] == pytest.approx(SCALE_FLOOR * np.median(scale[1:]), rel=0.05)
    assert np.all(scale[1:] > scale[0])


def test_text_features_are_scaled_only_when_the_text_input_is_features():
    dataset = make_synthetic(seed=0, sizes=SIZES)
    dataset.text_feats = [a.copy() for a in dataset.audio]
    assert scaled_fields(dataset, "tav", "pretrained") == ["audio", "vision"]
    assert scaled_fields(dataset, "ta", "features") == ["text_feats", "audio"]


@pytest.mark.parametrize(("scaling", "expected"), [
    ([], "is list, not a mapping"),
    ({"audio": [1, 2]}, "audio must hold exactly 'mean' and 'scale'"),
    ({"audio": {"mean": ["x"], "scale": [1.0]}}, "'mean' must be a non-empty list of finite"),
    ({"audio": {"mean": [0.0], "scale": [None]}}, "'scale' must be a non-empty list of finite"),
    ({"audio": {"mean": [0.0, 1.0], "scale": [1.0]}}, "has 2 means and 1 scales"),
    ({"audio": {"mean": [0.0], "scale": [-1.0]}}, "has a negative scale"),
    ({"text": {"mean": [0.0], "scale": [1.0]}}, "text is not a feature field"),
])
def test_malformed_statistics_are_one_line_naming_the_run_and_field(scaling, expected):
    with pytest.raises(RunError) as err:
        check_scaling(scaling, "runs/x")
    message = str(err.value)
    assert "\n" not in message and message.startswith("runs/x") and expected in message


def test_statistics_of_other_dims_are_one_line_naming_the_run():
    dataset = make_synthetic(seed=0, sizes=SIZES)
    with pytest.raises(RunError, match=r"^runs/x: the recorded audio statistics .* have 1 "
                                       r"dims, the data \d+"):
        apply_scaling(dataset, {"audio": {"mean": [0.0], "scale": [1.0]}}, "runs/x")


@pytest.fixture
def standardised_run(tmp_path, tiny_cfg):
    from mimsa.train.run import train_run

    tiny_cfg["data"]["standardize"] = True
    tiny_cfg["train"]["epochs"] = 2
    metrics = train_run(tiny_cfg, tmp_path / "run")
    return tmp_path / "run", tiny_cfg, metrics


def test_a_standardised_run_records_its_statistics_and_evaluates_with_them(standardised_run):
    from mimsa.eval.evaluate import evaluate_run
    from mimsa.train.run import prepare_data

    run, cfg, metrics = standardised_run
    inputs = json.loads((run / "model.json").read_text())["inputs"]
    assert set(inputs["scaling"]) == {"audio", "vision"}
    assert evaluate_run(run)["test"] == pytest.approx(metrics["test"])
    # later uses apply the recorded statistics, not ones refitted on the data at hand
    shifted = {f: {"mean": [m + 1.0 for m in s["mean"]], "scale": s["scale"]}
               for f, s in inputs["scaling"].items()}
    fitted, _ = prepare_data(cfg)
    recorded, _ = prepare_data(cfg, saved_scaling=shifted)
    scale = np.array(inputs["scaling"]["audio"]["scale"])
    assert np.allclose(fitted.audio[0] - recorded.audio[0], 1.0 / scale, atol=1e-4)


def _edit(path, edit) -> None:
    spec = json.loads(path.read_text())
    edit(spec)
    path.write_text(json.dumps(spec))


@pytest.mark.parametrize("damage", ["lost statistics", "config says off"])
def test_a_run_whose_files_disagree_about_standardisation_is_refused(standardised_run, damage):
    from mimsa.train.checkpoint import SPEC
    from mimsa.train.run import load_run

    run = standardised_run[0]
    if damage == "lost statistics":  # scored on raw features, it would only warn
        _edit(run / SPEC, lambda spec: spec["inputs"].pop("scaling"))
    else:
        text = (run / "config.yaml").read_text()
        (run / "config.yaml").write_text(text.replace("standardize: true",
                                                      "standardize: false"))
    with pytest.raises(RunError) as err:
        load_run(run)
    message = str(err.value)
    assert "\n" not in message and "data.standardize" in message and str(run) in message


def test_resume_applies_the_recorded_statistics(tmp_path, tiny_cfg, interrupt_run,
                                                monkeypatch):
    from mimsa.data import scaling as scaling_mod
    from mimsa.train.run import train_run

    tiny_cfg["data"]["standardize"] = True
    interrupt_run(tiny_cfg, tmp_path / "run", epoch=1)
    refits = []
    monkeypatch.setattr("mimsa.train.run.fit_scaling",
                        lambda *a: refits.append(a) or scaling_mod.fit_scaling(*a))
    train_run(tiny_cfg, tmp_path / "run", resume=True)
    assert refits == []
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_an_unstandardised_run_records_no_statistics(tmp_path, tiny_cfg):
    from mimsa.train.run import train_run

    tiny_cfg["train"]["epochs"] = 1
    train_run(tiny_cfg, tmp_path / "run")
    assert "scaling" not in json.loads((tmp_path / "run" / "model.json").read_text())["inputs"]


def test_standardising_a_run_that_reads_no_feature_field_warns(tmp_path, tiny_cfg):
    from mimsa.train.run import prepare_data

    tiny_cfg["data"]["standardize"] = True
    tiny_cfg["data"]["modalities"] = "t"
    with pytest.warns(UserWarning, match="reads no feature field"):
        _, spec = prepare_data(tiny_cfg)
    assert spec.scaling == {}
