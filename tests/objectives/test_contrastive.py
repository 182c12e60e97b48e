"""`contrastive`: supervised contrastive loss per modality on binned labels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mimsa.data.batch import Batch
from mimsa.models.base import InputSpec, ModelOutput
from mimsa.objectives.base import create_objective
from mimsa.objectives.contrastive import label_bins, supervised_contrastive


def reference(h: torch.Tensor, bins: torch.Tensor, tau: float, w: float) -> float:
    """The docstring's definition, written out with loops."""
    z = F.normalize(h, dim=-1)
    s = (z @ z.T / tau).tolist()
    n, losses = len(bins), []
    for i in range(n):
        pos = [j for j in range(n) if j != i and bins[j] == bins[i]]
        neg = [j for j in range(n) if bins[j] != bins[i]]
        if not pos:
            continue
        denominator = sum(math.exp(s[i][p]) for p in pos) + w * sum(math.exp(s[i][k])
                                                                    for k in neg)
        losses.append(-sum(s[i][p] - math.log(denominator) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def test_label_bins():
    y = torch.tensor([-3.4, -2.5, -0.5, 0.0, 0.49, 0.5, 1.5, 2.6, 3.0])
    assert label_bins(y).tolist() == [-3, -2, 0, 0, 0, 0, 2, 3, 3]  # half to even, as Acc-7
    assert label_bins(y, "sign").tolist() == [-1, -1, -1, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="bins 'deciles'"):
        label_bins(y, "deciles")


@pytest.mark.parametrize("w", [1.0, 0.8, 0.0])
def test_matches_the_definition(w):
    torch.manual_seed(0)
    h = torch.randn(9, 5)
    bins = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, -1])  # the last two have no positive
    value = supervised_contrastive(h, bins, temperature=0.5, negative_weight=w)
    assert value.item() == pytest.approx(reference(h, bins, 0.5, w), rel=1e-5)


def test_lower_when_same_bin_samples_are_closer():
    torch.manual_seed(1)
    bins = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    centres = torch.randn(3, 8)
    tight = centres[bins] + 0.05 * torch.randn(9, 8)
    loose = centres[bins] + 2.0 * torch.randn(9, 8)
    shuffled = tight[torch.tensor([0, 3, 6, 1, 4, 7, 2, 5, 8])]
    for tau in (0.03, 0.5):
        a = supervised_contrastive(tight, bins, tau).item()
        b = supervised_contrastive(loose, bins, tau).item()
        c = supervised_contrastive(shuffled, bins, tau).item()
        assert a < b and a < c


def test_no_positive_gives_zero_with_gradient():
    h = torch.randn(4, 3, requires_grad=True)
    value = supervised_contrastive(h, torch.tensor([0, 1, 2, 3]))
    assert value.item() == 0.0
    value.backward()
    assert h.grad is not None


def test_objective_sums_modalities_and_checks_options():
    spec = InputSpec("tav", {})
    dims = {"t": 4, "a": 3, "v": 2, "fusion": 8}
    objective = create_objective("contrastive", spec, dims)
    assert objective.modalities == ["t", "a", "v"] and objective.terms == ("contrast",)
    torch.manual_seed(0)
    reps = {m: torch.randn(6, d, requires_grad=True) for m, d in dims.items()}
    labels = torch.tensor([-2.0, -1.8, 0.2, 0.1, 2.2, 1.9])
    out = ModelOutput(torch.zeros(6), reps)
    batch = Batch(ids=[str(i) for i in range(6)], labels=labels)
    terms = objective(out, batch)
    bins = label_bins(labels)
    expected = sum(supervised_contrastive(reps[m], bins) for m in "tav")
    assert terms["contrast"].item() == pytest.approx(expected.item())
    terms["contrast"].backward()
    assert all(reps[m].grad.abs().sum() > 0 for m in "tav") and reps["fusion"].grad is None
    only_text = create_objective("contrastive", spec, {"t": 4, "fusion": 8})
    assert only_text.modalities == ["t"]
    for options, message in (({"temperature": 0}, "temperature=0 is not allowed: input should "
                                                   "be greater than 0"),
                             ({"negative_weight": -1}, "negative_weight=-1 is not allowed"),
                             ({"bins": "sixths"}, "bins 'sixths'"),
                             ({"modalities": "tx"}, "subset of 'tav'")):
        with pytest.raises(ValueError, match=message):
            create_objective("contrastive", spec, dims, **options)
