"""The real CMU-MOSI clip Oz06ZWiO20M_6 (7.4 s, one speaker facing the camera) and its
reference transcript from mosi/label.csv, under the data root ($MIMSA_DATA, else
../shared/data); the functions skip the calling test when the data is absent."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REAL_ROOT = Path(os.environ.get("MIMSA_DATA")
                 or Path(__file__).parents[2] / "../shared/data").resolve()
CLIP_ID = "Oz06ZWiO20M_6"


def real_clip_path() -> Path:
    """Return the path of the real clip, or skip the test with the reason."""
    path = REAL_ROOT / "mosi" / "raw" / f"{CLIP_ID}.mp4"
    if not path.is_file():
        pytest.skip(f"real clip not found at {path}; set MIMSA_DATA to the folder holding "
                    f"mosi/raw")
    return path


def reference_text() -> str:
    """Return the clip's transcript from mosi/label.csv (lower case, no punctuation)."""
    labels = REAL_ROOT / "mosi" / "label.csv"
    if not labels.is_file():
        pytest.skip(f"{labels} not found; set MIMSA_DATA")
    with labels.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["id"] == CLIP_ID:
                return row["text"]
    raise AssertionError(f"{CLIP_ID} is not in {labels}")
