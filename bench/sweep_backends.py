"""Wall time of one grid with `mimsa sweep --backend local` and `--backend ray --jobs 2`, and the
overhead of a Ray trial over the same run done locally.

    OMP_NUM_THREADS=1 python bench/sweep_backends.py [--grid GRID.yaml [--only PATTERN ...]]
        [--data-root DIR] [--repeat N] [--keep DIR]

Two measurements, each sweep a fresh `mimsa sweep` process into a fresh folder (nothing is
skipped; the times include the process start, as a user's command does):
  speed-up   the grid (default: a synthetic one, 2 models x 3 seeds, 1,000 training samples,
             5 epochs) with --backend local and with --backend ray --jobs 2 (two trials at once):
             local / ray-2
  overhead   a tiny synthetic grid (2 models x 4 seeds, 64 samples, 1 epoch: trials of about a
             second, so Ray's share dominates) with --backend local and --backend ray --jobs 1
             (one trial at a time: the same work plus Ray): (ray-1 - local - ray start) / trials,
             where ray start is starting and stopping a 1-CPU Ray cluster alone
With --repeat N the sweeps are run N times, interleaved, and the fastest of each is used (the
machine may be shared). Every trial uses one torch thread (OMP_NUM_THREADS=1 for every sweep),
so the backends must give identical metrics; the script checks it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYNTHETIC = """\
models: [late_fusion, tfn]
datasets: [synthetic]
seeds: [1111, 1112, 1113]
sets:
  - "data.synthetic_sizes={train: 1000, valid: 200, test: 200}"
  - train.epochs=5
  - train.patience=5
"""
TINY = """\
models: [late_fusion, text_only]
datasets: [synthetic]
seeds: [1, 2, 3, 4]
sets:
  - "data.synthetic_sizes={train: 64, valid: 32, test: 32}"
  - train.epochs=1
"""
RAY_START = ("import logging, ray; ray.init(num_cpus=1, include_dashboard=False, "
             "log_to_driver=False, logging_level=logging.ERROR); ray.shutdown()")


def timed(command: list[str], env: dict[str, str]) -> float:
    """Run `command`; return its wall time in seconds (a failure stops the benchmark)."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                 f"\n{done.stderr[-2000:]}")
    return seconds


def seed_metrics(out: Path) -> dict[str, dict]:
    """Return {"<run>/<seed>": metrics.json} of every finished seed under `out`."""
    return {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
            for p in sorted(out.glob("*/seed-*/metrics.json"))}


def sweep_times(mimsa: list[str], grid: Path, work: Path, backends: dict[str, list[str]],
                extra: list[str], env: dict[str, str], repeat: int) -> dict[str, float]:
    """Return {name: fastest wall time} of `mimsa sweep GRID` with each backend, `repeat` times
    interleaved, each into a fresh folder work/<name>-<i>; the metrics must agree."""
    times: dict[str, float] = {}
    for i in range(repeat):
        for name, backend in backends.items():
            out = work / f"{name}-{i}"
            seconds = timed([*mimsa, "sweep", str(grid), "--out", str(out), *backend, *extra],
                            env)
            times[name] = min(times.get(name, seconds), seconds)
            print(f"  {name:8s} {seconds:8.1f} s  (load {os.getloadavg()[0]:.1f})", flush=True)
    metrics = [seed_metrics(work / f"{name}-{i}") for name in backends for i in range(repeat)]
    if any(m != metrics[0] for m in metrics) or not metrics[0]:
        sys.exit(f"the backends disagree (or trained nothing) in {work}")
    return times


def trial_count(mimsa: list[str], grid: Path, extra: list[str], env: dict[str, str]) -> int:
    """Return the number of (run, seed) trials of `grid` (from `mimsa sweep --list`)."""
    listed = subprocess.run([*mimsa, "sweep", str(grid), "--out", "x", "--list", *extra],
                            env=env, capture_output=True, text=True, check=True).stdout
    return sum(len(line.split("--seeds ", 1)[1].split(" --", 1)[0].split())
               for line in listed.splitlines() if "--seeds " in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, help="a grid file (default: a synthetic grid)")
    parser.add_argument("--only", action="append", default=[], help="mimsa sweep --only")
    parser.add_argument("--data-root", type=Path, help="mimsa sweep --data-root")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each sweep (fastest used)")
    parser.add_argument("--keep", type=Path, help="keep the sweeps' folders here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    grid = args.grid or work / "synthetic.yaml"
    if args.grid is None:
        grid.write_text(SYNTHETIC)
    tiny = work / "tiny.yaml"
    tiny.write_text(TINY)
    extra = [a for p in args.only for a in ("--only", p)]
    if args.data_root is not None:
        extra += ["--data-root", str(args.data_root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    mimsa = [sys.executable, "-c", "from mimsa.cli import main_entry; main_entry()"]
    print(f"work folder {work}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")

    trials = trial_count(mimsa, grid, extra, env)
    print(f"speed-up: {grid} ({trials} trials)")
    big = sweep_times(mimsa, grid, work / "speed", {"local": ["--backend", "local"],
                                                    "ray-2": ["--backend", "ray", "--jobs", "2"]},
                      extra, env, args.repeat)
    tiny_trials = trial_count(mimsa, tiny, [], env)
    print(f"overhead: {tiny} ({tiny_trials} trials)")
    small = sweep_times(mimsa, tiny, work / "overhead",
                        {"local": ["--backend", "local"],
                         "ray-1": ["--backend", "ray", "--jobs", "1"]}, [], env, args.repeat)
    start = min(timed([sys.executable, "-c", RAY_START], env) for _ in range(args.repeat))
    print(f"  ray start {start:8.1f} s")

    print(f"\nlocal {big['local']:.1f} s, ray --jobs 2 {big['ray-2']:.1f} s: speed-up "
          f"{big['local'] / big['ray-2']:.2f} (identical metrics)")
    overhead = (small["ray-1"] - small["local"] - start) / tiny_trials
    print(f"Ray overhead per trial: {overhead:.1f} s (with the cluster start: "
          f"{(small['ray-1'] - small['local']) / tiny_trials:.1f} s); target < 10 s")


if __name__ == "__main__":
    main()
