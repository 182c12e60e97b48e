#!/usr/bin/env bash
# The paired tables of the zoo rows (issues 17 and 18) from the per-seed metrics kept in
# bench/results/grid (bash bench/keep_metrics.sh copies them there from runs/grid). Rows whose
# runs are missing are skipped with a note.
#   bash bench/zoo_report.sh > /tmp/zoo_tables.md
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/compare_table.sh"
cd "$here/results/grid"
table "Self-MM and MAG-BERT, frozen MiniLM, \`mosi\`:" mosi_late_fusion_minilm-frozen \
  mosi_self_mm_minilm-frozen mosi_mag_bert_minilm-frozen
table "Self-MM and MAG-BERT, frozen MiniLM, \`mosi-poria\`:" poria_late_fusion_minilm-frozen \
  poria_self_mm_minilm-frozen poria_mag_bert_minilm-frozen
table "Self-MM and MAG-BERT, fine-tuned MiniLM, \`mosi\`:" mosi_late_fusion_minilm \
  mosi_self_mm_minilm mosi_mag_bert_minilm mosi_mmim_minilm
for host in self_mm mag_bert; do
  table "Dependency penalties on \`$host\`, frozen MiniLM, \`mosi\`:" mosi_${host}_minilm-frozen \
    mosi_${host}-kl_minilm-frozen mosi_${host}-js_minilm-frozen \
    mosi_${host}-wasserstein_minilm-frozen
done
table "The standard models, frozen MiniLM, \`mosi\`:" mosi_late_fusion_minilm-frozen \
  mosi_tfn_minilm-frozen mosi_lmf_minilm-frozen mosi_mult_minilm-frozen mosi_misa_minilm-frozen
table "The standard models, frozen MiniLM, \`mosi-poria\`:" poria_late_fusion_minilm-frozen \
  poria_tfn_minilm-frozen poria_lmf_minilm-frozen poria_mult_minilm-frozen \
  poria_misa_minilm-frozen
table "MulT and MISA, fine-tuned MiniLM, \`mosi\`:" mosi_late_fusion_minilm mosi_mult_minilm \
  mosi_misa_minilm
table "MAG-BERT with standardised features (data.standardize), fine-tuned MiniLM, \`mosi\`:" \
  mosi_mag_bert_minilm mosi_mag_bert-std_minilm
table "late_fusion with standardised features, fine-tuned MiniLM, \`mosi\`:" \
  mosi_late_fusion_minilm mosi_late_fusion-std_minilm
