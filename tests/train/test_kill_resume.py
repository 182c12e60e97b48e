"""A training process killed (SIGKILL) in the middle of a checkpoint write resumes to exactly the
result of an uninterrupted run, and leaves no temporary behind.

The child process is `mimsa train` with one write made to stop half-way (a test seam in the
child only): "resume" writes half of resume.pt's bytes at epoch 2; "checkpoint" stops between
the renames of a later checkpoint, after the new model.safetensors replaced the old one and
before model.json did (the one window where a checkpoint's files disagree). The test kills the
child there, as a power cut or the OOM killer would, then resumes it with `--resume`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from mimsa.cli import app

ARGS = ["train", "-m", "late_fusion", "--seeds", "1111", "--quiet",
        "--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}",
        "--set", "train.epochs=4", "--set", "train.patience=10"]

CHILD = r"""
import io, os, sys, time
from pathlib import Path

mode, ready, args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]


def stop_here():
    ready.write_text(str(os.getpid()))
    time.sleep(300)


if mode == "resume":  # write half of resume.pt at epoch 2, then stop
    import torch

    real_save, calls = torch.save, []

    def save(obj, handle, *a, **k):
        if ".resume.pt." in str(getattr(handle, "name", "")):
            calls.append(1)
            if len(calls) == 2:
                buffer = io.BytesIO()
                real_save(obj, buffer, *a, **k)
                data = buffer.getvalue()
                handle.write(data[: len(data) // 2])
                handle.flush()
                stop_here()
        return real_save(obj, handle, *a, **k)

    torch.save = save
else:  # stop before renaming model.json of the first checkpoint after epoch 1
    real_replace, epochs_saved = os.replace, []

    def replace(src, dst, *a, **k):
        name = Path(dst).name
        if name == "resume.pt":
            epochs_saved.append(1)
        if name == "model.json" and epochs_saved:
            stop_here()
        return real_replace(src, dst, *a, **k)

    os.replace = replace

from mimsa.cli import app

app(args, prog_name="mimsa")
"""


def _kill_mid_write(mode: str, run_dir, tmp_path) -> None:
    """Run the child until it stops in the write, then SIGKILL it."""
    script, ready = tmp_path / "child.py", tmp_path / f"ready-{mode}"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}
    proc = subprocess.Popen([sys.executable, str(script), mode, str(ready), *ARGS,
                             "--out", str(run_dir)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            if proc.poll() is not None:
                pytest.fail(f"the child ended (rc {proc.returncode}) before the write it was "
                            f"to be killed in: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the child did not reach the write in 240 s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _temporaries(run_dir) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")
                  and p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """Return metrics.json of the uninterrupted run."""
    out = tmp_path_factory.mktemp("full") / "run"
    result = CliRunner().invoke(app, [*ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "left"), [("resume", ".resume.pt."),
                                            ("checkpoint", ".model.json.")])
def test_a_run_killed_mid_write_resumes_to_the_uninterrupted_result(
        mode, left, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    _kill_mid_write(mode, run_dir, tmp_path)
    assert not (run_dir / "metrics.json").exists()
    assert any(name.startswith(left) for name in _temporaries(run_dir)), (
        f"the kill did not land in the {mode} write: {sorted(os.listdir(run_dir))}")
    if mode == "checkpoint":  # an interrupted run is not evaluated: one line says so
        result = CliRunner().invoke(app, ["evaluate", str(run_dir)])
        assert result.exit_code == 2 and "is not finished" in result.output
        assert len(result.output.strip().splitlines()) == 1

    result = CliRunner().invoke(app, [*ARGS, "--out", str(run_dir), "--resume"])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "metrics.json").read_text()) == uninterrupted
    assert _temporaries(run_dir) == []
    assert not (run_dir / "resume.pt").exists()
    evaluated = CliRunner().invoke(app, ["evaluate", str(run_dir)])  # checkpoint consistent
    assert evaluated.exit_code == 0, evaluated.output
