"""`mimsa predict`: a finished run + raw clips → sentiment scores, offline.

    mimsa predict RUN_DIR CLIP.mp4 [CLIP ...] [--text "..."] [--json]

    from mimsa.predict import predict, Predictor   # (not re-exported by `mimsa/__init__.py`:
                                                   #  the package root is the lowest layer)
    predict("runs/x", "clip.mp4")                  # -> [{"clip": ..., "score": ..., ...}]
    p = Predictor("runs/x"); p.predict_clip("a.mp4"); p.predict_clip("b.mp4")   # warm

The run says what it needs (its model.json, written at training): the modalities, the text
encoder (tokenizer, vocabulary) and, for a dataset built by `mimsa extract`, the extractors
that made its audio/visual features ("inputs.extraction": names, versions, configurations,
decode settings, layout). Each clip goes through exactly those (`features.extract.
clip_features`, the code extract ran); a different installed extractor version is a one-line
warning, different feature dims a refusal. Text: `text` (source "given") or speech recognition
(source "asr"; needs `.[asr]`), tokenised as in training.

Refused with a one-line RunError: a run whose audio or visual features no extractor reproduces
(a registered real dataset's precomputed features: mosi's or mosi-poria's openSMILE/3D-CNN
vectors, mosei's, an MMSA pickle's; the synthetic data), text read as feature vectors
(Poria's text-CNN) or as the dataset's own token ids (synthetic), and text with conversational
context (a single clip has no neighbours). A run that reads text only — `text_only`, or any
model trained with `data.modalities=t` — works on every dataset: it needs just the transcript.

A multi-seed run directory (seed-*/) predicts with every seed and reports their mean score
(each seed's under "seeds"); its seeds must share their inputs.

Bad input is one line before any clip is scored or printed (`check_inputs`, `run_dirs`): a
RUN_DIR that is missing, a file, no run or unfinished; seeds whose inputs differ; a clip path
that is missing or a folder; a text that is given but empty (leave it out for speech
recognition); a number of texts other than the clips'. A clip that is not a readable video is
a one-line DataError when its turn comes. Only the streams the run reads are decoded (a
text-only run without a given text decodes the audio alone, for speech recognition).

Each result (one dict per clip; `--json` prints them, one object per line):
  clip               the path given
  score              the prediction clipped to [-3, 3]
  class7             int in -3..3: Mult_acc_7's class (clipped, rounded half to even)
  class2             "negative" (< 0) or "non-negative" (>= 0): Has0_acc_2's classes
  transcript         the text the model read ("" for a run without text, unless given)
  transcript_source  "given" | "asr" | None (no text read or given)
  drop               {modality: score with that modality's content zeroed
                      (`mimsa.data.drop.ModalityDrop`, fill zero)}; {} for a one-modality run
  features           what was extracted: per field the extractors, rows and fraction of
                     present frames; the text encoder and token count
  seeds              (multi-seed runs only) {seed: score}
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mimsa.data.batch import collate
from mimsa.data.dataset import DatasetCard, MultimodalDataset
from mimsa.data.drop import ModalityDrop
from mimsa.data.scaling import SCALED_FIELDS, apply_scaling
from mimsa.encoders.cache import EncoderCache
from mimsa.encoders.text import share_cache
from mimsa.encoders.tokens import load_tokenizer
from mimsa.errors import ConfigError, DataError, RunError
from mimsa.features.extract import (
    ClipError,
    ExtractorChoice,
    Plan,
    clip_features,
    instance,
    require_asr,
)
from mimsa.metrics import CLASS7_NAMES, class2, class7
from mimsa.models.base import list_models
from mimsa.train.checkpoint import load_checkpoint, load_model_state
from mimsa.train.device import module_device
from mimsa.train.inputs import saved_input_spec
from mimsa.train.run import CONFIG, METRICS, build_model, read_run_config

DEFAULT_ASR_MODEL = "whisper-base"
#: Models that read the text alone whatever else the data offer.
FIELDS = {"a": ("audio", "audio"), "v": ("visual", "vision")}


class Predictor:
    """A run loaded once (model(s), tokenizer, extractors) to score clips (see the module).

    Raises (at construction, before any clip): RunError (not a finished run, features no
    extractor reproduces, damaged files, seeds that disagree), MissingExtraError (an extra the
    run's extractors need), ConfigError (an extractor no longer registered).
    """

    def __init__(self, run_dir: str | Path, cache: EncoderCache | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.cache = cache if cache is not None else EncoderCache()
        self.seeds: list[tuple[str, torch.nn.Module]] = []
        first: dict | None = None
        for seed_dir in run_dirs(self.run_dir):
            cfg, spec_json = _read_run(seed_dir)
            inputs = spec_json["inputs"]
            if first is None:
                first = inputs
                refuse_unreproducible(seed_dir, spec_json, cfg)
                self._modalities = read_modalities(spec_json, cfg)
                self.normalize_asr = normalizes_text(inputs)
                self.spec = saved_input_spec(spec_json, str(seed_dir))
                self.extraction = {k: v for k, v in (inputs.get("extraction") or {}).items()
                                   if not (k == "audio" and "a" not in self._modalities
                                           or k == "visual" and "v" not in self._modalities)}
                self.plan, self.extractors = _plan(self.extraction, str(seed_dir))
            elif _comparable(inputs) != _comparable(first):
                differ = next(k for k, v in _comparable(inputs).items()
                              if v != _comparable(first)[k])
                raise RunError(f"{seed_dir}: its inputs ({differ}) differ from those of "
                               f"{self.seeds[0][0] if self.seeds else 'the first seed'} in "
                               f"{self.run_dir}; predict with one seed's directory")
            model = _load_model(seed_dir, cfg, self.cache)
            self.seeds.append((seed_dir.name, model))
        self.multi_seed = not (self.run_dir / CONFIG).is_file()

    @property
    def modalities(self) -> str:
        """The modalities the model reads (`read_modalities`), a subset of "tav"."""
        return self._modalities

    def predict_clip(self, clip: str | Path, text: str | None = None) -> dict[str, Any]:
        """Return the result dict of one clip (see the module docstring for its keys).

        Raises:
            DataError: the clip is missing, a folder, or cannot give the features (names the
                stage).
            ConfigError: `text` is given but empty.
            MissingExtraError: speech recognition is needed (no `text`) and `.[asr]` is absent.
            RunError: the features extracted now have other dims than in training.
        """
        check_inputs([clip], [text])
        path = Path(clip)
        uses_text = "t" in self.modalities
        given = (text or "").strip()
        if (uses_text and not given) or self.plan.aligned:
            require_asr()
        try:
            result = clip_features(path, self.plan, given if given else None,
                                   want_text=uses_text, extractors=self.extractors,
                                   empty_ok=True)
        except ClipError as failure:
            raise DataError(f"{path}: cannot extract the run's inputs: {failure.stage}: "
                            f"{failure.reason}") from None
        transcript = result.transcript
        if transcript and transcript["source"] == "asr" and not transcript["text"]:
            warnings.warn(f"{path}: speech recognition heard no words; the model reads an "
                          f"empty text (give it with --text)", UserWarning, stacklevel=2)
        if transcript and transcript["source"] == "asr" and self.normalize_asr:
            from mimsa.features.asr import normalize_text

            transcript = {**transcript, "text": normalize_text(transcript["text"])}
        if transcript is None and given:
            transcript = {"text": given, "source": "given", "model": None, "words": []}
        dataset = self._dataset(path, result.fields, transcript)
        batch = collate(dataset, [0], self.modalities, self.spec.text.pad_id)
        scores = self._scores(batch)
        drop = {}
        if len(self.modalities) > 1:
            for m in self.modalities:
                dropper = ModalityDrop(m, "zero").bind(dataset, self.spec)
                drop[m] = _clip(np.mean(self._scores(dropper(batch))))
        mean = float(np.mean(scores))
        score = _clip(mean)
        out: dict[str, Any] = {
            "clip": str(clip), "score": score, "class7": int(class7(score)),
            "class2": str(class2(score)),
            "transcript": transcript["text"] if transcript else "",
            "transcript_source": transcript["source"] if transcript else None,
            "drop": drop, "features": self._describe(result, dataset)}
        if self.multi_seed:
            out["seeds"] = {name: _clip(s) for (name, _), s in zip(self.seeds, scores,
                                                                   strict=True)}
        return out

    def predict(self, clips: Sequence[str | Path],
                texts: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
        """Return one result per clip; `texts` (same length as `clips`) gives transcripts."""
        texts = list(texts) if texts is not None else [None] * len(clips)
        check_inputs(clips, texts)  # every clip path and text, before the first is scored
        return [self.predict_clip(c, t) for c, t in zip(clips, texts, strict=True)]

    # -- pieces ------------------------------------------------------------------------------
    def _dataset(self, path: Path, fields: dict[str, np.ndarray],
                 transcript: dict | None) -> MultimodalDataset:
        """Return a one-sample dataset of the clip, with token ids as training made them."""
        for m, (_, field) in FIELDS.items():
            if m not in self.modalities:
                continue
            want, got = self.spec.dims.get(field), int(fields[field].shape[1])
            if want != got:
                raise RunError(f"{self.run_dir}: trained on {field} of {want} dims, the "
                               f"extractors give {got} now (another extractor version?); "
                               f"re-extract the training data and re-train")
        text = transcript["text"] if transcript else ""
        dataset = MultimodalDataset(
            card=DatasetCard(name="predict", source=str(path)), ids=[path.name],
            splits=["test"], labels=[0.0], text=[text] if "t" in self.modalities else None,
            audio=[fields["audio"]] if "a" in self.modalities else None,
            vision=[fields["vision"]] if "v" in self.modalities else None,
            require_splits=("test",))
        if "t" in self.modalities:
            dataset.text_ids = [self._token_ids(text)]
        used = {f for m in self.modalities for f in SCALED_FIELDS[m]}
        apply_scaling(dataset, {f: s for f, s in self.spec.scaling.items() if f in used},
                      str(self.run_dir))  # the training statistics (data.standardize)
        return dataset

    def _token_ids(self, text: str) -> np.ndarray:
        """Return the token ids of `text` as the run's training made them."""
        spec = self.spec.text
        if spec.kind == "pretrained":
            tokenizer = load_tokenizer(str(spec.encoder_dir), self.cache)
            max_length = int(self.spec.encoder.get("max_length", 50))
            ids = tokenizer([text], truncation=True, max_length=max_length,
                            return_attention_mask=False, return_token_type_ids=False)
            return np.asarray(ids["input_ids"][0], dtype=np.int64)
        index = {w: i for i, w in enumerate(spec.words or [])}  # "vocab": see prepare_text
        return np.array([index.get(w, 1) for w in text.lower().split()] or [1], dtype=np.int64)

    @torch.no_grad()
    def _scores(self, batch) -> list[float]:
        return [float(model(batch.to(module_device(model))).prediction.reshape(-1)[0])
                for _, model in self.seeds]

    def _describe(self, result, dataset: MultimodalDataset) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m, (key, field) in FIELDS.items():
            if m in self.modalities:
                out[field] = {"extractors": [{"name": r.get("name"), "version": r.get("version")}
                                             for r in self.extraction.get(key, [])],
                              "rows": int(result.fields[field].shape[0]),
                              "present": round(result.present.get(key, 1.0), 4)}
        if "t" in self.modalities:
            out["text"] = {"encoder": self.spec.text.source,
                           "tokens": int(len(dataset.text_ids[0]))}
        out["layout"] = self.extraction.get("layout", "sequence")
        return out


def predict(run_dir: str | Path, clips: str | Path | Sequence[str | Path],
            text: str | Sequence[str | None] | None = None,
            cache: EncoderCache | None = None) -> list[dict[str, Any]]:
    """Return one result dict per clip (a single path is one clip) for the finished run in
    `run_dir` (see the module docstring for the keys and what is refused).

    `text`: the transcript (a string for one clip, or one per clip); None: speech recognition
    (an empty string is refused: ConfigError).
    `cache`: an EncoderCache kept between calls (tokenizer, frozen encoder digests). For many
    calls, build a `Predictor` once instead: it keeps the model and extractors loaded.
    """
    clip_list = [clips] if isinstance(clips, str | Path) else list(clips)
    texts = [text] * len(clip_list) if isinstance(text, str) or text is None else list(text)
    if isinstance(text, str) and len(clip_list) > 1:
        raise ConfigError(f"one text for {len(clip_list)} clips; give one text per clip")
    return Predictor(run_dir, cache).predict(clip_list, texts)


def check_inputs(clips: Sequence[str | Path], texts: Sequence[str | None]) -> None:
    """Refuse, in one line and before any clip is scored: a number of texts other than the
    clips', a text that is given but empty, a clip path that is missing or a folder.

    Raises:
        ConfigError: the texts do not fit the clips.
        DataError: a clip path names no file.
    """
    if len(texts) != len(clips):
        raise ConfigError(f"{len(texts)} --text for {len(clips)} clip"
                          f"{'' if len(clips) == 1 else 's'}; give one --text per "
                          f"clip, in the same order, or none")
    for k, (clip, text) in enumerate(zip(clips, texts, strict=True)):
        if text is not None and not str(text).strip():
            which = f"--text number {k + 1} (for {clip})" if len(clips) > 1 else "--text"
            raise ConfigError(f"{which} is empty; give the clip's transcript, or leave --text "
                              f"out to transcribe the clip with speech recognition")
    for clip in clips:
        path = Path(clip)
        if path.is_dir():
            raise DataError(f"{path}: is a folder, not a clip; give the path of a video or "
                            f"audio file")
        if not path.is_file():
            raise DataError(f"{path}: file not found; give the path of a video or audio clip")


def run_dirs(run_dir: Path) -> list[Path]:
    """Return the run directories to predict with: `run_dir` itself, or its seed-*/ runs."""
    if not run_dir.exists():
        raise RunError(f"{run_dir}: no such run directory; give the folder that mimsa train "
                       f"--out wrote")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: is a file, not a run directory; give the folder that mimsa "
                       f"train --out wrote")
    if (run_dir / CONFIG).is_file():
        return [run_dir]
    seeds = sorted(p for p in run_dir.glob("seed-*") if (p / CONFIG).is_file())
    if not seeds:
        raise RunError(f"{run_dir}: no run found (expected config.yaml or seed-*/); give a "
                       f"finished run directory")
    return seeds


def _read_run(run_dir: Path) -> tuple[dict, dict]:
    """Return (config, model.json) of a finished run (RunError otherwise)."""
    if not (run_dir / METRICS).is_file():
        raise RunError(f"{run_dir} is not finished (no {METRICS}); finish it with mimsa train "
                       f"--out {run_dir} --resume first")
    cfg = read_run_config(run_dir)
    from mimsa.train.checkpoint import read_spec

    return cfg, read_spec(run_dir)


def _comparable(inputs: dict) -> dict:
    return {k: inputs.get(k) for k in ("modalities", "dims", "text", "encoder", "extraction",
                                      "scaling")}


def refuse_unreproducible(run_dir: Path, spec_json: dict, cfg: dict) -> None:
    """Raise a one-line RunError when the run read inputs that a clip cannot give (see the
    module docstring); pass silently otherwise."""
    inputs = spec_json["inputs"]
    modalities = read_modalities(spec_json, cfg)
    extraction = inputs.get("extraction") or {}
    provenance = inputs.get("provenance") or {}
    dataset = spec_json.get("dataset") or cfg["data"]["name"]
    advice = ("predict needs a run trained on a dataset built by mimsa extract, or a run that "
              "reads text only (-m text_only, or --set data.modalities=t)")
    for m, (key, field) in FIELDS.items():
        if m in modalities and not extraction.get(key):
            made = provenance.get(field, "made outside mimsa")
            raise RunError(f"{run_dir}: trained on {dataset}'s {field} features ({made}), "
                           f"which no mimsa extractor reproduces; {advice}")
    if "t" not in modalities:
        return
    text = inputs.get("text") or {}
    if text.get("kind") == "features":
        raise RunError(f"{run_dir}: trained on {dataset}'s text feature vectors "
                       f"({provenance.get('text_feats', 'precomputed')}), which no mimsa "
                       f"extractor reproduces; {advice} through a transcript encoder "
                       f"(encoder.name=vocab, minilm, ...)")
    if text.get("kind") == "embedding" and not text.get("words"):
        raise RunError(f"{run_dir}: trained on {dataset}'s own token ids "
                       f"({provenance.get('text', 'no transcripts')}), which no transcript "
                       f"gives; {advice} on transcripts")
    if text.get("context"):
        raise RunError(f"{run_dir}: trained with conversational context (data.context: the "
                       f"neighbouring segments' transcripts), which a single clip does not "
                       f"have; predict with a run trained without data.context")


def normalizes_text(inputs: dict) -> bool:
    """Return True when the run's training transcripts were lower-cased without punctuation
    (their provenance says "lower-cased": CMU-MOSI, mosi-poria), so that ASR text is written
    the same way before tokenising (`features.asr.normalize_text`); a dataset built by extract
    keeps Whisper's own text, as predict does."""
    text = str((inputs.get("provenance") or {}).get("text", "")).lower()
    return "lower-cased" in text and not inputs.get("extraction")


def read_modalities(spec_json: dict, cfg: dict) -> str:
    """Return the modalities the run's model reads: those it was trained with, less those its
    class declares it ignores (`Model.reads`; e.g. text_only trained on mosi, whose data also
    offer audio, reads "t")."""
    modalities = str(spec_json["inputs"].get("modalities", ""))
    name = spec_json.get("model") or cfg["model"]["name"]
    reads = list_models()[name].reads if name in list_models() else None
    return modalities if reads is None else "".join(m for m in modalities if m in reads)


def _plan(extraction: dict, where: str) -> tuple[Plan, dict[str, list[Any]]]:
    """Return the extraction plan of a run's record and its extractors, built now (a version
    other than the recorded one is a one-line warning)."""
    decode = extraction.get("decode") or {}
    text = extraction.get("text") or {}
    choices: dict[str, tuple[ExtractorChoice, ...]] = {}
    built: dict[str, list[Any]] = {}
    for key in ("audio", "visual"):
        records = extraction.get(key) or []
        choices[key] = tuple(ExtractorChoice(str(r["name"]),
                                             tuple(sorted((r.get("config") or {}).items())))
                             for r in records)
        built[key] = [instance(c).load() for c in choices[key]]  # models loaded now
        for record, ex in zip(records, built[key], strict=True):
            if str(ex.version) != str(record.get("version")):
                warnings.warn(f"{where}: trained on {record['name']} {record.get('version')}, "
                              f"the installed extractor is {ex.version}; the features may "
                              f"differ", UserWarning, stacklevel=3)
    plan = Plan(choices["audio"], choices["visual"], float(decode.get("fps", 10.0)),
                int(decode.get("sample_rate", 16000)), decode.get("max_side", 640),
                str(text.get("asr_model") or DEFAULT_ASR_MODEL),
                extraction.get("layout") == "aligned")
    return plan, built


def _load_model(run_dir: Path, cfg: dict, cache: EncoderCache) -> torch.nn.Module:
    """Return the run's trained model in eval mode, built from model.json alone (the training
    data are not needed)."""
    where = str(run_dir)
    state, spec_json = load_checkpoint(run_dir)
    spec = saved_input_spec(spec_json, where)
    model, _ = build_model(cfg, spec)
    share_cache(model, cache)
    load_model_state(model, state, spec_json.get("frozen_encoders") or {}, where)
    model.eval()
    return model


def _clip(value: float) -> float:
    return float(np.clip(value, -3.0, 3.0))


def format_result(result: dict[str, Any]) -> str:
    """Return a result as readable lines (what `mimsa predict` prints without --json)."""
    c7 = result["class7"]
    lines = [f"{result['clip']}: score {result['score']:+.3f}  class7 {c7:+d} "
             f"({CLASS7_NAMES[c7]})  class2 {result['class2']}"]
    if result["transcript_source"]:
        lines.append(f"  transcript ({result['transcript_source']}): "
                     f"\"{result['transcript']}\"")
    if result["drop"]:
        lines.append("  without " + ", without ".join(f"{m}: {s:+.3f}"
                                                      for m, s in result["drop"].items()))
    if result.get("seeds"):
        lines.append("  seeds " + ", ".join(f"{k}: {v:+.3f}" for k, v in result["seeds"].items()))
    return "\n".join(lines)
