"""Every setting in one place: where data and weights live, and the limits on what users send.

Values come from environment variables so a deployment changes them without code edits.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Research data directory (FER-2013, faces, landmarks, fairness). Never inside the repo."""
    return Path(os.environ.get("EMOLENS_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def weights_dir() -> Path:
    return Path(os.environ.get("EMOLENS_WEIGHTS_DIR", PROJECT_ROOT / "weights"))


def cache_dir() -> Path:
    """Project-local cache for third-party config (ultralytics settings, fonts)."""
    return Path(os.environ.get("EMOLENS_CACHE_DIR", PROJECT_ROOT / ".cache"))


MAX_UPLOAD_BYTES = int(os.environ.get("EMOLENS_MAX_UPLOAD_MB", "10")) * 1024 * 1024
MAX_MEGAPIXELS = float(os.environ.get("EMOLENS_MAX_MEGAPIXELS", "40"))
MAX_FILES_PER_BATCH = int(os.environ.get("EMOLENS_MAX_FILES", "200"))
DEFAULT_EMOTION_MODEL = os.environ.get("EMOLENS_EMOTION_MODEL", "emotion_vgg_s")
DEFAULT_DETECTOR = os.environ.get("EMOLENS_DETECTOR", "mediapipe_full")
DEFAULT_DETECTION_THRESHOLD = 0.5
FACE_CROP_MARGIN = 0.2
