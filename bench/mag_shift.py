"""How far the trained MAG gate moves the token states: ‖αH‖ / ‖Z‖ per real token.

    MIMSA_DATA=../shared/data python bench/mag_shift.py RUN_DIR ... [--split test] [--out F.json]
    MIMSA_DATA=../shared/data python bench/mag_shift.py --init mosi [--split valid] [--out F.json]

For every seed of each `mag_bert` run (multi- or single-seed directory), the selected checkpoint
is run on the split and, at the injection site, every real token's shift is measured against
the state it shifts (Rahman et al. 2020, the MAG: Z ← LayerNorm(Z + αH), α = min(β‖Z‖/‖H‖, 1)):
  shift_ratio   ‖αH‖ / ‖Z‖, at most β_shift (the mean over tokens, then over seeds)
  saturated     the share of tokens with α < 1, i.e. the shift cut to β_shift·‖Z‖
A gate that learned to leave the pretrained states alone has a small shift_ratio; one at
β_shift moves every token by the full allowed fraction of its own norm.

`--init DATASET` measures the untrained gate instead (mag_bert's preset with fine-tuned MiniLM,
seed 1111), once on the raw features and once with `data.standardize=true`: whether training
starts saturated.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench_report import save_json

from mimsa import config as config_mod
from mimsa.models.mag_bert import AdaptationGate, shift_alpha
from mimsa.train.inference import predict
from mimsa.train.run import build_model, load_run, prepare_data
from mimsa.train.seeding import seed_everything


def seed_dirs(run: Path) -> list[Path]:
    if (run / "metrics.json").is_file():
        return [run]
    return sorted(p for p in run.glob("seed-*") if (p / "metrics.json").is_file())


def untrained(dataset_name: str, standardize: bool) -> tuple:
    """Return (config, untrained model in eval mode, dataset, spec) like `load_run`'s."""
    cfg = config_mod.resolve_config("mag_bert", dataset_name)
    cfg["encoder"]["name"] = "minilm"
    cfg["data"]["standardize"] = standardize
    cfg = config_mod.check_values(cfg)
    seed_everything(int(cfg["seed"]))
    dataset, spec = prepare_data(cfg)
    model, _ = build_model(cfg, spec)
    return cfg, model.eval(), dataset, spec


def measure(seed_dir: Path | str, split: str, loaded: tuple | None = None) -> dict:
    cfg, model, dataset, spec = loaded or load_run(Path(seed_dir))
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
        alpha = shift_alpha(z, h, gate.beta_shift)  # the gate's own rule
        h_norm = h.norm(dim=-1)
        keep = current["mask"]  # real tokens only
        ratios.append((alpha * h_norm / z.norm(dim=-1).clamp_min(1e-12))[keep])
        saturated.append(((alpha < 1) & (h_norm > 0))[keep].float())  # a shift was cut
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
    parser.add_argument("runs", type=Path, nargs="*")
    parser.add_argument("--split", default=None, help="default: test (runs), valid (--init)")
    parser.add_argument("--init", metavar="DATASET", help="measure the untrained gate")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if bool(args.init) == bool(args.runs):
        parser.error("give RUN_DIRs or --init DATASET")
    split = args.split or ("valid" if args.init else "test")
    report = {"split": split, "date": time.strftime("%Y-%m-%d"), "runs": []}
    if args.init:
        for standardize in (False, True):
            row = measure(f"untrained, data.standardize={standardize}", split,
                          untrained(args.init, standardize))
            report["runs"].append(row)
            print(f"{args.init}, untrained, data.standardize={str(standardize).lower()}: "
                  f"shift ratio {row['shift_ratio']:.3f}, saturated "
                  f"{100 * row['saturated']:.1f}% of {row['tokens']} tokens", flush=True)
        save_json(report, args.out, echo=False)
        return
    for run in args.runs:
        seeds = [measure(seed, split) for seed in seed_dirs(run)]
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
