"""`ulgm`: Self-MM's unimodal label generation and weighted unimodal loss (arXiv 2102.04830).

Yu, Xu, Yuan, Wu, "Learning Modality-Specific Representations with Self-Supervised Multi-Task
Learning for Multimodal Sentiment Analysis", AAAI 2021.

Self-MM has only the multimodal label y_m. For every TRAINING sample and every unimodal space
s (t, a, v, those the model has) ULGM keeps a generated label y_s, and trains the unimodal
head ŷ_s = reps["pred_s"] towards it. It reads the features f_s = reps["feat_s"] of the
spaces s and of the fusion space m (model `self_mm` provides them).

Memory (buffers, so checkpoints and `--resume` restore it exactly; rows = the train split in
dataset order, sized by `bind`; sample ids map to rows, so batch order and shuffling do not
matter):
  features_<space>  [N, D_space]  the latest detached f of each sample (m and each s)
  labels_<s>        [N]           y_s, initialised to y_m
  y_m               [N]           the multimodal labels
  seen              [N]           True once a sample's features were stored
  epoch             []            the current epoch: `reset()` (start of every epoch) adds 1

One training batch, in the published code's order (its trainer `update_labels`, then
`update_features`, `update_centers`, after the loss):
  1. loss      term "unimodal" = Σ_s mean_b tanh(|y_s − y_m|) · |ŷ_s − y_s|, with the STORED
               y_s (before this batch's update); the multimodal part |ŷ_m − y_m| is the
               trainer's "task" term (train.loss l1). In epochs 1 and 2 every stored y_s still
               equals y_m, so the weights are 0: the unimodal heads learn from epoch 3 on (as
               in the published code).
  2. centres   per space: C_pos = mean of the stored features of seen samples whose label in
               that space is > 0 (≥ 0 with `zero_is_positive`), C_neg likewise for < 0; the
               space m uses y_m. Computed from the memory as it stands after the previous
               batch, which is what the published code's per-batch recomputation holds.
  3. labels    from epoch 2 on (epoch n), for the batch's samples:
                 d_p, d_n = ‖f − C_pos‖₂, ‖f − C_neg‖₂;  δ = (d_n − d_p) / (d_p + eps)
                 ŷ_s = ½·(δ_s / (δ_m + eps))·y_m + ½·(y_m + δ_s − δ_m), clipped to ±bound
                 y_s ← (n − 1)/(n + 1)·y_s + 2/(n + 1)·ŷ_s
  4. store     the batch's features; mark them seen.
Only ids of the train split (the `bind` map) touch the memory, and only in training mode:
validation and test batches never do, and their rows contribute 0 to the loss.

Sources. The rule as a whole (relative distances, the ratio rule y_s/y_m = δ_s/δ_m and the
difference rule y_s − y_m = δ_s − δ_m averaged, the momentum update from the second epoch,
the tanh(|y_s − y_m|) weights) is the paper's, as summarised in METHODS.md §4; the paper's own
text could not be re-read here (our search reaches its introduction only), so its equations are
not re-checked. From the published code (the authors' thuiar/Self-MM and its port in
thuiar/MMSA, trains/multiTask/SELF_MM.py), read by us:
  - eps = 1e-8, in both denominators (d_p + eps and δ_m + eps); plain, not squared, Euclidean
    distances;
  - the clip to ±H with H = 3 for MOSI/MOSEI (`bound`);
  - the positive centre: MMSA sets `excludeZero: true` (label > 0, our default); the authors'
    original release leaves it unset, which reads as false there (label ≥ 0): set
    `zero_is_positive: true` for that;
  - features start at zero for every sample in the code, so epoch-1 centres mix in unseen
    zeros; we average over seen samples only (identical from epoch 2 on, when labels first
    change, as long as every training batch runs each epoch);
  - a space with no positive or no negative seen sample has no centre: the code would produce
    NaN; here its labels are left unchanged for that batch (no update at all when the fusion
    space has none).
`epoch` counts `reset()` calls, which the trainer makes at the start of every epoch, also when
a run resumes (the saved count is that of the last finished epoch). An objective that is never
reset stays at epoch 0 and only stores features.

Options: modalities (the unimodal spaces to label, default all the model has), bound (H, in
label units: the sentiment scale [-3, 3]), eps, zero_is_positive.
Errors: `ConfigError` (one line) at construction for a model without feat_m / feat_<s> /
pred_<s> reps (ulgm needs `self_mm`'s heads) or a bad option; `RuntimeError` (a bug in the
run code) when a training step reaches an objective that was never bound to a dataset.
"""

from __future__ import annotations

import numpy as np
import torch

from mimsa.data.batch import Batch
from mimsa.data.dataset import MultimodalDataset
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput, Positive
from mimsa.objectives.base import Objective, register_objective

UNIMODAL = "tav"


def class_centres(features: torch.Tensor, labels: torch.Tensor, seen: torch.Tensor,
                  zero_is_positive: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Return (C_pos [D], C_neg [D]): the mean feature of seen rows with label > 0 (≥ 0 when
    `zero_is_positive`) and < 0, from features [N, D], labels [N], seen [N] (bool); None when
    either group is empty."""
    positive = (seen & ((labels >= 0) if zero_is_positive else (labels > 0))).to(features.dtype)
    negative = (seen & (labels < 0)).to(features.dtype)
    if float(positive.sum()) == 0 or float(negative.sum()) == 0:
        return None
    # a masked sum, not features[mask].mean(0): no copy of the memory on every batch
    return positive @ features / positive.sum(), negative @ features / negative.sum()


def relative_margin(features: torch.Tensor, centres: tuple[torch.Tensor, torch.Tensor],
                    eps: float = 1e-8) -> torch.Tensor:
    """Return δ [B] = (d_n − d_p) / (d_p + eps), d = Euclidean distance of each row of
    `features` [B, D] to the positive and negative centre: > 0 nearer the positive class."""
    d_pos = torch.linalg.vector_norm(features - centres[0], dim=-1)
    d_neg = torch.linalg.vector_norm(features - centres[1], dim=-1)
    return (d_neg - d_pos) / (d_pos + eps)


def candidate_labels(y_m: torch.Tensor, delta_s: torch.Tensor, delta_m: torch.Tensor,
                     bound: float = 3.0, eps: float = 1e-8) -> torch.Tensor:
    """Return ŷ_s [B] = ½·(δ_s/(δ_m + eps))·y_m + ½·(y_m + δ_s − δ_m), clipped to ±bound:
    the mean of the ratio rule and the difference rule (all inputs [B])."""
    ratio = delta_s / (delta_m + eps)
    return (0.5 * ratio * y_m + 0.5 * (y_m + delta_s - delta_m)).clamp(-bound, bound)


def momentum_update(previous: torch.Tensor, candidate: torch.Tensor, epoch: int
                    ) -> torch.Tensor:
    """Return (n − 1)/(n + 1)·previous + 2/(n + 1)·candidate at epoch n ≥ 1 (both [B])."""
    n = int(epoch)
    return (n - 1) / (n + 1) * previous + 2 / (n + 1) * candidate


@register_objective("ulgm")
class UnimodalLabels(Objective):
    """Self-MM's label memory and weighted unimodal loss: term "unimodal" (see the module)."""

    optimizer = "main"
    terms = ("unimodal",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int], modalities: str = "tav",
                 bound: Positive = 3.0, eps: Positive = 1e-8,
                 zero_is_positive: bool = False) -> None:
        super().__init__()
        if not modalities or any(m not in UNIMODAL for m in modalities) or (
                len(set(modalities)) != len(modalities)):
            raise ConfigError(f"config value objectives.ulgm.modalities='{modalities}' is not "
                              f"allowed: give each of t, a, v at most once (e.g. 'tav')")
        if "feat_m" not in reps_dims:
            raise ConfigError(f"objective 'ulgm' needs a model exposing reps feat_m, feat_<s> "
                              f"and pred_<s> (e.g. self_mm); this one has "
                              f"{', '.join(reps_dims)}")
        self.spaces = [m for m in UNIMODAL if m in modalities and f"feat_{m}" in reps_dims
                       and f"pred_{m}" in reps_dims]
        if not self.spaces:
            raise ConfigError(f"objective 'ulgm': the model has no unimodal head among "
                              f"modalities '{modalities}' (reps: {', '.join(reps_dims)})")
        self.bound, self.eps = float(bound), float(eps)
        self.zero_is_positive = bool(zero_is_positive)
        self.dims = {s: int(reps_dims[f"feat_{s}"]) for s in ("m", *self.spaces)}
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))
        self._allocate(0, torch.zeros(0))

    def _allocate(self, n: int, y_m: torch.Tensor) -> None:
        """(Re)create the per-sample buffers for `n` training samples with labels y_m [n]."""
        self.register_buffer("y_m", y_m.float().clone())
        self.register_buffer("seen", torch.zeros(n, dtype=torch.bool))
        for s, dim in self.dims.items():
            self.register_buffer(f"features_{s}", torch.zeros(n, dim))
        for s in self.spaces:
            self.register_buffer(f"labels_{s}", y_m.float().clone())

    def bind(self, dataset: MultimodalDataset) -> None:
        """Size the memory from `dataset`'s train split: one row per train sample (dataset
        order), every y_s = y_m, no feature seen; map each train id to its row."""
        index = dataset.indices("train")
        self._ids = [dataset.ids[i] for i in index]
        self._rows = {sid: row for row, sid in enumerate(self._ids)}
        labels = torch.from_numpy(np.asarray(dataset.labels[index], dtype=np.float32))
        self._allocate(len(index), labels)

    def reset(self) -> None:
        """Start a new epoch (the trainer calls this at the start of every epoch)."""
        self.epoch += 1

    def label(self, space: str) -> torch.Tensor:
        """Return the stored labels [N] of `space` ("m" = y_m, or one of `self.spaces`)."""
        return self.y_m if space == "m" else getattr(self, f"labels_{space}")

    def table(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """Return (train ids in row order, {"y_m": [N], "y_t": [N], ...}) of the memory."""
        return list(self._ids), {f"y_{s}": self.label(s).detach().cpu().numpy()
                                 for s in ("m", *self.spaces)}

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Return {"unimodal": Σ_s mean_b tanh(|y_s − y_m|)·|ŷ_s − y_s|} (a scalar) with the
        stored labels; in training mode, then update the memory for the batch's train ids."""
        if self.training and not self._rows:
            raise RuntimeError("objective 'ulgm' was never bound to the run's dataset; call "
                               "bind(dataset) after constructing it")
        device = output.reps["feat_m"].device
        memory = self.seen.device
        rows = torch.tensor([self._rows.get(sid, -1) for sid in batch.ids], dtype=torch.long)
        known = rows >= 0
        where, take = known.to(device), rows[known].to(memory)
        y_m = batch.labels.to(device=device, dtype=torch.float32).clone()
        y_m[where] = self.y_m[take].to(device)
        loss = output.prediction.new_zeros(())
        for s in self.spaces:
            target = y_m.clone()
            target[where] = self.label(s)[take].to(device)
            weight = torch.tanh((target - y_m).abs())
            predicted = output.reps[f"pred_{s}"].reshape(-1)
            loss = loss + (weight * (predicted - target).abs()).mean()
        if self.training and bool(known.any()):
            features = {s: output.reps[f"feat_{s}"].detach()[where].to(memory).float()
                        for s in self.dims}
            self._update(take, features)
        return {"unimodal": loss}

    @torch.no_grad()
    def _update(self, rows: torch.Tensor, features: dict[str, torch.Tensor]) -> None:
        """Steps 2–4 of the module docstring for memory rows `rows` [b] with their features
        {space: [b, D_space]}."""
        epoch = int(self.epoch)
        if epoch >= 2:
            self._update_labels(rows, features, epoch)
        for s, value in features.items():
            getattr(self, f"features_{s}")[rows] = value
        self.seen[rows] = True

    def _update_labels(self, rows: torch.Tensor, features: dict[str, torch.Tensor],
                       epoch: int) -> None:
        centres_m = self._centres("m")
        if centres_m is None:
            return
        delta_m = relative_margin(features["m"], centres_m, self.eps)
        y_m = self.y_m[rows]
        for s in self.spaces:
            centres = self._centres(s)
            if centres is None:
                continue
            delta_s = relative_margin(features[s], centres, self.eps)
            candidate = candidate_labels(y_m, delta_s, delta_m, self.bound, self.eps)
            labels = self.label(s)
            labels[rows] = momentum_update(labels[rows], candidate, epoch)

    def _centres(self, space: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        return class_centres(getattr(self, f"features_{space}"), self.label(space), self.seen,
                             self.zero_is_positive)
