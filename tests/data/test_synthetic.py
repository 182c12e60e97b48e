import numpy as np

from mimsa.data.registry import list_datasets, load_dataset
from mimsa.data.synthetic import NEGATIVE, POSITIVE, SPLIT_SIZES, make_synthetic


def test_default_sizes_and_modalities():
    ds = load_dataset("synthetic")
    assert ds.card.split_sizes == SPLIT_SIZES
    assert ds.modalities == "tav"
    assert ds.card.dims == {"audio": 74, "vision": 35, "vocab": ds.vocab_size}
    assert ds.labels.min() >= -3 and ds.labels.max() <= 3
    assert "z_s" in " ".join(ds.card.notes)


def test_same_seed_same_data_and_other_seed_differs():
    a, b = make_synthetic(seed=3, sizes={"train": 20, "valid": 5, "test": 5}), make_synthetic(
        seed=3, sizes={"train": 20, "valid": 5, "test": 5})
    c = make_synthetic(seed=4, sizes={"train": 20, "valid": 5, "test": 5})
    assert np.array_equal(a.labels, b.labels) and a.text == b.text
    assert all(np.array_equal(x, y) for x, y in zip(a.audio, b.audio, strict=True))
    assert not np.array_equal(a.labels, c.labels)


def test_every_modality_carries_signal():
    """Each modality's simplest summary correlates with the label (the shared factor)."""
    ds = make_synthetic(seed=0)
    score = np.array([sum(w in POSITIVE for w in t.split()) - sum(w in NEGATIVE for w in t.split())
                      for t in ds.text])
    rng = np.random.default_rng(12345).standard_normal((4, 74))
    audio = np.array([a.mean(0) @ rng[0, :74] for a in ds.audio])
    vision = np.array([v.mean(0) @ rng[2, :35] for v in ds.vision])
    for feature in (score, audio, vision):
        assert np.corrcoef(feature, ds.labels)[0, 1] > 0.3


def test_registry_lists_synthetic_first():
    assert list_datasets()[0].name == "synthetic"
