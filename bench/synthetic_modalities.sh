#!/usr/bin/env bash
# late_fusion on synthetic with each single modality and all three, seeds 1111-1115.
# Usage: bash bench/synthetic_modalities.sh [OUT_DIR]   (about 5 minutes on 2 CPU cores)
set -euo pipefail
out=${1:-runs/bench-synthetic}
seeds="1111 1112 1113 1114 1115"
for m in t a v tav; do
  [ -f "$out/$m/summary.csv" ] && continue
  resume=""; [ -d "$out/$m" ] && resume="--resume"
  mimsa train -m late_fusion -d synthetic --seeds $seeds --set data.modalities=$m \
    --out "$out/$m" --quiet $resume > /dev/null
done
mimsa compare "$out/tav" "$out/t" "$out/a" "$out/v" \
  --label "late_fusion t+a+v" --label "text only" --label "audio only" \
  --label "vision only" --out "$out/table.md" --csv "$out/table.csv"
