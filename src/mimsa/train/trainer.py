"""The training loop: stages within an epoch, validation-only selection, resumable.

An epoch runs the configured stages in order; a stage is one pass over (a fraction of) the
training batches. On each batch a stage runs its steps in order; a step names the optimisers
it steps, the loss terms it sums (with weights) and how many times it repeats:

    stages:
      - {name: main, optimizer: main, terms: {task: 1.0}}          # one step per batch
      - name: adversarial                                          # several steps per batch
        steps:
          - {optimizer: critic, terms: {critic_loss: 1.0}, repeat: 5}
          - {optimizer: main, terms: {task: 1.0, dependency: -0.1}}

"task" is the regression loss on the prediction; every other term comes from an objective.
A step that does not step "main" does not train the model (only the objectives' own networks
learn): it reads the model's output without gradients, which is how MMIM's stage 0 costs one
forward pass. Within a batch such steps share that output: a no-grad forward of the current
model, or, after a model step on the same batch, the detached output of that step (computed
before its update), so a step placed after the model step costs no forward pass at all.

`train.term_weights` ({term: weight} or {"stage/term": weight}) REPLACES the weight of that term,
sign included, in every stage (or only in the named stage) that uses it; the stage/term key wins.
A term of weight 0 is not looked up, a step left without terms is skipped and a stage left
without steps too: `--set train.term_weights.nce=0` trains MMIM without CPC,
`--set train.term_weights.main/lld=-0.05` sets β for the BA term of stage "main" only. Keys must
name terms the stages use. An objective that declares `terms` (the names it returns) is not run
in a step that uses none of them. At the start of every epoch the trainer calls `reset()` on
each objective that has one (e.g. to empty a batch memory).

`augment(batch, epoch) -> batch` (the `data.augment` config, `mimsa.data.corruptions`) corrupts
the training batches of every stage; validation and test batches are never touched.

`protocol: legacy` reproduces MMIM's published, test-informed checkpoint rule: the test split is
scored every epoch (history rows carry test/*), early stopping follows validation, and a
checkpoint is kept only when the validation metric improves AND test MAE beats its best so far.
The default `clean` never looks at test before the end; with `score_test=False` (tuning, see
`mimsa.sweep.tune`) it never looks at test at all: the selected model predicts and is scored on
train and valid only, and `protocol: legacy` is refused.

`on_epoch_end(epoch, row)` is called after every epoch, once the epoch's history row (training
terms, `valid/<metric>` for every metric, `best`) is written and its resume state saved, so an
exception raised there (an interrupt, a tuner's pruning) leaves an interrupted run that
`--resume` continues.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mimsa.atomic import atomic_write_text
from mimsa.data.batch import Batch, iterate_batches
from mimsa.data.dataset import MultimodalDataset
from mimsa.errors import ConfigError, TrainingError
from mimsa.metrics import LOWER_IS_BETTER, score
from mimsa.models.base import ModelOutput
from mimsa.train.checkpoint import (
    load_model_state,
    save_checkpoint,
    save_resume_state,
    to_cpu_state,
)
from mimsa.train.device import describe_device, module_device
from mimsa.train.display import QuietDisplay
from mimsa.train.inference import predict
from mimsa.train.optim import build_optimizers, lr_factor
from mimsa.train.seeding import epoch_rng

LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss}
PROTOCOLS = ("clean", "legacy")
HISTORY = "history.jsonl"


@dataclass
class Step:
    """One optimisation step on a batch: which optimisers, which weighted terms, how often."""

    optimizers: list[str]
    terms: dict[str, float]
    repeat: int = 1

    @property
    def steps_model(self) -> bool:
        return "main" in self.optimizers

    @classmethod
    def from_config(cls, cfg: dict) -> Step:
        optimizers = cfg.get("optimizer", "main")
        optimizers = [optimizers] if isinstance(optimizers, str) else list(optimizers)
        terms = {str(k): float(v) for k, v in (cfg.get("terms") or {"task": 1.0}).items()}
        return cls(optimizers, terms, max(1, int(cfg.get("repeat", 1))))


@dataclass
class Stage:
    """One pass over (a fraction of) the training batches within an epoch."""

    name: str
    steps: list[Step]
    fraction: float = 1.0

    @property
    def optimizers(self) -> list[str]:
        return list(dict.fromkeys(o for s in self.steps for o in s.optimizers))

    @classmethod
    def from_config(cls, cfg: dict) -> Stage:
        fraction = float(cfg.get("fraction", 1.0))
        if not 0 < fraction <= 1:
            raise ConfigError(f"stage '{cfg.get('name')}': fraction must be in (0, 1]")
        steps = [Step.from_config(s) for s in cfg.get("steps") or [cfg]]
        return cls(str(cfg.get("name", "main")), steps, fraction)


@dataclass
class FitResult:
    """What a finished run produced: metrics per split (valid, and test unless the trainer was
    told not to score it), predictions per split (train, valid[, test]), best epoch."""

    metrics: dict[str, dict[str, float]]
    predictions: dict[str, np.ndarray]
    best_epoch: int
    history: list[dict]


def detach_output(output: ModelOutput) -> ModelOutput:
    """Return `output` with its prediction and reps detached from the graph."""
    return ModelOutput(output.prediction.detach(),
                       {k: v.detach() for k, v in output.reps.items()})


class _Lazy:
    """Calls `make` on first use and returns the same value afterwards."""

    def __init__(self, make: Callable[[], object]) -> None:
        self.make, self.value, self.done = make, None, False

    def __call__(self):
        if not self.done:
            self.value, self.done = self.make(), True
        return self.value


def apply_term_weights(stages: list[Stage], overrides: dict) -> list[Stage]:
    """Return `stages` with `train.term_weights` applied and zero-weight terms, steps and stages
    dropped (see the module docstring)."""
    overrides = {str(k): float(v) for k, v in (overrides or {}).items()}
    used = {f"{st.name}/{t}" for st in stages for step in st.steps for t in step.terms}
    valid = sorted(used | {key.split("/", 1)[1] for key in used})
    unknown = [key for key in overrides if key not in valid]
    if unknown:
        raise ConfigError(f"train.term_weights: {', '.join(unknown)} is not a term of any stage; "
                         f"valid: {', '.join(valid)}")
    kept = []
    for stage in stages:
        steps = []
        for step in stage.steps:
            terms = {t: overrides.get(f"{stage.name}/{t}", overrides.get(t, w))
                     for t, w in step.terms.items()}
            terms = {t: w for t, w in terms.items() if w != 0}
            if terms:
                steps.append(replace(step, terms=terms))
        if steps:
            kept.append(replace(stage, steps=steps))
    if not kept:
        raise ConfigError("every stage has only zero-weight terms; nothing to train")
    return kept


def check_stage_terms(stages: list[Stage], declared: list[str]) -> None:
    """Raise `ConfigError` (one line) when a step of `stages` uses a term that neither the task
    loss ("task") nor an objective's declared terms (`declared`) provides."""
    available = list(dict.fromkeys(["task", *declared]))
    for stage in stages:
        for step in stage.steps:
            missing = [t for t in step.terms if t not in available]
            if missing:
                raise ConfigError(f"train.stages: stage '{stage.name}' uses term(s) "
                                  f"{', '.join(missing)} that no objective provides; "
                                  f"available: {', '.join(available)} (add the objective "
                                  f"under objectives:, or set the term's weight to 0 in "
                                  f"train.term_weights)")


def is_better(metric: str, new: float, best: float | None) -> bool:
    """Return True if `new` improves on `best` for `metric` (MAE and loss: lower is better)."""
    if best is None:
        return not math.isnan(new)
    if metric in LOWER_IS_BETTER or metric == "loss":
        return new < best
    return new > best


class Trainer:
    """Trains `model` (+ `objectives`) on `dataset`'s train split; selects on valid only."""

    def __init__(self, model: nn.Module, objectives: nn.ModuleDict, dataset: MultimodalDataset,
                 cfg: dict, spec: dict, run_dir: Path, *, modalities: str, pad_id: int = 0,
                 display: QuietDisplay | None = None,
                 on_epoch_end: Callable[[int, dict], None] | None = None,
                 augment: Callable[[Batch, int], Batch] | None = None,
                 score_test: bool = True) -> None:
        self.model, self.objectives, self.dataset = model, objectives, dataset
        self.score_test = score_test
        self.augment = augment
        self.cfg, self.spec, self.run_dir = cfg, spec, run_dir
        self.train_cfg = cfg["train"]
        self.modalities, self.pad_id = modalities, pad_id
        self.display = display or QuietDisplay()
        self.on_epoch_end = on_epoch_end
        self.stages = apply_term_weights([Stage.from_config(s) for s in self.train_cfg["stages"]],
                                         self.train_cfg.get("term_weights"))
        self.protocol = str(cfg.get("protocol", "clean"))
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol '{self.protocol}'; valid: {', '.join(PROTOCOLS)}")
        if self.protocol == "legacy" and not score_test:
            raise ConfigError("protocol: legacy scores the test split every epoch, and this run "
                              "must not look at test (tuning); use protocol: clean")
        self.optimizers = build_optimizers(model, objectives, self.train_cfg, cfg["encoder"])
        for group in self.optimizers["main"].param_groups:
            group.setdefault("base_lr", group["lr"])
        self.main_steps = 0  # steps of "main" so far: the learning-rate schedule's clock
        for stage in self.stages:
            for name in stage.optimizers:
                if name not in self.optimizers:
                    raise ConfigError(f"stage '{stage.name}' steps optimizer '{name}', which has "
                                     f"no parameters; optimizers: {', '.join(self.optimizers)} "
                                     f"(a stage whose terms all weigh 0 in train.term_weights "
                                     f"is skipped)")
        self._check_terms()
        loss_name = self.train_cfg["loss"]
        if loss_name not in LOSSES:
            raise ConfigError(f"unknown train.loss '{loss_name}'; valid: {', '.join(LOSSES)}")
        self.loss_fn = LOSSES[loss_name]
        self.select_metric = str(self.train_cfg["select_metric"])
        self.seed = int(cfg["seed"])
        self.frozen = dict(spec.get("frozen_encoders") or {})  # weights left out of checkpoints
        self.split_index = {s: dataset.indices(s) for s in ("train", "valid", "test")}

    def _check_terms(self) -> None:
        """Raise `ConfigError` before training when a stage uses an undeclared term."""
        check_stage_terms(self.stages, [t for o in self.objectives.values() for t in o.terms])

    # -- one stage ---------------------------------------------------------------------------
    def _terms(self, batch: Batch, output, needed: dict[str, float]) -> dict[str, torch.Tensor]:
        terms = {"task": self.loss_fn(output.prediction, batch.labels)}
        for objective in self.objectives.values():
            if any(t in needed for t in objective.terms):
                terms.update(objective(output, batch))
        return terms

    def _step(self, stage: Stage, step: Step, batch: Batch, frozen_output, where: str
              ) -> tuple[dict[str, torch.Tensor], torch.Tensor, ModelOutput]:
        """Run one optimisation step; return (terms, loss, the model output it used)."""
        if step.steps_model:
            output = self.model(batch)
        else:
            output = frozen_output()
        terms = self._terms(batch, output, step.terms)
        missing = [t for t in step.terms if t not in terms]
        if missing:
            declared = [t for o in self.objectives.values() for t in o.terms]
            available = ", ".join(dict.fromkeys([*terms, *declared]))
            raise ConfigError(f"stage '{stage.name}' uses term(s) {', '.join(missing)} that "
                             f"no objective provides; available: {available}")
        loss = sum(w * terms[t] for t, w in step.terms.items())
        if not torch.isfinite(loss):
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            raise TrainingError(f"loss became {loss.item()} at {where} ({values}); lower the "
                                f"learning rate, or check the model and objective settings")
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if not loss.requires_grad:
            raise ConfigError(f"stage '{stage.name}': its loss does not depend on any "
                             f"parameter of optimizer(s) {', '.join(step.optimizers)}")
        loss.backward()
        optimizers = [self.optimizers[name] for name in step.optimizers]
        if self.train_cfg.get("clip"):
            params = [p for opt in optimizers for g in opt.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, float(self.train_cfg["clip"]))
        if "main" in step.optimizers:
            self._schedule_main()
        for opt in optimizers:
            opt.step()
        return terms, loss, output

    def _schedule_main(self) -> None:
        """Set the main optimizer's learning rates for its next step (`lr_factor`)."""
        warmup, decay = float(self.train_cfg.get("warmup", 0.0)), self.train_cfg.get("decay")
        if warmup or decay == "linear":
            factor = lr_factor(self.main_steps, self._total_main_steps(), warmup, str(decay))
            for group in self.optimizers["main"].param_groups:
                group["lr"] = group["base_lr"] * factor
        self.main_steps += 1

    def _total_main_steps(self) -> int:
        """Return the main optimizer's steps over the whole epoch budget."""
        batches = math.ceil(len(self.split_index["train"]) / int(self.cfg["data"]["batch_size"]))
        per_epoch = sum(max(1, math.ceil(stage.fraction * batches))
                        * sum(step.repeat for step in stage.steps if "main" in step.optimizers)
                        for stage in self.stages)
        return max(1, per_epoch * int(self.train_cfg["epochs"]))

    def _run_stage(self, epoch: int, stage: Stage) -> dict[str, float]:
        rng = epoch_rng(self.seed, epoch)
        batches = list(iterate_batches(
            self.dataset, self.split_index["train"], int(self.cfg["data"]["batch_size"]),
            modalities=self.modalities, shuffle=True, rng=rng,
            length_bucketing=bool(self.cfg["data"]["length_bucketing"]), pad_id=self.pad_id))
        batches = batches[: max(1, math.ceil(stage.fraction * len(batches)))]
        if self.augment is not None:  # training batches only; seeded by (seed, epoch)
            batches = [self.augment(batch, epoch) for batch in batches]
        device = module_device(self.model)
        self.model.train()
        self.objectives.train()
        sums: dict[str, float] = {}
        self.display.stage(epoch, stage.name, len(batches))
        for number, batch in enumerate(batches):
            batch = batch.to(device)
            frozen = _Lazy(lambda b=batch: self._forward_without_grad(b))
            described = False
            for step in stage.steps:
                for _ in range(step.repeat):
                    where = f"epoch {epoch}, stage '{stage.name}', batch {number}"
                    step_terms, step_loss, output = self._step(stage, step, batch, frozen, where)
                if step.steps_model:  # later non-model steps read this output, detached
                    frozen = _Lazy(lambda o=output: detach_output(o))
                # The last model step (else the last step) describes the batch.
                if step.steps_model or not described:
                    terms, loss = step_terms, step_loss
                    described = step.steps_model
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            self.display.batch(float(loss.detach()))
        return {f"{stage.name}/{k}": v / len(batches) for k, v in sums.items()}

    @torch.no_grad()
    def _forward_without_grad(self, batch: Batch):
        return self.model(batch)

    # -- evaluation ----------------------------------------------------------------------------
    def predict_split(self, split: str) -> np.ndarray:
        """Return predictions of the current model on `split`."""
        return predict(self.model, self.dataset, self.split_index[split],
                       modalities=self.modalities,
                       batch_size=int(self.cfg["data"]["eval_batch_size"]), pad_id=self.pad_id)

    def _validate(self, split: str = "valid") -> dict[str, float]:
        predictions = self.predict_split(split)
        bad = np.flatnonzero(~np.isfinite(predictions))
        if bad.size:
            first = self.dataset.ids[self.split_index[split][bad[0]]]
            raise TrainingError(f"the model predicted NaN or inf for {bad.size} of "
                                f"{predictions.size} {split} samples (first: '{first}'); its "
                                f"weights or a model option are not finite or have diverged: "
                                f"check the model options, or lower the learning rate")
        labels = self.dataset.labels[self.split_index[split]]
        metrics = score(labels, predictions)
        metrics["loss"] = float(self.loss_fn(torch.from_numpy(predictions).float(),
                                             torch.from_numpy(labels)).item())
        if self.select_metric not in metrics:
            raise ConfigError(f"train.select_metric '{self.select_metric}' is not a metric; "
                             f"valid: {', '.join(metrics)}")
        return metrics

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: dict | None = None) -> FitResult:
        """Train to the epoch limit or early stop; return the selected model's results."""
        epochs, patience = int(self.train_cfg["epochs"]), int(self.train_cfg["patience"])
        state = {"epoch": 0, "best_score": None, "best_epoch": 0, "bad_epochs": 0,
                 "history": [], "best_state": None, "best_test": None}
        if resume is not None:
            state = self._restore(resume)
        self.display.start(f"{self.spec['model']} on {self.dataset.name}, seed {self.seed}",
                           epochs)
        try:
            for epoch in range(state["epoch"] + 1, epochs + 1):
                if state["bad_epochs"] >= patience:
                    break
                for objective in self.objectives.values():
                    objective.reset()
                started = time.perf_counter()
                row: dict = {"epoch": epoch, "device": describe_device(module_device(self.model))}
                for stage in self.stages:
                    row.update(self._run_stage(epoch, stage))
                row["train_seconds"] = round(time.perf_counter() - started, 3)
                valid = self._validate()
                row.update({f"valid/{k}": v for k, v in valid.items()})
                current = valid[self.select_metric]
                improved = is_better(self.select_metric, current, state["best_score"])
                keep = improved
                if improved:
                    state.update(best_score=current, bad_epochs=0)
                else:
                    state["bad_epochs"] += 1
                if self.protocol == "legacy":  # test-informed: see the module docstring
                    test = self._validate("test")
                    row.update({f"test/{k}": v for k, v in test.items()})
                    keep = improved and is_better("MAE", test["MAE"], state["best_test"])
                    if keep:
                        state["best_test"] = test["MAE"]
                if keep:
                    state.update(best_epoch=epoch,
                                 best_state={"model": self._model_state(),
                                             "objectives": to_cpu_state(self.objectives)})
                    save_checkpoint(self.run_dir, state["best_state"]["model"],
                                    {**self.spec, **self.model.run_record()},
                                    state["best_state"]["objectives"])
                row["best"] = keep
                state["history"].append(row)
                state["epoch"] = epoch
                self._write_history(state["history"])
                save_resume_state(self.run_dir, self._snapshot(state))
                self.display.epoch(
                    f"epoch {epoch:3d}  train {row.get(f'{self.stages[-1].name}/loss', 0):.4f}  "
                    f"valid {self.select_metric} {current:.4f}  "
                    f"Non0 Acc-2 {100 * valid['Non0_acc_2']:.2f}"
                    + (f"  test MAE {row['test/MAE']:.4f}" if "test/MAE" in row else "")
                    + ("  *" if keep else ""))
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch, dict(row))
        finally:
            self.display.stop()
        return self._finish(state)

    def _finish(self, state: dict) -> FitResult:
        if state["best_state"] is None:
            raise TrainingError(f"no epoch produced a finite validation {self.select_metric}; "
                                f"nothing to select")
        load_model_state(self.model, state["best_state"]["model"], self.frozen, str(self.run_dir))
        self.objectives.load_state_dict(state["best_state"]["objectives"])
        splits = ("train", "valid", "test") if self.score_test else ("train", "valid")
        predictions = {split: self.predict_split(split) for split in splits}
        metrics = {split: score(self.dataset.labels[self.split_index[split]], predictions[split])
                   for split in splits if split != "train"}
        return FitResult(metrics, predictions, state["best_epoch"], state["history"])

    def _write_history(self, history: list[dict]) -> None:
        atomic_write_text(self.run_dir / HISTORY, "".join(json.dumps(r) + "\n" for r in history))

    def _model_state(self) -> dict[str, torch.Tensor]:
        return to_cpu_state(self.model, skip=tuple(self.frozen))

    def _snapshot(self, state: dict) -> dict:
        return {**state, "model": self._model_state(),
                "objectives": to_cpu_state(self.objectives),
                "optimizers": {k: _to_cpu(o.state_dict()) for k, o in self.optimizers.items()},
                "torch_rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(self.model),
                "main_steps": self.main_steps,
                "history": json.dumps(state["history"])}

    def _restore(self, saved: dict) -> dict:
        load_model_state(self.model, saved["model"], self.frozen, str(self.run_dir))
        self.objectives.load_state_dict(saved["objectives"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(saved["optimizers"][name])
        torch.set_rng_state(saved["torch_rng"])
        device = module_device(self.model)
        if device.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        self.main_steps = int(saved.get("main_steps", 0))
        keys = ("epoch", "best_score", "best_epoch", "bad_epochs", "best_state")
        return {**{k: saved[k] for k in keys}, "best_test": saved.get("best_test"),
                "history": json.loads(saved["history"])}


def _to_cpu(tree):
    """Return `tree` (an optimizer state dict: nested dicts and lists) with its tensors on the
    CPU; `Optimizer.load_state_dict` moves them back to each parameter's device."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_to_cpu(v) for v in tree)
    return tree


def _cuda_rng(model: nn.Module) -> torch.Tensor | None:
    """Return the CUDA generator state of the model's GPU (dropout there), None on the CPU."""
    device = module_device(model)
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None
