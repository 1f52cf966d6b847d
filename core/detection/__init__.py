"""Face detectors behind one interface, chosen by name: `make_detector("mediapipe")`.

A new detector is one module plus one entry in `_REGISTRY` (`core.detection.registry`'s shape, shared with
the landmarkers). Detectors that cannot be built here (our YOLO before it is trained, a missing package)
are left out of `available_detectors()`, so the app keeps working, and asking for one says what to install.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from core.detection.base import Box, Detection, DetectorUnavailable, FaceDetector
from core.detection.registry import Registry, RegistryEntry, lazy

SLIDER_RANGE = (0.05, 0.95)  # the app's threshold slider; a tuned default is kept inside it


@dataclass(frozen=True, kw_only=True)
class DetectorEntry(RegistryEntry[FaceDetector]):
    """The shared entry shape plus the score threshold a detector serves at unless one is asked for."""

    threshold: float | Callable[[], float]  # a callable reads a tuned value (a model card)


_REGISTRY: Registry[DetectorEntry] = Registry("detector", {
    "mediapipe": DetectorEntry(
        factory=lazy("core.detection.mediapipe_detector:MediaPipeDetector", full_range=False), threshold=0.5,
        check=lazy("core.detection.mediapipe_detector:install_hint"),
        description="MediaPipe BlazeFace short-range: fast, best for faces near the camera"),
    "mediapipe_full": DetectorEntry(
        factory=lazy("core.detection.mediapipe_detector:MediaPipeDetector", full_range=True, tiled=True),
        threshold=0.5, check=lazy("core.detection.mediapipe_detector:install_hint"),
        description="MediaPipe BlazeFace full-range on tiles: small faces in group photos (slower)"),
    "haar": DetectorEntry(
        factory=lazy("core.detection.haar:HaarDetector"), threshold=0.5,
        description="OpenCV Haar cascade: classic baseline, frontal faces only"),
    "yolo": DetectorEntry(
        factory=lazy("core.detection.yolo:YoloDetector"), threshold=lazy("core.detection.yolo:card_threshold"),
        check=lazy("core.detection.yolo:install_hint"),
        description="Our YOLOv8n, trained here from scratch on WIDER FACE photos (56 GPU epochs), run by ONNX "
                    "Runtime: the best fast detector for group and event photos; see Model Comparison"),
    "mtcnn": DetectorEntry(
        factory=lazy("core.detection.mtcnn:MtcnnDetector"), threshold=0.9,
        check=lazy("core.detection.mtcnn:install_hint"),
        description="MTCNN (facenet-pytorch): accurate cascaded CNN with 5 landmarks, slow on CPU"),
    "dlib_hog": DetectorEntry(
        factory=lazy("core.detection.dlib_hog:DlibHogDetector"), threshold=0.5,
        check=lazy("core.detection.dlib_hog:install_hint"),
        description="dlib HOG + SVM: classic frontal-face detector, CPU-cheap"),
    "ensemble": DetectorEntry(
        factory=lazy("core.detection.ensemble:EnsembleDetector"),
        threshold=lazy("core.detection.ensemble:card_threshold"), check=lazy("core.detection.ensemble:install_hint"),
        description="Weighted-box fusion of the members chosen on the tune split (see Model Comparison); "
                    "costs the members' sum"),
}, DetectorUnavailable)


def registered_detectors() -> list[str]:
    """Every name the registry knows, installed or not."""
    return _REGISTRY.names()


def is_available(name: str) -> bool:
    return _REGISTRY.missing(name) is None


def available_detectors() -> list[str]:
    """Detectors that can be built here (packages and model files installed); what pages, CLI and API offer."""
    return _REGISTRY.available()


def detector_description(name: str) -> str:
    return _REGISTRY.description(name)


def default_threshold(name: str) -> float:
    """The registry's threshold, or the tuned one a model card holds, kept inside the app's slider range."""
    value = _REGISTRY.entry(name).threshold
    value = value() if callable(value) else value
    low, high = SLIDER_RANGE
    return round(min(high, max(low, float(value))), 4)


def make_detector(name: str, threshold: float | None = None) -> FaceDetector:
    """Build a detector by registry name. An unknown name is refused with the choices listed, and one that
    cannot be built here raises DetectorUnavailable saying what to install (both are UserFacingErrors)."""
    entry = _REGISTRY.require(name)
    return entry.factory(default_threshold(name) if threshold is None else threshold)


__all__ = ["Box", "Detection", "DetectorEntry", "DetectorUnavailable", "FaceDetector", "available_detectors",
           "default_threshold", "detector_description", "is_available", "make_detector", "registered_detectors"]
