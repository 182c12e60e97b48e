"""`self_mm`: Self-MM (Yu, Xu, Yuan, Wu, AAAI 2021, arXiv 2102.04830); any subset of t/a/v.

  text     the configured text encoder: a pretrained transformer gives the last-layer state of
           the first token ([CLS], `encoder.pooling: cls`, as the published code); a local
           encoder its LSTM vector (width `text_dim`)
  audio    LSTM over the unpadded frames, final state → dropout → Linear(hidden, out)
  vision   the same (`UnimodalEncoders`, shared with mmim)
  heads    one per space s: the fusion space m on concat(t, a, v) (the present modalities,
           in that order) and one per present modality:
             f_s = ReLU(Linear(Dropout(x_s), post_s_dim))         the space's feature
             ŷ_s = Linear(ReLU(Linear(f_s, post_s_dim)), 1)
  prediction  ŷ_m [B], the fusion head's score

reps:
  "t", "a", "v"       the unimodal vectors (present modalities), [B, D_m]
  "fusion"            f_m [B, post_fusion_dim], the paper's fusion representation F_m*
  "feat_m"            the same tensor as "fusion" (so the label generation reads feat_<space>
                      for every space alike)
  "feat_t", "feat_a", "feat_v"   f_s [B, post_s_dim] of each present modality
  "pred_t", "pred_a", "pred_v"   ŷ_s [B, 1] of each present modality
The unimodal heads learn only through the `ulgm` objective (term "unimodal", the generated
labels and their weights; configs/self_mm.yaml attaches it); without it they are inert.
Defaults are MMSA's MOSI settings (config_regression.json, "self_mm"); the published code
keeps PyTorch's default initialisation (no xavier re-initialisation, unlike mmim).
A missing modality has no encoder and no head; the fusion head reads the present ones only.
"""

from __future__ import annotations

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.unimodal import UnimodalEncoders
from mimsa.models.base import (
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
)


class SubtaskHead(nn.Module):
    """Self-MM's head: x [B, D_in] → f = ReLU(Linear(Dropout(x))) [B, D] → ŷ [B, 1]
    (Linear → ReLU → Linear(D, 1)). `forward` returns (f, ŷ)."""

    def __init__(self, in_dim: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.feature = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, dim), nn.ReLU())
        self.regress = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.feature(x)
        return feature, self.regress(feature)


@register_model("self_mm")
class SelfMM(Model):
    """Self-MM's encoders and heads (see the module docstring); label generation lives in
    `objectives/ulgm.py`. Raises `ConfigError` when the data offer no modality."""

    def __init__(self, spec: InputSpec, text_dim: Width = 64, audio_hidden: Width = 16,
                 audio_out: Width = 16, vision_hidden: Width = 32, vision_out: Width = 32,
                 dropout: Dropout = 0.0, post_fusion_dim: Width = 128, post_text_dim: Width = 32,
                 post_audio_dim: Width = 16, post_vision_dim: Width = 32,
                 post_fusion_dropout: Dropout = 0.0, post_text_dropout: Dropout = 0.1,
                 post_audio_dropout: Dropout = 0.1, post_vision_dropout: Dropout = 0.0) -> None:
        super().__init__()
        require_modalities("self_mm", spec)
        self.encoders = UnimodalEncoders(spec, text_dim, audio_hidden, audio_out, vision_hidden,
                                         vision_out, dropout)
        unimodal = dict(self.encoders.dims)
        sizes = {"t": (post_text_dim, post_text_dropout),
                 "a": (post_audio_dim, post_audio_dropout),
                 "v": (post_vision_dim, post_vision_dropout)}
        self.heads = nn.ModuleDict({"m": SubtaskHead(sum(unimodal.values()), post_fusion_dim,
                                                     post_fusion_dropout)})
        for m, width in unimodal.items():
            self.heads[m] = SubtaskHead(width, *sizes[m])
        self.reps_dims = {**unimodal, "fusion": post_fusion_dim, "feat_m": post_fusion_dim}
        for m in unimodal:
            self.reps_dims[f"feat_{m}"] = sizes[m][0]
            self.reps_dims[f"pred_{m}"] = 1

    def forward(self, batch: Batch) -> ModelOutput:
        reps = self.encoders(batch)
        fused, prediction = self.heads["m"](torch.cat(list(reps.values()), dim=-1))
        out = {**reps, "fusion": fused, "feat_m": fused}
        for m, vector in reps.items():
            out[f"feat_{m}"], out[f"pred_{m}"] = self.heads[m](vector)
        return ModelOutput(prediction.squeeze(-1), out)
