"""MediaPipe Face Mesh with the model bundled in mediapipe 0.10.21: 478 points (468 + 2 irises), no download."""
from __future__ import annotations

import threading

import numpy as np

from core.detection.base import Box
from core.landmarks.base import Landmarker, context_crop, to_image_coords


class MediaPipeMeshLandmarker(Landmarker):
    """Face Mesh on a square crop around the detector's box.

    Face Mesh runs its own face detector first, which wants the face to fill about half of the frame, so the
    crop keeps `context` of the box size on each side; small faces are upscaled to `min_side` (FER-2013's
    48-pixel faces need it) and large ones downscaled to `max_side` (speed). When the crop holds several
    faces, the one nearest the crop centre is the detector's face.
    """

    name = "mediapipe_mesh"
    num_points = 478

    def __init__(self, context: float = 0.5, min_side: int = 256, max_side: int = 512,
                 min_confidence: float = 0.3) -> None:
        import mediapipe as mp

        self.context, self.min_side, self.max_side = context, min_side, max_side
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=3,
            min_detection_confidence=min_confidence)
        self._lock = threading.Lock()  # a MediaPipe graph is not re-entrant

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        crop, x0, y0, scale = context_crop(image, box, self.context, self.min_side, self.max_side)
        if crop.ndim == 2:
            crop = np.repeat(crop[:, :, None], 3, axis=2)
        with self._lock:
            result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        side = crop.shape[0]
        faces = [np.array([[p.x * side - 0.5, p.y * side - 0.5] for p in f.landmark], dtype=np.float64)
                 for f in result.multi_face_landmarks]
        centre = np.array([side / 2 - 0.5, side / 2 - 0.5])
        best = min(faces, key=lambda pts: float(np.linalg.norm(pts.mean(axis=0) - centre)))
        return to_image_coords(best, x0, y0, scale)
