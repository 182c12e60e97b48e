"""Optimisers by name, each with parameter groups that keep their own learning rate.

"main" steps the model: a pretrained text encoder (parameters under `pretrained.`) at
`encoder.lr`, everything else at `train.lr`. An objective joins the optimizer it names in its
`optimizer` attribute; a name other than "main" gets its own Adam configured by
`train.optimizers.<name>` (lr, weight_decay), e.g. MMIM's MI networks.
"""

from __future__ import annotations

import torch
from torch import nn


def is_pretrained(name: str) -> bool:
    """Return True for a parameter of a pretrained encoder (its own learning-rate group)."""
    return "pretrained." in name


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
