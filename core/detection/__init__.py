"""Face detectors behind one interface, chosen by name: `make_detector("mediapipe")`.

A new detector is one module plus one line in `_REGISTRY`.
"""
from __future__ import annotations

from typing import Callable

from core.detection.base import Box, Detection, FaceDetector


def _mediapipe(threshold: float) -> FaceDetector:
    from core.detection.mediapipe_detector import MediaPipeDetector

    return MediaPipeDetector(threshold, full_range=False)


def _mediapipe_full(threshold: float) -> FaceDetector:
    from core.detection.mediapipe_detector import MediaPipeDetector

    return MediaPipeDetector(threshold, full_range=True, tiled=True)


def _haar(threshold: float) -> FaceDetector:
    from core.detection.haar import HaarDetector

    return HaarDetector(threshold)


# name -> (factory, default threshold, one-line description shown in the app and CLI help)
_REGISTRY: dict[str, tuple[Callable[[float], FaceDetector], float, str]] = {
    "mediapipe": (_mediapipe, 0.5, "MediaPipe BlazeFace short-range: fast, best for faces near the camera"),
    "mediapipe_full": (_mediapipe_full, 0.5, "MediaPipe BlazeFace full-range on tiles: small faces in group photos (slower)"),
    "haar": (_haar, 0.5, "OpenCV Haar cascade: classic baseline, frontal faces only"),
}


def available_detectors() -> list[str]:
    return list(_REGISTRY)


def detector_description(name: str) -> str:
    return _REGISTRY[name][2]


def default_threshold(name: str) -> float:
    return _REGISTRY[name][1]


def make_detector(name: str, threshold: float | None = None) -> FaceDetector:
    """Build a detector by registry name; unknown names get a message listing the choices."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown detector {name!r}. Choose one of: {', '.join(_REGISTRY)}.")
    factory, default, _ = _REGISTRY[name]
    return factory(default if threshold is None else threshold)


__all__ = ["Box", "Detection", "FaceDetector", "available_detectors", "default_threshold",
           "detector_description", "make_detector"]
