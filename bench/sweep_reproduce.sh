#!/usr/bin/env bash
# #19 "done when": `mimsa sweep` reproduces BENCHMARKS rows (same numbers, same seeds) on both
# backends. Trains the named runs of a grid into two fresh folders, one per backend, and checks
# every seed's metrics.json against the kept copy in bench/results/grid/ (identical values).
#   MIMSA_DATA=../shared/data OMP_NUM_THREADS=1 bash bench/sweep_reproduce.sh \
#       [GRID=bench/grids/issue18-frozen.yaml] [PATTERN='mosi_l*_minilm-frozen'] [OUT=runs/repro]
set -euo pipefail
grid="${1:-bench/grids/issue18-frozen.yaml}"
pattern="${2:-mosi_l*_minilm-frozen}"
out="${3:-runs/repro}"
for backend in local ray; do
  start=$(date +%s)
  jobs=(); [ "$backend" = ray ] && jobs=(--jobs 2)
  mimsa sweep "$grid" --only "$pattern" --backend "$backend" "${jobs[@]}" --out "$out/$backend" \
    > "$out-$backend.log" 2>&1 || { tail -n 5 "$out-$backend.log"; exit 1; }
  echo "$backend: $(( $(date +%s) - start )) s"
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for backend in ("local", "ray"):
    for metrics in sorted((out / backend).glob("*/seed-*/metrics.json")):
        kept = Path("bench/results/grid") / metrics.relative_to(out / backend)
        mine = json.loads(metrics.read_text())
        same = {s: mine[s] == json.loads(kept.read_text())[s] for s in ("valid", "test")}
        print(f"{backend} {metrics.parent.parent.name} {metrics.parent.name}: "
              f"{'identical' if all(same.values()) else 'DIFFERENT ' + str(same)}")
PY
