"""Weighted-box fusion (Solovyev et al. 2021, the `ensemble-boxes` package) of several face detectors.

Each member runs at its own tuned threshold; WBF then clusters boxes by IoU, averages their coordinates
weighted by score, and gives a cluster the score sum(w_i * s_i) / sum(w): a face that only one member
found keeps that member's share of the vote, so the fused score ranks agreement above a lone detection.

What the app serves (members, their weights and thresholds, the fusion settings, the fused cut) is the
ensemble's model card, `weights/face_ensemble.json`, beside its members' cards: `training.evaluate_detector
--update-card` picks them on the tune split and writes the card, naming the report and command they came from.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from core import settings
from core.detection.base import Detection, DetectorUnavailable, FaceDetector

CARD_NAME = "face_ensemble.json"
DEFAULT_IOU = 0.5
SKIP_BOX_THR = 0.0  # every member box votes: each member is already cut at its own threshold
FUSION = "weighted_boxes_fusion"
INSTALL_HINT = "ensemble-boxes is missing (`pip install ensemble-boxes==1.0.9`)."
TUNE_COMMAND = ("python -m training.evaluate_detector --detectors yolo,mediapipe,mediapipe_full,haar,mtcnn,dlib_hog,"
                "ensemble --update-card")


@dataclass(frozen=True)
class EnsembleConfig:
    """Who votes, how much, and at which member thresholds; `threshold` is the fused-score cut."""

    members: tuple[str, ...]
    weights: tuple[float, ...]
    member_thresholds: tuple[float, ...] | None = None  # None: each member's registry default
    iou_thr: float = DEFAULT_IOU
    threshold: float = 0.3
    source: str = field(default="", compare=False)  # the card it was read from

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.members):
            raise ValueError(f"{len(self.members)} ensemble members but {len(self.weights)} weights")
        if self.member_thresholds is not None and len(self.member_thresholds) != len(self.members):
            raise ValueError("one threshold per ensemble member is needed")
        if "ensemble" in self.members:
            raise ValueError("an ensemble cannot contain itself")

    def to_json(self) -> dict[str, Any]:
        """The serving settings as the card (and the report's "ensemble" record) holds them."""
        return {"members": list(self.members), "member_weights": list(self.weights),
                "member_thresholds": None if self.member_thresholds is None else list(self.member_thresholds),
                "fusion": {"method": FUSION, "iou_thr": self.iou_thr, "skip_box_thr": SKIP_BOX_THR},
                "default_threshold": self.threshold}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], source: str = "") -> EnsembleConfig:
        """The inverse of `to_json`; a card for another fusion method is refused (ValueError)."""
        fusion = raw.get("fusion", {})
        if fusion.get("method", FUSION) != FUSION:
            raise ValueError(f"unsupported fusion method {fusion.get('method')!r}")
        thresholds = raw.get("member_thresholds")
        return cls(members=tuple(raw["members"]), weights=tuple(float(w) for w in raw["member_weights"]),
                   member_thresholds=None if thresholds is None else tuple(float(t) for t in thresholds),
                   iou_thr=float(fusion.get("iou_thr", DEFAULT_IOU)), threshold=float(raw["default_threshold"]),
                   source=source)


def card_path() -> Path:
    return settings.get().weights_dir / CARD_NAME


def load_config(path: Path | None = None) -> EnsembleConfig | None:
    """The serving settings in the ensemble's card; None when it is absent or unreadable."""
    path = path or card_path()
    try:
        return EnsembleConfig.from_json(json.loads(path.read_text()), source=str(path))
    except (OSError, AttributeError, KeyError, TypeError, ValueError):  # JSONDecodeError is a ValueError
        return None


def install_hint() -> str | None:
    """The registry's check: None when the card and every member are installed, else what is missing."""
    if importlib.util.find_spec("ensemble_boxes") is None:
        return INSTALL_HINT
    config = load_config()
    if config is None:
        return f"its card {card_path()} is missing or unreadable (write it with `{TUNE_COMMAND}`)."
    from core.detection import is_available

    missing = [m for m in config.members if not is_available(m)]
    return f"its members {', '.join(missing)} are not installed." if missing else None


def served_config() -> EnsembleConfig:
    """The card's settings, or DetectorUnavailable saying how to write the card."""
    config = load_config()
    if config is None:
        raise DetectorUnavailable(f"The ensemble detector is not installed here: {install_hint()}")
    return config


def card_threshold() -> float:
    """The fused-score cut the card holds (the registry's default threshold for "ensemble")."""
    return served_config().threshold


def fuse(member_detections: Sequence[Sequence[Detection]], weights: Sequence[float], image_wh: tuple[int, int],
         iou_thr: float = DEFAULT_IOU) -> list[Detection]:
    """WBF over each member's (already thresholded) detections of one image; boxes in pixels."""
    from ensemble_boxes import weighted_boxes_fusion

    w, h = image_wh
    scale = np.array([w, h, w, h], float)
    boxes, scores, labels = [], [], []
    for dets in member_detections:
        b = np.array([d.box for d in dets], float).reshape(-1, 4) / scale
        boxes.append(np.clip(b, 0.0, 1.0).tolist())  # WBF wants [0, 1] and warns on anything outside
        scores.append([d.score for d in dets])
        labels.append([0] * len(dets))
    if not any(scores):
        return []
    fused, fused_scores, _ = weighted_boxes_fusion(boxes, scores, labels, weights=list(weights),
                                                   iou_thr=iou_thr, skip_box_thr=SKIP_BOX_THR)
    return [Detection(box=tuple(float(v) for v in b * scale), score=float(s))
            for b, s in zip(fused, fused_scores)]


class EnsembleDetector(FaceDetector):
    """Runs every member on the image and fuses their boxes; cost is the sum of the members' costs."""

    name = "ensemble"

    def __init__(self, threshold: float | None = None, config: EnsembleConfig | None = None,
                 detectors: Sequence[FaceDetector] | None = None) -> None:
        """`detectors`: ready-built members (in config order, already at their thresholds), else built
        from the registry by name."""
        from core.detection import default_threshold, make_detector

        self.config = config or served_config()
        super().__init__(self.config.threshold if threshold is None else threshold)
        if detectors is not None:
            if len(detectors) != len(self.config.members):
                raise ValueError("one detector per ensemble member is needed")
            self.members = list(detectors)
        else:
            thresholds = self.config.member_thresholds or tuple(default_threshold(m) for m in self.config.members)
            self.members = [make_detector(m, t) for m, t in zip(self.config.members, thresholds)]

    def _detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        return fuse([m.detect(image) for m in self.members], self.config.weights, (w, h), self.config.iou_thr)
