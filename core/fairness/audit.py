"""Fairness audits of a labelled set: run every face through the serving pipeline, then compare groups.

The set comes from the one labelled-set reader, in its tolerant mode (`core.datasets.labelled.read_labelled(
path, strict=False)` for the CLI's folder or zip, `read_uploads(files, strict=False)` on the page): bad rows
are its `problems`, each naming its CSV line, and the audit goes on without them; rows kept in the set but
holding no true emotion (not reviewed, not a face) are counted by its `left_out()`. The set's extra columns
are the candidate attributes (gender, age_group, lighting, ...); `source` scopes the comparisons and the
subject column (`SUBJECT_COLUMNS`) makes intervals resample people. A file's `predicted`/`confidence` are
replaced by the audited model's own predictions.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from core import settings
from core.datasets.labelled import (BOX_COLUMNS, SUBJECT_COLUMNS, LabelledFace, LabelledProblem, LabelledSet,
                                    LabelledSetError)
from core.emotion.vocabulary import EMOTIONS
from core.fairness.metrics import BootstrapConfig, FairnessAudit, audit_frame, is_missing
from core.validation import ImageRejected, validate_image_bytes

if TYPE_CHECKING:  # the pipeline (torch, OpenCV) loads only when images are analysed, not to read a CSV
    from core.pipeline import EmotionPipeline

SCOPE_COLUMN = "source"
# Extra columns that describe the file, the person or its provenance, never a group of people.
RESERVED = {*SUBJECT_COLUMNS, "split", "width", "height", "orig_path", "path", "face", "error", "line"}
FACE_MODES = ("auto", "detect", "whole")
FACE_MODE_HELP = {
    "auto": "detect the face; if none is found, or it fills most of the image, the image is a face crop",
    "detect": "detect the face; images without a detected face are left out",
    "whole": "every image already is a face crop: classify it whole",
}


def audit_faces(dataset: LabelledSet) -> list[LabelledFace]:
    """The rows an audit measures (reviewed faces with one of the 7 emotions); refuses a set with none,
    or with more than `settings.fairness_max_images`."""
    faces = dataset.labelled_faces(EMOTIONS)
    if not faces:
        detail = "; ".join(str(p) for p in dataset.problems[:3])
        raise LabelledSetError(f"No usable rows in {dataset.csv_name}" +
                               (f". First problems: {detail}" if detail else "."))
    limit = settings.get().fairness_max_images
    if len(faces) > limit:
        raise LabelledSetError(f"{dataset.csv_name} lists {len(faces)} usable images; the limit is {limit}. "
                               "Audit a sample or split the set.")
    return faces


def attribute_candidates(dataset: LabelledSet) -> list[str]:
    """Columns that split people into groups: not reserved, 2..fairness_max_groups values, not a measurement."""
    faces = dataset.labelled_faces(EMOTIONS)
    out = []
    for col in dataset.extra_columns:
        if col in RESERVED or col == SCOPE_COLUMN or col.endswith("_provenance"):
            continue
        known = {f.extra.get(col, "").strip() for f in faces if not is_missing(f.extra.get(col))}
        numeric = pd.to_numeric(pd.Series(sorted(known)), errors="coerce").notna().all()
        if numeric and len(known) > 10:
            continue  # a measurement such as age in years: bin it (age_group) to audit it
        if 2 <= len(known) <= settings.get().fairness_max_groups:
            out.append(col)
    return out


def sample_set(dataset: LabelledSet, n: int, seed: int = 0) -> LabelledSet:
    """A seeded random subset of the audited faces (for quick checks); the full set when n >= their number.
    Problems and rows left out stay, so the report still counts every row of the file."""
    faces = dataset.labelled_faces(EMOTIONS)
    if n >= len(faces):
        return dataset
    chosen = {id(faces[i]) for i in pd.Series(range(len(faces))).sample(n=n, random_state=seed)}
    audited = {id(f) for f in faces}
    return replace(dataset, faces=[f for f in dataset.faces if id(f) not in audited or id(f) in chosen])


# -------------------------------------------------------------------------------------------- predicting

@dataclass
class AuditRun:
    """Predictions for every audited row (or the reason it failed), and the audit of those predicted."""

    predictions: pd.DataFrame
    audit: FairnessAudit
    problems: list[LabelledProblem]

    def predictions_csv(self) -> bytes:
        return self.predictions.drop(columns=["line"], errors="ignore").to_csv(index=False).encode()


def classify_image(pipeline: EmotionPipeline, image: np.ndarray, face_mode: str = "auto",
                   box: Sequence[float] | None = None) -> tuple[np.ndarray | None, str]:
    """Probabilities for the one face an audit image holds, and how it was found.

    Uses the serving pipeline: a given box goes through the same crop as a detected one; otherwise the
    detector runs and the highest-scoring face counts. An image that already is a face crop (no face
    found, or the face fills at least FACE_CROP_MIN_AREA of it) is classified whole, squared with the
    pipeline's crop and no extra margin, since the crop's own framing is the margin.
    """
    from core.emotion.preprocess import crop_face

    h, w = image.shape[:2]
    if box is not None:
        probs = pipeline.classifier.predict([pipeline.classifier.crop(image, tuple(box))])
        return probs[0], "given_box"
    if face_mode != "whole":
        faces = pipeline.analyze(image)
        if faces:
            x1, y1, x2, y2 = faces[0].box
            if face_mode == "detect" or (x2 - x1) * (y2 - y1) < settings.get().face_crop_min_area * w * h:
                return faces[0].probs, "detected"
        elif face_mode == "detect":
            return None, "no face found"
    return pipeline.classifier.predict([crop_face(image, (0.0, 0.0, float(w), float(h)), 0.0)])[0], "whole_image"


def _table(dataset: LabelledSet, faces: list[LabelledFace]) -> pd.DataFrame:
    """One row per audited face: file, emotion, the box (when the CSV has box columns), the extra columns, line."""
    boxes = list(BOX_COLUMNS) if dataset.has_boxes else []
    rows = [{"file": f.file, "emotion": f.emotion, **dict(zip(boxes, f.box or (np.nan,) * 4)), **f.extra,
             "line": f.line} for f in faces]
    return pd.DataFrame(rows, columns=["file", "emotion", *boxes, *dataset.extra_columns, "line"])


def predict_set(pipeline: EmotionPipeline, dataset: LabelledSet, face_mode: str = "auto",
                progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[LabelledProblem]]:
    """Run every audited face through the pipeline; failures (bad image, no face) become row problems."""
    if face_mode not in FACE_MODES:
        raise ValueError(f"Unknown face mode {face_mode!r}. Choose one of: {', '.join(FACE_MODES)}.")
    faces = audit_faces(dataset)
    out = _table(dataset, faces)
    predicted: list[str | None] = []
    confidence: list[float | None] = []
    how: list[str] = []
    problems: list[LabelledProblem] = []
    for i, face in enumerate(faces):
        label, conf, path = None, None, "error"
        try:
            image = validate_image_bytes(dataset.images[face.file]).image
        except ImageRejected as exc:
            problems.append(LabelledProblem(exc.message, face.line, face.file, dataset.csv_name))
        except OSError as exc:
            problems.append(LabelledProblem(f"could not be read ({exc}).", face.line, face.file, dataset.csv_name))
        else:
            # the labelled-set format: with box columns, a blank box means the image is the face crop
            mode = "whole" if dataset.has_boxes and face.box is None else face_mode
            probs, path = classify_image(pipeline, image, mode, face.box)
            if probs is None:
                problems.append(LabelledProblem("no face was found in this image.", face.line, face.file,
                                                dataset.csv_name))
            else:
                label = pipeline.classifier.classes[int(np.argmax(probs))]
                conf = round(float(np.max(probs)), 4)
        predicted.append(label)
        confidence.append(conf)
        how.append(path)
        if progress is not None:
            progress(i + 1, len(faces))
    out["predicted"], out["confidence"], out["face"] = predicted, confidence, how
    return out, problems


def audit_dataset(pipeline: EmotionPipeline, dataset: LabelledSet, attributes: Sequence[str] | None = None, *,
                  face_mode: str = "auto", within: str | None = "auto", config: BootstrapConfig | None = None,
                  progress: Callable[[int, int], None] | None = None, meta: dict[str, Any] | None = None) -> AuditRun:
    """Predict, then audit the rows that got a prediction. `within="auto"` uses `source` when present."""
    attributes = list(attribute_candidates(dataset) if attributes is None else attributes)
    unknown = [a for a in attributes if a not in dataset.extra_columns]
    if unknown:
        raise LabelledSetError(f"No column {', '.join(repr(a) for a in unknown)} in {dataset.csv_name}; "
                               f"attribute columns found: {', '.join(attribute_candidates(dataset)) or 'none'}.")
    if within == "auto":
        within = SCOPE_COLUMN if SCOPE_COLUMN in dataset.extra_columns else None
    predictions, failed = predict_set(pipeline, dataset, face_mode, progress)
    ok = predictions[predictions["predicted"].notna()]
    if ok.empty:
        raise LabelledSetError("No image could be analysed, so there is nothing to audit. " +
                               "; ".join(str(p) for p in failed[:3]))
    paths = {str(k): int(v) for k, v in predictions["face"].value_counts().items()}
    if within:
        paths_by_scope = {str(s): {str(k): int(v) for k, v in part["face"].value_counts().items()}
                          for s, part in predictions.groupby(within)}
    else:
        paths_by_scope = {"all": paths}
    skipped_rows = [p for p in dataset.problems if p.line is not None]
    left_out = dataset.left_out()
    info = {"n_rows": int(len(predictions) + len(skipped_rows) + sum(left_out.values())),
            "n_audited": int(len(ok)), "n_skipped_rows": len(skipped_rows), "rows_left_out": left_out,
            "n_failed_images": len(failed), "face_mode": face_mode,
            "face_paths": paths_by_scope, "within": within, "subject_column": dataset.subject_column,
            "attributes_requested": attributes}
    audit = audit_frame(ok, attributes, within=within, subject=dataset.subject_column, config=config,
                        meta={**(meta or {}), **info})
    return AuditRun(predictions=predictions, audit=audit, problems=[*dataset.problems, *failed])
