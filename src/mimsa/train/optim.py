"""Optimisers by name, each with parameter groups that keep their own learning rate.

"main" steps the model: a pretrained text encoder (parameters under `pretrained.`) at
`encoder.lr`, everything else at `train.lr`. An objective joins the optimizer it names in its
`optimizer` attribute; a name other than "main" gets its own Adam configured by
`train.optimizers.<name>` (lr, weight_decay), e.g. MMIM's MI networks.

The learning rates of "main" can follow a schedule over the run's epoch budget
(`train.warmup`, `train.decay`; `lr_factor`): a linear warm-up from 0 over the first fraction
of steps, then constant or a linear decay to 0 at the last step of the budget, as BERT's
fine-tuning recipe (Devlin et al. 2019) and MAG-BERT's code use. Early stopping may end a run
before the decay does.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def is_pretrained(name: str) -> bool:
    """Return True for a parameter of a pretrained encoder (its own learning-rate group)."""
    return "pretrained." in name


def lr_factor(step: int, total: int, warmup: float = 0.0, decay: str = "none") -> float:
    """Return the multiplier of the base learning rate at 0-based optimizer step `step` of
    `total`: (step + 1) / (w + 1) during the warm-up (the first w = ⌈warmup · total⌉ steps),
    then 1 (`decay="none"`) or a linear fall to 0 at step `total` (`decay="linear"`)."""
    warm = math.ceil(warmup * total)
    if step < warm:
        return (step + 1) / (warm + 1)
    if decay == "linear" and total > warm:
        return max(0.0, (total - step) / (total - warm))
    return 1.0


def build_optimizers(model: nn.Module, objectives: nn.ModuleDict, train_cfg: dict,
                     encoder_cfg: dict) -> dict[str, torch.optim.Optimizer]:
    """Return {optimizer name: Adam} over the trainable parameters of model and objectives."""
    wd = float(train_cfg.get("weight_decay", 0.0))
    encoder, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoder if is_pretrained(name) else rest).append(param)
    extra: dict[str, list[nn.Parameter]] = {}
    for objective in objectives.values():
        params = [p for p in objective.parameters() if p.requires_grad]
        target = objective.optimizer
        if target == "main":
            rest.extend(params)
        elif params:
            extra.setdefault(target, []).extend(params)
    groups = [{"params": rest, "lr": float(train_cfg["lr"]), "name": "model"}]
    if encoder:
        groups.insert(0, {"params": encoder, "lr": float(encoder_cfg["lr"]), "name": "encoder"})
    optimizers = {"main": torch.optim.Adam(groups, weight_decay=wd)}
    settings = train_cfg.get("optimizers") or {}
    for name, params in extra.items():
        opts = settings.get(name, {})
        optimizers[name] = torch.optim.Adam(params, lr=float(opts.get("lr", train_cfg["lr"])),
                                            weight_decay=float(opts.get("weight_decay", wd)))
    return optimizers
