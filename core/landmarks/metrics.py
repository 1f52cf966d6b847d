"""Landmark accuracy in the 300-W way: NME normalised by the outer-eye-corner distance, per region, CED.

Missing predictions (the landmarker found no face) are kept as None: they count as failures and never
reach the CED's top, but they do not enter the mean NME, which is over faces with points.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from core.landmarks.mapping import LEFT_EYE, OUTER_EYE_CORNERS, REGIONS, RIGHT_EYE

FAILURE_THRESHOLD = 0.08
CED_THRESHOLDS = np.round(np.arange(0.0, 0.1501, 0.0025), 4)


def interocular(gt: np.ndarray) -> float:
    """Outer-eye-corner distance |p36 - p45| of a 68-point set (the 300-W normaliser)."""
    a, b = OUTER_EYE_CORNERS
    return float(np.linalg.norm(np.asarray(gt, dtype=np.float64)[a] - np.asarray(gt, dtype=np.float64)[b]))


def point_errors(pred: np.ndarray, gt: np.ndarray, norm: float | None = None) -> np.ndarray:
    """(68,) point-to-point distances divided by the normaliser (default: the ground truth's interocular)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    d = norm if norm is not None else interocular(gt)
    if d <= 0:
        raise ValueError("normalising distance must be positive")
    return np.linalg.norm(pred - gt, axis=1) / d


def nme(pred: np.ndarray, gt: np.ndarray, norm: float | None = None) -> float:
    """Mean normalised point-to-point error of one face."""
    return float(point_errors(pred, gt, norm).mean())


def nme_by_region(pred: np.ndarray, gt: np.ndarray, norm: float | None = None) -> dict[str, float]:
    """NME of each region (jaw, brows, nose, eyes, mouth) of one face."""
    err = point_errors(pred, gt, norm)
    return {name: float(err[list(idx)].mean()) for name, idx in REGIONS.items()}


def eye_centre_error(pred: np.ndarray, gt: np.ndarray, norm: float | None = None) -> float:
    """Mean distance of the two eye centres (each eye's six points averaged) over the normaliser.

    Alignment uses only the eye centres, so this, not the 68-point NME, is what moves an aligned crop.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    d = norm if norm is not None else interocular(gt)
    errs = [np.linalg.norm(pred[list(eye)].mean(axis=0) - gt[list(eye)].mean(axis=0)) for eye in (RIGHT_EYE, LEFT_EYE)]
    return float(np.mean(errs) / d)


def disagreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How far two landmarkers' 68-point sets are apart for one face, overall and per region.

    There is no ground truth in a user's photo, so the normaliser is the mean of the two sets' own
    outer-eye-corner distances (symmetric in a and b).
    """
    norm = (interocular(a) + interocular(b)) / 2
    out = {"all": nme(a, b, norm)}
    out.update(nme_by_region(a, b, norm))
    return out


def ced(nmes: Sequence[float | None], thresholds: Sequence[float] = CED_THRESHOLDS) -> list[float]:
    """Cumulative error distribution: the fraction of all faces with NME <= t, per threshold t."""
    vals = np.array([np.inf if v is None else v for v in nmes], dtype=np.float64)
    if len(vals) == 0:
        return [0.0 for _ in thresholds]
    return [float((vals <= t).mean()) for t in thresholds]


def ced_auc(nmes: Sequence[float | None], limit: float = FAILURE_THRESHOLD, steps: int = 1000) -> float:
    """Area under the CED up to `limit`, divided by `limit` (1.0 = every face perfect)."""
    ts = np.linspace(0.0, limit, steps + 1)
    ys = np.array(ced(nmes, ts))
    return float(((ys[1:] + ys[:-1]) / 2 * np.diff(ts)).sum() / limit)  # trapezoid rule


def failure_rate(nmes: Sequence[float | None], threshold: float = FAILURE_THRESHOLD) -> float:
    """Fraction of faces with NME above `threshold` or no prediction at all."""
    if len(nmes) == 0:
        return 0.0
    return float(np.mean([v is None or v > threshold for v in nmes]))


@dataclass
class LandmarkScores:
    """One method's accuracy on one face set (the `methods` entries of the evaluation JSON)."""

    nme: float | None
    nme_median: float | None
    nme_by_region: dict[str, float | None]
    failure_rate: float
    auc_at_failure: float
    eye_centre_error: float | None
    ms_per_face: float | None
    n: int
    n_missing: int
    ced: list[float] = field(default_factory=list)
    per_point_nme: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(preds: Sequence[np.ndarray | None], gts: Sequence[np.ndarray], times_ms: Sequence[float] = (),
          threshold: float = FAILURE_THRESHOLD) -> LandmarkScores:
    """Aggregate per-face predictions against ground truth (68-point sets) into `LandmarkScores`."""
    if len(preds) != len(gts):
        raise ValueError("one prediction (or None) per ground-truth face is needed")
    errs = [None if p is None else point_errors(p, g) for p, g in zip(preds, gts)]
    present = np.array([e for e in errs if e is not None])
    nmes = [None if e is None else float(e.mean()) for e in errs]
    have = len(present) > 0
    by_region = {name: (float(present[:, list(idx)].mean()) if have else None) for name, idx in REGIONS.items()}
    return LandmarkScores(
        nme=float(present.mean()) if have else None,
        nme_median=float(np.median(present.mean(axis=1))) if have else None,
        nme_by_region=by_region,
        failure_rate=failure_rate(nmes, threshold),
        auc_at_failure=ced_auc(nmes, threshold),
        eye_centre_error=float(np.mean([eye_centre_error(p, g) for p, g in zip(preds, gts) if p is not None]))
        if have else None,
        ms_per_face=float(np.median(times_ms)) if len(times_ms) else None,
        n=len(gts), n_missing=sum(e is None for e in errs),
        ced=ced(nmes),
        per_point_nme=[float(v) for v in present.mean(axis=0)] if have else [],
    )
