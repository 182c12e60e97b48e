"""Speed of decoding, each feature extractor and ASR on one clip, warm, in seconds of video per
second of wall time (x real time: higher is faster).

    OMP_NUM_THREADS=2 MIMSA_DATA=../shared/data python bench/extract_speed.py \
        [--clip PATH] [--repeats 3] [--fps 10] [--beam 1 5] [--out bench/results/extract_speed.json]

The clip defaults to the real CMU-MOSI clip mosi/raw/Oz06ZWiO20M_6.mp4 (7.4 s, 480 x 360,
30 fps, AAC 44.1 kHz) under $MIMSA_DATA. Each step runs once untimed (warm-up: imports, model
loading, JIT), then `--repeats` times; the table gives the median. "load" is the cold cost of
that warm-up in this process (imports + models), reported, not included in the speed.
ASR (faster-whisper, whisper-base int8 on the CPU, word timestamps) is timed for each
`--beam` size; its WER against the reference transcript in mosi/label.csv is given too.
Extractors whose extra is missing are listed as skipped. Threads: CTranslate2 and OpenCV
follow OMP_NUM_THREADS; the openSMILE, librosa and tflite parts use one core.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from bench_report import save_json

from mimsa.errors import MissingExtraError
from mimsa.features import asr as asr_mod
from mimsa.features import decode_clip, get_extractor, list_extractors, normalize_text
from mimsa.features.asr import word_error_rate

CLIP_ID = "Oz06ZWiO20M_6"


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Return (first-call seconds, median of `repeats` further calls, last result)."""
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), result


def reference_text(data_root: Path) -> str | None:
    labels = data_root / "mosi" / "label.csv"
    if not labels.is_file():
        return None
    with labels.open(newline="") as handle:
        return next((row["text"] for row in csv.DictReader(handle) if row["id"] == CLIP_ID),
                    None)


def main(argv: list[str] | None = None) -> int:
    data_root = Path(os.environ.get("MIMSA_DATA", "../shared/data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=data_root / "mosi/raw" / f"{CLIP_ID}.mp4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--beam", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    rows = []
    first, warm, clip = timed(lambda: decode_clip(args.clip, fps=args.fps), args.repeats)
    seconds = clip.duration_s
    rows.append({"step": "decode", "load_s": round(first - warm, 3), "warm_s": round(warm, 3),
                 "x_realtime": round(seconds / warm, 1), "shape": None})
    for name in list_extractors():
        options = {"fps": args.fps} if name in ("fer_emotion", "mediapipe_mesh") else {}
        try:
            extractor = get_extractor(name, **options)
            start = time.perf_counter()
            extractor.load()
            load = time.perf_counter() - start
        except MissingExtraError as error:
            rows.append({"step": name, "skipped": str(error)})
            continue
        first, warm, features = timed(lambda e=extractor: e.extract(clip), args.repeats)
        rows.append({"step": name, "load_s": round(load + first - warm, 3),
                     "warm_s": round(warm, 3), "x_realtime": round(seconds / warm, 1),
                     "shape": list(features.values.shape),
                     "present": round(float(features.present.mean()), 3)})
    reference = reference_text(data_root)
    for beam in args.beam:
        try:
            start = time.perf_counter()
            asr_mod.load_model()
            load = time.perf_counter() - start
            first, warm, transcript = timed(
                lambda b=beam: asr_mod.transcribe(clip.audio, clip.sample_rate, beam_size=b),
                args.repeats)
        except MissingExtraError as error:
            rows.append({"step": f"asr beam {beam}", "skipped": str(error)})
            continue
        wer = (round(word_error_rate(normalize_text(reference), normalize_text(transcript.text)),
                     3) if reference else None)
        rows.append({"step": f"asr whisper-base beam {beam}",
                     "load_s": round(load + first - warm, 3), "warm_s": round(warm, 3),
                     "x_realtime": round(seconds / warm, 1), "wer": wer,
                     "text": transcript.text})
    report = {"clip": str(args.clip), "clip_seconds": round(seconds, 3), "fps": args.fps,
              "repeats": args.repeats, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "rows": rows}
    print(f"{'step':34} {'load s':>7} {'warm s':>7} {'x real time':>11}  notes")
    for row in rows:
        if "skipped" in row:
            print(f"{row['step']:34} skipped: {row['skipped']}")
            continue
        notes = []
        if row.get("shape"):
            notes.append(f"shape {row['shape']}")
        if "present" in row and row["present"] < 1:
            notes.append(f"present {row['present']:.0%}")
        if row.get("wer") is not None:
            notes.append(f"WER {row['wer']:.2f}")
        print(f"{row['step']:34} {row['load_s']:7.2f} {row['warm_s']:7.3f} "
              f"{row['x_realtime']:11.1f}  {', '.join(notes)}")
    print(f"clip {seconds:.2f} s; OMP_NUM_THREADS={report['omp_num_threads']}; "
          f"load average {report['load_average']}")
    save_json(report, args.out, echo=not args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
