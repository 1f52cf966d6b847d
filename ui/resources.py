"""Heavy objects, loaded once per process and shared by every session and every page (`st.cache_resource`).

Every cached model lives here, so two pages that ask for the same detector or landmarker share one copy."""
from __future__ import annotations

import streamlit as st

from core import settings
from core.detection import FaceDetector, make_detector
from core.emotion.card import ModelCard, list_models
from core.emotion.classifier import EmotionClassifier
from core.emotion.onnx import BackendChoice, fastest_classifier
from core.landmarks import Landmarker, make_landmarker
from core.pipeline import EmotionPipeline


@st.cache_resource(show_spinner="Loading the emotion model…")
def get_classifier(name: str | None = None) -> EmotionClassifier:
    """An emotion model by name (None: the settings' default)."""
    return EmotionClassifier.load(name)


@st.cache_resource(show_spinner="Loading the face detector…")
def get_detector(name: str, threshold: float | None = None) -> FaceDetector:
    """A face detector by registry name; `threshold=None` uses its registry (or tuned) default."""
    return make_detector(name, threshold)


@st.cache_resource(show_spinner=False)
def get_pipeline(detector: str, threshold: float, model: str | None = None) -> EmotionPipeline:
    """Detector plus emotion model, both shared with every other page that loads them."""
    return EmotionPipeline(get_detector(detector, threshold), get_classifier(model))


@st.cache_resource(show_spinner="Loading the landmarker…")
def get_landmarker(name: str) -> Landmarker:
    """A landmarker by registry name (MediaPipe Face Mesh, dlib 68)."""
    return make_landmarker(name)


@st.cache_resource(show_spinner="Timing the classifier backends (torch vs ONNX Runtime)…")
def get_live_classifier(model: str) -> tuple[EmotionClassifier, BackendChoice]:
    """The faster of torch and ONNX Runtime for `model` on one face, timed once per process (live video)."""
    return fastest_classifier(get_classifier(model))


def shipped_models(default: str | None = None) -> list[str]:
    """Shipped emotion models, the page's default first (pickers preselect it)."""
    first = default or settings.get().emotion_model
    return sorted(list_models(), key=lambda n: n != first)


def default_model(default: str | None = None) -> str | None:
    """The model a page uses without asking: `default` (or the settings' one) if installed, else any; None if none."""
    return next(iter(shipped_models(default)), None)


def model_card(name: str | None = None) -> ModelCard:
    """The card of a shipped model (None: the settings' default)."""
    name = name or settings.get().emotion_model
    return ModelCard.load(settings.get().weights_dir / f"{name}.json")
