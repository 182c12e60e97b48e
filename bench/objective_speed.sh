#!/usr/bin/env bash
# Seconds per training epoch of the information-theoretic objectives vs their host models on
# `mosi` with fine-tuned MiniLM (batch 32, length bucketing), EPOCHS epochs each (default 4;
# the first is warm-up), one JSON per configuration under OUT_DIR (default bench/results/speed).
# `_reuse` runs train the critic on the model step's reps (penalty.critic_reps=reuse).
# Usage: MIMSA_DATA=../shared/data [THREADS=2] [EPOCHS=4] bash bench/objective_speed.sh [OUT_DIR]
# Run it on an otherwise idle machine (or with THREADS=1 beside at most one other
# single-threaded job): oversubscribed cores distort every ratio.
set -euo pipefail
out=${1:-bench/results/speed}
mkdir -p "$out"
common=(-d mosi --epochs "${EPOCHS:-4}" --threads "${THREADS:-2}" --set encoder.name=minilm)
declare -A runs=(
  [text_only]="-m text_only"
  [late_fusion]="-m late_fusion"
  [mmim]="-m mmim"
  [late_fusion_kl]="-m late_fusion --set penalty.kind=kl"
  [late_fusion_js]="-m late_fusion --set penalty.kind=js"
  [late_fusion_wasserstein]="-m late_fusion --set penalty.kind=wasserstein"
  [late_fusion_kl_reuse]="-m late_fusion --set penalty.kind=kl --set penalty.critic_reps=reuse"
  [late_fusion_js_reuse]="-m late_fusion --set penalty.kind=js --set penalty.critic_reps=reuse"
  [late_fusion_wasserstein_reuse]="-m late_fusion --set penalty.kind=wasserstein
    --set penalty.critic_reps=reuse"
)
for name in text_only late_fusion mmim late_fusion_kl late_fusion_js late_fusion_wasserstein \
    late_fusion_kl_reuse late_fusion_js_reuse late_fusion_wasserstein_reuse; do
  [ -f "$out/$name.json" ] && continue
  echo "$(date +%T) $name"
  # shellcheck disable=SC2086
  python bench/train_speed.py ${runs[$name]} "${common[@]}" --out "$out/$name.json" > /dev/null
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
r = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
print("| run | s/epoch (after epoch 1) | first epoch s | peak RSS MiB | ratio |")
print("|---|---|---|---|---|")
ref = {"mmim": "text_only", "late_fusion": "text_only"}
for name, x in r.items():
    base = ref.get(name, "late_fusion" if name.startswith("late_fusion_") else None)
    ratio = (f"{x['seconds_per_epoch'] / r[base]['seconds_per_epoch']:.2f} vs {base}"
             if base in r else "")
    print(f"| {name} | {x['seconds_per_epoch']:.1f} | {x['first_epoch_seconds']:.1f} | "
          f"{x['peak_rss_mib']:.0f} | {ratio} |")
PY
