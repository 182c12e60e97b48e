# Sourced by the report scripts: `table TITLE REFERENCE RUN...` prints TITLE and the
# `mimsa compare` table of the runs present in the current folder against REFERENCE (first),
# and a "(not run: NAME)" line for each missing run. $metrics names the columns.
metrics="${metrics:-MAE,Corr,Has0_acc_2,Non0_acc_2,Non0_F1_score,Mult_acc_7}"
table() {  # title, reference, others...
  local title=$1; shift
  local present=()
  for run in "$@"; do
    if [ -d "$run" ]; then present+=("$run"); else echo "(not run: $run)"; fi
  done
  if [ ${#present[@]} -ge 2 ]; then
    printf '\n%s\n\n' "$title"
    mimsa compare "${present[@]}" --metrics "$metrics"
  fi
}
