"""Loading community pickles without running their code.

A pickle can name any importable callable and call it while loading, so a crafted file runs
arbitrary code (`os.system`, ...). `load_pickle` unpickles with a `find_class` that admits
only what numpy arrays, dtypes and scalars need, plus a few inert builtin containers; every
other global is refused before it is imported, with a one-line `DataError` that names the file
and the global and points at `--trust-pickle` for files the user trusts.
"""

from __future__ import annotations

import _compat_pickle
import collections
import importlib
import pickle
from pathlib import Path
from typing import Any

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


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` returns only allow-listed numpy/builtin globals."""

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


def load_pickle(path: str | Path, trust: bool = False) -> Any:
    """Return the object stored in the pickle at `path`.

    With `trust=False` (the default) only numpy arrays/dtypes/scalars and plain containers
    are rebuilt; anything else raises `DataError` naming the refused global. Python 2 pickles
    are retried with encoding='latin1'. A truncated or corrupt file raises `DataError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    last: Exception | None = None
    for encoding in ("ASCII", "latin1"):
        try:
            with path.open("rb") as handle:
                if trust:
                    return pickle.load(handle, encoding=encoding)
                return _RestrictedUnpickler(handle, encoding=encoding).load()
        except RefusedGlobal as exc:
            why = ("torch tensors can only be rebuilt by running torch's own unpickler"
                   if str(exc).startswith("torch") else "a pickle can run code while loading")
            raise DataError(f"{path}: refused to unpickle global '{exc}' ({why}; only numpy "
                            f"arrays and plain containers are allowed); {TRUST_HINT}") from exc
        except UnicodeDecodeError as exc:
            last = exc
            continue
        except DataError:
            raise
        except Exception as exc:  # truncated/corrupt input surfaces as many exception types
            raise DataError(f"{path}: truncated or corrupt pickle "
                            f"({type(exc).__name__}: {_first_line(exc)})") from exc
    raise DataError(f"{path}: cannot decode the pickle's strings as ASCII or latin1 "
                    f"({_first_line(last)})") from last


def _first_line(exc: BaseException | None) -> str:
    """Return the first line of an exception message (empty when there is none)."""
    text = str(exc) if exc is not None else ""
    return text.splitlines()[0] if text else ""
