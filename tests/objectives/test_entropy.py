import math

import pytest
import torch

from mimsa.data.batch import Batch
from mimsa.objectives.base import create_objective
from mimsa.objectives.entropy import GaussianEntropy, gaussian_entropy, ml_logdet

from .helpers import SPEC, output

DIMS = {"t": 8, "a": 16, "v": 12, "fusion": 8}  # projections: a → 4, v → 3 dims


def make_batch(labels) -> Batch:
    labels = torch.as_tensor(labels, dtype=torch.float32)
    return Batch(ids=[str(i) for i in range(len(labels))], labels=labels)


def random_step(n: int, seed: int) -> tuple[dict, Batch]:
    g = torch.Generator().manual_seed(seed)
    reps = {m: torch.randn(n, d, generator=g) for m, d in DIMS.items()}
    labels = torch.randn(n, generator=g).round()  # some exact zeros: left out of both groups
    return reps, make_batch(labels)


def reference_h(entropy: GaussianEntropy, steps: list[tuple[dict, Batch]]) -> float:
    """Σ_y 0.25·Σ_groups logdet(ML Σ + eps·I) of the projections pooled over `steps`."""
    total = 0.0
    with torch.no_grad():
        for m in entropy.modalities:
            for sign in (1, -1):
                pooled = torch.cat([entropy.projection[m](reps[m])[b.labels * sign > 0]
                                    for reps, b in steps])
                centred = pooled - pooled.mean(0)
                sigma = centred.T @ centred / len(pooled)
                eye = torch.eye(sigma.shape[0])
                total += 0.25 * torch.logdet(sigma + entropy.eps * eye).item()
    return total


def test_ml_logdet_and_entropy_match_a_known_gaussian():
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.2, 0.5]])
    sigma = a @ a.T
    x = torch.randn(40000, 3, generator=g) @ a.T + 2.0
    assert ml_logdet(x, eps=0.0).item() == pytest.approx(torch.logdet(sigma).item(), abs=0.05)
    expected = 0.5 * torch.logdet(2 * math.pi * math.e * sigma).item()
    assert gaussian_entropy(ml_logdet(x, eps=0.0).item(), 3) == pytest.approx(expected, abs=0.05)


def test_h_is_a_quarter_of_the_group_logdets_summed_over_a_and_v():
    torch.manual_seed(0)
    entropy = create_objective("entropy", SPEC, DIMS, memory=0)
    assert entropy.modalities == ["a", "v"]
    reps, b = random_step(64, seed=1)
    h = entropy(output(**reps), b)["H"]
    assert h.item() == pytest.approx(reference_h(entropy, [(reps, b)]), rel=1e-4)


def test_memory_pools_the_previous_batch_detached_and_resets():
    torch.manual_seed(0)
    entropy = create_objective("entropy", SPEC, DIMS, memory=1)
    entropy.train()
    first, second = random_step(32, seed=1), random_step(32, seed=2)
    first[0]["a"].requires_grad_(True)
    second[0]["a"].requires_grad_(True)
    assert entropy(output(**first[0]), first[1])["H"].item() == 0.0  # memory not filled yet
    h = entropy(output(**second[0]), second[1])["H"]
    assert h.item() == pytest.approx(reference_h(entropy, [second, first]), rel=1e-4)
    h.backward()
    assert first[0]["a"].grad is None and second[0]["a"].grad.abs().sum() > 0
    entropy.reset()
    assert entropy(output(**second[0]), second[1])["H"].item() == 0.0
    # Eval mode neither reads nor writes the memory: the current batch alone.
    entropy.eval()
    alone = entropy(output(**first[0]), first[1])["H"].item()
    assert alone == pytest.approx(reference_h(entropy, [first]), rel=1e-4)
    entropy.train()
    h = entropy(output(**first[0]), first[1])["H"].item()
    assert h == pytest.approx(reference_h(entropy, [first, second]), rel=1e-4)


def test_degenerate_groups_contribute_zero_never_nan():
    torch.manual_seed(0)
    entropy = create_objective("entropy", SPEC, DIMS, memory=0)
    reps, b = random_step(64, seed=3)
    only_a = {**reps, "v": torch.zeros(64, DIMS["v"])}  # constant visual features
    h = entropy(output(**only_a), b)["H"]
    assert torch.isfinite(h)
    solo = GaussianEntropy(SPEC, {"a": 16, "fusion": 8}, memory=0)
    solo.projection.load_state_dict(entropy.projection.state_dict(), strict=False)
    assert h.item() == pytest.approx(reference_h(solo, [(reps, b)]), rel=1e-4)
    # One positive sample (≤ k samples): that group is skipped, the negative group still counts.
    labels = torch.tensor([1.0] + [-1.0] * 20)
    reps = {m: torch.randn(21, d) for m, d in DIMS.items()}
    h = entropy(output(**reps), make_batch(labels))["H"]
    assert torch.isfinite(h) and h.item() != 0.0
    # Nothing usable at all: exactly 0, with a gradient-free constant.
    h = entropy(output(**{m: r[:2] for m, r in reps.items()}), make_batch([1.0, -1.0]))["H"]
    assert h.item() == 0.0
    ones = entropy(output(**{m: r[:3] for m, r in reps.items()}), make_batch([0.0, 0.0, 0.0]))
    assert ones["H"].item() == 0.0
    # A batch of a single (positive) sample after a filled memory: finite.
    remembering = create_objective("entropy", SPEC, DIMS, memory=1)
    remembering(output(**reps), make_batch(labels))
    h = remembering(output(**{m: r[:1] for m, r in reps.items()}), make_batch([2.0]))["H"]
    assert torch.isfinite(h)


def test_frozen_by_default_trainable_on_request():
    frozen = GaussianEntropy(SPEC, DIMS)
    assert not [p for p in frozen.parameters() if p.requires_grad]
    assert len(list(frozen.parameters())) == 4  # saved with the checkpoint all the same
    trainable = GaussianEntropy(SPEC, DIMS, trainable_projection=True)
    assert all(p.requires_grad for p in trainable.parameters())
    assert trainable.optimizer == "mi"
    assert GaussianEntropy(SPEC, {"t": 8, "fusion": 8}).modalities == []
    with pytest.raises(ValueError, match="subset of 'tav'"):
        GaussianEntropy(SPEC, DIMS, modalities="x")
