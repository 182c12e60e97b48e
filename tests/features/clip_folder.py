"""A tiny folder of generated clips and its label.csv, for the extract and predict tests.

Eight good clips (4 train, 2 valid, 2 test; a drawn face and a tone, 1 s) in both layouts
`VIDEO_DIR/<video_id>/<clip_id>.mp4` and `VIDEO_DIR/<video_id>_<clip_id>.mp4`, plus one row
per failure case: a truncated file, a video without an audio stream, audio without video, a
0.2-s clip, a clip with no face, a text file renamed .mp4, and a row whose clip is missing.
"""

from __future__ import annotations

import csv
from pathlib import Path

from features.clips import write_clip, write_not_media, write_truncated

GOOD = [  # (video_id, clip_id, text, label, mode, nested folder?)
    ("vidA", "1", "a good happy movie", 2.0, "train", True),
    ("vidA", "2", "a bad sad movie", -2.0, "train", True),
    ("vidB", "1", "good happy fun", 1.5, "train", False),
    ("vidB", "2", "bad sad boring", -1.0, "train", False),
    ("vidC", "1", "happy good", 1.0, "valid", True),
    ("vidC", "2", "sad bad", -1.5, "valid", False),
    ("vidD", "1", "good movie", 0.5, "test", True),
    ("vidD", "2", "bad movie", -0.5, "test", False),
]
#: failure rows: (video_id, clip_id, how the file is made, the stage expected in failures.csv)
BAD = [
    ("bad", "truncated", "truncated", "decode"),
    ("bad", "noaudio", "no_audio", "fake_audio"),
    ("bad", "audioonly", "audio_only", "fake_face"),
    ("bad", "short", "short", "fake_audio"),
    ("bad", "noface", "no_face", "fake_face"),
    ("bad", "notmedia", "not_media", "decode"),
    ("bad", "missing", "missing", "find"),
]


def make_clip_folder(root: Path, tones: bool = True) -> tuple[Path, Path]:
    """Write the clips under root/videos and root/label.csv; return (video_dir, label.csv)."""
    videos = root / "videos"
    videos.mkdir(parents=True)
    size = (160, 120)
    for k, (vid, cid, _, label, _, nested) in enumerate(GOOD):
        path = videos / vid / f"{cid}.mp4" if nested else videos / f"{vid}_{cid}.mp4"
        path.parent.mkdir(exist_ok=True)
        write_clip(path, 1.0, face=True, size=size, fps=10, seed=k,
                   tone_hz=180.0 + 40 * label if tones else 220.0)
    for vid, cid, how, _ in BAD:
        path = videos / f"{vid}_{cid}.mp4"
        if how == "truncated":
            write_truncated(path, keep=0.4, duration_s=1.0, faststart=False)
        elif how == "no_audio":
            write_clip(path, 1.0, audio=False, face=True, size=size, fps=10)
        elif how == "audio_only":
            write_clip(path, 1.0, video=False)
        elif how == "short":
            write_clip(path, 0.2, face=True, size=size, fps=10)
        elif how == "no_face":
            write_clip(path, 1.0, face=False, size=size, fps=10)
        elif how == "not_media":
            write_not_media(path)
    labels = root / "label.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "clip_id", "text", "label", "mode"])
        for vid, cid, text, label, mode, _ in GOOD:
            writer.writerow([vid, cid, text, label, mode])
        for vid, cid, _, _ in BAD:
            writer.writerow([vid, cid, "some words", 0.0, "train"])
    return videos, labels
