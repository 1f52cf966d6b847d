"""The model pickers the pages offer: one implementation, so every page lists the same detectors and models,
in the same order, with the same labels and defaults. They draw where they are called (usually `st.sidebar`)."""
from __future__ import annotations

import streamlit as st

from core import settings
from core.detection import available_detectors, default_threshold, detector_description
from core.emotion.card import model_label
from ui.resources import shipped_models


def pick_detector(default: str | None = None) -> tuple[str, float]:
    """'Face detector' (with its description) and its 'Detection threshold'; `default` (or the settings'
    detector) is preselected, and the threshold starts at the chosen detector's tuned value."""
    detectors = available_detectors()
    first = default or settings.get().detector
    name = st.selectbox("Face detector", detectors, index=detectors.index(first) if first in detectors else 0,
                        help="Which algorithm finds the faces.")
    st.caption(detector_description(name))
    threshold = st.slider("Detection threshold", 0.05, 0.95, float(default_threshold(name)), 0.05,
                          help="Lower finds more faces (and more false ones); higher keeps only sure faces.")
    return name, threshold


def pick_model(default: str | None = None, label: str = "Emotion model", key: str | None = None) -> str | None:
    """The emotion model: a picker (labelled with each model's test accuracy) when several are installed,
    the only one otherwise, None when none is (pair with `ui.guards.require_model`)."""
    models = shipped_models(default)
    if len(models) > 1:
        return st.selectbox(label, models, format_func=model_label, key=key)
    return models[0] if models else None
