"""Fixtures for the data tests: the real data root, skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_ROOT = Path(os.environ.get("MIMSA_DATA")
                 or Path(__file__).parents[2] / "../shared/data").resolve()


@pytest.fixture(scope="session")
def real_root() -> Path:
    """Return the real data root, or skip the test when it is absent."""
    if not (REAL_ROOT / "mosi" / "label.csv").is_file():
        pytest.skip(f"real data not found at {REAL_ROOT}; set MIMSA_DATA to the folder "
                    f"holding mosi/ and mosei/")
    return REAL_ROOT
