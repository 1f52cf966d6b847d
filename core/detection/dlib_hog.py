"""dlib's HOG + linear SVM frontal-face detector (`get_frontal_face_detector`), bundled in dlib-bin.

Scores: dlib's `run()` gives each box its SVM margin (0 is dlib's own decision boundary; faces usually
score 0 to 2.5). We map it to [0, 1] with a logistic, score = 1 / (1 + exp(-2 * margin)), so dlib's
boundary is 0.5, a margin of 1 is 0.88 and -1 is 0.12. The mapping is monotonic, so ranking metrics (AP)
do not depend on the scale of 2; it only spreads the useful margins over the threshold slider.
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from core.detection.base import Detection, FaceDetector
from core.detection.registry import requires_module

if TYPE_CHECKING:
    import dlib

INSTALL_HINT = "dlib is missing (`pip install dlib-bin==20.0.1.post1`)."
install_hint = requires_module("dlib", INSTALL_HINT)

SCALE = 2.0
UPSAMPLE = 1  # one 2x upsampling: dlib's HOG window is 80 px, so without it faces under ~80 px are missed
MIN_MARGIN = -1.5  # lowest margin asked of dlib (score 0.05): lower ones are noise and slow the run


def margin_to_score(margin: float) -> float:
    return 1.0 / (1.0 + math.exp(-SCALE * margin))


def score_to_margin(score: float) -> float:
    score = min(max(score, 1e-6), 1 - 1e-6)
    return math.log(score / (1 - score)) / SCALE


@lru_cache(maxsize=1)
def _load() -> dlib.fhog_object_detector:
    import dlib

    return dlib.get_frontal_face_detector()


class DlibHogDetector(FaceDetector):
    """Classic HOG detector: frontal faces, CPU-cheap, misses profiles and small faces."""

    name = "dlib_hog"

    def __init__(self, threshold: float = 0.5, upsample: int = UPSAMPLE) -> None:
        super().__init__(threshold)
        self.upsample = int(upsample)
        self._model = _load()
        self._lock = threading.Lock()

    def _detect(self, image: np.ndarray) -> list[Detection]:
        adjust = max(MIN_MARGIN, score_to_margin(self.threshold))  # dlib skips boxes below this margin
        with self._lock:
            rects, margins, _ = self._model.run(np.ascontiguousarray(image), self.upsample, adjust)
        return [Detection(box=(float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)),
                          score=margin_to_score(m)) for r, m in zip(rects, margins)]
