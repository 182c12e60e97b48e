#!/usr/bin/env bash
# Issue 21's GPU rows: fine-tuned text_only with and without context (k = 2, segment pooling;
# k = 1 on mosi) on mosi (MPNet, at most 8 epochs, patience 3) and mosei (MiniLM and MPNet, at
# most 3 epochs, patience 2), max_length 128, seeds 1111-1115. Every seed is its own process and
# all of them share one GPU (on the H200 of 2026-11-30: the 20 runs of mosi MPNet and mosei
# MiniLM in about 4 minutes; mosei MPNet with context beside mosi k = 1, 10 runs, in 278 s;
# mosei MPNet without context, 5 runs, in 191 s).
#   python bench/half_weights.py mpnet weights/mpnet-fp16     # the weights those rows used
#   python bench/half_weights.py minilm weights/minilm-fp16
#   MIMSA_DATA=../shared/data bash bench/issue21_gpu.sh runs/gpu weights/mpnet-fp16 weights/minilm-fp16
#   mimsa compare runs/gpu/mosi_text_only-e8_mpnet16-len128 runs/gpu/mosi_text_only-e8-ctx2seg_mpnet16-len128 runs/gpu/mosi_text_only-e8-ctx1seg_mpnet16-len128
# ONLY=<pattern> runs only the rows whose name matches (bash glob), e.g. ONLY='mosi_*'.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: bash bench/issue21_gpu.sh OUT MPNET_WEIGHTS MINILM_WEIGHTS" >&2; exit 2
fi
out=$1 mpnet=$2 minilm=$3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ctx2=(--set encoder.pooling=segment --set "data.context={before: 2, after: 2}")
ctx1=(--set encoder.pooling=segment --set "data.context={before: 1, after: 1}")
pids=()

row() {  # name dataset weights epochs patience [settings...]
  local name=$1 dataset=$2 weights=$3 epochs=$4 patience=$5; shift 5
  [[ $name == ${ONLY:-*} ]] || return 0
  mkdir -p "$out/$name"
  for seed in 1111 1112 1113 1114 1115; do
    if [ -f "$out/$name/seed-$seed/metrics.json" ]; then continue; fi
    resume=(); [ -f "$out/$name/seed-$seed/config.yaml" ] && resume=(--resume)
    mimsa train -m text_only -d "$dataset" --set encoder.name="$weights" \
      --set encoder.max_length=128 --set train.epochs="$epochs" --set train.patience="$patience" \
      --set train.device=cuda --set seed=$seed "$@" "${resume[@]}" \
      --out "$out/$name/seed-$seed" --quiet > "$out/$name/seed-$seed.log" 2>&1 &
    pids+=($!)
  done
}

row mosi_text_only-e8_mpnet16-len128 mosi "$mpnet" 8 3
row mosi_text_only-e8-ctx2seg_mpnet16-len128 mosi "$mpnet" 8 3 "${ctx2[@]}"
row mosi_text_only-e8-ctx1seg_mpnet16-len128 mosi "$mpnet" 8 3 "${ctx1[@]}"
row mosei_text_only-e3_minilm16-len128 mosei "$minilm" 3 2
row mosei_text_only-e3-ctx2seg_minilm16-len128 mosei "$minilm" 3 2 "${ctx2[@]}"
row mosei_text_only-e3_mpnet16-len128 mosei "$mpnet" 3 2
row mosei_text_only-e3-ctx2seg_mpnet16-len128 mosei "$mpnet" 3 2 "${ctx2[@]}"
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
echo "$((${#pids[@]} - failed)) of ${#pids[@]} runs finished; logs: $out/*/seed-*.log"
[ $failed -eq 0 ]
