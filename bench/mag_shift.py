"""How far the trained MAG gate moves the token states: ‖αH‖ / ‖Z‖ per real token.

    MIMSA_DATA=../shared/data python bench/mag_shift.py RUN_DIR ... [--split test] [--out F.json]

For every seed of each `mag_bert` run (multi- or single-seed directory), the selected checkpoint
is run on the split and, at the injection site, every real token's shift is measured against
the state it shifts (Rahman et al. 2020, the MAG: Z ← LayerNorm(Z + αH), α = min(β‖Z‖/‖H‖, 1)):
  shift_ratio   ‖αH‖ / ‖Z‖, at most β_shift (the mean over tokens, then over seeds)
  saturated     the share of tokens with α < 1, i.e. the shift cut to β_shift·‖Z‖
A gate that learned to leave the pretrained states alone has a small shift_ratio; one at
β_shift moves every token by the full allowed fraction of its own norm.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench_report import save_json

from mimsa.models.mag_bert import AdaptationGate
from mimsa.train.inference import predict
from mimsa.train.run import load_run


def seed_dirs(run: Path) -> list[Path]:
    if (run / "metrics.json").is_file():
        return [run]
    return sorted(p for p in run.glob("seed-*") if (p / "metrics.json").is_file())


def measure(seed_dir: Path, split: str) -> dict:
    cfg, model, dataset, spec = load_run(seed_dir)
    if not isinstance(getattr(model, "gate", None), AdaptationGate):
        raise SystemExit(f"{seed_dir}: not a mag_bert run with audio or vision")
    ratios: list[torch.Tensor] = []
    saturated: list[torch.Tensor] = []
    gate = model.gate
    real, real_model = gate.forward, model.forward
    current: dict[str, torch.Tensor] = {}

    def with_mask(batch):
        current["mask"] = batch.text_mask.bool()
        return real_model(batch)

    def recording(z, feats, projected):
        h = gate.displacement(z, feats, projected)
        z_norm, h_norm = z.norm(dim=-1), h.norm(dim=-1).clamp_min(1e-12)
        alpha = torch.clamp(gate.beta_shift * z_norm / (h_norm + 1e-6), max=1.0)
        keep = current["mask"]  # real tokens only
        ratios.append((alpha * h_norm / z_norm.clamp_min(1e-12))[keep])
        saturated.append((alpha < 1)[keep].float())
        return real(z, feats, projected)

    gate.forward, model.forward = recording, with_mask
    try:
        predict(model, dataset, dataset.indices(split), modalities=spec.modalities,
                batch_size=int(cfg["data"]["eval_batch_size"]), pad_id=spec.text.pad_id)
    finally:
        gate.forward, model.forward = real, real_model
    ratio = torch.cat(ratios)
    return {"seed_dir": str(seed_dir), "beta_shift": gate.beta_shift,
            "shift_ratio": float(ratio.mean()), "saturated": float(torch.cat(saturated).mean()),
            "tokens": int(ratio.numel())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {"split": args.split, "date": time.strftime("%Y-%m-%d"), "runs": []}
    for run in args.runs:
        seeds = [measure(seed, args.split) for seed in seed_dirs(run)]
        report["runs"].append({
            "run": str(run), "seeds": seeds,
            "shift_ratio_mean": statistics.mean(s["shift_ratio"] for s in seeds),
            "saturated_mean": statistics.mean(s["saturated"] for s in seeds)})
        print(f"{run}: shift ratio {report['runs'][-1]['shift_ratio_mean']:.3f}, saturated "
              f"{100 * report['runs'][-1]['saturated_mean']:.1f}% of tokens "
              f"({len(seeds)} seeds)", flush=True)
    save_json(report, args.out, echo=False)


if __name__ == "__main__":
    main()
