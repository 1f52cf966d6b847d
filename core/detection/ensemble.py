"""Weighted-box fusion (Solovyev et al. 2021, the `ensemble-boxes` package) of several face detectors.

Each member runs at its own tuned threshold; WBF then clusters boxes by IoU, averages their coordinates
weighted by score, and gives a cluster the score sum(w_i * s_i) / sum(w): a face that only one member
found keeps that member's share of the vote, so the fused score ranks agreement above a lone detection.
`training.evaluate_detector` picks the members, weights and thresholds on the tune split and records them
in `weights/reports/detection.json` ("ensemble"); the app's ensemble reads them from there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from core.detection.base import Detection, FaceDetector

DEFAULT_MEMBERS = ("yolo", "mediapipe_full", "mtcnn")
DEFAULT_IOU = 0.5


@dataclass(frozen=True)
class EnsembleConfig:
    """Who votes, how much, and at which member thresholds; `threshold` is the fused-score cut."""

    members: tuple[str, ...] = DEFAULT_MEMBERS
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    member_thresholds: tuple[float, ...] | None = None  # None: each member's registry default
    iou_thr: float = DEFAULT_IOU
    threshold: float = 0.3
    source: str = field(default="built-in defaults", compare=False)

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.members):
            raise ValueError(f"{len(self.members)} ensemble members but {len(self.weights)} weights")
        if self.member_thresholds is not None and len(self.member_thresholds) != len(self.members):
            raise ValueError("one threshold per ensemble member is needed")
        if "ensemble" in self.members:
            raise ValueError("an ensemble cannot contain itself")

    def to_json(self) -> dict:
        return {"members": list(self.members), "weights": list(self.weights),
                "member_thresholds": None if self.member_thresholds is None else list(self.member_thresholds),
                "iou_thr": self.iou_thr, "threshold": self.threshold}


def config_from_report() -> EnsembleConfig:
    """The ensemble the detector evaluation tuned (report key "ensemble"), else the built-in defaults."""
    from core.reports import load_report

    report = load_report("detection") or {}
    raw = report.get("ensemble")
    if not isinstance(raw, dict):
        return EnsembleConfig()
    try:
        return EnsembleConfig(
            members=tuple(raw["members"]), weights=tuple(float(w) for w in raw["weights"]),
            member_thresholds=tuple(float(t) for t in raw["member_thresholds"]),
            iou_thr=float(raw.get("iou_thr", DEFAULT_IOU)), threshold=float(raw["threshold"]),
            source="weights/reports/detection.json")
    except (KeyError, TypeError, ValueError):
        return EnsembleConfig()


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
                                                   iou_thr=iou_thr, skip_box_thr=0.0)
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

        self.config = config or config_from_report()
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
