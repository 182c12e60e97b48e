"""mimsa's own on-disk dataset format: a folder, no pickle anywhere.

  manifest.json        {"format": "mimsa-dataset", "version": 1, "card": {...}, "fields": [...],
                        "vocab_size": int | null, "num_samples": N,
                        "files": {"arrays.safetensors": sha256, "samples.json": sha256}}
  arrays.safetensors   labels [N] float32; for each sequence field F (text_feats, audio,
                       vision): F.data [sum T, D] float32 and F.offsets [N + 1] int64; for
                       text_ids: text_ids.data [sum T] int64 and text_ids.offsets [N + 1]
  samples.json         {"ids": [...], "splits": [...], "text": [...] or null}

Sample i of F is F.data[F.offsets[i]:F.offsets[i + 1]]. `save_dataset` writes into a
temporary folder beside the target and renames it into place, so a reader never sees a half
written dataset. `load_dataset_dir` checks every file's sha256 before parsing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mimsa.data.dataset import (
    SEQUENCE_FIELDS,
    SPLITS,
    DataError,
    DatasetCard,
    MultimodalDataset,
    NanPolicy,
)

FORMAT = "mimsa-dataset"
VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
SAMPLES = "samples.json"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_dataset_dir(path: Path) -> bool:
    """Return True when `path` is a folder written by `save_dataset`."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_dataset(ds: MultimodalDataset, directory: str | Path, overwrite: bool = False) -> Path:
    """Write `ds` to the folder `directory` atomically and return its path.

    An existing target raises DataError unless `overwrite` is True, in which case it is
    replaced only after the new folder is complete.
    """
    from safetensors.numpy import save_file

    target = Path(directory)
    if target.exists() and not overwrite:
        raise DataError(f"{target}: already exists; choose another folder or pass overwrite "
                        f"(--overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # unlike mkdtemp, honours the umask, so the result has ordinary permissions
    try:
        save_file(_arrays(ds), str(tmp / ARRAYS))
        samples = {"ids": ds.ids, "splits": ds.splits, "text": ds.text}
        (tmp / SAMPLES).write_text(json.dumps(samples, ensure_ascii=False), encoding="utf-8")
        fields = [f for f in ("text", "text_ids", *SEQUENCE_FIELDS)
                  if getattr(ds, f) is not None]
        manifest = {"format": FORMAT, "version": VERSION, "card": ds.card.to_dict(),
                    "fields": fields, "vocab_size": ds.vocab_size, "num_samples": len(ds),
                    "files": {name: sha256_file(tmp / name) for name in (ARRAYS, SAMPLES)}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                    encoding="utf-8")
        _fix_permissions(tmp)
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_dataset_dir(directory: str | Path, nan_policy: NanPolicy = "error"
                     ) -> MultimodalDataset:
    """Return the dataset stored in a folder written by `save_dataset` (checksums verified)."""
    from safetensors.numpy import load_file

    folder = Path(directory)
    manifest = _read_manifest(folder)
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {ARRAYS, SAMPLES}:
        raise DataError(f"{folder / MANIFEST}: key 'files' must list {ARRAYS} and {SAMPLES} "
                        f"with their sha256")
    for name, expected in files.items():
        file = folder / name
        if not file.is_file():
            raise DataError(f"{file}: file not found (listed in {MANIFEST})")
        actual = sha256_file(file)
        if actual != expected:
            raise DataError(f"{file}: sha256 {actual[:12]}... does not match {MANIFEST} "
                            f"({str(expected)[:12]}...); the file is corrupt or was edited")
    try:
        arrays = load_file(str(folder / ARRAYS))
    except Exception as exc:  # safetensors raises its own error types
        raise DataError(f"{folder / ARRAYS}: unreadable safetensors file ({exc})") from exc
    try:
        samples = json.loads((folder / SAMPLES).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / SAMPLES}: unreadable JSON ({exc})") from exc
    n = len(_require(samples, "ids", folder / SAMPLES))
    fields = _require(manifest, "fields", folder / MANIFEST)
    values: dict[str, Any] = {}
    for name in fields:
        if name == "text":
            values["text"] = _require(samples, "text", folder / SAMPLES)
        elif name in ("text_ids", *SEQUENCE_FIELDS):
            values[name] = _unflatten(arrays, name, n, folder / ARRAYS)
        else:
            raise DataError(f"{folder / MANIFEST}: unknown field '{name}' in 'fields'")
    card = _card(_require(manifest, "card", folder / MANIFEST), folder / MANIFEST)
    splits = _require(samples, "splits", folder / SAMPLES)
    present = tuple(s for s in SPLITS if s in set(splits))
    return MultimodalDataset(card=card, ids=samples["ids"], splits=splits,
                             labels=_require(arrays, "labels", folder / ARRAYS),
                             vocab_size=manifest.get("vocab_size"), nan_policy=nan_policy,
                             require_splits=present, **values)


def _arrays(ds: MultimodalDataset) -> dict[str, np.ndarray]:
    """Return the flat arrays + offsets that represent `ds` in arrays.safetensors."""
    out = {"labels": np.ascontiguousarray(ds.labels, dtype=np.float32)}
    for name, dtype in (("text_ids", np.int64), *((f, np.float32) for f in SEQUENCE_FIELDS)):
        seqs = getattr(ds, name)
        if seqs is None:
            continue
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        data = np.concatenate([np.asarray(s, dtype=dtype) for s in seqs], axis=0)
        out[f"{name}.data"] = np.ascontiguousarray(data)
        out[f"{name}.offsets"] = offsets
    return out


def _unflatten(arrays: dict[str, np.ndarray], name: str, n: int, file: Path
               ) -> list[np.ndarray]:
    """Return the per-sample arrays of `name` cut from its flat data by its offsets."""
    data = _require(arrays, f"{name}.data", file)
    offsets = _require(arrays, f"{name}.offsets", file)
    if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != len(data) or (
            np.diff(offsets) < 0).any():
        raise DataError(f"{file}: '{name}.offsets' does not describe {n} samples of "
                        f"'{name}.data' ({len(data)} rows)")
    return [data[offsets[i]: offsets[i + 1]] for i in range(n)]


def _read_manifest(folder: Path) -> dict[str, Any]:
    """Return the parsed manifest.json of a dataset folder."""
    file = folder / MANIFEST
    if not file.is_file():
        raise DataError(f"{file}: file not found; not a mimsa dataset folder")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: unreadable JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{file}: key 'format' is not '{FORMAT}'")
    if manifest.get("version") != VERSION:
        raise DataError(f"{file}: format version {manifest.get('version')} is not supported "
                        f"(this mimsa reads version {VERSION})")
    return manifest


def _card(data: Any, file: Path) -> DatasetCard:
    """Return the DatasetCard stored in a manifest."""
    if not isinstance(data, dict):
        raise DataError(f"{file}: key 'card' is not an object")
    known = {"name", "source", "description", "provenance", "dims", "split_sizes",
             "label_range", "notes"}
    try:
        kwargs = {k: v for k, v in data.items() if k in known}
        if "label_range" in kwargs:
            lo, hi = kwargs["label_range"]
            kwargs["label_range"] = (float(lo), float(hi))
        return DatasetCard(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{file}: key 'card' is malformed ({exc})") from exc


def _require(mapping: Any, key: str, file: Path) -> Any:
    """Return `mapping[key]`; a missing key raises DataError naming the file."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise DataError(f"{file}: missing key '{key}'")
    return mapping[key]


def _fix_permissions(folder: Path) -> None:
    """Give the files in `folder` the mode the umask allows (some writers use 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _replace(tmp: Path, target: Path) -> None:
    """Move the finished folder `tmp` to `target`, replacing an existing target last."""
    if not target.exists():
        os.replace(tmp, target)
        return
    backup = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(backup, target)
        raise
    if backup.is_dir():
        shutil.rmtree(backup, ignore_errors=True)
    else:
        backup.unlink(missing_ok=True)
