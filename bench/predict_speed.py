"""`mimsa predict` speed on the real 7.4-s CMU-MOSI clip: warm (loaded once) and cold (a new
process), speech recognition included.

    MIMSA_DATA=../shared/data python bench/predict_speed.py --run RUN_DIR [--repeats 5]
        [--cold 2] [--threads 2] [--out bench/results/predict_speed.json]

RUN_DIR: a finished run, e.g. the text_only MiniLM run of
    mimsa train -m text_only -d mosi --set encoder.name=minilm --set encoder.freeze=true \
        --set encoder.pooling=mean --set train.epochs=3 --out runs/textonly_minilm

warm  a `Predictor` built once and a first `predict_clip` call (ASR model, tokenizer, frozen
      encoder loaded), then calls 2..N+1 timed: decode + ASR + tokenise + model (+ drops);
      also each stage alone (decode_clip, transcribe, the model through predict with --text).
cold  `mimsa predict RUN_DIR CLIP` as a new process (`--cold` times), the subprocess's wall time:
      Python start, imports, model load, ASR model load, one prediction.
`--threads` sets OMP_NUM_THREADS (CTranslate2 reads it too) and torch's threads. The load
average at start and end is recorded: the timings are only as quiet as the machine; the CPU
time of a warm call (all threads together, `warm_predict_cpu`) is what contention leaves
unchanged, and bounds the wall time on `--threads` idle cores from above.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_report import save_json

CLIP = "mosi/raw/Oz06ZWiO20M_6.mp4"


def stats(values: list[float]) -> dict:
    return {"mean_s": round(statistics.mean(values), 3), "min_s": round(min(values), 3),
            "max_s": round(max(values), 3), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    root = Path(os.environ.get("MIMSA_DATA", "../shared/data"))
    clip = args.clip or root / CLIP
    if not clip.is_file():
        sys.exit(f"{clip} not found; set MIMSA_DATA or --clip")
    load_start = os.getloadavg()[0]

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    from mimsa.predict import Predictor

    imported = time.perf_counter() - started
    started = time.perf_counter()
    predictor = Predictor(args.run)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    first = predictor.predict_clip(clip)
    first_call = time.perf_counter() - started
    warm, warm_cpu = [], []
    for _ in range(args.repeats):
        started, cpu = time.perf_counter(), time.process_time()
        result = predictor.predict_clip(clip)
        warm.append(time.perf_counter() - started)
        warm_cpu.append(time.process_time() - cpu)
    assert result["score"] == first["score"], "predict is not deterministic"

    from mimsa.features.asr import transcribe
    from mimsa.features.extract import _decode

    decode, asr, model = [], [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        decoded = _decode(clip, predictor.plan, need_asr=True)
        decode.append(time.perf_counter() - started)
        started = time.perf_counter()
        transcribe(decoded.audio, decoded.sample_rate, model=predictor.plan.asr_model)
        asr.append(time.perf_counter() - started)
        started = time.perf_counter()
        predictor.predict_clip(clip, text=result["transcript"])  # no decoding, no ASR
        model.append(time.perf_counter() - started)

    cold = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    mimsa = Path(sys.executable).with_name("mimsa")
    for _ in range(args.cold):
        started = time.perf_counter()
        done = subprocess.run([str(mimsa), "predict", str(args.run), str(clip), "--json"],
                              env=env, capture_output=True, text=True, check=False)
        cold.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"mimsa predict failed: {done.stderr.strip()}")
    report = {
        "clip": str(clip), "run": str(args.run), "threads": args.threads,
        "model": json.loads((args.run / "model.json").read_text()).get("model")
        if (args.run / "model.json").is_file() else None,
        "score": result["score"], "transcript": result["transcript"],
        "warm_predict": stats(warm), "warm_predict_cpu": stats(warm_cpu),
        "warm_decode": stats(decode), "warm_asr": stats(asr),
        "warm_model_given_text": stats(model),
        "first_call_s": round(first_call, 3), "import_s": round(imported, 3),
        "load_run_s": round(loaded, 3), "cold_process": stats(cold),
        "target_warm_s": 3.0, "warm_under_target": statistics.mean(warm) < 3.0,
        "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    save_json(report, args.out)


if __name__ == "__main__":
    main()
