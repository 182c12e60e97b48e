"""Write a copy of a text encoder whose floating-point weights are rounded to float16.

The GPU rows of issue 21 (run names with `mpnet16` / `minilm16`) trained from such copies:
the weights had to travel to the GPU machine within a size limit. mimsa loads them as float32
(encoders/text.py), so only the starting point differs from the built-in encoder, by the
rounding (relative error at most 2^-11 per weight). To reproduce those rows exactly:

    python bench/half_weights.py mpnet weights/mpnet-fp16
    python bench/half_weights.py minilm weights/minilm-fp16
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from mimsa.encoders.weights import resolve_encoder

TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")


def half_copy(name: str, target: Path) -> Path:
    """Copy encoder `name` (minilm, mpnet or a folder) to `target` with float16 weights."""
    source = resolve_encoder(name)
    if target.exists():
        raise SystemExit(f"{target} exists; choose another folder")
    target.mkdir(parents=True)
    for file in TOKENIZER_FILES:
        if (source / file).is_file():
            shutil.copy(source / file, target / file)
    weights = load_file(source / "model.safetensors")
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in weights.items()}, target / "model.safetensors",
              metadata={"format": "pt"})
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python bench/half_weights.py ENCODER TARGET_FOLDER")
    print(half_copy(sys.argv[1], Path(sys.argv[2])))
