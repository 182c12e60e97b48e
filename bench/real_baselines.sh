#!/usr/bin/env bash
# Issue-4 baselines on the real data, seeds 1111-1115, validation-only selection.
# Usage: MIMSA_DATA=../shared/data bash bench/real_baselines.sh [OUT_DIR] [NAME ...]
# NAME is one of the run names below (default: all). Finished runs are skipped and an
# interrupted one resumes, so the script can be re-run after a stop.
set -euo pipefail
out=${1:-runs/bench-real}; shift || true
seeds="1111 1112 1113 1114 1115"
declare -A runs=(
  [mosi_text_only_minilm]="-m text_only -d mosi --set encoder.name=minilm"
  [mosi_late_fusion_minilm]="-m late_fusion -d mosi --set encoder.name=minilm"
  [poria_text_only_minilm]="-m text_only -d mosi-poria --set encoder.name=minilm"
  [poria_late_fusion_minilm]="-m late_fusion -d mosi-poria --set encoder.name=minilm"
  [mosei_text_only_minilm]="-m text_only -d mosei --set encoder.name=minilm"
  [mosi_text_only_mpnet]="-m text_only -d mosi --set encoder.name=mpnet"
)
names=("$@"); [ ${#names[@]} -eq 0 ] && names=("${!runs[@]}")
for name in "${names[@]}"; do
  [ -f "$out/$name/summary.csv" ] && continue
  resume=""; [ -d "$out/$name" ] && resume="--resume"
  echo "$(date +%T) $name"
  # shellcheck disable=SC2086
  mimsa train ${runs[$name]} --seeds $seeds --out "$out/$name" --quiet $resume > /dev/null
done
