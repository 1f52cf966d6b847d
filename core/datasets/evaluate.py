"""Evaluate the emotion model on a user's labelled set (the `core.datasets.labelled` format).

Boxed faces are cropped exactly as in serving; box-less rows are already face crops. The result has
the same shape as the evaluation CLI's report, so the Model Comparison page draws both with one code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from core.emotion.classifier import EmotionClassifier
from core.datasets.labelled import LabelledSet, LabelledSetError
from core.emotion.metrics import classification_report


@dataclass
class Misclassified:
    file: str
    crop: np.ndarray
    true: str
    predicted: str
    confidence: float


@dataclass
class SetEvaluation:
    """`report` matches `training.evaluate_classifier`'s JSON; `misclassified` is most-confident first."""

    report: dict[str, Any]
    misclassified: list[Misclassified] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def evaluate_labelled(classifier: EmotionClassifier, labelled: LabelledSet,
                      progress: Callable[[float], None] | None = None, batch: int = 64) -> SetEvaluation:
    """Classify every reviewed face whose emotion the model knows; report the others as skipped."""
    classes = list(classifier.classes)
    faces = labelled.labelled_faces()
    usable = [f for f in faces if f.emotion in classes]
    skipped = sorted({f"{f.file}: '{f.emotion}' is not one of the model's classes" for f in faces
                      if f.emotion not in classes})
    if not usable:
        raise LabelledSetError("None of the labelled faces has an emotion this model predicts "
                         f"({', '.join(classes)}).")
    probs, crops = [], []
    for start in range(0, len(usable), batch):
        chunk = labelled.crops(usable[start:start + batch], classifier.crop)
        probs.append(classifier.predict(chunk))
        crops.extend(chunk)
        if progress is not None:
            progress(min(1.0, (start + batch) / len(usable)))
    p = np.concatenate(probs)
    y = np.array([classes.index(f.emotion) for f in usable])
    report = classification_report(p, y, classes).to_dict()
    report.update({"classes": classes, "model": classifier.card.name, "split": "your data", "tta": False})
    pred = p.argmax(axis=1)
    wrong = [Misclassified(usable[i].file, crops[i], classes[y[i]], classes[pred[i]], float(p[i].max()))
             for i in np.flatnonzero(pred != y)]
    wrong.sort(key=lambda m: -m.confidence)
    return SetEvaluation(report=report, misclassified=wrong, skipped=skipped)
