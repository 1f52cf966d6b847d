"""Face detectors behind one interface, chosen by name: `make_detector("mediapipe")`.

A new detector is one module plus one line in `_REGISTRY`. Detectors whose model files are not installed
(our YOLO before it is trained) are left out of `available_detectors()`, so the app keeps working.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from core.detection.base import Box, Detection, DetectorUnavailable, FaceDetector


def _mediapipe(threshold: float) -> FaceDetector:
    from core.detection.mediapipe_detector import MediaPipeDetector

    return MediaPipeDetector(threshold, full_range=False)


def _mediapipe_full(threshold: float) -> FaceDetector:
    from core.detection.mediapipe_detector import MediaPipeDetector

    return MediaPipeDetector(threshold, full_range=True, tiled=True)


def _haar(threshold: float) -> FaceDetector:
    from core.detection.haar import HaarDetector

    return HaarDetector(threshold)


def _yolo(threshold: float) -> FaceDetector:
    from core.detection.yolo import YoloDetector

    return YoloDetector(threshold)


def _yolo_available() -> bool:
    from core.detection.yolo import is_available

    return is_available()


def _yolo_threshold() -> float:
    from core.detection.yolo import card_threshold

    return card_threshold()


def _mtcnn(threshold: float) -> FaceDetector:
    from core.detection.mtcnn import MtcnnDetector

    return MtcnnDetector(threshold)


def _mtcnn_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("facenet_pytorch") is not None


def _dlib_hog(threshold: float) -> FaceDetector:
    from core.detection.dlib_hog import DlibHogDetector

    return DlibHogDetector(threshold)


def _ensemble(threshold: float) -> FaceDetector:
    from core.detection.ensemble import EnsembleDetector

    return EnsembleDetector(threshold)


def _ensemble_available() -> bool:
    from core.detection.ensemble import config_from_report

    return all(is_available(m) for m in config_from_report().members)


def _ensemble_threshold() -> float:
    from core.detection.ensemble import config_from_report

    return config_from_report().threshold


@dataclass(frozen=True)
class _Entry:
    factory: Callable[[float], FaceDetector]
    threshold: float | Callable[[], float]  # a callable reads a tuned value (model card, report)
    description: str                          # one line, shown in the app and CLI help
    available: Callable[[], bool] = lambda: True


_REGISTRY: dict[str, _Entry] = {
    "mediapipe": _Entry(_mediapipe, 0.5, "MediaPipe BlazeFace short-range: fast, best for faces near the camera"),
    "mediapipe_full": _Entry(_mediapipe_full, 0.5,
                             "MediaPipe BlazeFace full-range on tiles: small faces in group photos (slower)"),
    "haar": _Entry(_haar, 0.5, "OpenCV Haar cascade: classic baseline, frontal faces only"),
    "yolo": _Entry(_yolo, _yolo_threshold, "Our YOLOv8n, trained here from scratch on WIDER FACE photos (56 GPU "
                   "epochs), run by ONNX Runtime: the best fast detector for group and event photos; see Model "
                   "Comparison", _yolo_available),
    "mtcnn": _Entry(_mtcnn, 0.9, "MTCNN (facenet-pytorch): accurate cascaded CNN with 5 landmarks, slow on CPU",
                    _mtcnn_available),
    "dlib_hog": _Entry(_dlib_hog, 0.5, "dlib HOG + SVM: classic frontal-face detector, CPU-cheap"),
    "ensemble": _Entry(_ensemble, _ensemble_threshold, "Weighted-box fusion of the members chosen on the tune split "
                       "(see Model Comparison); costs the members' sum", _ensemble_available),
}


def registered_detectors() -> list[str]:
    """Every name the registry knows, installed or not."""
    return list(_REGISTRY)


def is_available(name: str) -> bool:
    return name in _REGISTRY and _REGISTRY[name].available()


def available_detectors() -> list[str]:
    """Detectors that can be built here (model files installed); what pages, CLI and API offer."""
    return [name for name in _REGISTRY if is_available(name)]


def detector_description(name: str) -> str:
    return _REGISTRY[name].description


def default_threshold(name: str) -> float:
    """The registry's threshold, or the tuned one a model card/report holds, kept inside the app's
    slider range [0.05, 0.95]."""
    value = _REGISTRY[name].threshold
    value = value() if callable(value) else value
    return round(min(0.95, max(0.05, float(value))), 4)


def make_detector(name: str, threshold: float | None = None) -> FaceDetector:
    """Build a detector by registry name; unknown names get a message listing the choices, and a detector
    whose files are missing raises DetectorUnavailable saying what to install."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown detector {name!r}. Choose one of: {', '.join(available_detectors())}.")
    entry = _REGISTRY[name]
    if not entry.available():
        raise DetectorUnavailable(
            f"The {name!r} detector is not installed here: {_missing_reason(name)} "
            f"Available: {', '.join(available_detectors())}.")
    return entry.factory(default_threshold(name) if threshold is None else threshold)


def _missing_reason(name: str) -> str:
    if name == "yolo":
        from core.detection.yolo import weights_path

        return f"its weights {weights_path()} are missing (train them with `python -m training.train_detector`)."
    if name == "mtcnn":
        return "facenet-pytorch is missing (`pip install --no-deps facenet-pytorch==2.6.0`)."
    if name == "ensemble":
        from core.detection.ensemble import config_from_report

        missing = [m for m in config_from_report().members if not is_available(m)]
        return f"its members {', '.join(missing)} are not installed."
    return "its model files are missing."


__all__ = ["Box", "Detection", "DetectorUnavailable", "FaceDetector", "available_detectors", "default_threshold",
           "detector_description", "is_available", "make_detector", "registered_detectors"]
