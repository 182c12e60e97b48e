"""Safe unpickling: numpy data loads, code never runs, broken files fail in one line."""

from __future__ import annotations

import collections
import fractions
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mimsa.data.dataset import DataError
from mimsa.data.readers import read_path
from mimsa.data.safe_pickle import load_pickle

from .helpers import mmsa_object, write_pickle


class Evil:
    """Runs a shell command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_containers_load_at_every_protocol(tmp_path: Path, protocol: int) -> None:
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.float64(1.5), "x", b"y"],
           "c": collections.OrderedDict(k=np.array(["s", "t"], dtype=object)),
           "d": np.array([b"ab", b"cd"]), "e": {1, 2}, "f": (np.int64(3), None, True)}
    loaded = load_pickle(write_pickle(obj, tmp_path / "x.pkl", protocol))
    assert np.array_equal(loaded["a"], obj["a"]) and loaded["a"].dtype == np.float32
    assert loaded["b"] == obj["b"] and loaded["e"] == {1, 2} and loaded["f"] == obj["f"]
    assert list(loaded["c"]["k"]) == ["s", "t"] and list(loaded["d"]) == [b"ab", b"cd"]


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write_pickle({"train": Evil(marker)}, tmp_path / "unaligned_50.pkl")
    with pytest.raises(DataError) as info:
        read_path(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "system" in message and "--trust-pickle" in message
    assert not marker.exists()
    with pytest.raises(DataError):
        read_path(path, format="mult")
    with pytest.raises(DataError):
        load_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    b"cnumpy\nload\n(S'x'\ntR.",
    b"c__builtin__\neval\n(S'1+1'\ntR.",
    b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
])
def test_refused_globals_name_the_global(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="refused to unpickle global"):
        load_pickle(path)


def test_trust_loads_other_objects(tmp_path: Path) -> None:
    path = write_pickle({"f": fractions.Fraction(1, 3)}, tmp_path / "x.pkl")
    with pytest.raises(DataError, match="fractions.Fraction"):
        load_pickle(path)
    assert load_pickle(path, trust=True)["f"] == fractions.Fraction(1, 3)


def test_truncated_and_empty_pickles(tmp_path: Path) -> None:
    data = pickle.dumps(mmsa_object())
    truncated = tmp_path / "aligned_50.pkl"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        read_path(truncated)
    assert str(truncated) in str(info.value) and "\n" not in str(info.value)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_pickle(empty)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(DataError, match="garbage.pkl"):
        load_pickle(garbage)
    with pytest.raises(DataError, match="file not found"):
        load_pickle(tmp_path / "absent.pkl")


def test_python2_strings_fall_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "py2.pkl"
    # Protocol 2 as Python 2 writes it: SHORT_BINSTRING (py2 str) values with a non-ASCII byte.
    path.write_bytes(b"\x80\x02}q\x00U\x04nameq\x01U\x04caf\xe9q\x02s.")
    assert load_pickle(path) == {"name": "caf\xe9"}
