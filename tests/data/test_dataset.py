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
    with pytest.raises(DataError, match="toy.pkl.*duplicate sample id 'a' in split 'train'"):
        make(ids=["a", "a", "c"], splits=["train", "train", "test"],
             labels=[0.5, -1.0, 3.0])


def test_id_in_two_splits_is_refused_naming_both_splits():
    with pytest.raises(DataError) as info:
        make(ids=["a", "b", "a"])
    message = str(info.value)
    assert message.startswith("toy.pkl: sample id 'a' is in both train and test")
    assert "--drop-cross-split-duplicates" in message and "\n" not in message


def test_id_in_two_splits_dropped_from_the_later_split_and_counted():
    ids = ["a", "b", "x", "x", "b", "c"]
    splits = ["train", "valid", "test", "valid", "test", "test"]
    ds = make(ids=ids, splits=splits, labels=[0.0, 1.0, 2.0, -1.0, 1.0, 0.0],
              audio=[np.full((1, 3), k) for k in range(6)], cross_split_duplicates="drop")
    assert ds.ids == ["a", "b", "x", "c"] and ds.splits == ["train", "valid", "valid", "test"]
    assert [float(a[0, 0]) for a in ds.audio] == [0.0, 1.0, 3.0, 5.0]
    assert ds.labels.tolist() == [0.0, 1.0, -1.0, 0.0]
    assert ds.cross_split_dropped == {"test": 2}
    assert any("2 samples" in n and "test 2" in n for n in ds.card.notes)
    with pytest.raises(DataError, match="split 'test' is empty"):
        make(ids=["a", "b", "a"], cross_split_duplicates="drop")


def test_cross_split_policy_is_checked():
    from mimsa.errors import ConfigError

    with pytest.raises(ConfigError, match="'error' or 'drop', not 'keep'"):
        make(cross_split_duplicates="keep")


def test_location_names_errors():
    with pytest.raises(DataError, match=r"^out/ds \(converted from toy.pkl\): label 4"):
        make(labels=[0.5, -1.0, 4.0], location="out/ds (converted from toy.pkl)")


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
