"""One run directory, one writer: an OS file lock on `RUN/.lock` (`filelock`, flock on Unix).

The operating system releases the lock when its process ends, however it ends, so a run whose
process was killed is simply locked again by the next writer: there is no stale lock to break.
While held, the lock file names its holder (pid, host) for the message a second writer gets;
it is emptied on release and stays in place (waiters must share one inode).

The lock is not re-entrant: a second `run_lock` on the same directory is refused even in the
same process. Readers (evaluate, robustness, ...) take no lock.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from mimsa.errors import RunError

LOCK = ".lock"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the write lock of `run_dir` (created if missing) for the with-block; yield the
    directory.

    Raises:
        RunError: another process (or this one) holds the lock: one line naming its pid; or
            the directory or its lock file cannot be created.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        lock.acquire()
    except Timeout:
        raise RunError(f"{run_dir} is being written by another mimsa process{holder(run_dir)}; "
                       f"wait for it to finish or choose another --out") from None
    except OSError as err:
        raise RunError(f"{path}: cannot take the run's write lock "
                       f"({err.strerror or err}); choose a writable --out") from err
    wrote = False
    try:
        wrote = _write_holder(path)
        yield run_dir
    finally:
        if wrote:
            _clear_holder(path)
        lock.release()


def writer(run_dir: str | Path) -> str | None:
    """Return None when no process holds the write lock of `run_dir` now, else its holder as
    `holder` describes it (possibly ""). Probes the lock without waiting; a lock left by a
    killed process is free. Never creates the lock file."""
    path = Path(run_dir) / LOCK
    if not path.is_file():
        return None
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return holder(run_dir)
    except OSError:
        return None
    lock.release()
    return None


def holder(run_dir: str | Path) -> str:
    """Return " (pid N)" (" (pid N on HOST)" for another host) for the process that holds
    the lock of `run_dir` as its lock file records it, or "" when it records none."""
    try:
        lines = (Path(run_dir) / LOCK).read_text(encoding="utf-8").splitlines()
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
    """Empty the lock file before release, so that it names no finished process."""
    try:
        with open(path, "r+", encoding="utf-8") as handle:
            handle.truncate()
    except OSError:
        pass
