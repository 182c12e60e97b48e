"""How a bench script hands back its result: printed, and with `--out FILE` also written
(atomically, parent folders created), so an interrupted run never leaves half a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mimsa.atomic import atomic_write_text


def save_text(text: str, out: Path | None, *, echo: bool = True) -> None:
    """Print `text` (unless `echo` is False) and write it to `out` when given."""
    if echo:
        print(text.rstrip("\n"))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text.rstrip("\n") + "\n")


def save_json(result: Any, out: Path | None, *, echo: bool = True) -> None:
    """`save_text` of `result` as indented JSON."""
    save_text(json.dumps(result, indent=2), out, echo=echo)
