"""Token ids with conversational context: the segment first and whole, neighbours in time
order after it, the mask token where the segment stands; a run with context resumes exactly."""

from __future__ import annotations

import json

import pytest

from mimsa import config as config_mod
from mimsa.data.dataset import DatasetCard, MultimodalDataset
from mimsa.encoders.tokens import attach_token_ids, context_ids, load_tokenizer
from mimsa.errors import ConfigError

from .helpers import WORDS

SEP, MARK = 3, 4  # [SEP] and [MASK] in tests/encoders/helpers.py


def test_context_keeps_time_order_and_marks_the_segment():
    own, context = context_ids([10, 11], before=[[20], [21, 22]], after=[[30], [31]], room=40,
                               sep=[SEP], marker=MARK)
    assert own == [10, 11]
    assert context == [20, SEP, 21, 22, SEP, MARK, SEP, 30, SEP, 31]


def test_truncation_trims_the_farthest_context_and_keeps_the_segment_whole():
    before, after = [[20, 20, 20], [21, 21, 21]], [[30, 30, 30], [31, 31, 31]]
    # room 12: own 3 + marker 1 leaves 8: b1 (3+1), a1 (3+1), then nothing of b2/a2
    own, context = context_ids([10, 11, 12], before, after, room=12, sep=[SEP], marker=MARK)
    assert own == [10, 11, 12]
    assert context == [21, 21, 21, SEP, MARK, SEP, 30, 30, 30]
    # room 10 leaves 6: b1 whole (4), then a1 trimmed at its far end to 1 token
    own, context = context_ids([10, 11, 12], before, after, room=10, sep=[SEP], marker=MARK)
    assert context == [21, 21, 21, SEP, MARK, SEP, 30]
    # an earlier neighbour that does not fit loses its start (the words nearest the segment
    # stay)
    own, context = context_ids([10], [[20, 21, 22, 23]], [], room=5, sep=[SEP], marker=MARK)
    assert context == [22, 23, SEP, MARK]


def test_a_segment_longer_than_the_room_is_cut_and_gets_no_context():
    own, context = context_ids(list(range(10, 20)), [[20]], [[30]], room=6, sep=[SEP],
                               marker=MARK)
    assert own == list(range(10, 16)) and context == []


def video_dataset() -> MultimodalDataset:
    words = WORDS[5:]
    ids = [f"v_{k}" for k in (2, 1, 3)] + ["w_1"]
    text = [" ".join(words[k:k + 2]) for k in range(4)]
    return MultimodalDataset(card=DatasetCard(name="toy", source="test"), ids=ids,
                             splits=["train"] * 4, labels=[0.0] * 4, text=text,
                             require_splits=())


def test_token_ids_put_the_segment_first_and_its_neighbours_after(tiny_dir):
    from mimsa.data.context import ContextWindow

    ds = video_dataset()
    tokenizer = load_tokenizer(tiny_dir)
    attach_token_ids(ds, tiny_dir, max_length=40, context=ContextWindow(1, 1))
    plain = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ds.text]
    cls = tokenizer.cls_token_id
    # v_2 sits between v_1 (sample 1) and v_3 (sample 2)
    assert list(ds.text_ids[0]) == [cls, *plain[0], SEP, *plain[1], SEP, MARK, SEP,
                                    *plain[2], SEP]
    # w_1 is alone in its video: the marker only, never another video's words
    assert list(ds.text_ids[3]) == [cls, *plain[3], SEP, MARK, SEP]


def test_a_local_text_encoder_or_no_text_refuses_context():
    with pytest.raises(ConfigError, match="reads no text"):
        config_mod.resolve_config("late_fusion", "synthetic", None,
                                  ["data.context={before: 1}", "data.modalities=av"])
    with pytest.raises(ConfigError, match="data.context"):
        config_mod.resolve_config("late_fusion", "synthetic", None,
                                  ["data.context={before: 0, after: 0}"])


def test_a_run_with_context_says_so_and_resumes_exactly(tiny_dir, tmp_path, interrupt_run):
    from mimsa.train.run import train_run

    cfg = config_mod.resolve_config("text_only", "synthetic", None, [
        f"encoder.name={tiny_dir}", "encoder.max_length=40", "data.context={before: 1, after: 1}",
        "data.synthetic_sizes={train: 24, valid: 8, test: 8}", "train.epochs=3"])
    full = train_run(cfg, tmp_path / "full")
    assert full["context"] == {"before": 1, "after": 1}
    interrupt_run(cfg, tmp_path / "cut", epoch=2)
    assert train_run(cfg, tmp_path / "cut", resume=True) == full
    spec = json.loads((tmp_path / "full" / "model.json").read_text())
    assert spec["inputs"]["text"]["context"] == {"before": 1, "after": 1}


def test_segment_pooling_averages_the_first_segment_only():
    import torch

    from mimsa.encoders.text import first_segment_mean

    states = torch.arange(12, dtype=torch.float32).reshape(2, 6, 1)
    ids = torch.tensor([[2, 10, 11, SEP, 20, SEP], [2, SEP, MARK, SEP, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    pooled = first_segment_mean(states, ids, mask, SEP)
    assert pooled[0].item() == 1.5  # positions 1 and 2
    assert pooled[1].item() == 7.5  # empty first segment: all real tokens (6..9)


def test_segment_pooling_reads_the_separator_from_the_tokenizer(tiny_dir):
    from mimsa.encoders.text import TextEncoder

    assert TextEncoder(tiny_dir, pooling="segment").sep_id == SEP
