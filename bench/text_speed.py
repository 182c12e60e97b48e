"""Text-encoder cost vs a full training epoch on the `mosi` training split.

    MIMSA_DATA=../shared/data python bench/text_speed.py --encoder minilm \
        [--batches 0] [--out bench/results/text_speed_minilm.json]

Measures, with the trainer's own batching (batch 32, length bucketing):
  encoder epoch  forward+backward+Adam step of the text encoder + a linear head over the
                 training batches (samples/s and seconds per epoch);
  model epochs   one training epoch of `text_only` and of `late_fusion` (text + audio) through
                 the real Trainer, read from history.jsonl (epoch 2 of 2, after warm-up).
The overhead ratio is full epoch / encoder epoch: everything that is not the text encoder.
`--batches N` times only the first N batches of the encoder epoch (quick look).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from mimsa.config import resolve_config
from mimsa.data.batch import iterate_batches
from mimsa.encoders.text import TextEncoder
from mimsa.train.run import prepare_data, train_run
from mimsa.train.seeding import epoch_rng, seed_everything


def encoder_epoch(encoder_name: str, max_batches: int) -> dict:
    """Return seconds and samples/s of one encoder-only training epoch on mosi train."""
    cfg = resolve_config("text_only", "mosi", None, [f"encoder.name={encoder_name}"])
    dataset, spec = prepare_data(cfg)
    seed_everything(1111)
    encoder = TextEncoder(spec.text.encoder_dir, pooling="cls")
    head = nn.Linear(encoder.out_dim, 1)
    optimizer = torch.optim.Adam([{"params": encoder.parameters(), "lr": 5e-5},
                                  {"params": head.parameters(), "lr": 1e-3}])
    batches = list(iterate_batches(dataset, dataset.indices("train"), 32, modalities="t",
                                   shuffle=True, rng=epoch_rng(1111, 1), length_bucketing=True,
                                   pad_id=spec.text.pad_id))
    if max_batches:
        batches = batches[:max_batches]
    encoder.train()
    started = time.perf_counter()
    samples = 0
    for batch in batches:
        pooled, _, _ = encoder(batch.text_ids, batch.text_mask)
        loss = nn.functional.l1_loss(head(pooled).squeeze(-1), batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        samples += len(batch)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "samples": samples, "samples_per_second": samples / seconds}


def model_epoch(model: str, encoder_name: str) -> float:
    """Return the train seconds of epoch 2 of a 2-epoch run of `model` on mosi."""
    cfg = resolve_config(model, "mosi", None, [f"encoder.name={encoder_name}",
                                               "train.epochs=2", "train.patience=5"])
    with tempfile.TemporaryDirectory() as tmp:
        train_run(cfg, Path(tmp) / "run")
        rows = [json.loads(x) for x in (Path(tmp) / "run" / "history.jsonl").open()]
    return rows[-1]["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--batches", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    enc = encoder_epoch(args.encoder, args.batches)
    result = {"encoder": args.encoder, "encoder_epoch": enc}
    if not args.batches:
        text_only = model_epoch("text_only", args.encoder)
        late_fusion = model_epoch("late_fusion", args.encoder)
        result.update({
            "text_only_epoch_seconds": text_only,
            "late_fusion_epoch_seconds": late_fusion,
            "overhead_ratio_text_only": text_only / enc["seconds"],
            "overhead_ratio_late_fusion": late_fusion / enc["seconds"],
        })
    result.update({"threads": args.threads, "torch": torch.__version__,
                   "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
