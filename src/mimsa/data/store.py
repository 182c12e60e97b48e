"""mimsa's own on-disk dataset format: a folder, no pickle anywhere.

  manifest.json        {"format": "mimsa-dataset", "version": 1, "card": {...}, "fields": [...],
                        "vocab_size": int | null, "num_samples": N,
                        "files": {"arrays.safetensors": sha256, "samples.json": sha256}}
  arrays.safetensors   labels [N] float32; for each sequence field F (text_feats, audio,
                       vision): F.data [sum T, D] float32 and F.offsets [N + 1] int64; for
                       text_ids: text_ids.data [sum T] int64 and text_ids.offsets [N + 1]
  samples.json         {"ids": [...], "splits": [...], "text": [...] or null}

Sample i of F is F.data[F.offsets[i]:F.offsets[i + 1]]. `save_dataset` writes into a
temporary folder `.<name>.tmp-<pid>-<hex>` beside the target and renames it into place, so a
reader never sees a half written dataset; a temporary (or `.<name>.old-<pid>-<hex>` backup)
left by a killed writer whose process is gone is removed by the next save to the same target
(a backup is put back first when the target is missing). A failed save leaves nothing behind,
not even the parent folders it created. `load_dataset_dir` checks every file's sha256 before
parsing it; its errors name the folder it was given (and the converted-from source second).
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
    CrossSplitPolicy,
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


def check_target(directory: str | Path, overwrite: bool = False) -> Path:
    """Return `directory` as a Path when a dataset may be written there, else raise DataError.

    Refused: an existing file; a path under a file; an existing folder without `overwrite`;
    with `overwrite`, an existing folder that is neither empty nor a mimsa dataset folder
    (so that --overwrite never deletes anything else).
    """
    target = Path(directory)
    if target.name in ("", ".", ".."):
        raise DataError(f"{target}: name a new folder for the dataset (e.g. {target}/mydata)")
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise DataError(f"{target}: {parent} is a file, not a folder; choose an output "
                            f"folder whose parents are folders")
        if parent.exists():
            break
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise DataError(f"{target}: is a file; the output must be a folder (choose a new "
                            f"folder name)")
        if not overwrite:
            raise DataError(f"{target}: already exists; choose another folder or pass "
                            f"overwrite (--overwrite) to replace it")
        if any(target.iterdir()) and not is_dataset_dir(target):
            raise DataError(f"{target}: exists and is not a mimsa dataset folder; --overwrite "
                            f"only replaces a dataset written by mimsa, so choose another "
                            f"folder")
    return target


def prepare_target(directory: str | Path, overwrite: bool = False) -> Path:
    """Return `directory` after removing leftovers of killed saves to it (`clean_stale`) and
    checking that a dataset may be written there (`check_target`); errors are DataError."""
    target = Path(directory)
    try:
        clean_stale(target)
    except OSError as exc:
        raise DataError(f"{target}: cannot remove what an interrupted save left beside it "
                        f"({_describe(exc)})") from exc
    return check_target(target, overwrite)


def save_dataset(ds: MultimodalDataset, directory: str | Path, overwrite: bool = False) -> Path:
    """Write `ds` to the folder `directory` atomically and return its path.

    An existing target raises DataError unless `overwrite` is True, in which case a mimsa
    dataset folder (or an empty folder) is replaced only after the new folder is complete;
    see `check_target` for the other refusals. Leftovers of a killed earlier save to the same
    target are removed first. Any failure (including OSError, raised as DataError naming the
    target) leaves nothing behind.
    """
    from safetensors.numpy import save_file

    target = prepare_target(directory, overwrite)
    created = _missing_parents(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()  # unlike mkdtemp, honours the umask, so the result has ordinary permissions
    except OSError as exc:
        _remove_empty(created)
        raise DataError(f"{target}: cannot create the output folder ({_describe(exc)})") from exc
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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        if isinstance(exc, OSError):
            raise DataError(f"{target}: cannot write the dataset ({_describe(exc)})") from exc
        raise
    return target


def clean_stale(target: Path) -> list[Path]:
    """Remove what killed saves to `target` left beside it; return the paths removed.

    Temporaries `.<name>.tmp-<pid>-*` and backups `.<name>.old-<pid>-*` whose process is gone
    are removed; when `target` itself is missing, the newest such backup is moved back first
    (a save killed between its two renames). Leftovers of a live process are kept.
    """
    removed: list[Path] = []
    parent = target.parent
    if target.name in ("", ".", "..") or not parent.is_dir():
        return removed
    backups = sorted(_stale(parent, f".{target.name}.old-"), key=_mtime, reverse=True)
    if backups and not target.exists():
        os.replace(backups.pop(0), target)
    for path in [*_stale(parent, f".{target.name}.tmp-"), *backups]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _stale(parent: Path, prefix: str) -> list[Path]:
    """Return the entries of `parent` named `<prefix><pid>-<hex>` whose process is gone."""
    out = []
    for path in parent.glob(f"{glob_escape(prefix)}*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            out.append(path)
    return out


def glob_escape(text: str) -> str:
    """Return `text` with the glob characters * ? [ escaped."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _pid_alive(pid: int) -> bool:
    """Return True when a process `pid` exists on this machine (or cannot be checked)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _mtime(path: Path) -> float:
    """Return the modification time of `path` (0 when it vanished)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _missing_parents(target: Path) -> list[Path]:
    """Return the parent folders of `target` that do not exist yet, deepest first."""
    return [p for p in target.parents if not p.exists()]


def _remove_empty(folders: list[Path]) -> None:
    """Remove the given folders (deepest first) where they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _describe(exc: OSError) -> str:
    """Return an OSError as one short line (its strerror and file when known)."""
    text = exc.strerror or str(exc)
    if exc.filename:
        text += f": {exc.filename}"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def load_dataset_dir(directory: str | Path, nan_policy: NanPolicy = "error",
                     cross_split_duplicates: CrossSplitPolicy = "error") -> MultimodalDataset:
    """Return the dataset stored in a folder written by `save_dataset` (checksums verified).

    Every error is a one-line DataError naming a file in `directory`, or `directory` itself
    followed by the source the dataset was converted from.
    """
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
        raise DataError(f"{folder / ARRAYS}: unreadable safetensors file "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                        ) from exc
    try:
        samples = json.loads((folder / SAMPLES).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / SAMPLES}: unreadable JSON ({exc})") from exc
    ids = _require_list(samples, "ids", folder / SAMPLES)
    splits = _require_list(samples, "splits", folder / SAMPLES)
    n = len(ids)
    fields = _require_list(manifest, "fields", folder / MANIFEST)
    values: dict[str, Any] = {}
    for name in fields:
        if name == "text":
            values["text"] = _require_list(samples, "text", folder / SAMPLES)
        elif name in ("text_ids", *SEQUENCE_FIELDS):
            values[name] = _unflatten(arrays, name, n, folder / ARRAYS)
        else:
            raise DataError(f"{folder / MANIFEST}: unknown field '{name}' in 'fields'")
    card = _card(_require(manifest, "card", folder / MANIFEST), folder / MANIFEST)
    present = tuple(s for s in SPLITS if s in set(map(str, splits)))
    location = str(folder)
    if card.source and card.source != location:
        location = f"{folder} (converted from {card.source})"
    try:
        return MultimodalDataset(card=card, ids=ids, splits=splits,
                                 labels=_require(arrays, "labels", folder / ARRAYS),
                                 vocab_size=manifest.get("vocab_size"), nan_policy=nan_policy,
                                 require_splits=present,
                                 cross_split_duplicates=cross_split_duplicates,
                                 location=location, **values)
    except DataError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise DataError(f"{location}: cannot assemble the dataset ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc


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
    if not np.issubdtype(offsets.dtype, np.integer):
        raise DataError(f"{file}: '{name}.offsets' has dtype {offsets.dtype}; expected integers")
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
             "label_range", "notes", "extraction"}
    try:
        kwargs = {k: v for k, v in data.items() if k in known}
        if not isinstance(kwargs.get("extraction", {}), dict):
            raise TypeError("'extraction' is not an object")
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


def _require_list(mapping: Any, key: str, file: Path) -> list:
    """Return `mapping[key]` when it is a list; anything else raises DataError naming the key."""
    value = _require(mapping, key, file)
    if not isinstance(value, list):
        raise DataError(f"{file}: key '{key}' is {type(value).__name__}, expected a list")
    return value


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
