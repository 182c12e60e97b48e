"""Conversational context (`data.context: {before: k, after: k}`): each segment's neighbours.

A spoken opinion is cut into segments; the segments around one often carry what it refers to
("but not a whole bunch" after "they did a little bit of it"). MMML (Wu et al., NAACL 2024)
feeds the neighbouring utterances of the same video to the text encoder. This module finds the
neighbours; `mimsa.encoders.tokens` builds the token ids from their transcripts.

Neighbours are the segments of the same video in time order, taken from the whole dataset
(the standard MOSI/MOSEI splits are by video, so a video's segments share a split), and only
their transcripts are used: never a label, never a segment of another video.

The video and the time order come from the segment id:
  `<video>_<clip number>`      MOSI (and any dataset with such ids): order by clip number
  `<video>_<start>_<fraction>` MOSEI (`clip_id` is a start time written with "_"): by start
Ids that fit neither are refused (`ConfigError`) — context needs them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from mimsa.data.dataset import MultimodalDataset
from mimsa.errors import ConfigError

_START_TIME = re.compile(r"^(?P<video>.+)_(?P<whole>\d+)_(?P<fraction>\d+)$")
_CLIP_NUMBER = re.compile(r"^(?P<video>.+)_(?P<number>\d+)$")


@dataclass(frozen=True)
class ContextWindow:
    """How many neighbouring segments of the same video a text input includes."""

    before: int = 0
    after: int = 0

    @classmethod
    def from_config(cls, value: dict | None) -> ContextWindow | None:
        """Return the window of a `data.context` setting (None or all zero: no context)."""
        if not value:
            return None
        window = cls(int(value.get("before", 0)), int(value.get("after", 0)))
        return window if window.before or window.after else None

    def label(self) -> str:
        """Return e.g. "context before 2, after 1" (printed with every result)."""
        return f"context before {self.before}, after {self.after}"


def segment_position(segment_id: str, start_times: bool) -> tuple[str, float]:
    """Return (video id, position in time) of `segment_id` (see the module docstring).

    `start_times`: ids end in `<start>_<fraction>` (MOSEI) rather than a clip number.
    Raises ConfigError naming the id when it fits neither form.
    """
    if start_times:
        match = _START_TIME.match(segment_id)
        if match:
            return match["video"], float(f"{match['whole']}.{match['fraction']}")
    else:
        match = _CLIP_NUMBER.match(segment_id)
        if match:
            return match["video"], float(match["number"])
    form = "<video>_<start>_<fraction>" if start_times else "<video>_<clip number>"
    raise ConfigError(f"data.context: segment id '{segment_id}' is not '{form}', so its video "
                      f"and place in time are unknown; use data.context: null for this dataset")


def neighbours(dataset: MultimodalDataset, window: ContextWindow
               ) -> list[tuple[list[int], list[int]]]:
    """Return, for every sample i, (indices of up to `window.before` earlier segments of the
    same video, nearest last; indices of up to `window.after` later ones, nearest first).

    Raises ConfigError when the dataset has no transcripts or its ids do not give the video
    and time order (see `segment_position`).
    """
    if dataset.text is None:
        raise ConfigError(f"data.context: {dataset.name} has no transcripts to take context "
                          f"from; use data.context: null")
    start_times = dataset.name == "mosei"
    by_video: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for i, segment_id in enumerate(dataset.ids):
        video, position = segment_position(segment_id, start_times)
        by_video[video].append((position, i))
    result: list[tuple[list[int], list[int]]] = [([], []) for _ in dataset.ids]
    for segments in by_video.values():
        order = [i for _, i in sorted(segments)]
        for place, i in enumerate(order):
            earlier = order[max(0, place - window.before):place]
            later = order[place + 1:place + 1 + window.after]
            result[i] = (earlier, later)
    return result
