"""Atomic writes keep the usual permissions, survive failures whole and clean up after them."""

from __future__ import annotations

import errno
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from mimsa import atomic
from mimsa.atomic import (
    atomic_write,
    atomic_write_files,
    atomic_write_text,
    disk_full_reason,
    remove_stale_temporaries,
)
from mimsa.errors import RunError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def umask():
    """Return set(mask): sets the process umask for the test, restoring it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def test_a_new_file_gets_the_mode_open_would_give(tmp_path, umask):
    umask(0o022)
    atomic_write_text(tmp_path / "a.json", "{}")
    assert _mode(tmp_path / "a.json") == 0o644
    umask(0o077)
    atomic_write_text(tmp_path / "b.json", "{}")
    assert _mode(tmp_path / "b.json") == 0o600


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "metrics.json"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_a_writer_that_makes_its_own_file_still_gets_the_mode(tmp_path, umask):
    umask(0o022)

    def write(tmp):  # like safetensors' save_file: its own 0600 file renamed over tmp
        own = tmp.with_name("own")
        fd = os.open(own, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"data")
        os.close(fd)
        os.replace(own, tmp)

    atomic_write(tmp_path / "model.safetensors", write)
    assert _mode(tmp_path / "model.safetensors") == 0o644


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("previous")

    def write(tmp):
        tmp.write_text("half")
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        atomic_write(target, write)
    assert target.read_text() == "previous" and _temporaries(tmp_path) == []


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "history.jsonl"
    target.write_text("previous")

    def full(path, data):
        with open(path, "wb") as handle:
            handle.write(data[:3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "_write_bytes", full)
    with pytest.raises(RunError) as info:
        atomic_write_text(target, "new content")
    message = str(info.value)
    assert "\n" not in message and str(target) in message and "disk is full" in message
    assert "--resume" in message
    assert target.read_text() == "previous" and _temporaries(tmp_path) == []


def test_disk_full_is_found_in_library_errors_and_their_causes():
    assert disk_full_reason(OSError(errno.ENOSPC, "x")) == "No space left on device"
    assert disk_full_reason(OSError(errno.EDQUOT, "x")) == "Disk quota exceeded"
    # safetensors keeps only the OS text in its own exception type
    text = "Error while serializing: I/O error: No space left on device (os error 28)"
    assert disk_full_reason(Exception(text)) == "No space left on device"
    assert disk_full_reason(Exception("io failed (os error 122)")) == "Disk quota exceeded"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("writer failed") from err
    except RuntimeError as wrapped:
        assert disk_full_reason(wrapped) == "No space left on device"
    assert disk_full_reason(OSError(errno.EACCES, "Permission denied")) == ""
    assert disk_full_reason(ValueError("os error 280")) == ""


def test_several_files_change_together_or_not_at_all(tmp_path):
    weights, spec = tmp_path / "model.safetensors", tmp_path / "model.json"
    weights.write_bytes(b"old weights")
    spec.write_text("old spec")

    def fail(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(RunError, match="model.json: cannot write it, the disk is full"):
        atomic_write_files([(weights, lambda tmp: tmp.write_bytes(b"new weights")),
                            (spec, fail)])
    assert weights.read_bytes() == b"old weights" and spec.read_text() == "old spec"
    assert _temporaries(tmp_path) == []
    atomic_write_files([(weights, lambda tmp: tmp.write_bytes(b"new weights")),
                        (spec, lambda tmp: tmp.write_text("new spec"))])
    assert weights.read_bytes() == b"new weights" and spec.read_text() == "new spec"


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    stale = [".resume.pt.1a2b3c4d.tmp", ".model.json.k_9x2zq1.tmp", ".tmpXttoFa"]
    kept = ["model.json", ".lock", "notes.tmp", ".model.json.tmp", ".tmpdir_long_name"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".resume.pt.1a2b3c4d.tmp").write_text("x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "sub"])
    assert (tmp_path / "sub" / ".resume.pt.1a2b3c4d.tmp").exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_temporaries_of_atomic_write_match_the_stale_pattern(tmp_path):
    seen = []
    atomic_write(tmp_path / "resume.pt", lambda tmp: (seen.append(tmp), tmp.write_text("x")))
    seen[0].write_text("left behind")  # as a killed write would leave it
    assert remove_stale_temporaries(tmp_path) == [seen[0]]


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler, whatever the test process inherited (nohup: SIG_IGN)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_during_a_write_waits_for_it_then_interrupts(tmp_path, python_sigint):
    target = tmp_path / "resume.pt"
    target.write_bytes(b"old")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(b"new, ")
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C in the middle of a save
            time.sleep(0.05)
            handle.write(b"whole")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write)
    assert target.read_bytes() == b"new, whole"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume.pt"]


def test_a_write_without_ctrl_c_leaves_the_handler_as_it_was(tmp_path, python_sigint):
    atomic_write_text(tmp_path / "a.txt", "a")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atomic_write_text(tmp_path / "b.txt", "b")  # an ignored Ctrl-C stays ignored
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
