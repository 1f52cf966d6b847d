"""Evaluate the emotion model on a user's labelled set (the `core.datasets.labelled` format).

Boxed faces are cropped exactly as in serving; box-less rows are already face crops. The result has
the same shape as the evaluation CLI's report, so the Model Comparison page draws both with one code.

Memory stays bounded whatever the upload: the set is refused up front when it has too many faces or its
images add up to too many pixels (read from headers, nothing decoded); then each image is decoded once,
its faces are cropped, classified and dropped, and the image is released before the next. The report
needs only labels and probabilities; the mistakes gallery keeps at most `MISTAKES_KEPT` small thumbnails.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core import settings
from core.datasets.labelled import LabelledFace, LabelledSet, LabelledSetError
from core.emotion.classifier import EmotionClassifier
from core.emotion.metrics import classification_report

# Limits per evaluated set: settings `own_eval_max_faces` and `own_eval_max_megapixels` (EMOLENS_OWN_EVAL_*).
# Gallery and batching: fixed design values.
MISTAKES_KEPT = 24             # most confident mistakes shown on the page
THUMBNAIL_PX = 112             # longest side of a gallery thumbnail
CROP_BATCH = 64                # faces per classifier call
CROP_BATCH_PIXELS = 4_000_000  # pending crop pixels that trigger a classifier call (one huge crop goes alone)


@dataclass
class Misclassified:
    """One mistake; `crop` is a thumbnail (longest side at most `THUMBNAIL_PX`), not the full face."""

    file: str
    crop: np.ndarray
    true: str
    predicted: str
    confidence: float


@dataclass
class SetEvaluation:
    """`report` matches `training.evaluate_classifier`'s JSON; `misclassified` is most-confident first and
    holds at most `MISTAKES_KEPT` of the `mistakes` faces the model got wrong."""

    report: dict[str, Any]
    misclassified: list[Misclassified] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mistakes: int = 0


def thumbnail(crop: np.ndarray, side: int = THUMBNAIL_PX) -> np.ndarray:
    """A small copy for the gallery, so a 5000-pixel face is not kept for the session."""
    h, w = crop.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return crop.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


class MistakeGallery:
    """The `limit` most confident mistakes, kept in a min-heap so memory never grows with the mistakes.

    Ties keep the earlier face (the order the unbounded sort gave). None: `MISTAKES_KEPT`."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MISTAKES_KEPT if limit is None else limit
        self.seen = 0
        self._heap: list[tuple[float, int, Misclassified]] = []  # (confidence, -index, mistake)

    def __len__(self) -> int:
        return len(self._heap)

    def wants(self, confidence: float, index: int) -> bool:
        """Whether a mistake would enter the gallery: ask before making its thumbnail."""
        if len(self._heap) < self.limit:
            return self.limit > 0
        return (confidence, -index) > self._heap[0][:2]

    def offer(self, index: int, face: LabelledFace, crop: np.ndarray, true: str, predicted: str,
              confidence: float) -> None:
        self.seen += 1
        if not self.wants(confidence, index):
            return
        item = (confidence, -index, Misclassified(face.file, thumbnail(crop), true, predicted, confidence))
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        else:
            heapq.heapreplace(self._heap, item)

    def most_confident_first(self) -> list[Misclassified]:
        return [m for _, _, m in sorted(self._heap, key=lambda t: (-t[0], -t[1]))]


def check_limits(labelled: LabelledSet, faces: list[LabelledFace], max_faces: int | None = None,
                 max_megapixels: float | None = None) -> None:
    """Refuse a set too large to evaluate before any pixel is decoded (sizes come from image headers).
    None: the module's limits, read at call time."""
    max_faces = settings.get().own_eval_max_faces if max_faces is None else max_faces
    max_megapixels = settings.get().own_eval_max_megapixels if max_megapixels is None else max_megapixels
    if len(faces) > max_faces:
        parts = -(-len(faces) // max_faces)
        raise LabelledSetError(
            f"This set has {len(faces):,} labelled faces; one evaluation takes at most {max_faces:,}. "
            f"Split it into {parts} zips of at most {max_faces:,} faces each (for example some class folders, "
            f"or part of the labels.csv rows with their images, per zip) and evaluate each.")
    files = list(dict.fromkeys(f.file for f in faces))
    total = 0.0
    for file in files:
        size = labelled.image_size(file)
        total += 0.0 if size is None else size[0] * size[1] / 1e6
    if total > max_megapixels:
        parts = int(-(-total // max_megapixels))
        raise LabelledSetError(
            f"This set's {len(files):,} images add up to {_mp(total)} megapixels; one evaluation decodes at most "
            f"{_mp(max_megapixels)} megapixels. Split it into {parts} or more zips of about "
            f"{max(1, len(files) // parts):,} images each, or downscale the photos, and evaluate each.")


def _mp(megapixels: float) -> str:
    return f"{megapixels:,.0f}" if megapixels >= 10 else f"{megapixels:.1f}"


class _Batch:
    """Crops waiting for one classifier call, bounded by count and by pixels."""

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.crops: list[np.ndarray] = []
        self.pixels = 0

    def add(self, index: int, crop: np.ndarray) -> None:
        self.indices.append(index)
        self.crops.append(crop)
        self.pixels += crop.shape[0] * crop.shape[1]

    @property
    def full(self) -> bool:
        return len(self.crops) >= CROP_BATCH or self.pixels >= CROP_BATCH_PIXELS


def evaluate_labelled(classifier: EmotionClassifier, labelled: LabelledSet,
                      progress: Callable[[float], None] | None = None, batch: int = CROP_BATCH) -> SetEvaluation:
    """Classify every reviewed face whose emotion the model knows; report the others as skipped."""
    classes = list(classifier.classes)
    faces = labelled.labelled_faces()
    usable = [f for f in faces if f.emotion in classes]
    skipped = sorted({f"{f.file}: '{f.emotion}' is not one of the model's classes" for f in faces
                      if f.emotion not in classes})
    if not usable:
        raise LabelledSetError("None of the labelled faces has an emotion this model predicts "
                               f"({', '.join(classes)}).")
    check_limits(labelled, usable)
    y = np.array([classes.index(f.emotion) for f in usable])
    p = np.zeros((len(usable), len(classes)), np.float32)
    gallery = MistakeGallery()
    pending = _Batch()
    done = 0

    def flush() -> None:
        nonlocal pending, done
        if not pending.crops:
            return
        probs = classifier.predict(pending.crops)
        for i, crop, row in zip(pending.indices, pending.crops, probs):
            p[i] = row
            pred = int(row.argmax())
            if pred != y[i]:
                gallery.offer(i, usable[i], crop, classes[y[i]], classes[pred], float(row.max()))
        done += len(pending.crops)
        pending = _Batch()
        if progress is not None:
            progress(done / len(usable))

    for file, indices in _by_image(usable).items():
        image = labelled.image(file)  # decoded once; released when the next image replaces it
        for i in indices:
            box = usable[i].box
            crop = image if box is None else classifier.crop(image, box)
            if box is not None and np.may_share_memory(crop, image):
                crop = crop.copy()  # a view would keep the whole decoded image alive in the batch
            pending.add(i, crop)
            if len(pending.crops) >= batch or pending.full:
                flush()
        del image
    flush()
    report = classification_report(p, y, classes).to_dict()
    report.update({"classes": classes, "model": classifier.card.name, "split": "your data", "tta": False})
    return SetEvaluation(report=report, misclassified=gallery.most_confident_first(), skipped=skipped,
                         mistakes=gallery.seen)


def _by_image(faces: list[LabelledFace]) -> dict[str, list[int]]:
    """Face indices grouped by image, images in first-appearance order: one decode per image."""
    groups: dict[str, list[int]] = {}
    for i, face in enumerate(faces):
        groups.setdefault(face.file, []).append(i)
    return groups
