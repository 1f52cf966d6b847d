"""MediaPipe face detection with the model bundled in mediapipe 0.10.21 (no download)."""
from __future__ import annotations

import threading

import numpy as np

from core.detection.base import Detection, FaceDetector
from core.detection.registry import requires_module
from core.detection.tiling import detect_tiled

INSTALL_HINT = "mediapipe is missing (`pip install mediapipe==0.10.21`, the last release bundling its face models)."
install_hint = requires_module("mediapipe", INSTALL_HINT)  # BlazeFace here, Face Mesh in core.landmarks


class MediaPipeDetector(FaceDetector):
    """BlazeFace. `full_range=False`: faces within ~2 m (selfies, webcam); `True`: smaller faces up to
    ~5 m. `tiled=True` also scans overlapping tiles so group photos keep their small faces."""

    def __init__(self, threshold: float = 0.5, full_range: bool = False, tiled: bool = False) -> None:
        super().__init__(threshold)
        import mediapipe as mp

        self.name = "mediapipe_full" if full_range else "mediapipe"
        self.tiled = tiled
        # The backend filters by its own confidence; ask for everything down to 0.1 and threshold here,
        # so one detector object serves any threshold the user picks.
        self._model = mp.solutions.face_detection.FaceDetection(
            model_selection=1 if full_range else 0, min_detection_confidence=0.1)
        self._lock = threading.Lock()  # a MediaPipe graph is not re-entrant

    def _detect(self, image: np.ndarray) -> list[Detection]:
        if self.tiled:
            return detect_tiled(self._detect_once, image)
        return self._detect_once(image)

    def _detect_once(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        with self._lock:
            result = self._model.process(np.ascontiguousarray(image))
        out = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            x1, y1 = rel.xmin * w, rel.ymin * h
            box = (x1, y1, x1 + rel.width * w, y1 + rel.height * h)
            kps = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints], dtype=np.float32)
            out.append(Detection(box=box, score=float(det.score[0]), keypoints=kps))
        return out
