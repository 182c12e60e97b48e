"""The CLI's error contract: a `MimsaError` is one red line and exit code 2; any other
exception is a bug in mimsa, shown with one line saying so and the traceback (exit code 1);
--debug shows the traceback of every error."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from mimsa import cli
from mimsa.errors import ConfigError

runner = CliRunner()


def _boom(*args, **kwargs):
    raise ZeroDivisionError("simulated internal error")


def test_an_internal_error_is_reported_as_a_bug_with_its_traceback(monkeypatch):
    monkeypatch.setattr("mimsa.train.run.train_run", _boom)
    result = runner.invoke(cli.app, ["train", "--quiet", "--out", "unused"])
    assert result.exit_code == 1
    first = result.output.strip().splitlines()[0]
    assert "this is a bug in mimsa" in first and "report it" in first
    assert "Traceback" in result.output and "ZeroDivisionError" in result.output


def test_a_user_error_is_one_line_and_debug_adds_the_traceback(tmp_path):
    args = ["train", "--set", "train.epochs=abc", "--out", str(tmp_path / "r")]
    plain = runner.invoke(cli.app, args)
    assert plain.exit_code == 2 and "Traceback" not in plain.output
    assert plain.output.strip().count("\n") == 0 and "train.epochs='abc'" in plain.output
    debug = runner.invoke(cli.app, ["--debug", *args])
    assert debug.exit_code == 2 and "Traceback" in debug.output
    assert "train.epochs='abc'" in debug.output
    assert not (tmp_path / "r").exists()


def test_the_model_and_objective_options_named_in_the_issue(tmp_path):
    for setting, named in (("objectives.x=1", "objectives.x"),
                           ("objectives.ba.detach_targte=true", "detach_targte"),
                           ("model.hidden=abc", "model.hidden='abc'")):
        result = runner.invoke(cli.app, ["train", "-m", "late_fusion", "--set", setting,
                                         "--out", str(tmp_path / "r")])
        assert result.exit_code == 2 and named in result.output, result.output
        assert result.output.strip().count("\n") == 0


def test_mimsa_config_prints_values_and_their_sources(tmp_path):
    result = runner.invoke(cli.app, ["config", "-m", "mmim", "-d", "mosi",
                                     "--set", "train.lr=0.01", "--set", "penalty.kind=js"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "lr: 0.01" in text and "# --set" in text and "# preset mmim_mosi.yaml" in text
    assert "length_bucketing: true" in text and "# preset mosi.yaml" in text
    assert "penalty.kind=js rewrites these sections" in text and "dependency_js" in text
    bad = runner.invoke(cli.app, ["config", "--set", "objectives.cpc.tau=1"])
    assert bad.exit_code == 2 and "no option tau" in bad.output


def test_objectives_are_listed_with_terms_and_options():
    result = runner.invoke(cli.app, ["objectives"])
    assert result.exit_code == 0 and "terms: nce" in result.output
    assert "detach_target=False" in result.output


def test_importing_mimsa_cli_leaves_the_environment_alone():
    code = ("import os; before = dict(os.environ); import mimsa.cli, mimsa.train.run; "
            "assert dict(os.environ) == before, set(os.environ) ^ set(before)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_config_error_is_the_family():
    assert issubclass(ConfigError, cli.MimsaError)


def test_usage_errors_of_the_console_script_are_one_line(tmp_path):
    for argv, named in ((["nosuch"], "No such command 'nosuch'"),
                        (["train", "--seeds", "abc"], "--seeds"),
                        (["train", "--bogus"], "--bogus")):
        done = subprocess.run([sys.executable, "-m", "mimsa.cli", *argv], capture_output=True,
                              text=True, cwd=tmp_path)
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith("error:") and named in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_reviewed_hostile_settings_are_one_line(tmp_path):
    tiny = ["--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}", "--quiet"]
    for extra, named in ((["--set", "seed=-5"], "seed=-5"),
                         (["--seeds", "1", "1"], "seed 1 is given twice"),
                         (["-m", "mmim", "--set", "model.dropout=1.5"], "model.dropout=1.5"),
                         (["--set", "objectives.cpc={}"], "no stage uses its term"),
                         (["--set", "encoder.lr=0.001"], "pretrained text encoders only"),
                         (["--config", str(_dup(tmp_path))], "appears twice")):
        result = runner.invoke(cli.app, ["train", *tiny, *extra, "--out", str(tmp_path / "r")])
        assert result.exit_code == 2 and named in result.output, result.output
        assert result.output.strip().count("\n") == 0
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    result = runner.invoke(cli.app, ["train", *tiny, "--out", str(folder)])
    assert result.exit_code == 2 and "already holds other files" in result.output
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def _dup(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  epochs: 3\n  epochs: 5\n")
    return path


def _interrupted_save(*args, **kwargs):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None


def test_an_error_raised_while_handling_ctrl_c_is_an_interruption(monkeypatch):
    monkeypatch.setattr("mimsa.train.run.train_run", _interrupted_save)
    result = runner.invoke(cli.app, ["train", "--quiet", "--out", "unused"])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "bug" not in result.output
