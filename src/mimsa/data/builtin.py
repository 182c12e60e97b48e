"""The datasets that ship registered with mimsa."""

from __future__ import annotations

from pathlib import Path

import mimsa.data.real  # noqa: F401  (registers mosi, mosi-poria, mosei)
from mimsa.data.dataset import MultimodalDataset
from mimsa.data.registry import register_dataset
from mimsa.data.synthetic import make_synthetic


@register_dataset("synthetic", "embedded MOSI-sized trimodal data generated from a seed "
                  "(no files)", needs_data_root=False)
def synthetic(data_root: Path, seed: int = 0, sizes: dict[str, int] | None = None,
              **_: object) -> MultimodalDataset:
    """Return the embedded synthetic dataset (`data_root` is unused)."""
    return make_synthetic(seed=seed, sizes=sizes)
