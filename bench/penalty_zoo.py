"""The penalty test across the zoo (issue 18): host × penalty → paired ΔMAE and ΔNon0 Acc-2.

    python bench/penalty_zoo.py [RUNS=runs/grid] [--draws 10000] [--out FILE.md]

For every host of the zoo with its `-kl`, `-js`, `-wasserstein` rows (frozen MiniLM, `mosi`,
seeds 1111-1115; grid `bench/grids/issue18-penalties.yaml`), the penalty row is paired with the
host without a penalty (`mimsa.eval.compare`): the difference (penalty − none) with its paired
t-test over seeds and, where predictions.csv is present, the paired bootstrap over test samples
(Holm-adjusted over the three penalties of a host). Verdict per cell: "helps" when MAE falls
and both tests (Holm) give p < 0.05, "hurts" when it rises likewise, else "no evidence".
Rows whose runs are missing are listed as not run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench_report import save_text

from mimsa.eval.compare import compare

ZOO = ["late_fusion", "ef_lstm", "tfn", "lmf", "mult", "misa", "mmim", "mecam", "self_mm",
       "mag_bert"]
PENALTIES = ("kl", "js", "wasserstein")
METRICS = ["MAE", "Non0_acc_2"]


def finished(path: Path) -> bool:
    return (path / "summary.csv").is_file()


def cell(paired, metric: str) -> str:
    p = [x for x in paired if x.metric == metric][0]
    scale, digits = (100, 2) if metric != "MAE" else (1, 3)
    boot = "–" if math.isnan(p.boot_p_holm) else f"{p.boot_p_holm:.3f}"
    return f"{scale * p.diff_mean:+.{digits}f} (t {p.t_p_holm:.3f}, boot {boot})"


def verdict(paired) -> str:
    mae = [x for x in paired if x.metric == "MAE"][0]
    tests = [mae.t_p_holm] + ([] if math.isnan(mae.boot_p_holm) else [mae.boot_p_holm])
    if all(p < 0.05 for p in tests):
        return "helps" if mae.diff_mean < 0 else "hurts"
    return "no evidence"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=Path, default=Path("runs/grid"))
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["| host | penalty | ΔMAE (p Holm) | ΔNon0 Acc-2, points (p Holm) | verdict |",
             "|---|---|---|---|---|"]
    missing = []
    for host in ZOO:
        base = args.runs / f"mosi_{host}_minilm-frozen"
        rows = [args.runs / f"mosi_{host}-{p}_minilm-frozen" for p in PENALTIES]
        present = [(p, r) for p, r in zip(PENALTIES, rows, strict=True) if finished(r)]
        missing += [r.name for r in [base, *rows] if not finished(r)]
        if not finished(base) or not present:
            continue
        result = compare([base, *[r for _, r in present]], METRICS, draws=args.draws,
                         labels=[host, *[f"{host}-{p}" for p, _ in present]])
        for penalty, _ in present:
            paired = [x for x in result.paired if x.run == f"{host}-{penalty}"]
            lines.append(f"| {host} | {penalty} | {cell(paired, 'MAE')} | "
                         f"{cell(paired, 'Non0_acc_2')} | {verdict(paired)} |")
    text = "\n".join(lines) + "\n"
    if missing:
        text += f"\nNot run: {', '.join(missing)}\n"
    save_text(text, args.out)


if __name__ == "__main__":
    main()
