"""One writer per folder: an OS file lock (`filelock`, flock on Unix) that names its holder.

The operating system releases the lock when its process ends, however it ends, so the lock of
a killed process is simply taken by the next writer: there is no stale lock to break. While
held, the lock file names its holder (pid, host) for the message a second writer gets; it is
emptied on release and stays in place (waiters must share one inode). Not re-entrant: a second
`hold` of the same file is refused even in the same process.

Used for run directories (mimsa.train.lock) and extraction targets (mimsa.features.extract);
each caller words its own errors. This module imports nothing of mimsa.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def hold(path: str | Path, busy: Callable[[str], BaseException],
         failed: Callable[[OSError], BaseException]) -> Iterator[Path]:
    """Hold the lock file `path` (created with its folders) for the with-block; yield it.

    Raises:
        busy(holder(path)): another process (or this one) holds the lock; raised from None.
        failed(error): the folder or the lock file cannot be created (an OSError); raised
            from that error.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        lock.acquire()
    except Timeout:
        raise busy(holder(path)) from None
    except OSError as err:
        raise failed(err) from err
    wrote = False
    try:
        wrote = _write_holder(path)
        yield path
    finally:
        if wrote:
            _clear_holder(path)
        lock.release()


def probe(path: str | Path) -> str | None:
    """Return None when no process holds the lock file `path` now, else its holder as `holder`
    describes it (possibly ""). Does not wait; a lock left by a killed process is free. Never
    creates the lock file."""
    path = Path(path)
    if not path.is_file():
        return None
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return holder(path)
    except OSError:
        return None
    lock.release()
    return None


def holder(path: str | Path) -> str:
    """Return " (pid N)" (" (pid N on HOST)" for another host) for the process the lock file
    `path` names, or "" when it names none."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    if not lines or not lines[0].strip().isdigit():
        return ""
    host = lines[1].strip() if len(lines) > 1 else ""
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f" (pid {lines[0].strip()}{where})"


def _write_holder(path: Path) -> bool:
    """Record this process (pid, host) in the held lock file; return whether it was written.

    A lock file that already starts with our pid (filelock's soft-lock marker, on file systems
    without flock) is left as it is."""
    pid = str(os.getpid())
    try:
        with open(path, "r+", encoding="utf-8") as handle:
            if handle.readline().strip() == pid:
                return False
            handle.seek(0)
            handle.truncate()
            handle.write(f"{pid}\n{socket.gethostname()}\n")
    except OSError:  # the holder's name is a courtesy; the lock itself is what counts
        return False
    return True


def _clear_holder(path: Path) -> None:
    """Empty the lock file before release, so that it names no finished process (it may be
    gone already, removed with its folder)."""
    try:
        with open(path, "r+", encoding="utf-8") as handle:
            handle.truncate()
    except OSError:
        pass
