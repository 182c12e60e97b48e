"""Optional: MediaPipe Face Mesh landmarks per sampled frame (needs `mediapipe`, its own extra).

"mediapipe_mesh": float32 [F, 1404], one row per sampled frame: the 468 face-mesh landmarks of
the first face as (x, y, z) triples, x and y divided by the frame's width and height, z in
roughly the same scale as x (MediaPipe's convention: depth relative to the head's centre,
smaller is closer). A frame without a face has `present` False and zeros; a clip without a
face in any frame raises DataError. Frames are processed in order as a video stream
(MediaPipe tracks the face between frames).

Install: `mediapipe==0.10.21` is the last release that ships the legacy face-mesh models
(`mediapipe.solutions.face_mesh`). It declares numpy < 2 and protobuf < 5. Its face mesh runs
with numpy 2 (checked with numpy 2.4.6), but not with protobuf >= 5 (FieldDescriptor.label is
gone), while the environment of mimsa's other extras has protobuf 7 (ray, onnxruntime accept
4.25). So use its own environment: `pip install -e ".[features,mediapipe]"` (the extra holds
protobuf>=4.25.3,<5 and mediapipe's other small dependencies) then
`pip install --no-deps mediapipe==0.10.21` (its declared numpy<2 and jax are not needed).
Without it, `get_extractor("mediapipe_mesh")` raises MissingExtraError saying so.
Licence: Apache 2.0 (Google).
Source: Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on Mobile
GPUs" (CVPR workshops 2019).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from mimsa.errors import ConfigError, DataError, MissingExtraError
from mimsa.features.base import Extractor, Features, package_version, register_extractor
from mimsa.features.clip import Clip

REVISION = "mimsa-1"
LANDMARKS = 468
EXTRA = "mediapipe"
INSTALL = (f"extractor 'mediapipe_mesh' needs mediapipe==0.10.21 in its own environment: "
           f"pip install -e \".[features,{EXTRA}]\" && pip install --no-deps mediapipe==0.10.21")


@register_extractor
class FaceMesh(Extractor):
    """468 MediaPipe face-mesh landmarks (x, y, z) per frame, float32 [F, 1404] (optional)."""

    name = "mediapipe_mesh"
    modality = "visual"
    summary = "MediaPipe face mesh, 468 landmarks x (x, y, z) per frame (optional extra)"
    version = (f"mediapipe {package_version('mediapipe')} face_mesh (legacy solution); "
               f"{REVISION}")
    dim = LANDMARKS * 3
    requires = {"mediapipe": EXTRA}
    defaults = {"fps": 10.0, "min_detection_confidence": 0.5}
    names = [f"{axis}{i}" for i in range(LANDMARKS) for axis in "xyz"]

    def __init__(self, **options) -> None:
        super().__init__(**options)
        if not (self.options["fps"] > 0 and 0.0 <= self.options["min_detection_confidence"]
                <= 1.0):
            raise ConfigError(f"extractor 'mediapipe_mesh' options out of range: "
                              f"{self.options}; allowed: fps > 0, "
                              f"0 <= min_detection_confidence <= 1")

    @classmethod
    def check_installed(cls) -> None:
        """Raise MissingExtraError unless mediapipe's legacy face mesh imports and protobuf is
        older than 5."""
        if importlib.util.find_spec("mediapipe") is None:
            raise MissingExtraError(INSTALL)
        protobuf = package_version("protobuf")
        if protobuf != "absent" and int(protobuf.split(".")[0]) >= 5:
            raise MissingExtraError(f"extractor 'mediapipe_mesh' needs protobuf < 5 (mediapipe "
                                    f"0.10.21 fails with protobuf {protobuf}); {INSTALL}")
        try:
            from mediapipe.python.solutions import face_mesh  # noqa: F401
        except (ImportError, AttributeError) as error:
            raise MissingExtraError(f"mediapipe's face mesh does not import ({error}); "
                                    f"{INSTALL}") from None

    def _load(self) -> None:
        from mediapipe.python.solutions import face_mesh

        self._face_mesh = face_mesh

    def _extract(self, clip: Clip) -> Features:
        frames = clip.frames
        assert frames is not None and clip.frame_times is not None
        values = np.zeros((len(frames), self.dim), np.float32)
        present = np.zeros(len(frames), bool)
        with self._face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                min_detection_confidence=self.options["min_detection_confidence"]) as mesh:
            for i, frame in enumerate(frames):
                found = mesh.process(np.ascontiguousarray(frame)).multi_face_landmarks
                if not found:
                    continue
                points = found[0].landmark
                values[i] = np.array([(p.x, p.y, p.z) for p in points[:LANDMARKS]],
                                     np.float32).reshape(-1)
                present[i] = True
        if not present.any():
            raise DataError(f"{clip.path}: no face in any of its {len(frames)} sampled frames "
                            f"(extractor {self.name})")
        return Features(values=values, times=clip.frame_times, present=present,
                        rate_hz=clip.fps, names=list(self.names))
