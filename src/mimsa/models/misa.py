"""`misa`: Modality-Invariant and -Specific Representations (Hazarika et al., ACM MM 2020).

Hazarika, Zimmermann, Poria: "MISA: Modality-Invariant and -Specific Representations for
Multimodal Sentiment Analysis", ACM Multimedia 2020.

Per present modality m, an utterance vector projected to width d (`hidden`):
  text     the configured text encoder's vector (the paper: the masked mean of BERT's last
           layer, i.e. encoder.pooling=mean; local encoders: LSTM final state → Linear(·, d))
  audio    a bidirectional LSTM over the frames: both directions' final states → Dropout →
  vision   Linear(2·audio_hidden, d) (the paper: two stacked bidirectional LSTMs with a
           LayerNorm between them, both layers' final states concatenated)
  u_m = LayerNorm(ReLU(Linear(·, d))) for text from a pretrained encoder, LayerNorm(ReLU(·))
        for the others (the LSTM's Linear is the projection)                    [B, d]
Subspaces (paper: modality representation learning):
  invariant  h_m^c = σ(Linear_shared(u_m))       one encoder SHARED by all modalities
  specific   h_m^p = σ(Linear_m(u_m))            one PRIVATE encoder per modality
  recon      û_m = Linear_dec(h_m^c + h_m^p)     one decoder shared by all modalities (the
                                                 paper; the published code has one per
                                                 modality: shared_decoder=false)
Fusion (paper: modality fusion): the 2·n vectors [h_t^p, h_a^p, h_v^p, h_t^c, h_a^c, h_v^c] (those
present) as a sequence through one transformer encoder layer (`heads` heads, feed-forward
2048, dropout 0.1, post-norm: PyTorch's layer as the published code uses it), its outputs
concatenated [B, 2n·d] → Linear(2n·d, n·d) → Dropout → ReLU = "fusion" → Linear(n·d, 1).

MISA's training signals are objectives that read these reps (configs/misa.yaml):
  cmd                 similarity: central moment discrepancy between the invariant vectors of
                      every modality pair (objectives/cmd.py)
  soft_orthogonality  difference: invariant vs specific per modality, and specific pairs
                      (objectives/soft_orthogonality.py)
  reconstruction      MSE between û_m and u_m (objectives/reconstruction.py)

reps (all [B, d] except "fusion" [B, n·d]):
  "t", "a", "v"               u_m, the projected utterance vectors (the reconstruction targets)
  "inv_t", "inv_a", "inv_v"   h_m^c, the modality-invariant vectors
  "spec_t", "spec_a", "spec_v"  h_m^p, the modality-specific vectors
  "recon_t", "recon_a", "recon_v"  û_m, the reconstructions
  "fusion"                    the fusion MLP's hidden layer

On our data: `mosi` has text + ONE audio frame per utterance (no vision), so the audio LSTM
runs one step (a nonlinear map of the utterance vector) and fusion sees four vectors;
`mosi-poria` has one audio and one visual frame (six vectors); `synthetic` has frame sequences.
"""

from __future__ import annotations

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.builder import build_text_encoder
from mimsa.encoders.sequence import LSTMEncoder
from mimsa.models.base import (
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    Width,
    register_model,
    require_modalities,
)

KEYS = ("inv", "spec", "recon")


@register_model("misa")
class MISA(Model):
    """Shared and private encoders per modality, a shared decoder, transformer fusion.

    See the module docstring; works with any non-empty subset of t, a, v.
    """

    def __init__(self, spec: InputSpec, hidden: Width = 128, audio_hidden: Width = 32,
                 vision_hidden: Width = 32, dropout: Dropout = 0.5, heads: Width = 2,
                 shared_decoder: bool = True) -> None:
        super().__init__()
        require_modalities("misa", spec)
        self.modalities = spec.modalities
        self.encoders = nn.ModuleDict()
        if "t" in spec.modalities:
            text = build_text_encoder(spec.text, spec.dims, spec.encoder, hidden, dropout)
            out = int(text.out_dim)
            self.encoders["t"] = text
            self.text_proj = nn.Identity() if out == hidden else nn.Linear(out, hidden)
        for m, name, lstm_hidden in (("a", "audio", audio_hidden),
                                     ("v", "vision", vision_hidden)):
            if m in spec.modalities:
                self.encoders[m] = LSTMEncoder(spec.dims[name], lstm_hidden, hidden,
                                               bidirectional=True, dropout=dropout)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(hidden) for m in self.modalities})
        self.shared = nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid())
        self.private = nn.ModuleDict({m: nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid())
                                      for m in self.modalities})
        decoders = 1 if shared_decoder else len(self.modalities)
        self.decoders = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(decoders))
        self.transformer = nn.TransformerEncoderLayer(hidden, heads, batch_first=True)
        n = len(self.modalities)
        self.fusion = nn.Sequential(nn.Linear(2 * n * hidden, n * hidden), nn.Dropout(dropout),
                                    nn.ReLU())
        self.head = nn.Linear(n * hidden, 1)
        self.reps_dims = {m: hidden for m in self.modalities}
        for key in KEYS:
            self.reps_dims.update({f"{key}_{m}": hidden for m in self.modalities})
        self.reps_dims["fusion"] = n * hidden

    def utterances(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return the projected utterance vectors {m: u_m [B, hidden]}."""
        vectors: dict[str, torch.Tensor] = {}
        if "t" in self.modalities:
            vectors["t"] = self.text_proj(self.encoders["t"](batch).vector)
        if "a" in self.modalities:
            vectors["a"], _ = self.encoders["a"](batch.audio, batch.audio_lengths)
        if "v" in self.modalities:
            vectors["v"], _ = self.encoders["v"](batch.vision, batch.vision_lengths)
        return {m: self.norms[m](torch.relu(u)) for m, u in vectors.items()}

    def forward(self, batch: Batch) -> ModelOutput:
        reps = self.utterances(batch)
        for i, m in enumerate(self.modalities):
            inv, spec = self.shared(reps[m]), self.private[m](reps[m])
            decoder = self.decoders[i if len(self.decoders) > 1 else 0]
            reps[f"inv_{m}"], reps[f"spec_{m}"] = inv, spec
            reps[f"recon_{m}"] = decoder(inv + spec)
        order = [f"spec_{m}" for m in self.modalities] + [f"inv_{m}" for m in self.modalities]
        sequence = self.transformer(torch.stack([reps[k] for k in order], dim=1))
        fusion = self.fusion(sequence.flatten(1))
        reps["fusion"] = fusion
        return ModelOutput(self.head(fusion).squeeze(-1), reps)
