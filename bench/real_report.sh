#!/usr/bin/env bash
# Tables (and robustness plots) from the runs of `mimsa sweep bench/grids/*.yaml --out runs/grid`;
# each table is written to GRID_DIR/tables/<name>.md. Usage: MIMSA_DATA=../shared/data bash
# bench/real_report.sh GRID_DIR [tables|drop|robustness ...] (default: all three parts). Missing
# runs are skipped.
set -uo pipefail
grid=${1:?usage: real_report.sh GRID_DIR [tables|drop|robustness ...]}; shift
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(tables drop robustness)
out="$grid/tables"; mkdir -p "$out"
have() { for r in "$@"; do [ -f "$grid/$r/summary.csv" ] || return 1; done; }
cmp() {  # cmp NAME REF OTHER... : mimsa compare tables (.md, .csv), paired to REF
  local name=$1; shift
  have "$@" || { echo "skip $name (missing runs)"; return; }
  mimsa compare "${@/#/$grid/}" --out "$out/$name.md" --csv "$out/$name.csv" > /dev/null \
    && echo "$out/$name.md"
}
for part in "${parts[@]}"; do case $part in
tables)
  cmp poria_finetuned poria_text_only_minilm poria_late_fusion_minilm
  cmp mosi_mpnet_finetuned mosi_late_fusion_minilm mosi_text_only_mpnet
  cmp mosi_frozen mosi_text_only_minilm-frozen mosi_late_fusion_minilm-frozen \
    mosi_text_only_mpnet-frozen mosi_late_fusion_mpnet-frozen
  cmp poria_frozen poria_text_only_minilm-frozen poria_late_fusion_minilm-frozen
  cmp mosei_frozen mosei_text_only_minilm-frozen mosei_late_fusion_minilm-frozen
  cmp mosei_finetuned mosei_text_only_minilm-frozen mosei_text_only_minilm
  cmp mosi_mmim_finetuned mosi_late_fusion_minilm mosi_mmim-noba_minilm \
    mosi_mmim-nocpc_minilm mosi_mmim_minilm
  for d in mosi poria; do
    cmp ${d}_mmim_frozen ${d}_late_fusion_minilm-frozen ${d}_text_only_minilm-frozen \
      ${d}_mmim-noba_minilm-frozen ${d}_mmim-nocpc_minilm-frozen ${d}_mmim_minilm-frozen
    for host in late_fusion mmim; do
      cmp ${d}_${host}_penalties ${d}_${host}_minilm-frozen ${d}_${host}-kl_minilm-frozen \
        ${d}_${host}-js_minilm-frozen ${d}_${host}-wasserstein_minilm-frozen
      cmp ${d}_${host}_critic_reps ${d}_${host}_minilm-frozen \
        ${d}_${host}-{kl,klr,js,jsr,wasserstein,wassersteinr}_minilm-frozen
    done
    cmp ${d}_mecam ${d}_mmim_minilm-frozen ${d}_late_fusion_minilm-frozen \
      ${d}_mecam_minilm-frozen ${d}_mecam-aug_minilm-frozen
  done
  cmp mosi_mmim_mpnet mosi_late_fusion_mpnet-frozen mosi_mmim_mpnet-frozen ;;
drop)
  for d in mosi poria; do
    runs=(); for host in late_fusion mmim; do for v in "" -kl -js -wasserstein; do
      runs+=("${d}_${host}${v}_minilm-frozen"); done; done
    have "${runs[@]}" || { echo "skip ${d}_drop"; continue; }
    python bench/drop_table.py "${runs[@]/#/$grid/}" --out "$out/${d}_drop.md" > /dev/null \
      && echo "$out/${d}_drop.md"
  done ;;
robustness)
  for d in mosi poria; do
    runs=("${d}_late_fusion_minilm-frozen" "${d}_mmim_minilm-frozen" "${d}_mecam_minilm-frozen"
          "${d}_mecam-aug_minilm-frozen")
    have "${runs[@]}" || { echo "skip ${d} robustness"; continue; }
    # visual_blur is left out: it is the identity on one-frame utterance vectors.
    corruptions=(text_missing text_shuffle frame_drop feature_noise modality_drop)
    for c in "${corruptions[@]}"; do
      mimsa robustness "${runs[@]/#/$grid/}" -c "$c" --rates 0 0.1 0.3 0.5 \
        --out "$grid/robustness/$d" > /dev/null && echo "$grid/robustness/$d/$c.md"
    done
    for metric in Non0_acc_2 MAE; do
      python bench/robustness_summary.py "$grid/robustness/$d" --metric $metric \
        --out "$out/${d}_robustness_$metric.md" > /dev/null && echo "$out/${d}_robustness_$metric.md"
    done
  done ;;
*) echo "unknown part $part"; exit 2 ;;
esac; done
