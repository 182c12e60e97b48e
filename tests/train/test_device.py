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
from mimsa.train import trainer as trainer_mod
from mimsa.train.device import describe_device, module_device, resolve_device
from mimsa.train.run import train_run

runner = CliRunner()
NO_GPU = not torch.cuda.is_available()


def test_names_resolve_to_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu" if NO_GPU else "cuda:0")
    assert describe_device(torch.device("cpu")) == "cpu"
    for bad in ("gpu", "cuda:x", "cuda:", "AUTO"):
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


@pytest.mark.parametrize("value", ["tpu", "cuda:x", "CUDA", None, 3])
def test_a_device_name_the_schema_does_not_know_is_refused(value):
    cfg = config_mod.resolve_config("late_fusion", "synthetic")
    cfg["train"]["device"] = value
    with pytest.raises(ConfigError, match="train.device") as err:
        config_mod.check_values(cfg)
    if isinstance(value, str):
        assert "use auto, cpu, cuda or cuda:N" in str(err.value)


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_a_sweep_asking_for_a_missing_gpu_is_refused_before_its_first_run(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("models: [late_fusion]\ndatasets: [synthetic]\nseeds: [1, 2]\nsets:\n"
                    "  - train.device=cuda\n  - train.epochs=1\n", encoding="utf-8")
    result = runner.invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "out")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "sees no CUDA GPU" in lines[0], \
        result.output
    assert not (tmp_path / "out").exists()


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
    assert json.loads((run_dir / "metrics.json").read_text())["device"] == resumed["device"]
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [row["device"] for row in rows][1:] == ["cpu", "cpu"]  # epoch 1 ran on auto's pick


def test_the_resume_state_holds_cpu_tensors_only():
    state = {"state": {0: {"exp_avg": torch.ones(2), "step": torch.tensor(3.0)}},
             "param_groups": [{"lr": 0.1, "params": [0]}]}
    moved = trainer_mod._to_cpu(state)
    assert moved["param_groups"] == state["param_groups"]
    assert all(t.device.type == "cpu" for t in moved["state"][0].values())


def test_module_device_of_a_module_without_tensors_is_the_cpu():
    assert module_device(torch.nn.Identity()) == torch.device("cpu")
