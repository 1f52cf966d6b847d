"""The one entry point: image in, per-face results out. Pages, CLI, API and evaluation all call it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import settings
from core.detection import Box, Detection, FaceDetector, make_detector
from core.emotion.classifier import EmotionClassifier
from core.emotion.vocabulary import EMOTIONS
from core.landmarks.base import Landmarker


@dataclass
class FaceResult:
    """One analysed face: where it is, how sure the detector was, and what the classifier says."""

    box: Box
    score: float
    probs: np.ndarray
    classes: tuple[str, ...] = EMOTIONS
    landmarks: np.ndarray | None = field(default=None, repr=False)
    aligned: bool = False  # True when the crop was aligned from landmarks (analyze(..., align=True))

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))

    @property
    def probs_dict(self) -> dict[str, float]:
        return {c: float(p) for c, p in zip(self.classes, self.probs)}

    def to_dict(self) -> dict[str, Any]:
        """The CLI/API JSON shape (a stable contract: box, score, emotion, confidence, probs)."""
        out: dict[str, Any] = {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "emotion": self.label,
            "confidence": round(self.confidence, 4),
            "probs": {c: round(p, 4) for c, p in self.probs_dict.items()},
        }
        if self.landmarks is not None:
            out["landmarks"] = np.round(self.landmarks, 1).tolist()
        return out


def face_crop(classifier: EmotionClassifier, image: np.ndarray, box: Box, points: np.ndarray | None = None,
              source: str | None = None) -> tuple[np.ndarray, bool]:
    """The classifier's input for one face: aligned from `points` when given and usable, else its own crop.

    Returns (crop, aligned). Alignment (eyes level, fixed eye distance) targets FER-2013's framing, the
    same framing the card's crop margin aims at, so both paths feed the classifier FER-like faces. `source`
    names the landmarker the points came from, which picks its measured template.
    """
    if points is not None:
        from core.landmarks.align import align_face, template_for

        aligned = align_face(image, points, template=template_for(source))
        if aligned is not None:
            return aligned, True
    return classifier.crop(image, box), False


class EmotionPipeline:
    """Detector + (optional) landmarker + emotion classifier, joined the one way the product uses."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier,
                 landmarker: Landmarker | None = None) -> None:
        self.detector = detector
        self.classifier = classifier
        self.landmarker = landmarker

    @classmethod
    def create(cls, detector: str | None = None, threshold: float | None = None,
               model: str | None = None) -> "EmotionPipeline":
        return cls(make_detector(detector or settings.get().detector, threshold), EmotionClassifier.load(model))

    def analyze(self, image: np.ndarray, landmarks: bool = False, align: bool = False) -> list[FaceResult]:
        """Detect every face in an RGB uint8 image and classify all of them in one batch.

        `align=True` levels the eyes and fixes their distance before classifying, using the landmarker's
        points (or the detector's eye keypoints when no landmarker is set); a face without usable points
        falls back to the plain crop.
        """
        detections = self.detector.detect(image)
        if not detections:
            return []
        points: list[np.ndarray | None] = [None] * len(detections)
        if landmarks or align:
            points = [self._landmarks(image, d) for d in detections]
        source = self.landmarker.name if self.landmarker is not None else None
        prepared = [face_crop(self.classifier, image, d.box, pt if align else None, source)
                    for d, pt in zip(detections, points)]
        probs = self.classifier.predict([c for c, _ in prepared])
        return [FaceResult(box=d.box, score=d.score, probs=p, classes=self.classifier.classes,
                           landmarks=pt if landmarks else None, aligned=a)
                for d, p, pt, (_, a) in zip(detections, probs, points, prepared)]

    def _landmarks(self, image: np.ndarray, detection: Detection) -> np.ndarray | None:
        if self.landmarker is not None:
            return self.landmarker.landmarks(image, detection.box)
        return detection.keypoints  # the detector's own keypoints (eyes, nose, mouth, ears) if it has them
