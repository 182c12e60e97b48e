"""Small media files made inside the tests with `av` (PyAV): moving shapes, a drawn face, a tone.

Shared by the feature, extraction and prediction tests; every function writes one file and
returns its path. Needs `av` and `numpy` (and `cv2` only for `face=True`): call
`pytest.importorskip("av")` before using it.

- `write_clip(path, duration_s, video=, audio=, face=)`: an H.264/AAC .mp4 (or any container
  PyAV infers from the suffix). Video: a grey-blue gradient with a coloured square and a disc
  moving across it (no face), or with `face=True` a drawn cartoon face (skin ellipse, dark eyes,
  brows, nose, mouth) that OpenCV's frontal Haar cascade finds in every frame, drifting slowly.
  Audio: a 220 Hz tone with harmonics, a slow vibrato and a syllable-like loudness envelope
  (voiced for eGeMAPS/librosa pitch trackers), 16 kHz mono.
- `write_truncated(path)`: a valid clip cut to its first `keep` fraction of bytes (a download that
  stopped): it opens and then fails part-way (`faststart=True`, the default), or, with the mp4
  index written last and lost, does not open at all (`faststart=False`).
- `write_not_media(path)`: a text file, e.g. named .mp4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def write_clip(path: str | Path, duration_s: float = 2.0, *, video: bool = True,
               audio: bool = True, face: bool = False, fps: int = 25,
               size: tuple[int, int] = (320, 240), tone_hz: float = 220.0,
               sample_rate: int = SAMPLE_RATE, seed: int = 0, faststart: bool = False) -> Path:
    """Write a clip of `duration_s` seconds to `path` and return it.

    `size` is (width, height) in pixels (even numbers, for yuv420p). `video=False` writes an
    audio-only file (AAC in .mp4, like an .m4a); `audio=False` a file without an audio stream.
    `faststart=True` puts the mp4 index (moov) before the media data, as streaming sites do.
    """
    import av

    if not (video or audio):
        raise ValueError("a clip needs video or audio")
    path = Path(path)
    rng = np.random.default_rng(seed)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        if video:
            vstream = container.add_stream("libx264", rate=fps)
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        if audio:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        if video:
            n_frames = max(1, round(duration_s * fps))
            for i in range(n_frames):
                image = _frame(i / fps, duration_s, size, face, rng)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
        if audio:
            wave = tone(duration_s, tone_hz, sample_rate)
            hop = 1024
            for start in range(0, len(wave), hop):
                chunk = wave[start:start + hop][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                container.mux(astream.encode(frame))
            container.mux(astream.encode(None))
    return path


def tone(duration_s: float, tone_hz: float = 220.0,
         sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Return float32 [S] in [-0.5, 0.5]: a voiced-like tone (fundamental + 2 harmonics, 5 Hz
    vibrato of ±3 %) under a 3 Hz syllable envelope."""
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    f0 = tone_hz * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    envelope = 0.35 + 0.65 * np.abs(np.sin(np.pi * 3 * t))
    return (0.28 * envelope * voiced).astype(np.float32)


def write_truncated(path: str | Path, keep: float = 0.5, duration_s: float = 2.0,
                    faststart: bool = True) -> Path:
    """Write a clip to `path`, then keep only its first `keep` fraction of bytes.

    With `faststart` (the default) the index survives: the file opens, reports the full
    duration, and decoding fails part-way. Without it the index (written last) is lost and the
    file does not open at all.
    """
    path = Path(path)
    write_clip(path, duration_s, faststart=faststart)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_not_media(path: str | Path) -> Path:
    """Write a small text file (whatever the suffix says) and return its path."""
    path = Path(path)
    path.write_text("this is not a video, only text saved under a video's name\n" * 20)
    return path


def draw_face(image: np.ndarray, cx: int, cy: int, s: int) -> None:
    """Draw a frontal cartoon face of half-height `s` pixels centred at (cx, cy), in place
    (RGB uint8); OpenCV's haarcascade_frontalface_default finds it for s >= 40."""
    import cv2

    cv2.ellipse(image, (cx, cy), (int(s * 0.8), s), 0, 0, 360, (220, 180, 150), -1)
    for side in (-1, 1):
        cv2.ellipse(image, (cx + side * int(s * 0.33), cy - int(s * 0.25)),
                    (int(s * 0.14), int(s * 0.08)), 0, 0, 360, (40, 40, 40), -1)
        cv2.line(image, (cx + side * int(s * 0.18), cy - int(s * 0.45)),
                 (cx + side * int(s * 0.5), cy - int(s * 0.45)), (60, 40, 40), max(2, s // 15))
    cv2.line(image, (cx, cy - int(s * 0.1)), (cx, cy + int(s * 0.25)), (170, 130, 110),
             max(2, s // 15))
    cv2.ellipse(image, (cx, cy + int(s * 0.5)), (int(s * 0.3), int(s * 0.1)), 0, 0, 360,
                (140, 60, 60), -1)


def _frame(t: float, duration_s: float, size: tuple[int, int], face: bool,
           rng: np.random.Generator) -> np.ndarray:
    """Return one RGB uint8 [H, W, 3] frame at time `t`."""
    width, height = size
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (60 + 40 * x + 20 * y).astype(np.uint8)
    image[..., 1] = (90 + 30 * y + 0 * x).astype(np.uint8)
    image[..., 2] = (130 + 50 * x * y).astype(np.uint8)
    image += rng.integers(0, 6, image.shape, dtype=np.uint8)  # a little sensor noise
    progress = t / max(duration_s, 1e-6)
    if face:
        s = max(40, min(width, height) // 4)
        cx = int(width / 2 + (width / 8) * np.sin(2 * np.pi * progress))
        cy = int(height / 2 + (height / 16) * np.cos(2 * np.pi * progress))
        draw_face(image, cx, cy, s)
    else:
        side = max(8, min(width, height) // 5)
        left = int((width - side) * progress)
        top = height // 5
        image[top:top + side, left:left + side] = (230, 60, 40)
        radius = side // 2
        cx = int(width - radius - (width - 2 * radius) * progress)
        cy = int(height * 0.7)
        disc = (np.arange(width)[None, :] - cx) ** 2 + (np.arange(height)[:, None] - cy) ** 2
        image[disc <= radius * radius] = (40, 200, 90)
    return image
