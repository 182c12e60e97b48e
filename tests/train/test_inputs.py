"""A run's recorded inputs against the data given now: refused differences, warned changes."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from mimsa.data.synthetic import make_synthetic
from mimsa.encoders.builder import TextSpec
from mimsa.errors import RunError
from mimsa.models.base import InputSpec
from mimsa.train.inputs import (
    DataChangedWarning,
    check_data_fingerprint,
    check_inputs,
    data_fingerprint,
    input_record,
    saved_input_spec,
)

SIZES = {"train": 16, "valid": 8, "test": 8}


@pytest.fixture
def dataset():
    return make_synthetic(seed=0, sizes=SIZES)


def _spec(dataset, modalities="tav", **text) -> InputSpec:
    base = {"kind": "embedding", "source": "embedding", "vocab_size": dataset.vocab_size,
            "pad_id": 0}
    text_spec = TextSpec(**{**base, **text}) if "t" in modalities else TextSpec()
    return InputSpec(modalities, dataset.feature_dims(), text_spec,
                     {"name": "auto", "max_length": 50})


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message.startswith("RUN: ")
    return message


def test_the_same_inputs_pass_silently(dataset):
    saved = input_record(_spec(dataset), dataset)
    assert saved["provenance"]["audio"] == dataset.card.provenance["audio"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_inputs(saved, _spec(dataset), "RUN", dataset)


def test_changed_feature_dims_name_the_field_and_both_sizes(dataset):
    saved = input_record(_spec(dataset), dataset)
    now = _spec(dataset)
    now.dims["audio"] = 73
    with pytest.raises(RunError) as err:
        check_inputs(saved, now, "RUN", dataset)
    message = _one_line(err)
    assert "trained on audio of 74 dims, the data now give 73 (dataset synthetic)" in message
    assert "re-train" in message


def test_dims_of_an_unused_modality_do_not_matter(dataset):
    saved = input_record(_spec(dataset, "ta"), dataset)
    now = _spec(dataset, "ta")
    now.dims["vision"] = 3
    check_inputs(saved, now, "RUN", dataset)


def test_other_modalities_are_refused(dataset):
    saved = input_record(_spec(dataset, "tav"), dataset)
    with pytest.raises(RunError) as err:
        check_inputs(saved, _spec(dataset, "ta"), "RUN", dataset)
    assert "trained on modalities 'tav', the data now give 'ta'" in _one_line(err)


@pytest.mark.parametrize(("text", "expected"), [
    ({"kind": "pretrained", "source": "minilm", "vocab_size": None},
     "trained with text encoder 'embedding' (embedding), the data now use 'minilm'"),
    ({"vocab_size": 120}, "trained on a text vocabulary of {vocab} tokens, the data now give 120"),
    ({"pad_id": 1}, "trained with text pad id 0, the tokenizer now gives 1"),
])
def test_another_text_encoder_is_refused(dataset, text, expected):
    saved = input_record(_spec(dataset), dataset)
    with pytest.raises(RunError) as err:
        check_inputs(saved, _spec(dataset, **text), "RUN", dataset)
    assert expected.format(vocab=dataset.vocab_size) in _one_line(err)


def test_changed_encoder_settings_are_refused_but_new_keys_pass(dataset):
    saved = input_record(_spec(dataset), dataset)
    now = _spec(dataset)
    now.encoder["pooling"] = "mean"  # a setting the run did not record: a new default
    check_inputs(saved, now, "RUN", dataset)
    now.encoder["max_length"] = 16
    with pytest.raises(RunError) as err:
        check_inputs(saved, now, "RUN", dataset)
    assert "trained with encoder.max_length=50, the config now says 16" in _one_line(err)


def test_other_provenance_is_a_one_line_warning(dataset):
    saved = input_record(_spec(dataset), dataset)
    saved["provenance"]["audio"] = "COVAREP 74-d frames"
    with pytest.warns(DataChangedWarning) as caught:
        check_inputs(saved, _spec(dataset), "RUN", dataset)
    (warning,) = caught
    text = str(warning.message)
    assert "\n" not in text and "audio came from 'COVAREP 74-d frames' in training" in text


def test_a_record_without_provenance_or_text_keys_passes(dataset):
    saved = input_record(_spec(dataset), dataset)
    del saved["provenance"]
    del saved["text"]["pad_id"]
    check_inputs(saved, _spec(dataset), "RUN", dataset)


def test_the_fingerprint_follows_every_value_the_run_reads(dataset):
    base = data_fingerprint(dataset, "tav")
    assert base == data_fingerprint(make_synthetic(seed=0, sizes=SIZES), "tav")
    changed = copy.deepcopy(dataset)
    changed.audio[3] = changed.audio[3].copy()
    changed.audio[3][0, 0] += 1e-3
    assert data_fingerprint(changed, "tav") != base
    assert data_fingerprint(changed, "tv") == data_fingerprint(dataset, "tv")  # audio unused
    relabelled = copy.deepcopy(dataset)
    relabelled.labels = relabelled.labels.copy()
    relabelled.labels[0] = np.float32(relabelled.labels[0] + 0.5)
    assert data_fingerprint(relabelled, "t") != data_fingerprint(dataset, "t")
    resplit = copy.deepcopy(dataset)
    resplit.splits = ["test" if s == "valid" else s for s in resplit.splits]
    assert data_fingerprint(resplit, "") != data_fingerprint(dataset, "")


def test_a_changed_fingerprint_warns_or_refuses_when_strict():
    check_data_fingerprint(None, "b" * 64, "RUN")  # runs saved before fingerprints
    check_data_fingerprint("a" * 64, "a" * 64, "RUN")
    with pytest.warns(DataChangedWarning, match="RUN: the data differ from those the run was"):
        check_data_fingerprint("a" * 64, "b" * 64, "RUN")
    with pytest.raises(RunError, match="resume with the same data"):
        check_data_fingerprint("a" * 64, "b" * 64, "RUN", strict=True)


def test_a_broken_input_record_is_one_line(dataset):
    record = input_record(_spec(dataset), dataset)
    assert saved_input_spec({"inputs": record}, "RUN").dims == dataset.feature_dims()
    record["text"]["tokenizer_of_the_future"] = "x"
    with pytest.raises(RunError, match="RUN: model.json key 'inputs' is not a valid input"):
        saved_input_spec({"inputs": record}, "RUN")


def test_a_dataset_built_by_extract_records_its_extractors_per_modality(dataset):
    audio = [{"name": "librosa", "version": "librosa 0.11; mimsa-1", "config": {"n_mfcc": 13}}]
    visual = [{"name": "fer_emotion", "version": "fer 25; mimsa-1", "config": {"fps": 10.0}}]
    dataset.card.extraction = {"decode": {"fps": 10.0}, "layout": "sequence", "audio": audio,
                               "visual": visual, "text": {"given": 3, "asr": 1},
                               "present_fraction": {"visual": 0.9}}
    record = input_record(_spec(dataset, "ta"), dataset)["extraction"]
    assert record == {"decode": {"fps": 10.0}, "layout": "sequence", "audio": audio,
                      "text": {"given": 3, "asr": 1}}
    assert "extraction" not in input_record(_spec(make_synthetic(0, SIZES)),
                                            make_synthetic(0, SIZES))
    saved = input_record(_spec(dataset, "ta"), dataset)
    dataset.card.extraction["audio"] = [{**audio[0], "version": "librosa 0.12; mimsa-1"}]
    with pytest.warns(DataChangedWarning, match="audio features were made by librosa "
                                                "librosa 0.11.*by librosa librosa 0.12"):
        check_inputs(saved, _spec(dataset, "ta"), "run", dataset)
