"""Classification metrics on scikit-learn, in the shape the reports and pages use."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


@dataclass
class ClassificationReport:
    """Everything the evaluation CLI writes: rows of `confusion` are true classes, columns predicted."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    ece: float
    reliability: dict[str, list[float]]
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[float, dict]:
    """ECE with equal-width confidence bins, plus the per-bin data for a reliability diagram."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    diagram: dict[str, list[float]] = {"bin_lower": [], "bin_upper": [], "confidence": [], "accuracy": [],
                                       "count": []}
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if not mask.any():
            continue
        ece += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
        diagram["bin_lower"].append(float(lo)); diagram["bin_upper"].append(float(hi))
        diagram["confidence"].append(float(conf[mask].mean()))
        diagram["accuracy"].append(float(correct[mask].mean()))
        diagram["count"].append(int(mask.sum()))
    return float(ece), diagram


def classification_report(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> ClassificationReport:
    pred = probs.argmax(axis=1)
    idx = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=idx, zero_division=0)
    per_class = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, c in enumerate(classes)}
    ece, diagram = expected_calibration_error(probs, labels)
    return ClassificationReport(
        accuracy=float(accuracy_score(labels, pred)),
        macro_f1=float(f1_score(labels, pred, labels=idx, average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion_matrix(labels, pred, labels=idx).tolist(),
        ece=ece, reliability=diagram, n=int(len(labels)),
    )
