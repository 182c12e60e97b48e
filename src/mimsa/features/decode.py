"""Decode a media file into a `Clip` with PyAV (`av`, which bundles FFmpeg): 16 kHz mono audio
and RGB frames sampled at a fixed rate.

Sampling: frame k (k = 0, 1, ...) is the picture on screen at t_k = (k + 0.5) / fps seconds,
the centre of its 1/fps slot, for every t_k before the end of the video stream; the clip's
native frame rate does not matter (a 30 fps clip sampled at 10 fps keeps every third picture).
Times count from the start of the file (the container's start time). Audio is mixed down to
mono and resampled with FFmpeg's resampler; it is aligned to the same origin (padded with
zeros when the audio stream starts late).

Memory: frames are kept as uint8 [F, H, W, 3], about F * H * W * 3 bytes (74 frames of
480 x 360: 38 MB); `max_side` bounds H and W.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mimsa.errors import DataError, MissingExtraError
from mimsa.features.clip import Clip


def decode_clip(path: str | Path, fps: float = 10.0, sample_rate: int = 16000,
                max_side: int | None = 640, *, video: bool = True, audio: bool = True) -> Clip:
    """Return the decoded clip at `path`.

    Args:
        path: any file FFmpeg reads (.mp4, .mkv, .webm, .avi, .wav, .m4a, ...).
        fps: video frames sampled per second (> 0).
        sample_rate: audio samples per second after resampling (> 0).
        max_side: frames larger than this on their longer side are scaled down (aspect kept);
            None keeps the decoded size.
        video: False skips the video stream (its packets are read past, never decoded):
            frames and frame_times are None. For audio-only work (audio extractors, speech
            recognition), several times faster on a typical clip.
        audio: False skips the audio stream the same way: audio is None.

    A file with audio but no video (or the reverse) is not an error: the missing part is None.
    What is decoded is the same whether or not the other stream is skipped (same samples,
    same frames); only `duration_s` then covers the decoded part alone.

    Raises:
        DataError: one line naming the file: it does not exist, is not a media file, has no
            audio or video stream, or is truncated/corrupt (decoding fails part-way, or ends
            well before the duration the file declares).
        MissingExtraError: `av` is not installed (extra `features`).
        ValueError: fps, sample_rate or max_side is not positive (or fps not finite), or
            neither video nor audio is asked for.
    """
    if (not 0 < fps < math.inf or not sample_rate > 0
            or (max_side is not None and max_side < 1)):
        raise ValueError(f"decode_clip needs 0 < fps < inf, sample_rate > 0 and max_side >= 1, "
                         f"got fps={fps}, sample_rate={sample_rate}, max_side={max_side}")
    if not (video or audio):
        raise ValueError("decode_clip needs video=True or audio=True (or both)")
    try:
        import av
    except ImportError:
        raise MissingExtraError("decoding media needs the optional package 'av'; install it "
                                "with: pip install -e \".[features]\"") from None
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as error:
        raise DataError(f"{path}: not a readable media file ({_reason(error)}); check that "
                        f"it is a complete video or audio file") from None
    with container:
        video_stream = next((s for s in container.streams.video
                             if not s.disposition & av.stream.Disposition.attached_pic), None)
        audio_stream = container.streams.audio[0] if container.streams.audio else None
        if video_stream is None and audio_stream is None:
            raise DataError(f"{path}: no audio or video stream in the file")
        origin = container.start_time / 1e6 if container.start_time is not None else 0.0
        declared = container.duration / 1e6 if container.duration else None
        chosen = (video_stream if video else None, audio_stream if audio else None)
        streams = [s for s in chosen if s is not None]
        if not streams:  # the file lacks the stream asked for: that part is None
            return Clip(path=path, audio=None, sample_rate=sample_rate, frames=None,
                        frame_times=None, fps=float(fps), duration_s=0.0)
        if len(streams) < len([s for s in (video_stream, audio_stream) if s is not None]):
            declared = _declared(streams, origin, declared)
        decoder = _Decoder(path, fps, sample_rate, max_side, origin, *chosen)
        for stream in streams:
            stream.thread_type = "AUTO"
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    decoder.add(frame)
        except (av.FFmpegError, EOFError) as error:
            raise DataError(f"{path}: truncated or corrupt, decoding failed at "
                            f"{decoder.reached:.2f} s ({_reason(error)})") from None
    return decoder.finish(declared)


class _Decoder:
    """Collects the sampled frames and the resampled audio while packets are decoded."""

    def __init__(self, path: Path, fps: float, sample_rate: int, max_side: int | None,
                 origin: float, video, audio) -> None:
        import av

        self.path, self.fps, self.sample_rate, self.max_side = path, fps, sample_rate, max_side
        self.origin = origin
        self.video, self.audio = video, audio
        self.frames: list[np.ndarray] = []
        self.pending = None  # last decoded video frame, not yet past the next sample time
        self.video_end = 0.0
        self.chunks: list[np.ndarray] = []
        self.audio_start: float | None = None
        self.resampler = (av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                          if audio is not None else None)
        self.size: tuple[int, int] | None = None
        self.reached = 0.0

    def add(self, frame) -> None:
        import av

        if isinstance(frame, av.VideoFrame):
            self._add_video(frame)
        elif isinstance(frame, av.AudioFrame):
            self._add_audio(frame)

    def _add_video(self, frame) -> None:
        t = (frame.time if frame.time is not None else self.video_end) - self.origin
        step = self._frame_step(frame)
        # every sample time before this frame shows the previous picture
        while self.pending is not None and self._next_time() < t:
            self.frames.append(self._rgb(self.pending))
        self.pending = frame
        self.video_end = max(self.video_end, t + step)
        self.reached = max(self.reached, t)

    def _add_audio(self, frame) -> None:
        if self.audio_start is None:
            self.audio_start = (frame.time - self.origin) if frame.time is not None else 0.0
        for out in self.resampler.resample(frame):
            self.chunks.append(out.to_ndarray().reshape(-1))
        self.reached = max(self.reached, self.audio_start + self._audio_samples()
                           / self.sample_rate)

    def finish(self, declared: float | None) -> Clip:
        frames = frame_times = None
        if self.pending is not None:
            while self._next_time() < self.video_end:
                self.frames.append(self._rgb(self.pending))
            if self.frames:
                frames = np.stack(self.frames)
                frame_times = (np.arange(len(frames)) + 0.5) / self.fps
        audio = None
        if self.resampler is not None:
            for out in self.resampler.resample(None):
                self.chunks.append(out.to_ndarray().reshape(-1))
            samples = (np.concatenate(self.chunks).astype(np.float32) if self.chunks
                       else np.zeros(0, np.float32))
            shift = round((self.audio_start or 0.0) * self.sample_rate)
            if shift > 0:
                samples = np.concatenate([np.zeros(shift, np.float32), samples])
            elif shift < 0:
                samples = samples[-shift:]
            if samples.size:
                audio = np.clip(samples, -1.0, 1.0)
        if frames is None and audio is None:
            raise DataError(f"{self.path}: no audio samples or video frames could be decoded; "
                            f"the file is empty or corrupt")
        audio_end = len(audio) / self.sample_rate if audio is not None else 0.0
        video_end = self.video_end if frames is not None else 0.0
        duration = max(audio_end, video_end)
        if declared and duration < declared - max(1.0, 0.25 * declared):
            raise DataError(f"{self.path}: truncated, decoded {duration:.2f} s of the "
                            f"{declared:.2f} s the file declares")
        return Clip(path=self.path, audio=audio, sample_rate=self.sample_rate, frames=frames,
                    frame_times=frame_times, fps=float(self.fps), duration_s=float(duration))

    # -- helpers ----------------------------------------------------------------------------
    def _next_time(self) -> float:
        return (len(self.frames) + 0.5) / self.fps

    def _audio_samples(self) -> int:
        return sum(len(c) for c in self.chunks)

    def _frame_step(self, frame) -> float:
        rate = self.video.average_rate or self.video.guessed_rate
        if frame.duration and frame.time_base:
            return float(frame.duration * frame.time_base)
        return 1.0 / float(rate) if rate else 1.0 / 25.0

    def _rgb(self, frame) -> np.ndarray:
        if self.size is None:
            width, height = frame.width, frame.height
            scale = 1.0
            if self.max_side is not None and max(width, height) > self.max_side:
                scale = self.max_side / max(width, height)
            self.size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
        width, height = self.size
        return frame.to_ndarray(format="rgb24", width=width, height=height)


def _declared(streams, origin: float, container_s: float | None) -> float | None:
    """Return the end (seconds from `origin`) that the chosen streams declare, for the
    truncation check when a stream is skipped; the container's duration when one of them
    declares none."""
    ends = []
    for stream in streams:
        if not stream.duration or not stream.time_base:
            return container_s
        start = float((stream.start_time or 0) * stream.time_base)
        ends.append(start + float(stream.duration * stream.time_base) - origin)
    return max(ends) if ends else container_s


def _reason(error: Exception) -> str:
    """FFmpeg's message without the errno prefix and the file name PyAV appends."""
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip().rstrip(".") or type(error).__name__
