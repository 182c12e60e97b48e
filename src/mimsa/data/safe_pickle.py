"""Loading community pickles without running their code.

A pickle can name any importable callable and call it while loading, so a crafted file runs
arbitrary code (`os.system`, ...). `load_pickle` unpickles with a `find_class` that admits
only what numpy arrays, dtypes and scalars need, plus a few inert builtin containers; every
other global is refused before it is imported, with a one-line `DataError` that names the file
and the global and points at `--trust-pickle` for files the user trusts.

Python 2 byte strings (`str` in Python 2: ids, transcripts) carry no encoding. When a pickle
holds non-ASCII ones, it is read again with the pure-Python unpickler, which rebuilds them as
latin-1 text marked `Py2Text` (numpy needs latin-1 to rebuild its arrays' raw bytes); once
loaded, every `Py2Text` that is valid UTF-8 is replaced by its UTF-8 text, and the others stay
`Py2Text` (latin-1 text) for the readers to report by file and sample.
"""

from __future__ import annotations

import _compat_pickle
import collections
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mimsa.data.dataset import DataError

# (module, name) pairs a numpy-only pickle needs. Both numpy 1.x (`numpy.core`) and numpy 2.x
# (`numpy._core`) spellings are accepted; each resolves to whichever module exists here.
_NUMPY_GLOBALS = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_TOP_LEVEL_NUMPY = {("numpy", "ndarray"), ("numpy", "dtype")}
_BUILTINS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
}
TRUST_HINT = "pass --trust-pickle (trust_pickle=True) only if you trust where the file came from"


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list."""


class Py2Text(str):
    """A Python 2 byte string that is not valid UTF-8, read as latin-1 (one char per byte).

    `raw` returns the original bytes. Readers decode it as latin-1 and name it in a warning.
    """

    __slots__ = ()

    @property
    def raw(self) -> bytes:
        """Return the bytes the Python 2 string held."""
        return self.encode("latin1")


def _numpy_global(module: str, name: str) -> Any | None:
    """Return the numpy object for an allowed (module, name), or None when not allowed."""
    if (module, name) in _TOP_LEVEL_NUMPY:
        return getattr(importlib.import_module("numpy"), name)
    for prefix in ("numpy.core.", "numpy._core."):
        if module.startswith(prefix) and (module[len(prefix):], name) in _NUMPY_GLOBALS:
            tail = module[len(prefix):]
            for candidate in (f"numpy._core.{tail}", f"numpy.core.{tail}"):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except (ImportError, AttributeError):
                    continue
    return None


def _codecs_encode(obj: str, encoding: str = "latin1") -> bytes:
    """Return `obj` encoded as bytes (what protocol-2 pickles use to rebuild `bytes`)."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal(f"_codecs.encode({type(obj).__name__}, {encoding!r})")
    return obj.encode(encoding)


class _Restricted:
    """Mixin: `find_class` returns only allow-listed numpy/builtin globals."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__, copy_reg, ...) map to their Python 3 modules; the C
        # unpickler only does this itself when find_class is not overridden.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = _numpy_global(module, name)
        if found is not None:
            return found
        if (module, name) in _BUILTINS:
            return _BUILTINS[(module, name)]
        if (module, name) == ("_codecs", "encode"):
            return _codecs_encode
        raise RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedGlobal(f"persistent id {pid!r}")


class _RestrictedUnpickler(_Restricted, pickle.Unpickler):
    """The C Unpickler restricted to allow-listed globals."""


class _Py2Unpickler(pickle._Unpickler):
    """The pure-Python Unpickler, rebuilding Python 2 byte strings as `Py2Text` (latin-1)."""

    def _decode_string(self, value: bytes) -> str:
        return Py2Text(value.decode("latin1"))


class _RestrictedPy2Unpickler(_Restricted, _Py2Unpickler):
    """`_Py2Unpickler` restricted to allow-listed globals."""


def _py2_text(obj: Any, seen: dict[int, Any]) -> Any:
    """Return `obj` with each `Py2Text` in it decoded as UTF-8 where it is valid UTF-8.

    Walks dicts (keys too), lists, tuples, sets and object arrays; lists, dicts and object
    arrays are changed in place. Text that is not UTF-8 stays `Py2Text`.
    """
    if isinstance(obj, Py2Text):
        try:
            return obj.raw.decode("utf-8")
        except UnicodeDecodeError:
            return obj
    if isinstance(obj, str | bytes | int | float | complex | bool) or obj is None:
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    seen[id(obj)] = obj
    if isinstance(obj, list):
        for k, item in enumerate(obj):
            obj[k] = _py2_text(item, seen)
    elif isinstance(obj, dict):
        items = [(_py2_text(k, seen), _py2_text(v, seen)) for k, v in obj.items()]
        obj.clear()
        obj.update(items)
    elif isinstance(obj, tuple):
        seen[id(obj)] = rebuilt = tuple(_py2_text(item, seen) for item in obj)
        return rebuilt
    elif isinstance(obj, set | frozenset):
        seen[id(obj)] = rebuilt = type(obj)(_py2_text(item, seen) for item in obj)
        return rebuilt
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        flat = obj.reshape(-1) if obj.flags.c_contiguous else obj.flat
        for k in range(obj.size):
            flat[k] = _py2_text(flat[k], seen)
    return obj


def load_pickle(path: str | Path, trust: bool = False) -> Any:
    """Return the object stored in the pickle at `path`.

    With `trust=False` (the default) only numpy arrays/dtypes/scalars and plain containers
    are rebuilt; anything else raises `DataError` naming the refused global. A pickle whose
    Python 2 strings are not ASCII is read again with the pure-Python unpickler (slower) and
    its strings decoded as UTF-8, or kept as latin-1 `Py2Text` where they are not UTF-8.
    A missing, truncated or corrupt file raises `DataError`.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a pickle file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return _load(path, trust, py2=False)
    except UnicodeDecodeError:
        pass
    try:
        return _py2_text(_load(path, trust, py2=True), {})
    except RecursionError as exc:
        raise DataError(f"{path}: pickle nested too deeply to read") from exc
    except UnicodeDecodeError as exc:  # latin-1 decodes any byte; kept for safety
        raise DataError(f"{path}: cannot decode the pickle's strings "
                        f"({_first_line(exc)})") from exc


def _load(path: Path, trust: bool, py2: bool) -> Any:
    """Unpickle `path` (ASCII strings, or Python 2 strings as `Py2Text` when `py2`)."""
    try:
        with path.open("rb") as handle:
            if py2:
                unpickler = _Py2Unpickler if trust else _RestrictedPy2Unpickler
                return unpickler(handle, encoding="latin1").load()
            if trust:
                return pickle.load(handle, encoding="ASCII")
            return _RestrictedUnpickler(handle, encoding="ASCII").load()
    except RefusedGlobal as exc:
        why = ("torch tensors can only be rebuilt by running torch's own unpickler"
               if str(exc).startswith("torch") else "a pickle can run code while loading")
        raise DataError(f"{path}: refused to unpickle global '{exc}' ({why}; only numpy "
                        f"arrays and plain containers are allowed); {TRUST_HINT}") from exc
    except (UnicodeDecodeError, DataError):
        raise
    except RecursionError as exc:
        raise DataError(f"{path}: pickle nested too deeply to read") from exc
    except Exception as exc:  # truncated/corrupt input surfaces as many exception types
        raise DataError(f"{path}: truncated or corrupt pickle "
                        f"({type(exc).__name__}: {_first_line(exc)})") from exc


def _first_line(exc: BaseException | None) -> str:
    """Return the first line of an exception message (empty when there is none)."""
    text = str(exc) if exc is not None else ""
    return text.splitlines()[0] if text else ""
