"""Facial landmarkers behind one interface, chosen by name: `make_landmarker("dlib68")`.

Like `core.detection`, a new landmarker is one module plus one line in `_REGISTRY`. Every backend gives
its native points (`landmarks`) and the iBUG 68-point scheme (`landmarks68`) so they can be compared.
"""
from __future__ import annotations

from typing import Callable

from core.landmarks.base import Landmarker
from core.landmarks.mapping import MP478_TO_68, REGIONS, mesh_to_68, to_68


def _mediapipe_mesh() -> Landmarker:
    from core.landmarks.mediapipe_mesh import MediaPipeMeshLandmarker

    return MediaPipeMeshLandmarker()


def _dlib68() -> Landmarker:
    from core.landmarks.dlib68 import Dlib68Landmarker

    return Dlib68Landmarker()


# name -> (factory, short label, one-line description shown in the app and CLI help)
_REGISTRY: dict[str, tuple[Callable[[], Landmarker], str, str]] = {
    "mediapipe_mesh": (_mediapipe_mesh, "MediaPipe Face Mesh",
                       "MediaPipe Face Mesh: 478 points incl. irises; compared via an approximate 68-point mapping"),
    "dlib68": (_dlib68, "dlib 68-point",
               "dlib 68-point shape predictor (trained on iBUG 300-W, non-commercial research use)"),
}


def available_landmarkers() -> list[str]:
    return list(_REGISTRY)


def landmarker_label(name: str) -> str:
    return _REGISTRY[name][1]


def landmarker_description(name: str) -> str:
    return _REGISTRY[name][2]


def make_landmarker(name: str) -> Landmarker:
    """Build a landmarker by registry name; unknown names get a message listing the choices."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown landmarker {name!r}. Choose one of: {', '.join(_REGISTRY)}.")
    return _REGISTRY[name][0]()


__all__ = ["Landmarker", "MP478_TO_68", "REGIONS", "available_landmarkers", "landmarker_description",
           "landmarker_label", "make_landmarker", "mesh_to_68", "to_68"]
