"""Text-encoder cost vs a full training epoch on the `mosi` training split.

    MIMSA_DATA=../shared/data python bench/text_speed.py --encoder minilm \
        [--epochs 3] [--batches 0] [--encoder-only] [--out bench/results/text_speed_minilm.json]

Measures, with the trainer's own batching (batch 32, length bucketing, the batches of seed
1111's epochs 1..N), averaged over epochs 2..N (epoch 1 is warm-up: allocations, Adam state):
  encoder epoch  forward+backward+Adam step of the text encoder + a linear head over the
                 training batches (samples/s and seconds per epoch);
  model epochs   a training epoch of `text_only` and of `late_fusion` (text + audio) through
                 the real Trainer, read from history.jsonl.
The overhead ratio is full epoch / encoder epoch: everything that is not the text encoder.
`--batches N` times only the first N batches of the encoder epoch (quick look);
`--encoder-only` skips the model epochs.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from bench_report import save_json
from torch import nn

from mimsa.config import resolve_config
from mimsa.data.batch import iterate_batches
from mimsa.encoders.text import TextEncoder
from mimsa.train.run import prepare_data, train_run
from mimsa.train.seeding import epoch_rng, seed_everything


def encoder_epoch(encoder_name: str, max_batches: int, epochs: int) -> dict:
    """Return seconds and samples/s of an encoder-only training epoch on mosi train, averaged
    over epochs 2..`epochs` (epoch 1 is warm-up: allocations, Adam state). Epoch e uses the
    batches of the trainer's epoch e with seed 1111, so model epochs compare like with like."""
    cfg = resolve_config("text_only", "mosi", None, [f"encoder.name={encoder_name}"])
    dataset, spec = prepare_data(cfg)
    seed_everything(1111)
    encoder = TextEncoder(spec.text.encoder_dir, pooling="cls")
    head = nn.Linear(encoder.out_dim, 1)
    optimizer = torch.optim.Adam([{"params": encoder.parameters(), "lr": 5e-5},
                                  {"params": head.parameters(), "lr": 1e-3}])
    encoder.train()
    seconds = []
    for epoch in range(1, epochs + 1):
        batches = list(iterate_batches(dataset, dataset.indices("train"), 32, modalities="t",
                                       shuffle=True, rng=epoch_rng(1111, epoch),
                                       length_bucketing=True, pad_id=spec.text.pad_id))
        batches = batches[:max_batches] if max_batches else batches
        started = time.perf_counter()
        samples = 0
        for batch in batches:
            pooled, _, _ = encoder(batch.text_ids, batch.text_mask)
            loss = nn.functional.l1_loss(head(pooled).squeeze(-1), batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            samples += len(batch)
        seconds.append(time.perf_counter() - started)
    steady = sum(seconds[1:]) / len(seconds[1:])
    return {"seconds": steady, "warm_up_seconds": seconds[0], "epoch_seconds": seconds,
            "samples": samples, "samples_per_second": samples / steady}


def model_epoch(model: str, encoder_name: str, epochs: int) -> float:
    """Return the train seconds per epoch of `model` on mosi (seed 1111), averaged over epochs
    2..`epochs` of one run."""
    cfg = resolve_config(model, "mosi", None, [f"encoder.name={encoder_name}",
                                               f"train.epochs={epochs}",
                                               f"train.patience={epochs + 1}"])
    with tempfile.TemporaryDirectory() as tmp:
        train_run(cfg, Path(tmp) / "run")
        rows = [json.loads(x) for x in (Path(tmp) / "run" / "history.jsonl").open()]
    return sum(r["train_seconds"] for r in rows[1:]) / len(rows[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--batches", type=int, default=0)
    parser.add_argument("--encoder-only", action="store_true")
    parser.add_argument("--epochs", type=int, default=3, help="per measurement; >= 2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is warm-up)")
    enc = encoder_epoch(args.encoder, args.batches, args.epochs)
    result = {"encoder": args.encoder, "encoder_epoch": enc}
    if not args.batches and not args.encoder_only:
        text_only = model_epoch("text_only", args.encoder, args.epochs)
        late_fusion = model_epoch("late_fusion", args.encoder, args.epochs)
        result.update({
            "text_only_epoch_seconds": text_only,
            "late_fusion_epoch_seconds": late_fusion,
            "overhead_ratio_text_only": text_only / enc["seconds"],
            "overhead_ratio_late_fusion": late_fusion / enc["seconds"],
        })
    result.update({"epochs": args.epochs, "threads": args.threads, "torch": torch.__version__,
                   "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")})
    save_json(result, args.out)


if __name__ == "__main__":
    main()
