#!/usr/bin/env bash
# Copy the metrics.json of every finished seed of the multi-seed runs under RUNS (default
# runs/grid) into bench/results/grid/<run>/seed-*/metrics.json, so that tables and paired tests
# (mimsa compare) can be redone from the repository without the run directories. A seed is
# finished when it has metrics.json and no resume state; runs launched one process per seed
# (bench/issue21_gpu.sh) have no summary.csv and are kept alike.
#   bash bench/keep_metrics.sh [RUNS]
set -euo pipefail
runs="${1:-runs/grid}"
for metrics in "$runs"/*/seed-*/metrics.json; do
  [ -f "$metrics" ] || continue
  seed_dir=$(dirname "$metrics")
  [ -f "$seed_dir/resume.pt" ] && continue
  run=$(basename "$(dirname "$seed_dir")")
  mkdir -p "bench/results/grid/$run/$(basename "$seed_dir")"
  cp "$metrics" "bench/results/grid/$run/$(basename "$seed_dir")/metrics.json"
done
ls bench/results/grid
