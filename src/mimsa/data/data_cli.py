"""`mimsa data ...`: inspect a dataset (by name or path) and convert it to mimsa's format.

Mounted in the main CLI (`mimsa.cli`), which wraps every command here in its error contract:
data problems (`MimsaError`) print one red line on stderr and exit with code 2, never a
traceback; warnings raised while reading (e.g. text decoded as latin-1) print one yellow line
each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from mimsa.data.dataset import DataError, MultimodalDataset
from mimsa.data.registry import load_dataset

data_app = typer.Typer(help="Inspect datasets and convert community formats to mimsa's own.",
                       no_args_is_help=True, add_completion=False)
_err = Console(stderr=True, soft_wrap=True)
_out = Console(highlight=False, soft_wrap=True)

DataRootOpt = Annotated[Path | None, typer.Option(
    "--data-root", help="folder holding mosi/ and mosei/ (default: $MIMSA_DATA)")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", "-f", help="reader for a path: mmsa, mult, mmim, csd, mmsa_fet, mimsa "
    "(default: detected)")]
TrustOpt = Annotated[bool, typer.Option(
    "--trust-pickle", help="load pickles without the safety allow-list (runs their code)")]
NanOpt = Annotated[str, typer.Option(
    "--nan-policy", help="'error' on NaN/inf features, or 'zero' to replace them with 0")]
DropOpt = Annotated[bool, typer.Option(
    "--drop-cross-split-duplicates", help="drop a sample whose id is also in an earlier split "
    "(train < valid < test) instead of refusing the dataset; the count goes in the card")]


def _load(target: str, data_root: Path | None, format: str | None, trust_pickle: bool,
          nan_policy: str, drop_cross_split: bool = False) -> MultimodalDataset:
    """Return the dataset named or located by `target`; its warnings print as yellow lines."""
    if nan_policy not in ("error", "zero"):
        raise DataError(f"--nan-policy must be 'error' or 'zero', not '{nan_policy}'")
    options: dict[str, Any] = {"nan_policy": nan_policy}
    if format is not None:
        options["format"] = format
    return load_dataset(target, data_root=data_root, trust_pickle=trust_pickle,
                        cross_split_duplicates="drop" if drop_cross_split else "error",
                        **options)


def describe(ds: MultimodalDataset) -> str:
    """Return the text `inspect` prints: the card, then sizes, modalities and dims."""
    lines = [ds.card.render(), "",
             "split sizes: " + ", ".join(f"{k} {v}" for k, v in ds.card.split_sizes.items()),
             f"modalities: {ds.modalities or '(none)'}"]
    fields = [f for f in ("text", "text_ids") if getattr(ds, f) is not None]
    if fields:
        lines.append("text fields: " + ", ".join(fields))
    dims = ds.feature_dims()
    if dims:
        lines.append("feature dims: " + ", ".join(f"{k} {v}" for k, v in dims.items()))
        for name in dims:
            lengths = np.array([len(s) for s in getattr(ds, name)])
            lines.append(f"  {name} length: min {lengths.min()}, median "
                         f"{int(np.median(lengths))}, max {lengths.max()}")
    zeroed = {k: v for k, v in ds.nan_report.items() if v}
    if zeroed:
        lines.append("non-finite values set to 0: " + ", ".join(f"{k} {v}"
                                                                 for k, v in zeroed.items()))
    lo, hi = float(ds.labels.min()), float(ds.labels.max())
    lines.append(f"labels observed: [{lo:g}, {hi:g}], mean {float(ds.labels.mean()):.3f}")
    return "\n".join(lines)


@data_app.command("inspect")
def inspect(
    target: Annotated[str, typer.Argument(help="registered dataset name or a file/folder")],
    data_root: DataRootOpt = None,
    format: FormatOpt = None,
    trust_pickle: TrustOpt = False,
    nan_policy: NanOpt = "error",
    drop_cross_split_duplicates: DropOpt = False,
) -> None:
    """Print a dataset's card, split sizes, modalities and feature dims."""
    ds = _load(target, data_root, format, trust_pickle, nan_policy, drop_cross_split_duplicates)
    _out.print(escape(describe(ds)))


@data_app.command("convert")
def convert(
    target: Annotated[str, typer.Argument(help="file/folder to read (or a registered name)")],
    to: Annotated[Path, typer.Option("--to", help="output folder (mimsa format)")],
    data_root: DataRootOpt = None,
    format: FormatOpt = None,
    trust_pickle: TrustOpt = False,
    nan_policy: NanOpt = "error",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="replace an existing --to (a mimsa dataset folder only)")] = False,
    drop_cross_split_duplicates: DropOpt = False,
) -> None:
    """Read a dataset and write it in mimsa's own format (no pickle, checksummed).

    --to is checked before reading (not a file, not under a file, not an existing folder
    unless --overwrite replaces a mimsa dataset); leftovers of an interrupted convert to the
    same --to are removed; a failed convert leaves nothing behind.
    """
    from mimsa.data.store import prepare_target, save_dataset

    prepare_target(to, overwrite)
    ds = _load(target, data_root, format, trust_pickle, nan_policy, drop_cross_split_duplicates)
    out = save_dataset(ds, to, overwrite=overwrite)
    _out.print(escape(f"wrote {ds.summary()} to {out}"))

