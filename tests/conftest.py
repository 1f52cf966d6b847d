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


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    """Every test reads the environment afresh on its first `settings.get()`, and whatever it installs with
    `settings.configure()` (or `monkeypatch.setenv` + `settings.reload()`) is undone after it."""
    monkeypatch.setattr(settings, "_current", None)


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
    card = settings.get().weights_dir / f"{settings.get().emotion_model}.json"
    if not card.exists():
        pytest.fail(f"the shipped model card {card} is missing")
    return card


@pytest.fixture(scope="session")
def pipeline(shipped_weights):
    from core.pipeline import EmotionPipeline

    return EmotionPipeline.create(settings.get().detector)


@pytest.fixture(scope="session")
def fer_npz() -> Path:
    path = settings.get().data_dir / "fer2013" / "fer2013.npz"
    if not path.exists():
        require("EMOLENS_REQUIRE_DATA", f"FER-2013 not found at {path}")
    return path
