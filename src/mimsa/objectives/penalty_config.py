"""The `penalty:` config section: attach a mutual-dependency penalty to any model by configuration.

    mimsa train -m late_fusion --set penalty.kind=js --set penalty.weight=0.1

`apply_penalty(cfg)` expands the section into plain configuration that the trainer already
understands, and the models are not touched:
  objectives.dependency_<kind>   the critic on the model's unimodal reps (options below)
  train.optimizers.critic        {lr: penalty.critic_lr} (other keys already there are kept)
  train.stages                   every step that steps "main" gets `dependency: −weight` added
                                 to its terms and is preceded (critic_reps: fresh) or followed
                                 (critic_reps: reuse) by a critic step
                                 {optimizer: critic, terms: {critic_loss: 1.0},
                                  repeat: critic_steps}; name, fraction, other terms and steps
                                 that do not step "main" (e.g. MMIM's stage "mi") are kept.
So the model step minimises task − weight·D while the critic maximises D on detached reps.
`fresh` (the default) trains the critic on the current model's reps, which costs one extra
forward pass of the model per batch without gradients (with fine-tuned MiniLM, epochs 1.3×
longer; BENCHMARKS.md); `reuse` trains it on the reps the model step already computed (the
trainer reuses a batch's model-step output for later steps), i.e. on the model as it was
before that step's update, at no extra forward.

Keys: kind (null | kl | js | wasserstein), weight (λ), critic_steps, critic_reps (fresh |
reuse), critic_lr, and the critic's options hidden, depth, activation, reps (null = the model's
t/a/v reps); ema (kl only), gamma and lipschitz (wasserstein only). The run's config.yaml
keeps the compact section; the expansion is redone whenever the run is built (training,
resume, evaluate), so it is one deterministic function of the saved config.
"""

from __future__ import annotations

import copy

from mimsa.config import DEFAULTS
from mimsa.errors import ConfigError

KINDS = ("kl", "js", "wasserstein")
CRITIC_REPS = ("fresh", "reuse")
CRITIC_OPTIONS = ("hidden", "depth", "activation", "reps")
KIND_OPTIONS = {"kl": ("ema",), "js": (), "wasserstein": ("gamma", "lipschitz")}
DEFAULT_PENALTY = DEFAULTS["penalty"]


def apply_penalty(cfg: dict) -> dict:
    """Return `cfg` with its `penalty` section expanded (see the module docstring).

    Without `penalty.kind` the same dict is returned. Otherwise a deep copy comes back whose
    penalty.kind is null, so applying it again changes nothing.
    """
    section = {**DEFAULT_PENALTY, **(cfg.get("penalty") or {})}
    kind = section["kind"]
    if kind is None or kind is False or str(kind).lower() in ("", "none", "null", "off"):
        return cfg
    kind = str(kind).lower()
    if kind not in KINDS:
        raise ConfigError(f"penalty.kind '{section['kind']}' is unknown; valid: "
                         f"{', '.join(KINDS)} (or null for no penalty)")
    for other, keys in KIND_OPTIONS.items():
        for key in keys:
            if other != kind and section[key] != DEFAULT_PENALTY[key]:
                raise ConfigError(f"penalty.{key} applies to penalty.kind={other} only "
                                 f"(this run has kind {kind})")
    weight, steps = float(section["weight"]), int(section["critic_steps"])
    if steps < 1:
        raise ConfigError(f"penalty.critic_steps must be >= 1 (got {section['critic_steps']})")
    critic_reps = str(section["critic_reps"])
    if critic_reps not in CRITIC_REPS:
        raise ConfigError(f"penalty.critic_reps '{critic_reps}' is unknown; valid: "
                         f"{', '.join(CRITIC_REPS)}")
    name = f"dependency_{kind}"
    out = copy.deepcopy(cfg)
    objectives = out.setdefault("objectives", {}) or {}
    if name in objectives:
        raise ConfigError(f"penalty.kind={kind} and objectives.{name} are both set; configure "
                         f"the penalty in one place")
    objectives[name] = {k: section[k] for k in (*CRITIC_OPTIONS, *KIND_OPTIONS[kind])}
    out["objectives"] = objectives
    train = out["train"]
    optimizers = dict(train.get("optimizers") or {})
    optimizers["critic"] = {**(optimizers.get("critic") or {}), "lr": float(section["critic_lr"])}
    train["optimizers"] = optimizers
    train["stages"] = penalise_stages(train["stages"], weight, steps,
                                      critic_after=critic_reps == "reuse")
    out["penalty"] = {**section, "kind": None}
    return out


def penalise_stages(stages: list[dict], weight: float, critic_steps: int,
                    critic_after: bool = False) -> list[dict]:
    """Return stage configs where every step that steps "main" gets the term
    `dependency: −weight` and is preceded (or, with `critic_after`, followed) by `critic_steps`
    critic steps; stages without such a step are returned unchanged."""
    out = []
    for stage in stages:
        steps = stage.get("steps")
        step_cfgs = list(steps) if steps else [
            {k: v for k, v in stage.items() if k not in ("name", "fraction")}]
        if not any(_steps_main(s) for s in step_cfgs):
            out.append(copy.deepcopy(stage))
            continue
        new_steps = []
        for step in step_cfgs:
            if not _steps_main(step):
                new_steps.append(copy.deepcopy(step))
                continue
            terms = dict(step.get("terms") or {"task": 1.0})
            if "dependency" in terms or "critic_loss" in terms:
                raise ConfigError(f"stage '{stage.get('name', 'main')}' already uses the "
                                 f"dependency terms; remove them or unset penalty.kind")
            critic = {"optimizer": "critic", "terms": {"critic_loss": 1.0},
                      "repeat": critic_steps}
            model = {**copy.deepcopy(step), "terms": {**terms, "dependency": -weight}}
            new_steps += [model, critic] if critic_after else [critic, model]
        new_stage = {"name": stage.get("name", "main"), "steps": new_steps}
        if "fraction" in stage:
            new_stage["fraction"] = stage["fraction"]
        out.append(new_stage)
    return out


def _steps_main(step: dict) -> bool:
    optimizers = step.get("optimizer", "main")
    return "main" in ([optimizers] if isinstance(optimizers, str) else list(optimizers))
