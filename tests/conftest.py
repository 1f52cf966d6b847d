"""Shared fixtures. Images are generated here or come from scikit-image's sample photos (shippable)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core  # noqa: F401  (offline switches)
from core import settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
# The settings the test run started with: session-wide fixtures (the shipped model, the research data) use
# these, whatever a module's fixture or a test does to EMOLENS_* variables while they are first built.
SESSION_SETTINGS = settings.Settings.from_env()


@pytest.fixture(autouse=True)
def fresh_settings():
    """Every test reads the environment afresh on its first `settings.get()`; whatever it installs with
    `settings.configure()` (or `monkeypatch.setenv` + `reread_settings()`) is dropped after it."""
    settings._current = None
    yield
    settings._current = None


def reread_settings() -> settings.Settings:
    """For a test that changed EMOLENS_* variables: the app reads them once per process, so read them again
    (`fresh_settings` drops the result after the test)."""
    settings._current = settings.Settings.from_env()
    return settings._current


def require(env: str, reason: str) -> None:
    """Skip with a reason locally; fail in CI, where EMOLENS_REQUIRE_* says the resource must exist."""
    if os.environ.get(env) == "1":
        pytest.fail(f"{reason} (required here because {env}=1)")
    pytest.skip(reason)


def encode(arr_or_img, fmt: str = "PNG", **kw) -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def astronaut_png(astronaut) -> bytes:
    return encode(astronaut, "PNG")


@pytest.fixture(scope="session")
def shipped_weights() -> Path:
    card = SESSION_SETTINGS.weights_dir / f"{SESSION_SETTINGS.emotion_model}.json"
    if not card.exists():
        pytest.fail(f"the shipped model card {card} is missing")
    return card


@pytest.fixture(scope="session")
def pipeline(shipped_weights):
    from core.detection import make_detector
    from core.emotion.classifier import EmotionClassifier
    from core.pipeline import EmotionPipeline

    classifier = EmotionClassifier.load(SESSION_SETTINGS.emotion_model, SESSION_SETTINGS.weights_dir)
    return EmotionPipeline(make_detector(SESSION_SETTINGS.detector), classifier)


@pytest.fixture(scope="session")
def fer_npz() -> Path:
    path = SESSION_SETTINGS.data_dir / "fer2013" / "fer2013.npz"
    if not path.exists():
        require("EMOLENS_REQUIRE_DATA", f"FER-2013 not found at {path}")
    return path
