"""Time training: seconds per epoch, samples per second and peak RSS, written as JSON.

    python bench/train_speed.py -m late_fusion -d synthetic --epochs 3 [--set k=v ...]
        [--out bench/results/train_speed.json]

Trains one seed for a fixed number of epochs (no early stop) and reads per-epoch train
seconds from history.jsonl; the first epoch is reported separately (warm-up) and the rest
averaged. Peak RSS is the process maximum (ru_maxrss) at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_report import save_json

from mimsa.config import resolve_config
from mimsa.train.run import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="late_fusion")
    parser.add_argument("-d", "--dataset", default="synthetic")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = resolve_config(args.model, args.dataset, None,
                         [f"train.epochs={args.epochs}", f"train.patience={args.epochs + 1}",
                          *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train_run(cfg, Path(tmp) / "run")
        total = time.perf_counter() - started
        history = [json.loads(x) for x in (Path(tmp) / "run" / "history.jsonl").open()]
        from mimsa.train.run import prepare_data

        dataset, _ = prepare_data(cfg)
    n_train = len(dataset.indices("train"))
    seconds = [row["train_seconds"] for row in history]
    steady = seconds[1:] or seconds
    result = {
        "model": args.model, "dataset": args.dataset, "overrides": args.overrides,
        "epochs": len(seconds), "train_samples": n_train,
        "first_epoch_seconds": seconds[0],
        "seconds_per_epoch": sum(steady) / len(steady),
        "samples_per_second": n_train / (sum(steady) / len(steady)),
        "total_seconds_incl_eval_and_setup": round(total, 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": args.threads, "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"),
    }
    save_json(result, args.out)


if __name__ == "__main__":
    main()
