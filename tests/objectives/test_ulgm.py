"""`ulgm`: Self-MM's label generation on hand-computed examples, its memory keyed by sample id,
and its loss weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput
from mimsa.objectives.base import create_objective
from mimsa.objectives.ulgm import (
    candidate_labels,
    class_centres,
    momentum_update,
    relative_margin,
)

SPEC = InputSpec("tav", {})
DIMS = {"t": 4, "a": 4, "v": 4, "fusion": 2, "feat_m": 2, "feat_t": 2, "feat_a": 2,
        "feat_v": 2, "pred_t": 1, "pred_a": 1, "pred_v": 1}


class Data:
    """The few members of a MultimodalDataset that `bind` reads."""

    def __init__(self, ids: list[str], labels: list[float], splits: list[str]) -> None:
        self.ids, self.splits = ids, splits
        self.labels = np.asarray(labels, dtype=np.float32)

    def indices(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.splits) if s == split], dtype=np.int64)


# Four training samples in two clusters on the x axis, plus one validation and one test sample.
IDS = ["a", "b", "c", "d", "val", "tst"]
Y_M = [2.0, 1.0, -1.0, -2.0, 1.5, -0.5]
SPLITS = ["train"] * 4 + ["valid", "test"]
# Fusion features: positive centre (2, 0), negative (-2, 0).
F_M = {"a": (1.0, 0.0), "b": (3.0, 0.0), "c": (-1.0, 0.0), "d": (-3.0, 0.0),
       "val": (9.0, 9.0), "tst": (-9.0, 9.0)}
# Unimodal features, with the same centres (2, 0) and (-2, 0): a sits midway in t, farther out
# in a and v.
F_S = {"t": {"a": (0.0, 0.0), "b": (4.0, 0.0)},
       "a": {"a": (6.0, 0.0), "b": (-2.0, 0.0)},
       "v": {"a": (2.5, 0.0), "b": (1.5, 0.0)}}


def make(**options) -> torch.nn.Module:
    objective = create_objective("ulgm", SPEC, DIMS, **options)
    objective.bind(Data(IDS, Y_M, SPLITS))
    return objective


def feature(space: str, sid: str) -> tuple[float, float]:
    if space == "m":
        return F_M[sid]
    return F_S[space].get(sid, F_M[sid])


def batch_of(ids: list[str], preds: dict[str, list[float]] | None = None
             ) -> tuple[ModelOutput, Batch]:
    reps = {f"feat_{s}": torch.tensor([feature(s, i) for i in ids]) for s in "mtav"}
    for s in "tav":
        values = (preds or {}).get(s, [0.0] * len(ids))
        reps[f"pred_{s}"] = torch.tensor(values).reshape(-1, 1)
    labels = torch.tensor([Y_M[IDS.index(i)] for i in ids])
    return ModelOutput(torch.zeros(len(ids)), reps), Batch(ids=list(ids), labels=labels)


def run_epoch(objective, batches: list[list[str]]) -> list[torch.Tensor]:
    objective.reset()
    objective.train()
    return [objective(*batch_of(ids))["unimodal"] for ids in batches]


def memory(objective) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in objective.state_dict().items()}


def test_the_rule_on_two_clusters_by_hand():
    features = torch.tensor([F_M[i] for i in "abcd"])
    centres = class_centres(features, torch.tensor(Y_M[:4]), torch.ones(4, dtype=torch.bool))
    assert torch.equal(centres[0], torch.tensor([2.0, 0.0]))
    assert torch.equal(centres[1], torch.tensor([-2.0, 0.0]))
    # a: d_p = 1, d_n = 3 -> delta = 2; c: d_p = 3, d_n = 1 -> delta = -2/3
    delta = relative_margin(features, centres, eps=0.0)
    assert delta[0].item() == pytest.approx(2.0) and delta[2].item() == pytest.approx(-2 / 3)
    # ratio rule 0.5 * (1/2) * 2 = 0.5 and difference rule 0.5 * (2 + 1 - 2) = 0.5
    one = torch.tensor([1.0])
    assert candidate_labels(torch.tensor([2.0]), one, 2 * one, eps=0.0).item() == 1.0
    assert candidate_labels(torch.tensor([2.0]), 8 * one, 2 * one, eps=0.0).item() == 3.0  # clip
    assert momentum_update(one * 2, one * 0, 2).item() == pytest.approx(2 / 3)


def test_labels_by_hand_and_no_update_in_epoch_1():
    objective = make()
    run_epoch(objective, [["a", "b", "c", "d"]])
    for s in "tav":  # epoch 1 stores features only
        assert torch.equal(objective.label(s), torch.tensor(Y_M[:4]))
    assert bool(objective.seen.all()) and torch.equal(objective.features_t[0], torch.zeros(2))
    run_epoch(objective, [["a", "b", "c", "d"]])
    # sample a: delta_m = 2; delta_t = 0, delta_a = (8 - 4)/4 = 1, delta_v = (4.5 - 0.5)/0.5 = 8
    # candidates: t 0.5*0*2 + 0.5*(2 + 0 - 2) = 0; a 0.5*0.5*2 + 0.5*(2 + 1 - 2) = 1; v 8 -> 3
    # epoch 2: y <- 1/3 y + 2/3 candidate
    assert objective.label("t")[0].item() == pytest.approx(2 / 3)
    assert objective.label("a")[0].item() == pytest.approx(2 / 3 + 2 / 3)
    assert objective.label("v")[0].item() == pytest.approx(2 / 3 + 2)
    # sample c has the same margin in every space as in m: its label stays y_m = -1
    for s in "tav":
        assert objective.label(s)[2].item() == pytest.approx(-1.0)


def test_momentum_over_three_epochs():
    objective = make()
    history = []
    for _ in range(3):
        run_epoch(objective, [["a", "b"], ["c", "d"]])
        history.append(objective.label("t")[0].item())
        assert int(objective.epoch) == len(history)
    # the candidate of a in t is 0 every epoch (constant features, centres unchanged):
    # epoch 1 keeps y_m = 2; epoch 2: 1/3 * 2; epoch 3: 2/4 * (2/3) + 2/4 * 0
    assert history == pytest.approx([2.0, 2 / 3, 1 / 3])


def test_memory_is_keyed_by_id_not_by_batch_position():
    ordered, shuffled = make(), make()
    run_epoch(ordered, [["a", "b"], ["c", "d"]])
    run_epoch(shuffled, [["d", "a"], ["c", "b"]])
    assert all(torch.equal(v, memory(shuffled)[k]) for k, v in memory(ordered).items())
    run_epoch(ordered, [["a", "b", "c", "d"]])
    run_epoch(shuffled, [["c", "a", "d", "b"]])
    after = memory(shuffled)
    assert all(torch.equal(v, after[k]) for k, v in memory(ordered).items())
    assert not torch.equal(after["labels_t"], torch.tensor(Y_M[:4]))  # it did update


def test_valid_and_test_ids_never_touch_the_memory():
    objective = make()
    run_epoch(objective, [["a", "b", "c", "d"]])
    objective.reset()
    before = memory(objective)
    out = objective(*batch_of(["val", "tst"], {s: [5.0, 5.0] for s in "tav"}))
    assert out["unimodal"].item() == 0.0  # no stored label: weight 0
    assert all(torch.equal(v, memory(objective)[k]) for k, v in before.items())
    objective.eval()  # and a train id in eval mode neither
    objective(*batch_of(["a", "val"]))
    assert all(torch.equal(v, memory(objective)[k]) for k, v in before.items())
    objective.train()  # a mixed batch updates its train rows only
    objective(*batch_of(["a", "val"]))
    changed = memory(objective)
    assert not torch.equal(changed["labels_t"][0], before["labels_t"][0])
    assert torch.equal(changed["labels_t"][1:], before["labels_t"][1:])


def test_loss_weights_use_the_stored_labels_before_this_batch_updates_them():
    objective = make()
    run_epoch(objective, [["a", "b", "c", "d"]])
    objective.reset()  # epoch 2: this call updates the labels, but its loss uses the old ones
    preds = {"t": [1.0, 0.0], "a": [0.0, 0.0], "v": [0.0, 0.0]}
    assert objective(*batch_of(["a", "b"], preds))["unimodal"].item() == 0.0
    assert objective.label("t")[0].item() != 2.0
    objective.labels_t[1] = 2.5  # b: y_m = 1, y_t = 2.5
    stored = {s: objective.label(s)[:2].clone() for s in "tav"}
    loss = objective(*batch_of(["a", "b"], preds))["unimodal"]
    expected = sum((torch.tanh((stored[s] - torch.tensor([2.0, 1.0])).abs())
                    * (torch.tensor(preds[s]) - stored[s]).abs()).mean() for s in "tav")
    assert loss.item() == pytest.approx(expected.item())


def test_zero_labels_join_the_positive_centre_only_on_request():
    features = torch.tensor([[1.0], [3.0], [-1.0]])
    labels, seen = torch.tensor([0.0, 1.0, -1.0]), torch.ones(3, dtype=torch.bool)
    assert class_centres(features, labels, seen)[0].item() == 3.0
    assert class_centres(features, labels, seen, zero_is_positive=True)[0].item() == 2.0
    assert class_centres(features, torch.tensor([1.0, 2.0, 0.0]), seen) is None


def test_state_round_trip_and_options():
    objective = make(modalities="ta")
    assert objective.spaces == ["t", "a"] and "labels_v" not in objective.state_dict()
    run_epoch(objective, [["a", "b", "c", "d"]])
    run_epoch(objective, [["a", "b", "c", "d"]])
    again = make(modalities="ta")
    again.load_state_dict(objective.state_dict())
    assert int(again.epoch) == 2 and torch.equal(again.labels_t, objective.labels_t)
    ids, columns = again.table()
    assert ids == ["a", "b", "c", "d"] and list(columns) == ["y_m", "y_t", "y_a"]


def test_a_model_without_self_mm_reps_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="needs a model exposing reps feat_m"):
        create_objective("ulgm", SPEC, {"t": 4, "a": 4, "fusion": 8})
    with pytest.raises(ConfigError, match="no unimodal head"):
        create_objective("ulgm", SPEC, {k: v for k, v in DIMS.items() if k != "pred_t"},
                         modalities="t")


@pytest.mark.parametrize("option, value, message", [
    ("modalities", "", "objectives.ulgm.modalities='' is not allowed"),
    ("modalities", "tt", "give each of t, a, v at most once"),
    ("modalities", "tx", "give each of t, a, v at most once"),
    ("bound", 0.0, "objectives.ulgm.bound=0.0 is not allowed: input should be greater than 0"),
    ("eps", -1.0, "objectives.ulgm.eps=-1.0 is not allowed"),
    ("eps", float("nan"), "objectives.ulgm.eps=nan is not allowed: input should be a finite"),
    ("bound", float("inf"), "objectives.ulgm.bound=inf is not allowed: input should be a finite"),
])
def test_bad_options_name_their_key(option, value, message):
    with pytest.raises(ConfigError) as err:
        create_objective("ulgm", SPEC, DIMS, **{option: value})
    assert message in str(err.value)


def test_an_unbound_objective_refuses_to_train():
    objective = create_objective("ulgm", SPEC, DIMS)
    with pytest.raises(RuntimeError, match="never bound"):
        objective(*batch_of(["a"]))
