"""Heavy objects, loaded once per process and shared by every session (`st.cache_resource`)."""
from __future__ import annotations

import streamlit as st

from core.emotion.classifier import EmotionClassifier
from core.emotion.card import ModelCard, list_models, model_label
from core.detection import make_detector
from core.pipeline import EmotionPipeline
from core import settings


@st.cache_resource(show_spinner="Loading the emotion model…")
def get_classifier(name: str | None = None) -> EmotionClassifier:
    return EmotionClassifier.load(name)


@st.cache_resource(show_spinner="Loading the face detector…")
def get_pipeline(detector: str, threshold: float, model: str | None = None) -> EmotionPipeline:
    return EmotionPipeline(make_detector(detector, threshold), get_classifier(model))


def shipped_models(default: str | None = None) -> list[str]:
    """Shipped emotion models, the page's default first (pickers preselect it)."""
    first = default or settings.get().emotion_model
    return sorted(list_models(), key=lambda n: n != first)


def label_model(name: str) -> str:
    return model_label(name)


def model_card(name: str | None = None) -> ModelCard:
    name = name or settings.get().emotion_model
    return ModelCard.load(settings.get().weights_dir / f"{name}.json")
