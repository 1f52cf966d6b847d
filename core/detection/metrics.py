"""Detection metrics with ignore regions: matching, precision/recall/F1 at a threshold, AP, threshold tuning.

Faces too small to matter (longer side under `min_face`) or unusable in the labels are *ignore regions*,
as in COCO's crowd boxes: a detection on one counts neither as a true nor as a false positive, so
detectors are neither rewarded nor punished for faces an emotion app cannot use. Matching is greedy in
score order, so matching once at a low threshold and cutting later gives the same result as matching
after the cut; this is what lets one cached run serve every threshold. AP is COCO's 101-point AP as
pycocotools computes it, on our ignore-aware TP/FP lists. (Ultralytics' `compute_ap` would fit too, but it
integrates with the trapezoid rule against a sentinel that drops to 0 at recall 1, so a perfect detector
scores 0.995 there; pycocotools' definition gives 1.0, and is what published COCO-style APs use.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.detection.base import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
IGNORE_IOU = 0.5  # a detection overlapping an ignore face this much is ignored, at every IoU threshold
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class GroundTruth:
    """One image's faces (N x 4, x1 y1 x2 y2 px) and which of them are ignore regions."""

    boxes: np.ndarray
    ignore: np.ndarray

    @property
    def n_counted(self) -> int:
        return int((~self.ignore).sum())


def ground_truth(boxes: np.ndarray | Sequence, min_face: float,
                 extra_ignore: np.ndarray | Sequence = ()) -> GroundTruth:
    """Faces whose longer side is under `min_face` px become ignore regions; `extra_ignore` boxes (e.g.
    faces the labels drop as invalid) are added as ignore regions too."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    extra = np.asarray(extra_ignore, float).reshape(-1, 4)
    long_side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    ignore = np.concatenate([long_side < min_face, np.ones(len(extra), bool)])
    return GroundTruth(np.concatenate([boxes, extra]), ignore)


@dataclass(frozen=True)
class Matches:
    """Per detection (sorted by score, descending): score, TP and ignored flags at each IoU threshold."""

    scores: np.ndarray      # (K,)
    tp: np.ndarray          # (K, T) bool
    ignored: np.ndarray     # (K, T) bool: neither TP nor FP
    n_gt: int               # counted (non-ignored) faces

    @staticmethod
    def concat(parts: Sequence["Matches"]) -> "Matches":
        t = len(IOU_THRESHOLDS)
        if not parts:
            return Matches(np.zeros(0), np.zeros((0, t), bool), np.zeros((0, t), bool), 0)
        scores = np.concatenate([p.scores for p in parts])
        order = np.argsort(-scores, kind="stable")
        return Matches(scores[order], np.concatenate([p.tp for p in parts])[order],
                       np.concatenate([p.ignored for p in parts])[order], sum(p.n_gt for p in parts))


def match_image(boxes: np.ndarray | Sequence, scores: np.ndarray | Sequence, gt: GroundTruth,
                iou_thresholds: np.ndarray = IOU_THRESHOLDS) -> Matches:
    """Greedy matching, highest score first: a detection takes the best-overlapping unmatched counted face
    with IoU >= t (TP); failing that, it is ignored if it overlaps an ignore face by IGNORE_IOU, else FP."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    scores = np.asarray(scores, float).ravel()
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    k, t = len(boxes), len(iou_thresholds)
    tp, ignored = np.zeros((k, t), bool), np.zeros((k, t), bool)
    counted, ign = gt.boxes[~gt.ignore], gt.boxes[gt.ignore]
    iou_c = box_iou(boxes, counted)
    on_ignore = (box_iou(boxes, ign).max(axis=1) >= IGNORE_IOU) if len(ign) else np.zeros(k, bool)
    # Only faces overlapping a detection by the lowest IoU threshold can ever match it: keep those.
    near = [np.flatnonzero(row >= iou_thresholds.min()) for row in iou_c] if len(counted) else [()] * k
    for j, thr in enumerate(iou_thresholds):
        taken: set[int] = set()
        for i in range(k):
            best, best_iou = -1, thr
            for c in near[i]:
                if c not in taken and iou_c[i, c] >= best_iou:
                    best, best_iou = int(c), iou_c[i, c]
            if best >= 0:
                taken.add(best)
                tp[i, j] = True
            elif on_ignore[i]:
                ignored[i, j] = True
    return Matches(scores, tp, ignored, gt.n_counted)


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


def _cumulative(m: Matches, j: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = ~m.ignored[:, j]
    scores, tp = m.scores[keep], m.tp[keep, j]
    return scores, np.cumsum(tp), np.cumsum(~tp)


def operating_point(m: Matches, threshold: float) -> OperatingPoint:
    """Precision, recall and F1 at IoU 0.5 keeping detections with score >= threshold."""
    scores, tpc, fpc = _cumulative(m)
    n = int((scores >= threshold).sum())
    tp, fp = (int(tpc[n - 1]), int(fpc[n - 1])) if n else (0, 0)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / m.n_gt if m.n_gt else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return OperatingPoint(float(threshold), p, r, f1, tp, fp, m.n_gt - tp)


def best_f1_threshold(m: Matches) -> OperatingPoint:
    """The score cut with the highest F1 at IoU 0.5 (ties: the higher threshold, i.e. fewer detections)."""
    scores, tpc, fpc = _cumulative(m)
    if not len(scores) or not m.n_gt:
        return OperatingPoint(1.0, 0.0, 0.0, 0.0, 0, 0, m.n_gt)
    last = np.r_[scores[1:] != scores[:-1], True]  # end of each group of equal scores
    p = tpc[last] / (tpc[last] + fpc[last])
    r = tpc[last] / m.n_gt
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    best = int(np.argmax(f1))  # scores descend, so the first maximum is the highest threshold
    return operating_point(m, float(scores[last][best]))


def coco_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO's 101-point AP exactly as pycocotools' COCOeval.accumulate computes it: the precision
    envelope sampled at recall 0, 0.01, ..., 1 (0 where the recall is never reached), averaged."""
    if not len(recall):
        return 0.0
    envelope = np.maximum.accumulate(np.asarray(precision, float)[::-1])[::-1]
    idx = np.searchsorted(np.asarray(recall, float), RECALL_POINTS, side="left")
    return float(np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0).mean())


def average_precision(m: Matches) -> np.ndarray:
    """AP at each IoU threshold (COCO 101-point) over the ignore-aware TP/FP lists."""
    out = np.zeros(m.tp.shape[1])
    if not m.n_gt:
        return out
    for j in range(m.tp.shape[1]):
        _, tpc, fpc = _cumulative(m, j)
        out[j] = coco_ap(tpc / m.n_gt, tpc / np.maximum(tpc + fpc, 1))
    return out


def pr_curve(m: Matches, points: int = 100) -> dict[str, list[float]]:
    """Precision against recall at IoU 0.5, subsampled to about `points` points for the report."""
    _, tpc, fpc = _cumulative(m)
    if not len(tpc) or not m.n_gt:
        return {"recall": [], "precision": []}
    idx = np.unique(np.linspace(0, len(tpc) - 1, min(points, len(tpc))).round().astype(int))
    return {"recall": [round(float(v), 4) for v in tpc[idx] / m.n_gt],
            "precision": [round(float(v), 4) for v in tpc[idx] / (tpc[idx] + fpc[idx])]}
