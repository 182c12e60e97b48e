"""What a run was trained on, and the checks that the data given to it later still fit.

model.json records under "inputs" the run's `InputSpec` (modalities, feature dims, text
encoder) plus where each used field came from (`provenance`, from the dataset card), and under
"data_fingerprint" a sha256 over the data the run saw (`data_fingerprint`). Every command that
loads a run compares them with the data before it builds the model:
- `check_inputs` raises a one-line `RunError` on the first difference that makes the run's
  weights unusable or its scores meaningless: modalities, the dims of a used feature field, the
  text encoder (kind, name, vocabulary size, pad id) or its settings;
- a changed provenance text or fingerprint is only a one-line warning (re-scoring new data can
  be intended, and provenance is prose that a renamed file or a reworded reader changes), unless
  `check_data_fingerprint(..., strict=True)` is asked for (resuming a run on other data).
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from mimsa.data.dataset import MultimodalDataset
from mimsa.data.scaling import check_scaling
from mimsa.errors import RunError
from mimsa.models.base import InputSpec

#: The dataset fields each modality reads.
FIELDS = {"t": ("text", "text_ids", "text_feats"), "a": ("audio",), "v": ("vision",)}
#: Feature fields with a dimension, their modality and their name in messages.
FEATURES = {"text_feats": ("t", "text features"), "audio": ("a", "audio"),
            "vision": ("v", "vision")}
_ADVICE = "evaluate with the data the run was trained on, or re-train"


class DataChangedWarning(UserWarning):
    """The data a run is given differ from those it was trained on (fingerprint, provenance)."""


def input_record(spec: InputSpec, dataset: MultimodalDataset) -> dict:
    """Return model.json's "inputs" entry: `spec.to_dict()` plus the provenance of the fields
    the run reads ({field: text} from the dataset card) and, for a dataset built by `mimsa
    extract`, how its features were made ("extraction": `used_extraction`), which is what
    `mimsa predict` reproduces on a new clip."""
    record = {**spec.to_dict(), "provenance": used_provenance(dataset, spec.modalities)}
    extraction = used_extraction(dataset, spec.modalities)
    if extraction:
        record["extraction"] = extraction
    return record


def used_extraction(dataset: MultimodalDataset, modalities: str) -> dict:
    """Return the part of the card's `extraction` record (`mimsa.features.extract`) that
    `modalities` read: decoding, layout, the audio extractors' records with "a", the visual
    ones' with "v", the transcript sources with "t"; {} for a dataset not built by extract."""
    extraction = getattr(dataset.card, "extraction", None) or {}
    if not extraction:
        return {}
    skip = {"audio": "a", "visual": "v", "text": "t", "present_fraction": "", "files": ""}
    out = {k: v for k, v in extraction.items() if k not in skip}
    for key, modality in (("audio", "a"), ("visual", "v"), ("text", "t")):
        if modality in modalities and key in extraction:
            out[key] = extraction[key]
    return out


def used_provenance(dataset: MultimodalDataset, modalities: str) -> dict[str, str]:
    """Return the dataset card's provenance lines of the fields that `modalities` read."""
    fields = [f for m in modalities for f in FIELDS.get(m, ())]
    return {f: str(dataset.card.provenance[f]) for f in fields if f in dataset.card.provenance}


def data_fingerprint(dataset: MultimodalDataset, modalities: str) -> str:
    """Return a sha256 (hex) over the ids, splits and labels of every sample and the fields
    that `modalities` read (transcripts, token ids, feature arrays), in dataset order.

    Call it after `prepare_data` at both ends (training and loading): text token ids that
    `prepare_text` attaches are part of what the run saw. It hashes each array's bytes once
    (about 1 s per GB), far less than an epoch."""
    digest = hashlib.sha256()

    def header(name: str, count: int) -> None:
        digest.update(f"\n{name}:{count}\n".encode())

    header("ids", len(dataset.ids))
    digest.update("\x00".join(dataset.ids).encode())
    header("splits", len(dataset.splits))
    digest.update("\x00".join(dataset.splits).encode())
    header("labels", len(dataset.labels))
    digest.update(np.ascontiguousarray(dataset.labels, dtype="<f4").tobytes())
    for field in (f for m in "tav" if m in modalities for f in FIELDS[m]):
        values = getattr(dataset, field, None)
        if values is None:
            continue
        header(field, len(values))
        if field == "text":
            digest.update("\x00".join(values).encode())
            continue
        for array in values:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
    return digest.hexdigest()


def check_inputs(saved_inputs: dict, spec: InputSpec, where: str,
                 dataset: MultimodalDataset | None = None) -> None:
    """Compare the inputs a run was trained on (model.json's "inputs") with those the data give
    now (`spec`, from `prepare_data`); warn about changed provenance (with `dataset`).

    Raises:
        RunError: one line naming the first difference in modalities, the dims of a used
            feature field, or the text encoder (kind, name, vocabulary size, pad id, settings).
    """
    named = f" (dataset {dataset.name})" if dataset is not None else ""
    saved_modalities = str(saved_inputs.get("modalities", ""))
    if saved_modalities != spec.modalities:
        raise RunError(f"{where}: trained on modalities '{saved_modalities}', the data now give "
                       f"'{spec.modalities}'{named}; {_ADVICE}")
    saved_text = saved_inputs.get("text") or {}
    saved_dims = saved_inputs.get("dims") or {}
    for field, (modality, name) in FEATURES.items():
        if modality not in spec.modalities or field not in saved_dims:
            continue
        if field == "text_feats" and saved_text.get("kind") != "features":
            continue
        if saved_dims[field] != spec.dims.get(field):
            now = spec.dims.get(field)
            raise RunError(f"{where}: trained on {name} of {saved_dims[field]} dims, the data "
                           f"now give {now if now is not None else 'none'}{named}; {_ADVICE}")
    if "t" in spec.modalities:
        _check_text(saved_text, spec, where, named)
        _check_encoder_settings(saved_inputs.get("encoder") or {}, spec.encoder, where)
    if dataset is not None:
        _warn_provenance(saved_inputs.get("provenance") or {},
                         used_provenance(dataset, spec.modalities), where)
        _warn_extraction(saved_inputs.get("extraction") or {},
                         used_extraction(dataset, spec.modalities), where)


def check_data_fingerprint(saved: str | None, current: str, where: str, *,
                           strict: bool = False) -> None:
    """Warn (`DataChangedWarning`, one line) when the data's fingerprint differs from the one
    recorded at training; runs saved before fingerprints existed (`saved` None) pass.

    Raises:
        RunError: with `strict` (resuming: training on must see the same data), instead of
            the warning.
    """
    if not saved or saved == current:
        return
    if strict:
        raise RunError(f"{where}: the data differ from those the run was trained on "
                       f"(fingerprint {saved[:12]}, now {current[:12]}); resume with the same "
                       f"data, or start a new run with another --out")
    warnings.warn(f"{where}: the data differ from those the run was trained on (fingerprint "
                  f"{saved[:12]}, now {current[:12]}); the scores are for the new data",
                  DataChangedWarning, stacklevel=2)


def _check_text(saved: dict, spec: InputSpec, where: str, named: str) -> None:
    """Raise RunError when the text input differs: kind, encoder name, vocabulary, pad id."""
    text = spec.text
    if (saved.get("kind"), saved.get("source")) != (text.kind, text.source):
        raise RunError(f"{where}: trained with text encoder '{saved.get('source')}' "
                       f"({saved.get('kind')}), the data now use '{text.source}' ({text.kind})"
                       f"{named}; {_ADVICE}")
    if saved.get("vocab_size") != text.vocab_size:
        raise RunError(f"{where}: trained on a text vocabulary of {saved.get('vocab_size')} "
                       f"tokens, the data now give {text.vocab_size}{named}; {_ADVICE}")
    if "pad_id" in saved and saved["pad_id"] != text.pad_id:
        raise RunError(f"{where}: trained with text pad id {saved['pad_id']}, the tokenizer "
                       f"now gives {text.pad_id} ({text.encoder_dir or text.source}); install "
                       f"the tokenizer the run used")


def _check_encoder_settings(saved: dict, now: dict, where: str) -> None:
    """Raise RunError on the first `encoder.*` setting both records hold with other values
    (a key only one of them has is a default added or removed since, and passes)."""
    for key in sorted(set(saved) & set(now)):
        if saved[key] != now[key]:
            raise RunError(f"{where}: trained with encoder.{key}={saved[key]}, the config now "
                           f"says {now[key]}; restore {key} in the run's config.yaml")


def _warn_provenance(saved: dict, now: dict, where: str) -> None:
    """Warn once, naming the first field whose recorded provenance differs from the data's."""
    for field in sorted(set(saved) & set(now)):
        if saved[field] != now[field]:
            warnings.warn(f"{where}: {field} came from '{saved[field]}' in training, it now "
                          f"comes from '{now[field]}'; check that the features are the same "
                          f"kind", DataChangedWarning, stacklevel=3)
            return


def _warn_extraction(saved: dict, now: dict, where: str) -> None:
    """Warn once when the audio/visual extractors (name, version, config) that made the
    training features differ from those of the data now (both datasets built by extract)."""
    for key in ("audio", "visual"):
        if key in saved and key in now and saved[key] != now[key]:
            def names(records: list) -> str:
                return ", ".join(f"{r.get('name')} {r.get('version')}" for r in records)
            warnings.warn(f"{where}: the {key} features were made by {names(saved[key])} in "
                          f"training, by {names(now[key])} now; check that they are the same "
                          f"kind", DataChangedWarning, stacklevel=3)
            return


def saved_input_spec(spec_json: dict, where: str) -> InputSpec:
    """Return the `InputSpec` recorded in model.json (`spec_json`, from `read_spec`).

    Raises:
        RunError: its "inputs" entry does not describe an InputSpec (e.g. unknown text keys),
            or its feature statistics ("scaling") are malformed.
    """
    try:
        spec = InputSpec.from_dict(spec_json["inputs"])
    except (KeyError, TypeError, ValueError) as err:
        raise RunError(f"{where}: model.json key 'inputs' is not a valid input spec ({err}); "
                       f"restore it from a copy of the run, or re-run training") from err
    check_scaling(spec.scaling, where)
    return spec
