"""`mag_bert`: the Multimodal Adaptation Gate inside a pretrained transformer (ACL 2020).

Rahman et al., "Integrating Multimodal Information in Large Pretrained Transformers", ACL 2020
(arXiv 1908.05787), section "Multimodal Adaptation Gate". After layer k of the text
transformer (`inject_after`; 0 = the embedding output, where the authors' code applies it),
each token state Z_i [D] is shifted by the audio (a_i) and visual (v_i) features at that token:

  g_v = ReLU(W_gv [v_i; Z_i]),  g_a = ReLU(W_ga [a_i; Z_i])        gates [D] (with bias)
  H_i = g_v ⊙ W_v v_i + g_a ⊙ W_a a_i                               displacement [D]
  α_i = min(β_shift · ‖Z_i‖ / ‖H_i‖, 1)        (‖H_i‖ = 0 read as 1; ‖·‖ Euclidean norm)
  Z_i ← Dropout(LayerNorm(Z_i + α_i H_i))

so the shift is never longer than β_shift · ‖Z_i‖. W_v and W_a have NO bias (the authors'
code has one): zero features then give exactly H_i = 0, so `--drop a --fill zero` removes
audio's shift exactly, and padding positions (zero features) are never shifted. The gate acts
on every position; on padding it is only the layer norm, which attention masks out anyway.
The remaining layers run unchanged; the prediction is ŷ = Linear(Dropout(p)) of the pooled
last-layer state p (`encoder.pooling`: [CLS] state, or the mean over real tokens). The
authors' code reads BERT's pooler (dense + tanh) instead; mimsa's text encoder drops the
pooler, as for every model.

How the gate gets in: a forward hook on the transformer's embedding module (k = 0) or on its
k-th layer (k ≥ 1), registered on that instance for the duration of one forward call and
removed in a `finally` (the batch's features live only in the hook's closure). No class of
`transformers` is changed or subclassed, so any BERT-like encoder with an embedding module and
a list of layers works: `minilm` (BERT), `mpnet` (MPNet), a local BERT folder. Other text
encoders (own-vocabulary embeddings, text features) have no transformer to gate: a one-line
ConfigError. A frozen encoder (`encoder.freeze=true`) keeps its weights fixed, but the
transformer runs on every batch (the states after layer k depend on audio and vision, so the
frozen encoder's per-transcript cache cannot be used); gradients flow through the frozen
layers to the gate. Gradient checkpointing would re-run layers without the hook: refused.

Audio/visual frames → token positions (per sample, `frames_to_tokens`): linear interpolation
over the sample's real frames onto its real tokens (special tokens included, padding of
either excluded): token j of n reads frame position j·(l−1)/(n−1) of l frames. This is
  word_aligned  exactly the identity when l = n (MMSA `aligned_50.pkl` data are cut to the
                BERT mask length, so with a WordPiece tokenizer the counts match),
  broadcast     the same vector at every token when l = 1 (utterance-level features, e.g.
                the shipped `mosi` and `mosi-poria`),
  resampled     a linear resampling otherwise (unaligned sequences).
It is one rule, so an unaligned sample whose counts match by chance is still mapped correctly
(and counted as word_aligned). The authors' driver gives [CLS] and [SEP] zero features; here
they get the interpolated ones (for an utterance vector, [CLS] is the token the head reads).
Which case each sample met is counted in `alignment_used` ({modality: {case: number of
distinct samples}}), written to model.json as "alignment" with every checkpoint: it counts
the samples the model met by then (training and validation; the test split is scored after).

reps (all of width D, the transformer's hidden size):
  "t"       mean over real tokens of the states ENTERING the gate (layer k's output, text
            only; for k = 0 the contextless token embeddings). After the gate the text stream
            is the fused stream, and a text-only vector after it would cost a second pass.
  "a", "v"  mean over real tokens of the projected features W_a a_i / W_v v_i (those present)
  "fusion"  the pooled last-layer state p the head reads.
With text alone (no audio, no vision) there is nothing to gate: the model is the plain
encoder with its head (a text-only baseline), reps "t" and "fusion".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.encoders.sequence import masked_mean
from mimsa.encoders.text import TextEncoder
from mimsa.errors import ConfigError
from mimsa.models.base import (
    Count,
    Dropout,
    InputSpec,
    Model,
    ModelOutput,
    NonNegative,
    register_model,
    require_modalities,
)

FEATURES = {"a": ("audio", "audio_lengths"), "v": ("vision", "vision_lengths")}
CASES = ("word_aligned", "broadcast", "resampled")


def shift_alpha(z: torch.Tensor, h: torch.Tensor, beta_shift: float,
                eps: float = 1e-6) -> torch.Tensor:
    """Return α = min(β_shift·‖Z‖/‖H‖, 1) per token [...] for z, h [..., D] (MAG's scaling,
    Rahman 2020). A zero H has its norm read as 1; `eps` guards the division as in the
    authors' code."""
    h_norm = h.norm(dim=-1)
    h_norm = torch.where(h_norm == 0, torch.ones_like(h_norm), h_norm)
    return torch.clamp(beta_shift * z.norm(dim=-1) / (h_norm + eps), max=1.0)


def scaled_shift(z: torch.Tensor, h: torch.Tensor, beta_shift: float,
                 eps: float = 1e-6) -> torch.Tensor:
    """Return α·H (`shift_alpha`) for z, h [..., D]; the result has their shape and norm
    ≤ min(β_shift·‖Z‖, ‖H‖) per token, and a zero H gives a zero shift."""
    return shift_alpha(z, h, beta_shift, eps).unsqueeze(-1) * h


class AdaptationGate(nn.Module):
    """The Multimodal Adaptation Gate for the modalities in `dims` ({"a": D_a, "v": D_v}).

    `project(m, x)` = W_m x (no bias); `displacement(z, feats, projected)` = H;
    `forward(z, feats, projected)` = Dropout(LayerNorm(Z + α H)). z [B, T, D]; feats[m]
    [B, T, D_m] (the modality at token positions); projected[m] = project(m, feats[m]).
    """

    def __init__(self, hidden: int, dims: dict[str, int], beta_shift: float,
                 dropout: float) -> None:
        super().__init__()
        self.beta_shift = beta_shift
        self.gates = nn.ModuleDict({m: nn.Linear(d + hidden, hidden) for m, d in dims.items()})
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden, bias=False)
                                          for m, d in dims.items()})
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def project(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Return W_m x [B, T, D] for features x [B, T, D_m] of `modality` ("a" or "v")."""
        return self.projections[modality](x)

    def displacement(self, z: torch.Tensor, feats: dict[str, torch.Tensor],
                     projected: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return H = Σ_m ReLU(W_gm [x_m; Z]) ⊙ W_m x_m, [B, T, D]."""
        h = torch.zeros_like(z)
        for m, x in feats.items():
            gate = torch.relu(self.gates[m](torch.cat([x, z], dim=-1)))
            h = h + gate * projected[m]
        return h

    def forward(self, z: torch.Tensor, feats: dict[str, torch.Tensor],
                projected: dict[str, torch.Tensor]) -> torch.Tensor:
        shift = scaled_shift(z, self.displacement(z, feats, projected), self.beta_shift)
        return self.dropout(self.norm(z + shift))


def frames_to_tokens(x: torch.Tensor, lengths: torch.Tensor, n_tokens: torch.Tensor,
                     width: int) -> torch.Tensor:
    """Return x [B, L, D] resampled to token positions, [B, width, D].

    Sample b's first lengths[b] frames are linearly interpolated onto its first n_tokens[b]
    positions: token j reads frame position j·(l−1)/(n−1) (the identity when l = n, the single
    frame everywhere when l = 1). Frames past lengths[b] are never read; positions past
    n_tokens[b] (padding) and samples without frames are zero.
    """
    steps = torch.arange(width, device=x.device, dtype=x.dtype)[None, :]
    frames = lengths.to(x.dtype)[:, None]
    tokens = n_tokens.to(x.dtype)[:, None]
    pos = steps * (frames - 1).clamp(min=0) / (tokens - 1).clamp(min=1)
    last = (lengths[:, None] - 1).clamp(min=0)
    low = torch.minimum(pos.floor().long(), last)
    high = torch.minimum(low + 1, last)
    frac = (pos - low.to(x.dtype)).unsqueeze(-1)
    index = torch.stack([low, high]).unsqueeze(-1).expand(-1, -1, -1, x.shape[-1])
    out = (1 - frac) * x.gather(1, index[0]) + frac * x.gather(1, index[1])
    keep = (steps < tokens) & (frames > 0)
    return out * keep.unsqueeze(-1).to(x.dtype)


def alignment_cases(lengths: torch.Tensor, n_tokens: torch.Tensor) -> list[str]:
    """Return, per sample, how `frames_to_tokens` maps its frames: "broadcast" (one frame),
    "word_aligned" (as many frames as tokens) or "resampled"."""
    return ["broadcast" if frames == 1 else "word_aligned" if frames == tokens else "resampled"
            for frames, tokens in zip(lengths.tolist(), n_tokens.tolist(), strict=True)]


def injection_site(transformer: nn.Module, inject_after: int) -> str:
    """Return the dotted name (in `transformer`) of the module whose output MAG shifts: the
    embedding module for `inject_after` = 0, else the inject_after-th transformer layer.

    Raises ConfigError (one line) when `inject_after` is outside 0..depth or the transformer
    has no recognisable embedding module / layer list."""
    layers = _layer_list(transformer)
    kind = type(transformer).__name__
    if layers is None or not hasattr(transformer, "embeddings"):
        raise ConfigError(f"model 'mag_bert' cannot find the embedding module and layer list "
                          f"of the text encoder ({kind}); use a BERT-like encoder (minilm, "
                          f"mpnet, a BERT folder)")
    name, depth = layers
    if not 0 <= inject_after <= depth:
        raise ConfigError(f"config value model.inject_after={inject_after} is outside the text "
                          f"encoder's depth: {kind} has {depth} layers; use 0 (after the "
                          f"embeddings) to {depth}")
    return "embeddings" if inject_after == 0 else f"{name}.{inject_after - 1}"


def _layer_list(transformer: nn.Module) -> tuple[str, int] | None:
    """Return (dotted name, length) of the ModuleList holding the transformer's layers."""
    depth = getattr(getattr(transformer, "config", None), "num_hidden_layers", None)
    for name, module in transformer.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            return name, depth
    return None


def _checkpointing(transformer: nn.Module) -> bool:
    """Return True when the transformer recomputes layers in backward (gradient/activation
    checkpointing), which would run them again without the gate's hook."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(transformer), name):
            return bool(getattr(transformer, name))
    return False


@contextmanager
def shifting_output(module: nn.Module, shift: Callable[[torch.Tensor], torch.Tensor]
                    ) -> Iterator[list[int]]:
    """Within the block, replace the hidden states `module` outputs (a tensor, or the first
    item of a tuple) by `shift(states)`; yield a one-item list counting the calls. The hook
    lives on this module instance only and is removed on exit, exceptions included."""
    calls = [0]

    def hook(_module: nn.Module, _args: tuple, output):
        calls[0] += 1
        if isinstance(output, tuple):
            return (shift(output[0]), *output[1:])
        return shift(output)

    handle = module.register_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


@register_model("mag_bert")
class MAGBert(Model):
    """A pretrained transformer with the Multimodal Adaptation Gate after layer `inject_after`.

    Options: beta_shift (β_shift, the largest shift as a fraction of the state's norm),
    dropout (after the gate's layer norm), head_dropout (before the output layer),
    inject_after (0 = after the embeddings, k = after layer k). Raises ConfigError when the
    text encoder is not a pretrained transformer, `inject_after` exceeds its depth or
    beta_shift < 0 (the option's range; NaN and ±inf are refused for every model option).
    """

    requires = "t"

    def __init__(self, spec: InputSpec, beta_shift: NonNegative = 1.0, dropout: Dropout = 0.5,
                 head_dropout: Dropout = 0.1, inject_after: Count = 0) -> None:
        super().__init__()
        require_modalities("mag_bert", spec, "t")
        if spec.text.kind != "pretrained":
            raise ConfigError(f"model 'mag_bert' needs a pretrained transformer text encoder "
                              f"(the gate lives inside it), not encoder.name="
                              f"'{spec.text.source or spec.text.kind}'; set encoder.name="
                              f"minilm, mpnet or a local model folder")
        self.text_encoder = TextEncoder(str(spec.text.encoder_dir),
                                        pooling=str(spec.encoder.get("pooling", "cls")),
                                        freeze=bool(spec.encoder.get("freeze", False)))
        hidden = self.text_encoder.out_dim
        self.site = injection_site(self.transformer, inject_after)
        self.modalities = "".join(m for m in "av" if m in spec.modalities)
        dims = {m: spec.dims[FEATURES[m][0]] for m in self.modalities}
        self.gate = AdaptationGate(hidden, dims, beta_shift, dropout) if dims else None
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(hidden, 1))
        self.reps_dims = {"t": hidden, **{m: hidden for m in self.modalities},
                          "fusion": hidden}
        self._seen: dict[str, dict[str, str]] = {m: {} for m in self.modalities}
        self._busy = False

    @property
    def transformer(self) -> nn.Module:
        """The Hugging Face model the gate is hooked into (owned by `text_encoder`)."""
        return self.text_encoder.pretrained

    @property
    def alignment_used(self) -> dict[str, dict[str, int]]:
        """{modality: {case: distinct samples}} of the frame-to-token mappings met so far
        (cases: word_aligned, broadcast, resampled; see the module docstring)."""
        out = {}
        for m, by_id in self._seen.items():
            counts = {case: sum(c == case for c in by_id.values()) for case in CASES}
            out[m] = {case: n for case, n in counts.items() if n}
        return out

    def run_record(self) -> dict[str, Any]:
        """model.json gets "alignment": how audio/visual frames reached the tokens
        (`alignment_used`)."""
        return {"alignment": self.alignment_used}

    def token_features(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return {modality: features at token positions [B, T, D_m]} (`frames_to_tokens`),
        recording each sample's case in `alignment_used`."""
        n_tokens = batch.text_mask.sum(1)
        width = batch.text_ids.shape[1]
        feats = {}
        for m in self.modalities:
            field, length_field = FEATURES[m]
            x, lengths = getattr(batch, field), getattr(batch, length_field)
            feats[m] = frames_to_tokens(x, lengths, n_tokens, width)
            for sample, case in zip(batch.ids, alignment_cases(lengths, n_tokens),
                                    strict=True):
                self._seen[m][sample] = case
        return feats

    def forward(self, batch: Batch) -> ModelOutput:
        mask = batch.text_mask
        feats = self.token_features(batch)
        projected = {m: self.gate.project(m, x) for m, x in feats.items()} if feats else {}
        entering: list[torch.Tensor] = []

        def shift(states: torch.Tensor) -> torch.Tensor:
            entering.append(masked_mean(states, mask))
            return self.gate(states, feats, projected) if feats else states

        states = self._run_transformer(batch, shift)
        if self.text_encoder.pooling == "cls":
            pooled = states[:, 0]
        else:
            pooled = masked_mean(states, mask)
        reps = {"t": entering[0], **{m: masked_mean(p, mask) for m, p in projected.items()},
                "fusion": pooled}
        return ModelOutput(self.head(pooled).squeeze(-1), reps)

    def _run_transformer(self, batch: Batch, shift: Callable[[torch.Tensor], torch.Tensor]
                         ) -> torch.Tensor:
        """Return the last-layer states [B, T, D] with `shift` applied at the injection site."""
        if _checkpointing(self.transformer):
            raise ConfigError("model 'mag_bert' cannot run with gradient checkpointing: the "
                              "recomputed layers would miss the gate; turn it off")
        if self._busy:
            raise RuntimeError("mag_bert.forward re-entered while its gate hook is active; "
                               "one forward at a time per model instance")
        self._busy = True
        try:
            site = self.transformer.get_submodule(self.site)
            with shifting_output(site, shift) as calls:
                states = self.transformer(input_ids=batch.text_ids,
                                          attention_mask=batch.text_mask).last_hidden_state
        finally:
            self._busy = False
        if calls[0] != 1:
            raise RuntimeError(f"the MAG hook on '{self.site}' ran {calls[0]} times in one "
                               f"forward (expected 1); this transformer's forward bypasses it")
        return states
