#!/usr/bin/env bash
# The paired tables of issue 21's recipe steps on `mosi` (fine-tuned MiniLM, 5 seeds each,
# validation-only selection), each step against the one before:
#   (a) budget    text_only e8 (8 epochs, patience 3, constant lr) -> sched16 (16 epochs,
#                 patience 5, 10% linear warm-up, linear decay)
#   (b) context   e8 -> e8 with 2 neighbours each side and segment pooling (and the same on
#                 sched16, when that row has been run)
#   (c) fusion    text_only e8 -> the fine-tuned fusion hosts at the same budget (issues 5, 17)
# RUNS (default runs/grid) holds the run folders; with their predictions.csv the tables carry
# the paired bootstrap, with only the kept metrics (bench/results/grid) the t-test alone.
#   MIMSA_DATA=../shared/data OMP_NUM_THREADS=1 mimsa sweep bench/grids/issue21-recipe.yaml --out runs/grid
#   bash bench/recipe_report.sh [RUNS] > /tmp/recipe_tables.md
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/compare_table.sh"
cd "${1:-runs/grid}" || exit 1
table "(a) Training budget, text_only, fine-tuned MiniLM, \`mosi\`:" \
  mosi_text_only-e8_minilm-len128 mosi_text_only-sched16_minilm-len128
table "(b) Context (k = 2, segment pooling) on the e8 budget:" \
  mosi_text_only-e8_minilm-len128 mosi_text_only-e8-ctx2seg_minilm-len128
table "(b') Context (k = 2, segment pooling) on the sched16 budget:" \
  mosi_text_only-sched16_minilm-len128 mosi_text_only-sched16-ctx2seg_minilm-len128
table "(c) Fusion hosts against text alone, fine-tuned MiniLM, 8 epochs, \`mosi\`:" \
  mosi_text_only-e8_minilm-len128 mosi_late_fusion_minilm mosi_mmim_minilm \
  mosi_self_mm_minilm mosi_mag_bert_minilm mosi_mecam_minilm
