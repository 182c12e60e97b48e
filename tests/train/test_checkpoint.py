"""Checkpoints: frozen pretrained encoders are left out and reloaded from their folder; damaged,
edited or foreign files are refused in one line; a full disk keeps the previous checkpoint."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mimsa import config as config_mod
from mimsa.data.dataset import DatasetCard, MultimodalDataset
from mimsa.data.store import save_dataset
from mimsa.eval.evaluate import evaluate_run
from mimsa.train import checkpoint as checkpoint_mod
from mimsa.train.checkpoint import (
    OBJECTIVE_WEIGHTS,
    RESUME,
    SPEC,
    WEIGHTS,
    load_model_state,
    load_objective_state,
    load_resume_state,
    read_spec,
    save_checkpoint,
    save_resume_state,
)
from mimsa.train.inputs import DataChangedWarning, data_fingerprint
from mimsa.train.run import RunError, load_run, train_run

WORDS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]",
         *"the movie was really good bad boring fun not".split()]


def _save_tiny_bert(folder, seed: int) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(folder)
    transformers.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(folder)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """Return (config of a frozen-encoder text_only run on a tiny text+audio dataset, encoder
    folder)."""
    monkeypatch.setenv("MIMSA_CACHE", str(tmp_path / "cache"))
    encoder_dir = tmp_path / "bert"
    _save_tiny_bert(encoder_dir, seed=0)
    rng = np.random.default_rng(0)
    n = 48
    words = WORDS[5:]
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 7))) for _ in range(n)]
    labels = [3.0 * float("good" in t) - 1.5 * float("bad" in t) for t in texts]
    dataset = MultimodalDataset(
        card=DatasetCard(name="tiny-text", source="test"), ids=[f"s{i}" for i in range(n)],
        splits=["train"] * 32 + ["valid"] * 8 + ["test"] * 8, labels=labels, text=texts,
        audio=[rng.standard_normal((3, 4)).astype(np.float32) for _ in range(n)])
    save_dataset(dataset, tmp_path / "data")
    cfg = config_mod.resolve_config("text_only", str(tmp_path / "data"), overrides=[
        f"encoder.name={encoder_dir}", "encoder.freeze=true", "encoder.pooling=mean",
        "encoder.max_length=8", "train.epochs=3", "data.batch_size=16"])
    return cfg, encoder_dir


def test_frozen_encoder_is_left_out_and_reloaded(setup, tmp_path):
    cfg, encoder_dir = setup
    metrics = train_run(cfg, tmp_path / "run")
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert saved and not any(".pretrained." in k for k in saved)
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    (entry,) = spec["frozen_encoders"].values()
    assert entry["weights"] == str(encoder_dir) and len(entry["sha256"]) == 64
    assert evaluate_run(tmp_path / "run")["test"] == pytest.approx(metrics["test"])

    _save_tiny_bert(encoder_dir, seed=1)  # the folder now holds other weights
    with pytest.raises(RunError, match="the encoder built now has other weights"):
        load_run(tmp_path / "run")


def test_fine_tuned_encoder_is_saved(setup, tmp_path):
    cfg, _ = setup
    cfg["encoder"]["freeze"] = False
    train_run(cfg, tmp_path / "run")
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert any(".pretrained." in k for k in saved)
    assert json.loads((tmp_path / "run" / "model.json").read_text())["frozen_encoders"] == {}


def test_frozen_run_resumes_from_a_state_without_the_encoder(setup, tmp_path, interrupt_run):
    cfg, _ = setup
    full = train_run(cfg, tmp_path / "full")
    interrupt_run(cfg, tmp_path / "cut")
    state = torch.load(tmp_path / "cut" / "resume.pt", weights_only=True)
    assert not any(".pretrained." in k for k in state["model"])
    with pytest.raises(RunError, match="interrupted run"):
        train_run(cfg, tmp_path / "cut")
    assert train_run(cfg, tmp_path / "cut", resume=True) == full


def test_a_frozen_run_saved_with_the_encoder_inside_still_loads(setup, tmp_path):
    from safetensors.torch import save_file

    cfg, _ = setup
    train_run(cfg, tmp_path / "run")
    shutil.copytree(tmp_path / "run", tmp_path / "old")
    _, model, _, _ = load_run(tmp_path / "run")
    full = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert any(".pretrained." in k for k in full)
    save_file(full, str(tmp_path / "old" / "model.safetensors"))  # as older versions wrote it
    spec = json.loads((tmp_path / "old" / "model.json").read_text())
    del spec["frozen_encoders"]
    del spec["weights_sha256"]  # older versions recorded no digest either
    (tmp_path / "old" / "model.json").write_text(json.dumps(spec))
    assert evaluate_run(tmp_path / "old") == evaluate_run(tmp_path / "run")


# -- damaged, edited and foreign files; a full disk -------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Return the folder of a finished tiny late_fusion run (copy it before changing it)."""
    cfg = config_mod.resolve_config("late_fusion", "synthetic")
    cfg["data"]["synthetic_sizes"] = {"train": 64, "valid": 32, "test": 32}
    cfg["train"]["epochs"] = 2
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train_run(cfg, run_dir)
    return run_dir


@pytest.fixture
def run(finished, tmp_path):
    """Return a fresh copy of the finished run."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def _one_line(err: pytest.ExceptionInfo, path) -> str:
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


def _edit_spec(run_dir, edit) -> None:
    spec = json.loads((run_dir / SPEC).read_text())
    edit(spec)
    (run_dir / SPEC).write_text(json.dumps(spec))


def test_model_json_records_the_weights_digest_and_the_data_fingerprint(run):
    spec = json.loads((run / SPEC).read_text())
    assert spec["weights_sha256"] == hashlib.sha256((run / WEIGHTS).read_bytes()).hexdigest()
    if "data_fingerprint" not in spec:
        pytest.xfail("train_run does not record data_fingerprint in model.json yet")
    _, _, dataset, input_spec = load_run(run)
    assert spec["data_fingerprint"] == data_fingerprint(dataset, input_spec.modalities)


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda data: b"", "the file is empty (0 bytes)"),
    (lambda data: data[: len(data) // 2], "not a readable safetensors file, truncated"),
    (lambda data: b"this is not a safetensors file", "not a readable safetensors file"),
])
def test_damaged_weights_are_one_line_naming_the_file(run, damage, expected):
    path = run / WEIGHTS
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RunError) as err:
        load_run(run)
    assert expected in _one_line(err, path)
    assert "re-run training" in str(err.value)


def test_weights_from_elsewhere_are_refused(run):
    state = load_file(str(run / WEIGHTS))
    save_file({k: v + 1 for k, v in state.items()}, str(run / WEIGHTS))  # a valid other file
    with pytest.raises(RunError) as err:
        load_run(run)
    assert "its sha256 differs from the one in model.json" in _one_line(err, run / WEIGHTS)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda path: path.write_text('{"model": "late_fusion", '), "not valid JSON"),
    (lambda path: path.write_bytes(b"\xff\xfe\x00garbage"), "not a text file"),
    (lambda path: path.write_text("[1, 2]"), "holds a JSON list, not an object"),
    (lambda path: _edit_spec(path.parent, lambda s: s.pop("inputs")),
     "lacks the key 'inputs'"),
    (lambda path: _edit_spec(path.parent, lambda s: s["inputs"].pop("dims")),
     "lacks the key 'inputs.dims'"),
    (lambda path: _edit_spec(path.parent, lambda s: s["inputs"]["dims"].update(audio="74")),
     "key 'inputs.dims' must map fields to positive integers"),
])
def test_a_broken_model_json_is_one_line_naming_it(run, edit, expected):
    edit(run / SPEC)
    with pytest.raises(RunError) as err:
        load_run(run)
    assert expected in _one_line(err, run / SPEC)


def test_a_model_json_edited_to_other_dims_is_refused(run):
    _edit_spec(run, lambda s: s["inputs"]["dims"].update(audio=80))
    with pytest.raises(RunError) as err:
        load_run(run)
    assert "trained on audio of 80 dims, the data now give 74 (dataset synthetic)" in (
        _one_line(err, run))


def test_data_of_another_dimension_are_refused_before_the_model_is_built(run, monkeypatch):
    from mimsa.train import run as run_mod

    original = run_mod.load_dataset

    def wider_audio(*args, **kwargs):
        dataset = original(*args, **kwargs)
        dataset.audio = [np.concatenate([a, a[:, :1]], axis=1) for a in dataset.audio]
        return dataset

    monkeypatch.setattr(run_mod, "load_dataset", wider_audio)
    monkeypatch.setattr(run_mod, "build_model", lambda *a: pytest.fail("model built"))
    with pytest.raises(RunError) as err:
        load_run(run)
    assert "trained on audio of 74 dims, the data now give 75" in _one_line(err, run)


def test_other_data_of_the_same_shape_are_a_one_line_warning(run, monkeypatch):
    from mimsa.train import run as run_mod

    _, _, dataset, spec = load_run(run)
    _edit_spec(run, lambda s: s.update(data_fingerprint=data_fingerprint(dataset,
                                                                         spec.modalities)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_run(run)  # the same data: silent
    original = run_mod.load_dataset

    def relabelled(*args, **kwargs):
        dataset = original(*args, **kwargs)
        dataset.labels = np.clip(dataset.labels + 0.5, -3, 3).astype(np.float32)
        return dataset

    monkeypatch.setattr(run_mod, "load_dataset", relabelled)
    with pytest.warns(DataChangedWarning) as caught:
        load_run(run)
    (warning,) = caught
    assert "\n" not in str(warning.message)
    assert "the data differ from those the run was trained on" in str(warning.message)


def test_weights_that_do_not_fit_name_the_first_tensor_in_one_line():
    state = torch.nn.Linear(4, 3).state_dict()
    with pytest.raises(RunError) as err:
        load_model_state(torch.nn.Linear(5, 3), state, {}, "RUN")
    message = _one_line(err, "RUN")
    assert "weight has shape [3, 4] in the checkpoint but [3, 5] in the model" in message
    assert "size mismatch" not in message


def test_a_run_saved_before_digests_and_fingerprints_still_loads(run):
    expected = evaluate_run(run)

    def old_style(spec):
        for key in ("weights_sha256", "objectives_sha256", "data_fingerprint"):
            spec.pop(key, None)
        spec["inputs"].pop("provenance", None)

    _edit_spec(run, old_style)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate_run(run) == expected


def test_damaged_objective_weights_are_one_line(tmp_path):
    spec = {"model": "m", "inputs": {"modalities": "a", "dims": {"audio": 4}}}
    save_checkpoint(tmp_path, {"w": torch.ones(3)}, spec, {"critic.w": torch.ones(2, 2)})
    saved = read_spec(tmp_path)
    assert load_objective_state(tmp_path, saved)["critic.w"].shape == (2, 2)
    path = tmp_path / OBJECTIVE_WEIGHTS
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(RunError) as err:
        load_objective_state(tmp_path, saved)
    assert "not a readable safetensors file" in _one_line(err, path)
    path.unlink()
    with pytest.raises(RunError, match="no objectives.safetensors"):
        load_objective_state(tmp_path, saved)


@pytest.mark.parametrize("damage", [lambda data: b"", lambda data: data[: len(data) // 3],
                                    lambda data: b"PK\x03\x04 not a zip"])
def test_a_damaged_resume_state_is_one_line(tmp_path, damage):
    save_resume_state(tmp_path, {"epoch": 2, "model": {"w": torch.ones(3)}})
    assert load_resume_state(tmp_path)["epoch"] == 2
    path = tmp_path / RESUME
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RunError) as err:
        load_resume_state(tmp_path)
    assert "delete it to restart the run from scratch" in _one_line(err, path)


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    spec = {"model": "m", "inputs": {"modalities": "a", "dims": {"audio": 4}}}
    save_checkpoint(tmp_path, {"w": torch.ones(3)}, spec, {"critic.w": torch.ones(2)})
    save_resume_state(tmp_path, {"epoch": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_writer = checkpoint_mod._bytes_writer

    def full_at_model_json(data):
        if not data.startswith(b"{"):
            return real_writer(data)

        def write(tmp):
            tmp.write_bytes(data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return write

    monkeypatch.setattr(checkpoint_mod, "_bytes_writer", full_at_model_json)
    with pytest.raises(RunError) as err:
        save_checkpoint(tmp_path, {"w": torch.zeros(3)}, spec, {"critic.w": torch.zeros(2)})
    assert "the disk is full" in _one_line(err, tmp_path / SPEC)

    def full(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RunError) as err:
        save_resume_state(tmp_path, {"epoch": 2})
    assert "the disk is full" in _one_line(err, tmp_path / RESUME)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary


FULL_DISK = """
import json, sys, torch
from pathlib import Path
from mimsa.errors import RunError
from mimsa.train.checkpoint import load_checkpoint, load_resume_state, save_checkpoint
from mimsa.train.checkpoint import save_resume_state
run = Path(sys.argv[1])
spec = {"model": "m", "inputs": {"modalities": "a", "dims": {"audio": 4}}}
save_checkpoint(run, {"w": torch.ones(1000)}, spec)
save_resume_state(run, {"epoch": 1, "w": torch.ones(1000)})
before = {p.name: p.read_bytes() for p in run.iterdir()}
errors = []
for save in (lambda: save_checkpoint(run, {"w": torch.ones(300_000)}, spec),
             lambda: save_resume_state(run, {"epoch": 2, "w": torch.ones(300_000)})):
    try:
        save()
        errors.append(None)
    except RunError as err:
        errors.append(str(err))
after = {p.name: p.read_bytes() for p in run.iterdir()}
print(json.dumps({"errors": errors, "intact": before == after,
                  "loads": load_checkpoint(run)[0]["w"].numel() == 1000
                  and load_resume_state(run)["epoch"] == 1}))
"""


@pytest.mark.slow
def test_a_real_full_disk_keeps_the_previous_checkpoint(tmp_path):
    """On a 512 KiB tmpfs (in a private user and mount namespace, where Linux allows one)."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) to mount a small tmpfs")
    run_dir = tmp_path / "small"
    run_dir.mkdir()
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=512k",
                            "tmpfs", str(run_dir)], capture_output=True)
    if probe.returncode:
        pytest.skip("this system does not let an unprivileged namespace mount a tmpfs")
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c",
         'mount -t tmpfs -o size=512k tmpfs "$1" && exec "$2" "$3" "$1"', "sh",
         str(run_dir), sys.executable, str(script)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    first, second = report["errors"]
    assert first and "model.safetensors: cannot write it, the disk is full" in first
    assert "No space left on device" in first and "\n" not in first
    assert second and "resume.pt: cannot write it, the disk is full" in second
    assert report["intact"] and report["loads"]
