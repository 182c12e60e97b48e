import numpy as np

from mimsa.data.batch import batch_indices, collate
from mimsa.data.synthetic import make_synthetic


def test_collate_pads_and_reports_lengths():
    ds = make_synthetic(sizes={"train": 8, "valid": 2, "test": 2})
    batch = collate(ds, [0, 1, 2], "tav")
    lengths = [len(ds.text_ids[i]) for i in range(3)]
    assert batch.text_ids.shape == (3, max(lengths))
    assert batch.text_mask.sum(1).tolist() == lengths
    assert batch.audio.shape[0] == 3 and batch.audio.shape[2] == 74
    assert batch.audio_lengths.tolist() == [ds.audio[i].shape[0] for i in range(3)]
    assert np.allclose(batch.audio[0, : ds.audio[0].shape[0]].numpy(), ds.audio[0])


def test_collate_drops_unrequested_modalities():
    ds = make_synthetic(sizes={"train": 8, "valid": 2, "test": 2})
    batch = collate(ds, [0, 1], "a")
    assert batch.text_ids is None and batch.vision is None and batch.audio is not None


def test_single_sample_last_batch_is_merged():
    batches = batch_indices(np.arange(65), 32, shuffle=False)
    assert [len(b) for b in batches] == [32, 33]


def test_length_bucketing_groups_similar_lengths_and_covers_all():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, 200)
    batches = batch_indices(np.arange(200), 20, shuffle=True, rng=rng, lengths=lengths)
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10
