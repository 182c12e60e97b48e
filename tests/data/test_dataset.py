import numpy as np
import pytest

from mimsa.data.dataset import DataError, DatasetCard, MultimodalDataset


def make(**overrides):
    fields = dict(
        card=DatasetCard(name="toy", source="toy.pkl"),
        ids=["a", "b", "c"], splits=["train", "valid", "test"], labels=[0.5, -1.0, 3.0],
        audio=[np.ones((2, 3)), np.ones((4, 3)), np.ones((1, 3))],
    )
    fields.update(overrides)
    return MultimodalDataset(**fields)


def test_valid_dataset_fills_card():
    ds = make()
    assert ds.card.split_sizes == {"train": 1, "valid": 1, "test": 1}
    assert ds.card.dims == {"audio": 3}
    assert ds.modalities == "a"
    assert list(ds.indices("valid")) == [1]


def test_duplicate_ids_named():
    with pytest.raises(DataError, match="toy.pkl.*duplicate sample id 'a'"):
        make(ids=["a", "a", "c"])


def test_label_out_of_range_names_sample():
    with pytest.raises(DataError, match="label 4 of sample 'c' is outside"):
        make(labels=[0.5, -1.0, 4.0])


def test_nan_feature_is_an_error_by_default():
    audio = [np.ones((2, 3)), np.array([[1.0, np.nan, 2.0]]), np.ones((1, 3))]
    with pytest.raises(DataError, match="audio of sample 'b' holds 1 NaN/inf"):
        make(audio=audio)


def test_zero_policy_replaces_and_reports():
    audio = [np.ones((2, 3)), np.array([[1.0, -np.inf, np.nan]]), np.ones((1, 3))]
    with pytest.warns(UserWarning, match="audio 2"):
        ds = make(audio=audio, nan_policy="zero")
    assert ds.nan_report["audio"] == 2
    assert np.array_equal(ds.audio[1], [[1.0, 0.0, 0.0]])


def test_empty_split_and_length_mismatch():
    with pytest.raises(DataError, match="split 'test' is empty"):
        make(splits=["train", "valid", "valid"])
    with pytest.raises(DataError, match="'audio' has 2 entries but there are 3 ids"):
        make(audio=[np.ones((2, 3)), np.ones((2, 3))])


def test_inconsistent_feature_dim_named():
    with pytest.raises(DataError, match="audio of sample 'b' has 4 features"):
        make(audio=[np.ones((2, 3)), np.ones((2, 4)), np.ones((1, 3))])


def test_unknown_split_and_nonfinite_label():
    with pytest.raises(DataError, match="split 'dev'"):
        make(splits=["train", "dev", "test"])
    with pytest.raises(DataError, match="label of sample 'b' is not finite"):
        make(labels=[0.0, np.nan, 1.0])


def test_subset_keeps_fields():
    ds = make(text=["x", "y", "z"])
    sub = ds.subset([0, 2])
    assert sub.ids == ["a", "c"] and sub.text == ["x", "z"]
    assert sub.card.split_sizes == {"train": 1, "test": 1}
