"""`mimsa`: mimsa's own dataset folder (manifest.json + arrays.safetensors + samples.json).

See `mimsa.data.store` for the layout; reading verifies every file's sha256 first.
"""

from __future__ import annotations

from pathlib import Path

from mimsa.data.dataset import CrossSplitPolicy, MultimodalDataset, NanPolicy
from mimsa.data.store import ARRAYS, MANIFEST, is_dataset_dir, load_dataset_dir

NAME = "mimsa"


def detect(path: str | Path) -> bool:
    """Return True when `path` is a folder (or a manifest.json) written by `save_dataset`.

    A folder holding manifest.json beside arrays.safetensors counts even when its manifest is
    corrupt, so that reading it reports what is wrong with the manifest.
    """
    path = Path(path)
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    return path.is_dir() and (is_dataset_dir(path) or (
        (path / MANIFEST).is_file() and (path / ARRAYS).is_file()))


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
