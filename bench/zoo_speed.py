"""Per-epoch training time of zoo models as a ratio to `late_fusion`, on synthetic sequences of
a fixed length, in one script run; peak RSS per model.

    python bench/zoo_speed.py [--models late_fusion mult tfn lmf misa] [--length 50]
        [--train 1284] [--epochs 2] [--batch-size N] [--threads 1] [--set k=v ...]
        [--out bench/results/zoo_speed.json]

Data: `synthetic` (seed 0) with every sequence stretched to exactly `--length` steps by
repeating it cyclically: text words and ids, audio frames and visual frames (the generator
draws 5-30 tokens and 10-40 frames). `--train` training samples, 64 validation and 64 test.
Each model trains with its own preset (`resolve_config(model, dataset)`; the `synthetic` layer
is not applied) for `--epochs` epochs without early stop, in a fresh child process so that its
peak RSS (ru_maxrss) is its own; `--batch-size` overrides every model's batch size (the presets
differ: late_fusion 32, mult 128), `--set` applies to every model (e.g. the frozen MiniLM text
encoder: --set encoder.name=minilm --set encoder.freeze=true --set encoder.pooling=mean).
Seconds per epoch are the trainer's `train_seconds` (training batches only, no evaluation),
averaged over epochs 2..N (epoch 1 is warm-up: allocations, Adam state, a frozen encoder's
cache); ratio = model / late_fusion.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_report import save_json

from mimsa.config import resolve_config
from mimsa.data.dataset import MultimodalDataset
from mimsa.data.registry import register_dataset
from mimsa.data.synthetic import make_synthetic
from mimsa.train.run import train_run


def stretch(seq: np.ndarray | list, length: int) -> np.ndarray | list:
    """Return `seq` repeated cyclically to exactly `length` steps (first axis)."""
    index = np.arange(length) % len(seq)
    return [seq[i] for i in index] if isinstance(seq, list) else seq[index]


def register_fixed_length(length: int) -> str:
    """Register `synthetic-len<length>` (see the module docstring); return its name."""
    name = f"synthetic-len{length}"

    @register_dataset(name, f"synthetic with every sequence stretched to {length} steps",
                      needs_data_root=False)
    def load(data_root: Path, seed: int = 0, sizes: dict[str, int] | None = None,
             **_: object) -> MultimodalDataset:
        ds = make_synthetic(seed=seed, sizes=sizes)
        ds.text = [" ".join(stretch(t.split(), length)) for t in ds.text]
        ds.text_ids = [stretch(ids, length) for ids in ds.text_ids]
        ds.audio = [stretch(a, length) for a in ds.audio]
        ds.vision = [stretch(v, length) for v in ds.vision]
        return ds

    return name


def one_model(args: argparse.Namespace) -> dict:
    """Train `args.child` and return its timing (run in a child process)."""
    torch.set_num_threads(args.threads)
    dataset = register_fixed_length(args.length)
    overrides = [f"train.epochs={args.epochs}", f"train.patience={args.epochs + 1}",
                 *args.overrides]
    if args.batch_size:
        overrides.append(f"data.batch_size={args.batch_size}")
    cfg = resolve_config(args.child, dataset, None, overrides)
    cfg["data"]["synthetic_sizes"] = {"train": args.train, "valid": 64, "test": 64}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train_run(cfg, Path(tmp) / "run")
        total = time.perf_counter() - started
        history = [json.loads(x) for x in (Path(tmp) / "run" / "history.jsonl").open()]
    seconds = [row["train_seconds"] for row in history]
    steady = seconds[1:] or seconds
    return {"model": args.child, "batch_size": cfg["data"]["batch_size"],
            "model_config": {k: v for k, v in cfg["model"].items() if k != "name"},
            "first_epoch_seconds": round(seconds[0], 3),
            "seconds_per_epoch": round(sum(steady) / len(steady), 3),
            "total_seconds": round(total, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["late_fusion", "mult"])
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--train", type=int, default=1284)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_model(args)))
        return
    models = ["late_fusion", *[m for m in args.models if m != "late_fusion"]]
    shared = [f"--length={args.length}", f"--train={args.train}", f"--epochs={args.epochs}",
              f"--batch-size={args.batch_size}", f"--threads={args.threads}",
              *[f"--set={o}" for o in args.overrides]]
    rows = []
    for model in models:
        done = subprocess.run([sys.executable, __file__, f"--child={model}", *shared],
                              check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        base = rows[0]["seconds_per_epoch"]
        rows[-1]["ratio_to_late_fusion"] = round(rows[-1]["seconds_per_epoch"] / base, 2)
        print(json.dumps(rows[-1]), flush=True)
    result = {"length": args.length, "train_samples": args.train, "epochs": args.epochs,
              "threads": args.threads, "overrides": args.overrides, "models": rows,
              "torch": torch.__version__,
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
              "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d")}
    save_json(result, args.out, echo=False)


if __name__ == "__main__":
    main()
