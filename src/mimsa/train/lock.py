"""One run directory, one writer: an OS file lock on `RUN/.lock` (`filelock`, flock on Unix).

The operating system releases the lock when its process ends, however it ends, so a run whose
process was killed is simply locked again by the next writer: there is no stale lock to break.
While held, the lock file names its holder (pid, host) for the message a second writer gets;
it is emptied on release and stays in place (waiters must share one inode). The lock itself is
mimsa.locking's; this module words it for run directories.

The lock is not re-entrant: a second `run_lock` on the same directory is refused even in the
same process. Readers (evaluate, robustness, ...) take no lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mimsa import locking
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

    def busy(holder: str) -> RunError:
        return RunError(f"{run_dir} is being written by another mimsa process{holder}; "
                        f"wait for it to finish or choose another --out")

    def failed(err: OSError) -> RunError:
        return RunError(f"{path}: cannot take the run's write lock "
                        f"({err.strerror or err}); choose a writable --out")

    with locking.hold(path, busy, failed):
        yield run_dir


def writer(run_dir: str | Path) -> str | None:
    """Return None when no process holds the write lock of `run_dir` now, else its holder as
    `holder` describes it (possibly ""). Probes the lock without waiting; a lock left by a
    killed process is free. Never creates the lock file."""
    return locking.probe(Path(run_dir) / LOCK)


def holder(run_dir: str | Path) -> str:
    """Return " (pid N)" (" (pid N on HOST)" for another host) for the process that holds
    the lock of `run_dir` as its lock file records it, or "" when it records none."""
    return locking.holder(Path(run_dir) / LOCK)
