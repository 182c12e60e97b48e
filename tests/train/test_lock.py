"""One run directory, one writer: the run lock refuses a second writer and outlives no process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from mimsa.cli import app
from mimsa.errors import RunError
from mimsa.train.lock import LOCK, run_lock

TINY = ["--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}",
        "--set", "train.epochs=2", "--quiet"]

HOLDER = """
import sys, time
from mimsa.train.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Return start(run_dir) -> Popen: a process that holds run_lock(run_dir) until killed."""
    started: list[subprocess.Popen] = []

    def start(run_dir) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)],
                                stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(tmp_path):
    with run_lock(tmp_path / "run") as run_dir:
        assert run_dir == tmp_path / "run" and (run_dir / LOCK).is_file()
        with pytest.raises(RunError) as info, run_lock(tmp_path / "run"):
            pass
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "run") in message
    assert f"being written by another mimsa process (pid {os.getpid()})" in message
    assert "choose another --out" in message
    with run_lock(tmp_path / "run"):  # released at the end of the block
        pass
    assert (tmp_path / "run" / LOCK).read_text() == ""  # names no finished process


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError), run_lock(tmp_path):
        raise KeyError("boom")
    with run_lock(tmp_path):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, holder):
    proc = holder(tmp_path / "run")
    with pytest.raises(RunError, match=rf"another mimsa process \(pid {proc.pid}\)"), \
            run_lock(tmp_path / "run"):
        pass
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    with run_lock(tmp_path / "run"):  # the OS released the dead holder's lock
        assert (tmp_path / "run" / LOCK).read_text().split()[0] == str(os.getpid())


def test_an_unwritable_place_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="cannot take the run's write lock") as info, \
            run_lock(tmp_path / "file" / "run"):
        pass
    assert "\n" not in str(info.value)


def test_train_refuses_a_run_directory_another_process_writes(tmp_path, holder):
    run_dir = tmp_path / "run"
    proc = holder(run_dir)
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["train", "--out", str(run_dir), *TINY])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert f"being written by another mimsa process (pid {proc.pid})" in lines[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK]  # nothing written
    assert time.perf_counter() - started < 60  # refused, not waiting
