#!/usr/bin/env bash
# #21 context rows on mosi (5 seeds, validation-only selection), each resumable:
#   MIMSA_DATA=../shared/data OMP_NUM_THREADS=1 bash bench/context_rows.sh [OUT=runs/grid]
# frozen MiniLM text_only with context k = 0, 1, 2 and pooling mean | segment (max_length 128
# for all, so only the context differs); fine-tuned MiniLM late_fusion with context 2 beside the
# fine-tuned row of the issue-5 grid; frozen hosts (late_fusion, mmim) on segment pooling, k = 0, 2.
set -euo pipefail
out="${1:-runs/grid}"
seeds=(--seeds 1111 1112 1113 1114 1115)
frozen=(--set encoder.name=minilm --set encoder.freeze=true --set encoder.max_length=128
        --set train.epochs=30 --set train.patience=6)
finetuned=(--set encoder.name=minilm --set encoder.max_length=128 --set train.epochs=8
           --set train.patience=3)
row() {  # row NAME MODEL ARGS...
  local name="$1" model="$2"; shift 2
  [ -f "$out/$name/summary.csv" ] && return 0
  local resume=(); [ -d "$out/$name" ] && resume=(--resume)
  echo "$(date +%T) $name"
  mimsa train -m "$model" -d mosi "$@" "${seeds[@]}" --out "$out/$name" -q "${resume[@]}" \
    | tail -n 3
}
ctx() { [ "$1" -gt 0 ] && echo "data.context={before: $1, after: $1}" || echo "data.context=null"; }
for pooling in mean segment; do
  tag=""; [ "$pooling" = segment ] && tag="-seg"
  for k in 0 1 2; do
    row "mosi_text_only-ctx$k$tag-len128_minilm-frozen" text_only "${frozen[@]}" \
      --set "encoder.pooling=$pooling" --set "$(ctx $k)"
  done
done
row "mosi_late_fusion-ctx2-len128_minilm" late_fusion "${finetuned[@]}" --set "$(ctx 2)"
for model in late_fusion mmim; do
  for k in 0 2; do
    row "mosi_$model-ctx$k-seg-len128_minilm-frozen" "$model" "${frozen[@]}" \
      --set encoder.pooling=segment --set "$(ctx $k)"
  done
done
