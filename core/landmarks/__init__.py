"""Facial landmarkers behind one interface, chosen by name: `make_landmarker("dlib68")`.

Like `core.detection`, a new landmarker is one module plus one entry in `_REGISTRY`, in the entry shape the
detectors use (`core.detection.registry`). Every backend gives its native points (`landmarks`) and the iBUG
68-point scheme (`landmarks68`) so they can be compared.
"""
from __future__ import annotations

from core.detection.registry import Registry, RegistryEntry, lazy
from core.landmarks.base import Landmarker, LandmarkerUnavailable
from core.landmarks.mapping import MP478_TO_68, REGIONS, mesh_to_68, to_68

_REGISTRY: Registry[RegistryEntry[Landmarker]] = Registry("landmarker", {
    "mediapipe_mesh": RegistryEntry(
        factory=lazy("core.landmarks.mediapipe_mesh:MediaPipeMeshLandmarker"), label="MediaPipe Face Mesh",
        check=lazy("core.detection.mediapipe_detector:install_hint"),
        description="MediaPipe Face Mesh: 478 points incl. irises; compared via an approximate 68-point mapping"),
    "dlib68": RegistryEntry(
        factory=lazy("core.landmarks.dlib68:Dlib68Landmarker"), label="dlib 68-point",
        check=lazy("core.landmarks.dlib68:install_hint"),
        description="dlib 68-point shape predictor (trained on iBUG 300-W, non-commercial research use)"),
}, LandmarkerUnavailable)


def available_landmarkers() -> list[str]:
    """Landmarkers that can be built here; what pages and CLIs offer."""
    return _REGISTRY.available()


def landmarker_label(name: str) -> str:
    return _REGISTRY.label(name)


def landmarker_description(name: str) -> str:
    return _REGISTRY.description(name)


def make_landmarker(name: str) -> Landmarker:
    """Build a landmarker by registry name. An unknown name is refused with the choices listed, and one that
    cannot be built here raises LandmarkerUnavailable saying what to install (both are UserFacingErrors)."""
    return _REGISTRY.require(name).factory()


__all__ = ["Landmarker", "LandmarkerUnavailable", "MP478_TO_68", "REGIONS", "available_landmarkers",
           "landmarker_description", "landmarker_label", "make_landmarker", "mesh_to_68", "to_68"]
