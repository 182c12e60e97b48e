"""Per-epoch training time and peak memory of models on a real dataset, as ratios to a reference
model measured in the same script run.

    MIMSA_DATA=../shared/data python bench/model_speed.py --reference text_only \
        --models self_mm mag_bert [--dataset mosi] [--epochs 3] [--threads 2] \
        [--set encoder.name=minilm ...] [--out bench/results/model_speed.json]

Each model trains in a fresh child process (so its peak RSS, ru_maxrss, is its own) with the
model's preset on `--dataset`, the `--set` overrides, the same batch size for every model
(`--batch-size`, default 32: the presets differ, and the ratio should measure the model, not
the batch), `--epochs` epochs without early stopping, seed 1111. Seconds per epoch are the
trainer's `train_seconds` (training batches only, no evaluation), averaged over epochs 2..N
(epoch 1 is warm-up: allocations, Adam state). ratio = model / reference, both from this run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_report import save_json

CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
import torch
from mimsa.config import resolve_config
from mimsa.train.run import train_run
model, dataset, epochs, threads, sets = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
    int(sys.argv[4]), json.loads(sys.argv[5])
torch.set_num_threads(threads)
cfg = resolve_config(model, dataset, None, [*sets, f"train.epochs={epochs}",
                                            f"train.patience={epochs + 1}"])
with tempfile.TemporaryDirectory() as tmp:
    train_run(cfg, Path(tmp) / "run")
    rows = [json.loads(x) for x in (Path(tmp) / "run" / "history.jsonl").open()]
steady = [r["train_seconds"] for r in rows[1:]]
print(json.dumps({"seconds_per_epoch": sum(steady) / len(steady),
                  "epoch_seconds": [r["train_seconds"] for r in rows],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(model: str, dataset: str, epochs: int, threads: int, sets: list[str]) -> dict:
    """Return the child's measurement of `model` (see the module docstring)."""
    out = subprocess.run([sys.executable, "-c", CHILD, model, dataset, str(epochs),
                          str(threads), json.dumps(sets)], check=True, capture_output=True,
                         text=True)
    return {"model": model, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="text_only")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--dataset", default="mosi")
    parser.add_argument("--epochs", type=int, default=3, help="per model; >= 2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is warm-up)")
    sets = [*args.sets, f"data.batch_size={args.batch_size}"]
    rows = [measure(m, args.dataset, args.epochs, args.threads, sets)
            for m in (args.reference, *args.models)]
    ref = rows[0]
    for row in rows:
        row["time_ratio"] = round(row["seconds_per_epoch"] / ref["seconds_per_epoch"], 3)
        row["rss_ratio"] = round(row["peak_rss_mib"] / ref["peak_rss_mib"], 3)
    result = {"dataset": args.dataset, "sets": sets, "epochs": args.epochs,
              "threads": args.threads, "reference": args.reference, "models": rows,
              "torch": torch.__version__, "machine": platform.machine(),
              "date": time.strftime("%Y-%m-%d")}
    save_json(result, args.out)


if __name__ == "__main__":
    main()
