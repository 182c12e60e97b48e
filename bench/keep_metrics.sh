#!/usr/bin/env bash
# Copy the per-seed metrics.json of every finished multi-seed run under RUNS (default runs/grid)
# into bench/results/grid/<run>/seed-*/metrics.json, so that tables and paired tests
# (mimsa compare) can be redone from the repository without the run directories.
#   bash bench/keep_metrics.sh [RUNS]
set -euo pipefail
runs="${1:-runs/grid}"
for summary in "$runs"/*/summary.csv; do
  run=$(dirname "$summary")
  for metrics in "$run"/seed-*/metrics.json; do
    seed=$(basename "$(dirname "$metrics")")
    mkdir -p "bench/results/grid/$(basename "$run")/$seed"
    cp "$metrics" "bench/results/grid/$(basename "$run")/$seed/metrics.json"
  done
done
ls bench/results/grid
