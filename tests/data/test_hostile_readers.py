"""Hostile inputs for every reader: each one fails with a MimsaError whose message is exactly
one line naming the file (and the key or sample where there is one); through `mimsa data
inspect` each exits with code 2, one line on stderr, no traceback and no file created."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mimsa.cli import app
from mimsa.data.readers import read_path
from mimsa.data.store import save_dataset, sha256_file
from mimsa.errors import MimsaError

from .helpers import (
    SIZES,
    fet_rows,
    mmim_samples,
    mmsa_object,
    mult_object,
    write_csd,
    write_csd_folder,
    write_label_csv,
    write_mmim,
    write_pickle,
)

runner = CliRunner()


@dataclass
class Case:
    """One hostile input: `build(tmp_path)` returns (path to read, the file the error names)."""

    name: str
    build: Callable[[Path], tuple[Path, Path]]
    needles: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)


# -- builders ---------------------------------------------------------------------------------
def mmsa_with(edit: Callable[[dict], None], name: str = "unaligned_50.pkl"
              ) -> Callable[[Path], tuple[Path, Path]]:
    def build(tmp: Path) -> tuple[Path, Path]:
        obj = mmsa_object()
        edit(obj)
        path = write_pickle(obj, tmp / name)
        return path, path
    return build


def mult_with(edit: Callable[[dict], None]) -> Callable[[Path], tuple[Path, Path]]:
    def build(tmp: Path) -> tuple[Path, Path]:
        obj = mult_object()
        for split in obj:
            obj[split]["id"] = obj[split]["id"].astype(object)
        edit(obj)
        path = write_pickle(obj, tmp / "mosi_data.pkl")
        return path, path
    return build


def raw_file(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], tuple[Path, Path]]:
    def build(tmp: Path) -> tuple[Path, Path]:
        path = tmp / name
        path.write_bytes(data() if callable(data) else data)
        return path, path
    return build


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def mmim_with(split: str, edit: Callable[[list], None]) -> Callable[[Path], tuple[Path, Path]]:
    names = {"train": "train.pkl", "valid": "dev.pkl", "test": "test.pkl"}

    def build(tmp: Path) -> tuple[Path, Path]:
        folder = write_mmim(tmp / "mmim")
        samples = mmim_samples(split, SIZES[split], 3)
        edit(samples)
        file = write_pickle(samples, folder / names[split])
        return folder, file
    return build


def set_mmim(index: int, position: int, value: object) -> Callable[[list], None]:
    """Return an edit replacing item `position` of the inner tuple of sample `index`."""
    def edit(samples: list) -> None:
        inner, label, sid = samples[index]
        inner = list(inner)
        inner[position] = value
        samples[index] = (tuple(inner), label, sid)
    return edit


def fet_with(edit: Callable[[list[dict]], None], raw: Callable[[bytes], bytes] | None = None
             ) -> Callable[[Path], tuple[Path, Path]]:
    def build(tmp: Path) -> tuple[Path, Path]:
        rows = fet_rows()
        edit(rows)
        file = write_label_csv(tmp / "fet" / "label.csv", rows)
        if raw is not None:
            file.write_bytes(raw(file.read_bytes()))
        return file.parent, file
    return build


def csd_with(edit: Callable[[Path], Path]) -> Callable[[Path], tuple[Path, Path]]:
    def build(tmp: Path) -> tuple[Path, Path]:
        folder = tmp / "csd"
        write_csd_folder(folder)
        return folder, edit(folder)
    return build


def truncate(name: str) -> Callable[[Path], Path]:
    def edit(folder: Path) -> Path:
        file = folder / name
        file.write_bytes(half(file.read_bytes()))
        return file
    return edit


def string_scores(folder: Path) -> Path:
    iv = np.array([[0.0, 1.0], [1.0, 2.0]])
    return write_csd(folder / "TOY_Opinion_Labels.csd", "Opinion Segment Labels",
                     {v: (np.array([[b"good"], [b"bad"]]), iv) for v in ("vA", "vB", "vC")})


def conflicting_splits(folder: Path) -> Path:
    return write_label_csv(folder / "splits.csv", [
        {"id": "vA", "split": "train"}, {"id": "vB", "split": "dev"},
        {"id": "vC_1", "split": "test"}, {"id": "vA", "split": "valid"}], ("id", "split"))


def stored(edit: Callable[[Path], Path]) -> Callable[[Path], tuple[Path, Path]]:
    def build(tmp: Path) -> tuple[Path, Path]:
        (tmp / "src").mkdir()
        source = write_pickle(mmsa_object(), tmp / "src" / "aligned_50.pkl")
        folder = save_dataset(read_path(source), tmp / "store")
        return folder, edit(folder)
    return build


def rehash(folder: Path) -> None:
    """Write the current sha256 of the data files into manifest.json (an edit that hides)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = sha256_file(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def corrupt_arrays_same_sha(folder: Path) -> Path:
    file = folder / "arrays.safetensors"
    file.write_bytes(b"\xff" * 64)
    rehash(folder)
    return file


def truncate_arrays(folder: Path) -> Path:
    file = folder / "arrays.safetensors"
    file.write_bytes(half(file.read_bytes()))
    return file


def empty_manifest(folder: Path) -> Path:
    (folder / "manifest.json").write_bytes(b"")
    return folder / "manifest.json"


def ids_not_a_list(folder: Path) -> Path:
    samples = json.loads((folder / "samples.json").read_text())
    samples["ids"] = 7
    (folder / "samples.json").write_text(json.dumps(samples))
    rehash(folder)
    return folder / "samples.json"


def narrow_label_range(folder: Path) -> Path:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["card"]["label_range"] = [0, 0.1]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def folder_named_like_a_pickle(tmp: Path) -> tuple[Path, Path]:
    path = tmp / "aligned_50.pkl"
    path.mkdir()
    return path, path


def label_csv_is_a_folder(tmp: Path) -> tuple[Path, Path]:
    folder = tmp / "fet"
    (folder / "label.csv").mkdir(parents=True)
    return folder, folder / "label.csv"


def bom_without_video_id(tmp: Path) -> tuple[Path, Path]:
    file = write_label_csv(tmp / "fet" / "label.csv", fet_rows(),
                           ("clip_id", "text", "label", "mode"))
    file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    return file.parent, file


def mmim_zero_bytes(tmp: Path) -> tuple[Path, Path]:
    folder = write_mmim(tmp / "mmim")
    (folder / "test.pkl").write_bytes(b"")
    return folder, folder / "test.pkl"


def mmim_train_is_a_folder(tmp: Path) -> tuple[Path, Path]:
    folder = write_mmim(tmp / "mmim")
    (folder / "train.pkl").unlink()
    (folder / "train.pkl").mkdir()
    return folder, folder / "train.pkl"


def set_item(split: str, key: str, index: tuple, value: float, float64: bool = False
             ) -> Callable[[dict], None]:
    """Return an edit setting obj[split][key][index] = value (in a float64 copy if asked)."""
    def edit(obj: dict) -> None:
        if float64:
            obj[split][key] = np.array(obj[split][key], dtype=np.float64)
        obj[split][key][index] = value
    return edit


def object_with_string(values: np.ndarray, index: tuple) -> np.ndarray:
    """Return `values` as an object array with the string 'loud' at `index`."""
    out = values.astype(object)
    out[index] = "loud"
    return out


def copy_id(src: str, dst: str) -> Callable[[dict], None]:
    def edit(obj: dict) -> None:
        obj[dst]["id"][0] = obj[src]["id"][0]
    return edit


def replace(split: str, key: str, value: object) -> Callable[[dict], None]:
    def edit(obj: dict) -> None:
        obj[split][key] = value
    return edit


def delete(split: str, key: str) -> Callable[[dict], None]:
    def edit(obj: dict) -> None:
        del obj[split][key]
    return edit


def set_row(index: int, **values: str) -> Callable[[list[dict]], None]:
    def edit(rows: list[dict]) -> None:
        rows[index].update(values)
    return edit


CASES = [
    # mmsa
    Case("mmsa-truncated", raw_file("aligned_50.pkl", lambda: half(pickle.dumps(mmsa_object()))),
         ("truncated or corrupt pickle",)),
    Case("mmsa-zero-bytes", raw_file("aligned_50.pkl", b""), ("truncated or corrupt pickle",)),
    Case("mmsa-missing-key", mmsa_with(delete("valid", "regression_labels")),
         ("missing key 'regression_labels' of split 'valid'",)),
    Case("mmsa-wrong-key-type", mmsa_with(lambda o: o.__setitem__("train", [1, 2])),
         ("expected a dict", "'id'")),
    Case("mmsa-nan-label", mmsa_with(set_item("valid", "regression_labels", (1,), np.nan)),
         ("label of sample 'validvid0_2' is not finite",)),
    Case("mmsa-minus-inf", mmsa_with(set_item("test", "vision", (2, 0, 1), -np.inf)),
         ("vision of sample 'testvid1_1' holds 1 NaN/inf",)),
    Case("mmsa-label-out-of-range", mmsa_with(set_item("train", "regression_labels", (3,), 9.0)),
         ("label 9 of sample 'trainvid1_2' is outside",)),
    Case("mmsa-length-past-end", mmsa_with(set_item("valid", "vision_lengths", (0,), 60, True)),
         ("'valid/vision_lengths' of sample 'validvid0_1' is 60 but 'valid/vision' has only 6",)),
    Case("mmsa-negative-length", mmsa_with(set_item("test", "audio_lengths", (2,), -1, True)),
         ("'test/audio_lengths' of sample 'testvid1_1' is negative",)),
    Case("mmsa-fractional-length", mmsa_with(set_item("train", "audio_lengths", (1,), 2.5, True)),
         ("'train/audio_lengths' of sample 'trainvid0_2' is 2.5",)),
    Case("mmsa-mismatched-counts", mmsa_with(lambda o: o["test"].__setitem__(
        "audio_lengths", o["test"]["audio_lengths"][:2])),
         ("split 'test' arrays have different numbers of samples", "'audio_lengths' 2")),
    Case("mmsa-overflow", mmsa_with(set_item("train", "audio", (1, 0, 0), 1e300, True)),
         ("'train/audio' of sample 'trainvid0_2' holds 1e+300",)),
    Case("mmsa-cross-split-id", mmsa_with(copy_id("train", "test")),
         ("sample id 'trainvid0_1' is in both train and test",)),
    Case("mmsa-text-not-strings", mmsa_with(replace("train", "raw_text", np.zeros((4, 2)))),
         ("'train/raw_text' has shape (4, 2)",)),
    Case("mmsa-nan-transcript", mmsa_with(replace("valid", "raw_text",
                                                  np.array(["a", np.nan, "c"], dtype=object))),
         ("'valid/raw_text' of sample 'validvid0_2' is nan, not text",)),
    Case("mmsa-bert-mask-not-binary", mmsa_with(set_item("test", "text_bert", (1, 1, 0), 2.0)),
         ("'test/text_bert' of sample 'testvid0_2' has a mask row",)),
    Case("mmsa-folder-as-pickle", folder_named_like_a_pickle, ("is a folder",),
         {"format": "mmsa"}),
    # mult
    Case("mult-truncated", raw_file("mosi_data.pkl", lambda: half(pickle.dumps(mult_object()))),
         ("truncated or corrupt pickle",)),
    Case("mult-cross-split-id", mult_with(copy_id("train", "valid")),
         ("is in both train and valid",)),
    Case("mult-label-strings", mult_with(replace("train", "labels",
                                                 np.array([["x"]] * 4, dtype=object))),
         ("'train/labels' of sample 'trainvid0_0.0_1.0' is not a number",)),
    Case("mult-object-features", mult_with(lambda o: o["valid"].__setitem__(
        "audio", object_with_string(o["valid"]["audio"], (2, 1, 0)))),
         ("'valid/audio' of sample 'validvid1_2.0_3.0' holds 'loud', not a number",)),
    Case("mult-class-labels", mult_with(replace("test", "labels", np.zeros((3, 2)))),
         ("'test/labels' has shape (3, 2)",)),
    Case("mult-missing-split", mult_with(lambda o: o.pop("valid")), ("missing key 'valid'",)),
    # mmim
    Case("mmim-length-past-end", mmim_with("train", set_mmim(1, 5, 99)),
         ("'alen' of sample 'trainv_2' is 99 but 'acoustic' has only 9",)),
    Case("mmim-negative-length", mmim_with("test", set_mmim(0, 4, -3)),
         ("'vlen' of sample 'testv_1' is negative",)),
    Case("mmim-two-lengths", mmim_with("valid", set_mmim(2, 4, [3, 4])),
         ("'vlen' of sample 'validv_3' holds 2 values",)),
    Case("mmim-empty-split", mmim_with("valid", lambda s: s.clear()),
         ("split 'valid' is empty",)),
    Case("mmim-negative-token-id", mmim_with("train", set_mmim(0, 0, [3, -1, 4])),
         ("'words' of sample 'trainv_1' holds a negative token id (-1)",)),
    Case("mmim-zero-bytes", mmim_zero_bytes, ("truncated or corrupt pickle",)),
    Case("mmim-cross-split-id", lambda t: (mmim_with("test", lambda s: s.__setitem__(
        0, (*s[0][:2], "trainv_1")))(t)[0],) * 2, ("'trainv_1' is in both train and test",)),
    Case("mmim-train-is-a-folder", mmim_train_is_a_folder, ("is a folder",), {"format": "mmim"}),
    # mmsa_fet (label.csv)
    Case("fet-non-numeric-label", fet_with(set_row(4, label="n/a")),
         ("line 6: column 'label' of sample 'validvid0_1' is 'n/a'",)),
    Case("fet-ragged-row", fet_with(lambda r: None, lambda b: b.replace(b",train\r\n",
                                                                          b",train,x\r\n", 1)),
         ("line 2 has 6 fields but the header has 5",)),
    Case("fet-zero-bytes", fet_with(lambda r: None, lambda b: b""), ("the file is empty",)),
    Case("fet-not-utf8", fet_with(set_row(3, text="caf\u00e9"),
                                  lambda b: b.replace("é".encode(), b"\xe9")),
         ("line 5 is not UTF-8 text",)),
    Case("fet-bom-and-missing-column", bom_without_video_id,
         ("missing column 'id' (or 'video_id' and 'clip_id'); columns present: clip_id, text",)),
    Case("fet-cross-split-id", fet_with(set_row(-1, video_id="trainvid0", clip_id="1")),
         ("sample id 'trainvid0_1' is in both train and test",)),
    Case("fet-label-out-of-range", fet_with(set_row(0, label="-3.5")),
         ("label -3.5 of sample 'trainvid0_1' is outside",)),
    Case("fet-label-csv-is-a-folder", label_csv_is_a_folder, ("is a folder",),
         {"format": "mmsa_fet"}),
    # csd
    Case("csd-truncated-labels", csd_with(truncate("TOY_Opinion_Labels.csd")), ()),
    Case("csd-zero-byte-features", csd_with(lambda f: (f / "TOY_COVAREP.csd").write_bytes(b"")
                                            or f / "TOY_COVAREP.csd"), ()),
    Case("csd-string-scores", csd_with(string_scores), ("expected numbers",)),
    Case("csd-cross-split-id", csd_with(conflicting_splits),
         ("sample id 'vA' is in both train and valid",)),
    # mimsa's own format
    Case("mimsa-truncated-arrays", stored(truncate_arrays), ("does not match manifest.json",)),
    Case("mimsa-empty-manifest", stored(empty_manifest), ("unreadable JSON",)),
    Case("mimsa-corrupt-arrays", stored(corrupt_arrays_same_sha),
         ("unreadable safetensors file",)),
    Case("mimsa-ids-not-a-list", stored(ids_not_a_list), ("key 'ids' is int, expected a list",),
         {"format": "mimsa"}),
    Case("mimsa-label-range", stored(narrow_label_range),
         ("(converted from", "of sample 'trainvid0_1' is outside")),
]
CLI_CASES = ["mmsa-truncated", "mmsa-length-past-end", "mult-cross-split-id",
             "mmim-length-past-end", "fet-not-utf8", "fet-zero-bytes", "csd-truncated-labels",
             "mimsa-label-range", "mmsa-folder-as-pickle"]


def test_the_corpus_covers_every_reader() -> None:
    prefixes = {c.name.split("-")[0] for c in CASES}
    assert prefixes == {"mmsa", "mult", "mmim", "fet", "csd", "mimsa"} and len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_fails_in_one_line_naming_the_file(tmp_path: Path, case: Case) -> None:
    target, named = case.build(tmp_path)
    with pytest.raises(MimsaError) as info:
        read_path(target, **case.options)
    message = str(info.value)
    assert "\n" not in message and message == message.strip() and message, message
    assert str(named) in message, message
    for needle in case.needles:
        assert needle in message, (needle, message)


def tree(root: Path) -> list[str]:
    """Return every path under `root` with its size, sorted (to see nothing was created)."""
    return sorted(f"{p.relative_to(root)}:{p.stat().st_size if p.is_file() else 'dir'}"
                  for p in root.rglob("*"))


@pytest.mark.parametrize("case", [c for c in CASES if c.name in CLI_CASES],
                         ids=[c.name for c in CASES if c.name in CLI_CASES])
def test_cli_inspect_exits_2_with_one_line(tmp_path: Path, case: Case) -> None:
    target, named = case.build(tmp_path)
    before = tree(tmp_path)
    args = ["data", "inspect", str(target)]
    if "format" in case.options:
        args += ["--format", case.options["format"]]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(named) in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert tree(tmp_path) == before
