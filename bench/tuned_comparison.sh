#!/usr/bin/env bash
# #19's fair comparison: tune late_fusion and mmim with the same budget (frozen MiniLM, mosi,
# 40 trials, seed 1111, validation MAE), train each best config on seeds 1111-1115, compare.
#   MIMSA_DATA=../shared/data OMP_NUM_THREADS=1 bash bench/tuned_comparison.sh [TRIALS]
# Re-running continues a stopped study and skips finished seeds (everything resumes).
set -euo pipefail
trials="${1:-40}"
frozen=(--set encoder.name=minilm --set encoder.freeze=true --set encoder.pooling=mean
        --set train.epochs=30 --set train.patience=6)
for model in late_fusion mmim; do
  study="runs/tune/${model}_mosi_minilm-frozen"
  echo "$(date +%T) tune $model ($trials trials)"
  mimsa tune -m "$model" -d mosi --trials "$trials" --seed 1111 "${frozen[@]}" --out "$study" \
    --quiet
  out="runs/tuned/mosi_${model}-tuned_minilm-frozen"
  resume=(); [ -d "$out" ] && resume=(--resume)
  [ -f "$out/summary.csv" ] || mimsa train --config "$study/best.yaml" \
    --seeds 1111 1112 1113 1114 1115 --out "$out" --quiet "${resume[@]}" | tail -n 4
done
mimsa compare runs/tuned/mosi_late_fusion-tuned_minilm-frozen runs/tuned/mosi_mmim-tuned_minilm-frozen \
  --label late_fusion-tuned --label mmim-tuned --out runs/tuned/compare.md --csv runs/tuned/compare.csv
