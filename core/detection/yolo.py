"""Our YOLOv8n face detector (`weights/face_yolo.pt`, trained by `training.train_detector`) via Ultralytics.

The weights are ours, built from the model yaml and trained offline, so nothing downloads. The input
size comes from the model card (`face_yolo.json`, key "imgsz"), because the model was trained at that size
and scores drop when it is run at another one.
"""
from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from core.detection.base import Detection, DetectorUnavailable, FaceDetector

DEFAULT_IMGSZ = 320
FALLBACK_THRESHOLD = 0.25  # Ultralytics' own predict default, used until the card holds a tuned one


def weights_path() -> Path:
    """`EMOLENS_FACE_YOLO` (e.g. a checkpoint under runs/ while training) or `weights/face_yolo.pt`."""
    return Path(os.environ.get("EMOLENS_FACE_YOLO", settings.weights_dir() / "face_yolo.pt"))


def is_available() -> bool:
    return weights_path().is_file()


def model_card(path: Path | None = None) -> dict[str, Any]:
    """The JSON card beside the shipped weights ({} when absent or unreadable)."""
    card = (path or weights_path()).with_suffix(".json")
    if not card.is_file():  # a checkpoint under runs/ has no card: use the shipped one for imgsz/threshold
        card = settings.weights_dir() / "face_yolo.json"
    try:
        return json.loads(card.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def card_threshold() -> float:
    """The threshold `training.evaluate_detector --update-card` tuned on the tune split, else a fallback."""
    return float(model_card().get("default_threshold", FALLBACK_THRESHOLD))


@lru_cache(maxsize=2)
def _load(path: str, mtime: float) -> Any:
    """One model per weights file (and version), shared by every YoloDetector: loading takes ~1 s."""
    from core.ultralytics_env import import_ultralytics

    return import_ultralytics().YOLO(path, task="detect")  # offline switches, fonts, Pillow left alone


class YoloDetector(FaceDetector):
    """YOLOv8n trained on our WIDER FACE split; CPU inference at the card's image size."""

    name = "yolo"

    def __init__(self, threshold: float = FALLBACK_THRESHOLD, weights: Path | None = None,
                 imgsz: int | None = None) -> None:
        super().__init__(threshold)
        path = Path(weights) if weights else weights_path()
        if not path.is_file():
            raise DetectorUnavailable(
                f"The YOLO face detector needs its weights at {path}, which is not there. Train it with "
                "`python -m training.train_detector` (or set EMOLENS_FACE_YOLO to a checkpoint), or pick "
                "another detector.")
        self.weights = path
        self.imgsz = int(imgsz or model_card(path).get("imgsz", DEFAULT_IMGSZ))
        self._model = _load(str(path.resolve()), path.stat().st_mtime)
        self._lock = threading.Lock()  # Ultralytics predictors keep per-call state
        # Ultralytics builds its predictor on the first call (~5 s here): pay that while the app shows
        # "Loading the face detector", not on the user's first photo.
        self._detect(np.zeros((self.imgsz, self.imgsz, 3), np.uint8))

    def _detect(self, image: np.ndarray) -> list[Detection]:
        # Ultralytics reads numpy images as BGR (OpenCV's order); ours are RGB. Its confidence filter runs
        # before NMS, which keeps a box regardless of lower-scored ones, so filtering there is exact.
        bgr = np.ascontiguousarray(image[..., ::-1])
        with self._lock:
            result = self._model.predict(bgr, imgsz=self.imgsz, conf=self.threshold, device="cpu",
                                         verbose=False)[0]
        boxes = result.boxes.xyxy.cpu().numpy().astype(float)
        scores = result.boxes.conf.cpu().numpy().astype(float)
        return [Detection(box=tuple(b), score=float(s)) for b, s in zip(boxes, scores)]
