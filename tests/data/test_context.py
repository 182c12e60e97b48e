"""data.context: a segment's neighbours are the segments of its own video, in time order."""

from __future__ import annotations

import pytest

from mimsa.data.context import ContextWindow, neighbours, segment_position
from mimsa.data.dataset import DatasetCard, MultimodalDataset
from mimsa.errors import ConfigError


def toy(ids: list[str], name: str = "toy") -> MultimodalDataset:
    """Two videos whose segments are listed out of order, across the three splits."""
    return MultimodalDataset(card=DatasetCard(name=name, source="test"), ids=ids,
                             splits=["train", "valid", "test"] * (len(ids) // 3)
                             + ["train"] * (len(ids) % 3),
                             labels=[0.0] * len(ids), text=[f"text of {i}" for i in ids],
                             require_splits=())


def named(ds: MultimodalDataset, found) -> dict[str, tuple[list[str], list[str]]]:
    return {ds.ids[i]: ([ds.ids[j] for j in b], [ds.ids[j] for j in a])
            for i, (b, a) in enumerate(found)}


def test_neighbours_follow_clip_numbers_and_never_cross_videos():
    ds = toy(["vidA_3", "vidB_2", "vidA_1", "vidA_10", "vidB_1", "vidA_2"])
    got = named(ds, neighbours(ds, ContextWindow(before=2, after=1)))
    # clip 10 comes after clip 3 (numeric, not text order); nearest before is listed last
    assert got["vidA_1"] == ([], ["vidA_2"])
    assert got["vidA_2"] == (["vidA_1"], ["vidA_3"])
    assert got["vidA_3"] == (["vidA_1", "vidA_2"], ["vidA_10"])
    assert got["vidA_10"] == (["vidA_2", "vidA_3"], [])
    assert got["vidB_1"] == ([], ["vidB_2"])
    assert got["vidB_2"] == (["vidB_1"], [])


def test_mosei_ids_are_ordered_by_start_time():
    ids = ["v_x_119_919", "v_x_82_7645", "v_x_5_0", "w_1_0"]
    ds = toy(ids, name="mosei")
    got = named(ds, neighbours(ds, ContextWindow(before=1, after=1)))
    assert got["v_x_82_7645"] == (["v_x_5_0"], ["v_x_119_919"])
    assert got["w_1_0"] == ([], [])
    assert segment_position("v_x_82_7645", start_times=True) == ("v_x", 82.7645)


def test_ids_without_a_clip_number_are_refused_with_the_id():
    with pytest.raises(ConfigError, match="'loose' is not '<video>_<clip number>'"):
        neighbours(toy(["vid_1", "loose", "vid_2"]), ContextWindow(1, 0))


def test_a_window_of_zero_is_no_context():
    assert ContextWindow.from_config(None) is None
    assert ContextWindow.from_config({"before": 0, "after": 0}) is None
    assert ContextWindow.from_config({"before": 2}) == ContextWindow(2, 0)
