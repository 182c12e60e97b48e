"""Atomic file writes: write a temporary file beside the target, then rename over it.

A write either replaces the target whole or leaves the previous file as it was:
- the temporary `.<name>.<8 random chars>.tmp` sits in the target's folder (a rename is only
  atomic within one file system); it is removed on any error, and a process killed mid-write
  leaves it behind for `remove_stale_temporaries`, which the folder's single writer calls;
- the new file gets the permissions a plain `open(path, "w")` would give it: those of the file
  it replaces, or, for a new file, 0666 less the umask (usually 0644); ownership is the writer's;
- its data is fsync'ed before the rename and the folder after it (a few ms), so that a power
  loss cannot leave a renamed but empty file;
- a full disk (ENOSPC, EDQUOT) becomes a one-line `RunError` naming the file; the previous
  file is untouched.
`atomic_write_files` writes several files (a checkpoint's weights and spec) together: all
temporaries are written first and renamed only when every one of them succeeded.
A Ctrl-C (SIGINT) that arrives during a write from the main thread waits until the write is
done, then interrupts as usual: a library writing the file (torch.save's zip writer) would
otherwise turn it into its own error, which reads as a crash rather than an interruption.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mimsa.errors import RunError

Writer = Callable[[Path], None]

#: Temporaries of `atomic_write` (`.<name>.<8 chars>.tmp`, also the `tempfile.mkstemp` names of
#: earlier mimsa versions) and of safetensors' own `save_file` (`.tmp` + 6 chars).
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_FOREIGN_TEMPORARY = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
_DISK_FULL = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded"}
_DISK_FULL_TEXT = re.compile("|".join([*map(re.escape, _DISK_FULL.values()),
                                       *(rf"os error {n}\b" for n in _DISK_FULL)]))


def atomic_write(path: str | Path, write: Writer) -> Path:
    """Call `write(tmp_path)` then rename tmp_path to `path`; return `path`.

    `write` may create or replace tmp_path as it likes. A crash mid-write leaves the previous
    file (if any) intact and no partial file under `path`.

    Raises:
        RunError: the disk is full (the temporary is removed, the previous file kept).
        Any error of `write`, unchanged, after removing the temporary.
    """
    return atomic_write_files([(Path(path), write)])[0]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; return `path`. Raises as `atomic_write`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; return `path`. Raises as `atomic_write`."""
    return atomic_write(path, lambda tmp: _write_bytes(tmp, data))


def atomic_write_files(writes: Sequence[tuple[str | Path, Writer]]) -> list[Path]:
    """Write several files together: every `write(tmp)` runs first, then the renames follow in
    the given order (only if all writes succeeded); return the paths.

    On an error no target has changed and no temporary is left. Only a process killed between
    two renames (microseconds) can leave some targets new and the others old.

    Raises:
        RunError: the disk is full (naming the file being written).
        Any error of a `write`, unchanged.
    """
    with interrupts_deferred():
        return _write_files(writes)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) while the block runs, then hand it to the Python handler that
    was in place (by default: KeyboardInterrupt at the end of the block; with SIG_DFL also
    KeyboardInterrupt, not the default action of ending the process; with SIG_IGN nothing).
    A Ctrl-C during a block that raised replaces its error (kept as __context__). Outside the
    main thread, where Python delivers no signals, or when the handler was installed outside
    Python, the block just runs."""
    if threading.current_thread() is not threading.main_thread() or (
            signal.getsignal(signal.SIGINT) is None):
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


def _write_files(writes: Sequence[tuple[str | Path, Writer]]) -> list[Path]:
    staged: list[tuple[Path, Path]] = []
    current = Path(writes[0][0]) if writes else Path()
    try:
        for target, write in writes:
            current = Path(target)
            staged.append((current, _new_temporary(current)))
            _fill(staged[-1][1], current, write)
        for target, tmp in staged:
            current = target
            os.replace(tmp, target)
    except BaseException as err:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        reason = disk_full_reason(err)
        if reason:
            raise RunError(f"{current}: cannot write it, the disk is full ({reason}); the "
                           f"previous file is kept; free space, then re-run (a training run "
                           f"continues with --resume)") from err
        raise
    for folder in dict.fromkeys(target.parent for target, _ in staged):
        _fsync_folder(folder)
    return [target for target, _ in staged]


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Remove the temporaries that killed writes left in `directory` (not in sub-folders);
    return the removed paths ([] when the folder does not exist).

    Only the folder's single writer may call this (it holds `mimsa.train.lock.run_lock`): a
    temporary of a write in progress looks the same as a stale one.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        if (_TEMPORARY.match(entry.name) or _FOREIGN_TEMPORARY.match(entry.name)) and (
                entry.is_file() and not entry.is_symlink()):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def disk_full_reason(err: BaseException) -> str:
    """Return the reason ("No space left on device", "Disk quota exceeded") when `err` or an
    error it was raised from reports a full disk or quota; else "".

    Libraries that do their own I/O (safetensors) only keep the OS message in their text, so
    the text is searched too."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL:
            return _DISK_FULL[err.errno]
        found = _DISK_FULL_TEXT.search(str(err))
        if found:
            text = found.group(0)
            return next((v for n, v in _DISK_FULL.items() if text in (v, f"os error {n}")),
                        text)
        err = err.__cause__ or err.__context__
    return ""


def _new_temporary(target: Path) -> Path:
    """Create an empty temporary beside `target` (its folder is created if missing) with the
    mode the target will get; return its path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _fill(tmp: Path, target: Path, write: Writer) -> None:
    """Run `write(tmp)`, give tmp the target's mode and flush it to disk."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = stat.S_IMODE(os.stat(tmp).st_mode)  # as created: 0666 less the umask
    write(tmp)
    os.chmod(tmp, mode)  # `write` may have replaced tmp with a file of its own mode
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def _fsync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable; file systems that cannot are skipped silently."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
