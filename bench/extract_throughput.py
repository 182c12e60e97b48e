"""`mimsa extract` throughput, per extractor and for ASR, with 1 and 2 worker processes, in
seconds of video per second of wall time (x real time: higher is faster).

    MIMSA_DATA=../shared/data python bench/extract_throughput.py [--clips 8] [--workers 1 2]
        [--threads 1] [--steps egemaps_lld egemaps_functionals librosa fer_emotion asr]
        [--out bench/results/extract_throughput.json]

The input is a temporary folder of `--clips` symbolic links to the real CMU-MOSI clip
mosi/raw/Oz06ZWiO20M_6.mp4 (7.5 s, 480 x 360, 30 fps, AAC 44.1 kHz; nothing is copied) and a
generated label.csv (`id, text, label, mode`: the reference transcript, modes cycling train,
valid, test). Each step is one `mimsa extract` command, run as a new process into a new target
folder (nothing cached), exactly as a user runs it:
  an audio extractor      --audio NAME --visual none
  fer_emotion             --audio none --visual fer_emotion   (frames at 10 fps)
  asr                     --audio none --visual none --asr    (empty texts: whisper-base, int8)
  startup                 --audio none --visual none          (no clip decoded: Python start,
                          imports, label.csv; the fixed cost inside every other row)
Recorded per row: the command's wall time; the CPU time of the command and its worker
processes (user + system, from getrusage of the waited children: what contention with other
jobs leaves unchanged); the extraction time extract prints itself (without Python start and
imports); x real time = video seconds / wall seconds (and / extraction seconds); CPU seconds
per video second. OMP_NUM_THREADS is `--threads` in every command (so 2 workers use 2 cores).
The load average before and after each row is recorded: on a busy machine, wall times are only
as quiet as the machine, CPU times are not.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import save_json

CLIP_ID = "Oz06ZWiO20M_6"
STEPS = ("startup", "egemaps_lld", "egemaps_functionals", "librosa", "fer_emotion", "asr")
SUMMARY = re.compile(r"(\d+) clips kept, (\d+) failed .*?; ([\d.]+) s for ([\d.]+) s of video",
                     re.S)


def step_args(step: str) -> list[str]:
    """Return the extract options of one step."""
    if step == "startup":
        return ["--audio", "none", "--visual", "none"]
    if step == "asr":
        return ["--audio", "none", "--visual", "none", "--asr"]
    if step in ("fer_emotion", "mediapipe_mesh"):
        return ["--audio", "none", "--visual", step]
    return ["--audio", step, "--visual", "none"]


def make_folder(root: Path, clip: Path, n: int, text: str, asr: bool) -> tuple[Path, Path]:
    """Write root/videos/c{k}.mp4 -> clip links and a label.csv; return (videos, label.csv)."""
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    labels = root / ("label_asr.csv" if asr else "label.csv")
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label", "mode"])
        for k in range(n):
            link = videos / f"c{k}.mp4"
            if not link.exists():
                link.symlink_to(clip.resolve())
            writer.writerow([f"c{k}", "" if asr else text, 1.0,
                             ("train", "valid", "test")[k % 3]])
    return videos, labels


def clip_seconds(clip: Path) -> float:
    import av

    with av.open(str(clip)) as container:
        return container.duration / 1e6


def run_step(step: str, workers: int, videos: Path, labels: Path, target: Path,
             threads: int) -> dict:
    """Run one `mimsa extract` and return its measurements."""
    cmd = [sys.executable, "-c", "from mimsa.cli import main_entry; main_entry()", "extract",
           str(videos), "--labels", str(labels), "--to", str(target), *step_args(step),
           "--workers", str(workers), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    load_before = os.getloadavg()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    row = {"step": step, "workers": workers, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "load_average_before": [round(x, 2) for x in load_before],
           "load_average_after": [round(x, 2) for x in os.getloadavg()],
           "exit_code": done.returncode}
    match = SUMMARY.search(" ".join(done.stdout.split()))
    if done.returncode != 0 or not match:
        row["error"] = " ".join((done.stderr or done.stdout).split())[-400:]
        return row
    row.update(kept=int(match[1]), failed=int(match[2]), extract_s=float(match[3]),
               reported_video_s=float(match[4]))
    return row


def main(argv: list[str] | None = None) -> int:
    data_root = Path(os.environ.get("MIMSA_DATA", "../shared/data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=data_root / "mosi/raw" / f"{CLIP_ID}.mp4")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", nargs="+", default=list(STEPS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        print(f"{args.clip}: not found; set MIMSA_DATA to the folder holding mosi/raw",
              file=sys.stderr)
        return 2
    reference = ""
    labels_csv = data_root / "mosi" / "label.csv"
    if labels_csv.is_file():
        with labels_csv.open(newline="") as handle:
            reference = next((r["text"] for r in csv.DictReader(handle) if r["id"] == CLIP_ID),
                             "")
    seconds = clip_seconds(args.clip)
    video_s = seconds * args.clips
    rows = []
    with tempfile.TemporaryDirectory(prefix="mimsa-throughput-") as tmp:
        root = Path(tmp)
        plain = make_folder(root, args.clip, args.clips, reference or "a clip", asr=False)
        spoken = make_folder(root, args.clip, args.clips, "", asr=True)
        for step in args.steps:
            for workers in args.workers:
                videos, labels = spoken if step == "asr" else plain
                row = run_step(step, workers, videos, labels, root / f"ds-{step}-{workers}",
                               args.threads)
                if "error" not in row and step != "startup":
                    row["x_realtime_wall"] = round(video_s / row["wall_s"], 2)
                    row["x_realtime_extract"] = round(video_s / max(row["extract_s"], 1e-9), 2)
                    row["cpu_s_per_video_s"] = round(row["cpu_s"] / video_s, 3)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    report = {"clip": str(args.clip), "clip_seconds": round(seconds, 3), "clips": args.clips,
              "video_seconds": round(video_s, 2), "omp_num_threads": args.threads,
              "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "machine": platform.machine(), "rows": rows,
              "note": "wall times on a shared machine (see load averages); CPU times are "
                      "user + system of the command and its worker processes"}
    print(f"{'step':20} {'workers':>7} {'wall s':>7} {'x real':>7} {'extract s':>9} "
          f"{'x real':>7} {'cpu s':>7} {'cpu/vid s':>9}  load")
    for row in rows:
        if "error" in row:
            print(f"{row['step']:20} {row['workers']:7d} failed: {row['error']}")
            continue
        if row["step"] == "startup":
            print(f"{row['step']:20} {row['workers']:7d} {row['wall_s']:7.1f} {'':7} "
                  f"{row['extract_s']:9.1f} {'':7} {row['cpu_s']:7.1f} {'':9}  "
                  f"{row['load_average_before'][0]:.1f}")
            continue
        print(f"{row['step']:20} {row['workers']:7d} {row['wall_s']:7.1f} "
              f"{row['x_realtime_wall']:7.2f} {row['extract_s']:9.1f} "
              f"{row['x_realtime_extract']:7.2f} {row['cpu_s']:7.1f} "
              f"{row['cpu_s_per_video_s']:9.3f}  {row['load_average_before'][0]:.1f}")
    print(f"{args.clips} clips x {seconds:.2f} s = {video_s:.1f} s of video; "
          f"OMP_NUM_THREADS={args.threads}; {os.cpu_count()} CPUs")
    save_json(report, args.out, echo=not args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
