"""`mimsa`: mimsa's own dataset folder (manifest.json + arrays.safetensors + samples.json).

See `mimsa.data.store` for the layout; reading verifies every file's sha256 first.
"""

from __future__ import annotations

from pathlib import Path

from mimsa.data.dataset import CrossSplitPolicy, MultimodalDataset, NanPolicy
from mimsa.data.store import is_dataset_dir, load_dataset_dir

NAME = "mimsa"


def detect(path: str | Path) -> bool:
    """Return True when `path` is a folder (or a manifest.json) written by `save_dataset`."""
    path = Path(path)
    if path.is_file() and path.name == "manifest.json":
        path = path.parent
    return path.is_dir() and is_dataset_dir(path)


def read(path: str | Path, *, trust_pickle: bool = False, nan_policy: NanPolicy = "error",
         cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset stored in the mimsa dataset folder `path` (no pickle involved).

    Errors name `path` (the folder the user passed), and the converted-from source second.
    """
    path = Path(path)
    if path.is_file() and path.name == "manifest.json":
        path = path.parent
    return load_dataset_dir(path, nan_policy=nan_policy,
                            cross_split_duplicates=cross_split_duplicates)
