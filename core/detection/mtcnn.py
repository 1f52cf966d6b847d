"""MTCNN (Zhang et al. 2016) from facenet-pytorch 2.6.0, which bundles its three small networks' weights.

facenet-pytorch pins torch<2.3 in its metadata but runs on our torch; it is installed with `--no-deps`
(see the Makefile). Its score is the last stage's (O-Net) face probability, already in [0, 1].
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from core.detection.base import Detection, DetectorUnavailable, FaceDetector
from core.detection.registry import requires_module

if TYPE_CHECKING:
    from facenet_pytorch import MTCNN

INSTALL_HINT = "facenet-pytorch is missing (`pip install --no-deps facenet-pytorch==2.6.0`, as the Makefile does)."
install_hint = requires_module("facenet_pytorch", INSTALL_HINT)

# The image pyramid starts at 12/min_face_size; MTCNN's cost grows fast as this shrinks (measured on a
# 512x416 WIDER image, 1 thread: 0.57 s at 20 px, 0.41 s at 32 px). 20 px keeps faces just under our
# 32-px evaluation floor findable while staying usable on a CPU.
MIN_FACE_SIZE = 20


@lru_cache(maxsize=4)
def _load(min_face_size: int) -> MTCNN:
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:
        raise DetectorUnavailable(f"MTCNN cannot run here: {INSTALL_HINT} ({exc})") from None
    return MTCNN(keep_all=True, device="cpu", min_face_size=min_face_size)


class MtcnnDetector(FaceDetector):
    """Cascaded P/R/O-Net. Keypoints: the 5 MTCNN landmarks (eyes, nose, mouth corners)."""

    name = "mtcnn"

    def __init__(self, threshold: float = 0.9, min_face_size: int = MIN_FACE_SIZE) -> None:
        super().__init__(threshold)
        self._model = _load(int(min_face_size))
        self._lock = threading.Lock()

    def _detect(self, image: np.ndarray) -> list[Detection]:
        with self._lock:
            boxes, probs, points = self._model.detect(np.ascontiguousarray(image), landmarks=True)
        if boxes is None:
            return []
        # facenet-pytorch returns object arrays (one per image in a batch): make them plain floats.
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        probs = np.asarray(probs, float).ravel()
        points = np.asarray(points, float).reshape(-1, 5, 2)
        return [Detection(box=tuple(b), score=float(p), keypoints=k.astype(np.float32))
                for b, p, k in zip(boxes, probs, points)]
