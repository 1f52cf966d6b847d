"""OpenCV's Haar cascade: old and weak, but tiny, fast and everywhere; a useful baseline."""
from __future__ import annotations

import math

import cv2
import numpy as np

from core.detection.base import Detection, FaceDetector


class HaarDetector(FaceDetector):
    """Viola-Jones frontal-face cascade. Scores squash the cascade's level weight into (0, 1)."""

    name = "haar"

    def __init__(self, threshold: float = 0.5, min_neighbors: int = 4) -> None:
        super().__init__(threshold)
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV's Haar cascade file is missing: {path}")
        self.min_neighbors = min_neighbors

    def _detect(self, image: np.ndarray) -> list[Detection]:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        min_side = max(20, int(0.03 * min(grey.shape)))
        boxes, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side),
            outputRejectLevels=True)
        out = []
        for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).ravel()):
            score = 1.0 / (1.0 + math.exp(-float(weight)))
            out.append(Detection(box=(float(x), float(y), float(x + w), float(y + h)), score=score))
        return out
