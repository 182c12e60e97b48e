"""train.device: names resolve to torch devices, a GPU that is not there is one line before
any output, the device is recorded, and a run resumes on another device."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from mimsa import config as config_mod
from mimsa.cli import app
from mimsa.errors import ConfigError
from mimsa.train.device import describe_device, module_device, resolve_device
from mimsa.train.run import train_run

runner = CliRunner()
NO_GPU = not torch.cuda.is_available()


def test_names_resolve_to_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("AUTO") == torch.device("cpu" if NO_GPU else "cuda:0")
    assert describe_device(torch.device("cpu")) == "cpu"
    for bad in ("gpu", "cuda:x", "cuda:"):
        with pytest.raises(ConfigError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_a_gpu_that_is_not_there_is_one_line_before_any_output(tmp_path):
    with pytest.raises(ConfigError, match="sees no CUDA GPU; set train.device=auto or cpu"):
        resolve_device("cuda:0")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--out", str(out), "--set", "train.device=cuda",
                                 "--set", "data.synthetic_sizes={train: 64, valid: 32, test: 32}",
                                 "--quiet"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "train.device 'cuda'" in lines[0]
    assert not out.exists()


def test_a_device_name_the_schema_does_not_know_is_refused():
    cfg = config_mod.resolve_config("late_fusion", "synthetic")
    cfg["train"]["device"] = "tpu"
    with pytest.raises(ConfigError, match="train.device"):
        config_mod.check_values(cfg)


def test_metrics_name_the_device_and_a_run_resumes_on_another(tmp_path, tiny_cfg,
                                                              interrupt_run):
    whole = train_run({**tiny_cfg, "train": {**tiny_cfg["train"], "device": "cpu"}},
                      tmp_path / "whole")
    assert whole["device"] == "cpu"
    run_dir = tmp_path / "moved"
    interrupt_run(tiny_cfg, run_dir, epoch=1)  # device: auto (the GPU where there is one)
    resumed = train_run(tiny_cfg, run_dir, resume=True, given={"train.device": "cpu"})
    saved = config_mod.load_yaml(run_dir / "config.yaml")
    assert saved["train"]["device"] == "cpu" and resumed["device"] == "cpu"
    if NO_GPU:  # same device, same numbers: the interruption changed nothing
        assert resumed["test"] == whole["test"]
    assert json.loads((run_dir / "metrics.json").read_text())["device"] == "cpu"


def test_module_device_of_a_module_without_tensors_is_the_cpu():
    assert module_device(torch.nn.Identity()) == torch.device("cpu")
