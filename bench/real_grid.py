"""Named real-data runs (seeds 1111-1115, validation-only selection), trained in one process.

    MIMSA_DATA=../shared/data python bench/real_grid.py OUT_DIR NAME|GROUP ... [--list]

A name is `<dataset>_<model>[-<variant>]_<encoder>`:
  dataset   mosi | poria (= mosi-poria) | mosei
  variant   noba (MMIM without the BA terms: β = 0), nocpc (without CPC: α = 0),
            kl | js | wasserstein (a dependency penalty, weight 0.1; with an `r` suffix,
            e.g. klr, the critic trains on the model step's reps: penalty.critic_reps=reuse),
            aug (training
            augmentation: audio/visual feature noise at rate 0.5; text corruptions would give
            a frozen encoder new transcripts to encode every epoch)
  encoder   minilm, mpnet: fine-tuned (lr 5e-5), [CLS] pooling, the presets' budget of at most
            8 epochs with patience 3 (MMIM and MECAM, whose presets allow 40, get the same 8/3);
            on mosei at most 3 epochs with patience 2: its 16,274 training utterances are 12.7x
            mosi's, so 3 epochs are about 38 mosi epochs of updates, past every mosi best epoch
            minilm-frozen, mpnet-frozen: the transformer frozen, mean pooling (these are
            sentence-embedding models trained with mean pooling), each transcript encoded once
            per process; at most 30 epochs, patience 6 (only the small networks learn)
A group (finetuned, frozen, issue4 ... issue7, issue17, issue18, issue18-penalties, reuse) names
several runs. Finished runs (summary.csv present) are skipped and an interrupted one resumes, so
the script can be re-run after a stop.
Running many frozen runs in one process pays the transformer once per dataset.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mimsa.config import resolve_config
from mimsa.encoders.cache import EncoderCache
from mimsa.eval.aggregate import write_seed_summary
from mimsa.train.run import train_seeds

SEEDS = [1111, 1112, 1113, 1114, 1115]
DATASETS = {"mosi": "mosi", "poria": "mosi-poria", "mosei": "mosei"}
ENCODERS = {
    "minilm": ["encoder.name=minilm", "train.epochs=8", "train.patience=3"],
    "mpnet": ["encoder.name=mpnet", "train.epochs=8", "train.patience=3"],
    "minilm-frozen": ["encoder.name=minilm", "encoder.freeze=true", "encoder.pooling=mean",
                      "train.epochs=30", "train.patience=6"],
    "mpnet-frozen": ["encoder.name=mpnet", "encoder.freeze=true", "encoder.pooling=mean",
                     "train.epochs=30", "train.patience=6"],
}
VARIANTS = {
    "": [],
    "noba": ["train.term_weights.lld=0", "train.term_weights.H=0"],
    "nocpc": ["train.term_weights.nce=0"],
    "kl": ["penalty.kind=kl"],
    "js": ["penalty.kind=js"],
    "wasserstein": ["penalty.kind=wasserstein"],
    **{f"{p}r": [f"penalty.kind={p}", "penalty.critic_reps=reuse"]
       for p in ("kl", "js", "wasserstein")},
    "aug": ["data.augment={name: feature_noise, rate: 0.5}"],
}
FINETUNED_MOSEI = ["train.epochs=3", "train.patience=2"]
# Per-model additions. mag_bert's preset has the paper's single lr 1e-5 for everything: frozen,
# only its gate and head learn, at the lr of our other new parameters; fine-tuned, it gets the
# optimisation of the rows it is paired with (encoder 5e-5, the rest 1e-3).
MODEL_SETS = {("mag_bert", "frozen"): ["train.lr=1e-3"],
              ("mag_bert", "finetuned"): ["encoder.lr=5e-5", "train.lr=1e-3"]}
PENALTIES = ("kl", "js", "wasserstein")
HOSTS = ["late_fusion", "mmim"]
ZOO = ["late_fusion", "ef_lstm", "tfn", "lmf", "mult", "misa", "mmim", "mecam", "self_mm",
       "mag_bert"]


def _names(datasets, models, encoders) -> list[str]:
    return [f"{d}_{m}_{e}" for d in datasets for m in models for e in encoders]


GROUPS: dict[str, list[str]] = {
    "issue4": _names(["mosi", "poria"], ["text_only", "late_fusion"], ["minilm"])
    + _names(["mosi"], ["text_only"], ["mpnet"])
    + _names(["mosei"], ["text_only", "late_fusion"], ["minilm-frozen"])
    # mosei's data are transcripts only, where late_fusion is the text_only network
    + _names(["mosei"], ["text_only"], ["minilm"])
    + _names(["mosi"], ["text_only", "late_fusion"], ["mpnet-frozen"])
    + _names(["mosi", "poria"], ["text_only", "late_fusion"], ["minilm-frozen"]),
    "issue5": _names(["mosi"], ["late_fusion", "mmim-noba", "mmim-nocpc", "mmim"], ["minilm"])
    + _names(["mosi", "poria"], ["text_only", "late_fusion", "mmim-noba", "mmim-nocpc", "mmim"],
             ["minilm-frozen"])
    + _names(["mosi"], ["mmim"], ["mpnet-frozen"]),
    "issue6": _names(["mosi", "poria"], [f"{h}{v}" for h in HOSTS
                                         for v in ("", *(f"-{p}" for p in PENALTIES))],
                     ["minilm-frozen"]),
    "reuse": _names(["mosi", "poria"], [f"{h}-{p}r" for h in HOSTS for p in PENALTIES],
                    ["minilm-frozen"]),
    "issue7": _names(["mosi", "poria"], ["late_fusion", "mmim", "mecam", "mecam-aug"],
                     ["minilm-frozen"]),
    # Self-MM and MAG-BERT beside the hosts they are compared with; each with each penalty
    "issue17": _names(["mosi", "poria"], ["late_fusion", "self_mm", "mag_bert"],
                      ["minilm-frozen"])
    + _names(["mosi"], [f"{h}-{p}" for h in ("self_mm", "mag_bert") for p in PENALTIES],
             ["minilm-frozen"])
    + _names(["mosi"], ["late_fusion", "mmim", "self_mm", "mag_bert"], ["minilm"]),
    # the field's standard models, paired to late_fusion; then the penalties across the zoo
    "issue18": _names(["mosi", "poria"], ["late_fusion", "tfn", "lmf", "mult", "misa"],
                      ["minilm-frozen"])
    + _names(["mosi"], ["mult", "misa"], ["minilm"]),
    "issue18-penalties": _names(["mosi"], [f"{h}{v}" for h in ZOO
                                           for v in ("", *(f"-{p}" for p in PENALTIES))],
                                ["minilm-frozen"]),
}
GROUPS["finetuned"] = [n for g in GROUPS.values() for n in g if n.endswith(("_minilm",
                                                                           "_mpnet"))]
GROUPS["frozen"] = [n for g in ("issue4", "issue5", "issue6") for n in GROUPS[g]
                    if n.endswith("-frozen")]


def parse(name: str) -> tuple[str, str, list[str]]:
    """Return (model, dataset, overrides) of run `name` (see the module docstring)."""
    try:
        dataset, model_variant, encoder = name.split("_", 1)[0], *name.split("_", 1)[1].rsplit(
            "_", 1)
        model, _, variant = model_variant.partition("-")
        encoder_sets = ENCODERS[encoder]
        if dataset == "mosei" and not encoder.endswith("-frozen"):
            # replace the encoder's epoch budget only; a variant's train.* settings stay
            encoder_sets = [o for o in encoder_sets if not o.startswith("train.")]
            encoder_sets += FINETUNED_MOSEI
        kind = "frozen" if encoder.endswith("-frozen") else "finetuned"
        return model, DATASETS[dataset], [*encoder_sets, *MODEL_SETS.get((model, kind), []),
                                          *VARIANTS[variant]]
    except (KeyError, ValueError, TypeError) as err:
        raise SystemExit(f"run name '{name}' does not parse: {err!r} (see --help)") from None


def expand(items: list[str]) -> list[str]:
    """Return the run names of `items` (groups expanded, order kept, no repeats)."""
    names = [n for item in items for n in GROUPS.get(item, [item])]
    return list(dict.fromkeys(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="*", help="run names or groups")
    parser.add_argument("--list", action="store_true", help="print the runs and their commands")
    args = parser.parse_intermixed_args()
    cache = EncoderCache()  # shared by every run: a frozen encoder meets each transcript once
    for name in expand(args.names or list(GROUPS)):
        model, dataset, overrides = parse(name)
        if args.list:
            sets = " ".join(f"--set '{o}'" for o in overrides)
            print(f"{name}: mimsa train -m {model} -d {dataset} {sets} "
                  f"--seeds {' '.join(map(str, SEEDS))}")
            continue
        out = args.out / name
        if (out / "summary.csv").is_file():
            continue
        started = time.perf_counter()
        print(f"{time.strftime('%H:%M:%S')} {name}", flush=True)
        cfg = resolve_config(model, dataset, None, overrides)
        write_seed_summary(out, cfg, train_seeds(cfg, SEEDS, out, resume=out.is_dir(),
                                                 cache=cache))
        print(f"{time.strftime('%H:%M:%S')} {name} done in "
              f"{time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
