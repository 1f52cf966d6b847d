"""The face-detector interface every backend implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from core.errors import UserFacingError

Box = tuple[float, float, float, float]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a) x len(b)) of x1 y1 x2 y2 boxes: tracking, evaluation and fusion share it."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class DetectorUnavailable(UserFacingError):
    """A detector whose model files are not installed (e.g. our YOLO before it is trained): the message says
    what is missing and how to get it, so apps show it instead of a traceback."""

    code = "detector_unavailable"


@dataclass(frozen=True)
class Detection:
    """One face: box (x1, y1, x2, y2) in pixels of the oriented image, score in [0, 1]."""

    box: Box
    score: float
    keypoints: np.ndarray | None = field(default=None, compare=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class FaceDetector(ABC):
    """Finds faces in an RGB uint8 image. `threshold` is the minimum score kept."""

    name: str = "detector"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)

    @abstractmethod
    def _detect(self, image: np.ndarray) -> list[Detection]:
        """Backend-specific detection with scores; thresholding and clipping happen in `detect`."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        kept = []
        for det in self._detect(image):
            if det.score < self.threshold:
                continue
            x1, y1, x2, y2 = det.box
            box = (max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            kept.append(Detection(box=box, score=float(det.score), keypoints=det.keypoints))
        return sorted(kept, key=lambda d: -d.score)
