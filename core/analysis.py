"""Uploaded bytes -> validated image -> faces, as one result per file, plus its JSON and table forms.

The CLI, the pages and the API all go through `analyze_bytes`, so a bad file gets the same plain
message everywhere, and the JSON keys are defined once (`to_json`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

from core.batch.schema import FACE_COLUMNS
from core.pipeline import EmotionPipeline, FaceResult
from core.validation import ImageRejected, validate_image_bytes


@dataclass
class ImageAnalysis:
    """The outcome for one file: faces, or an error (code + message) when it failed validation."""

    file: str
    faces: list[FaceResult] = field(default_factory=list)
    image: np.ndarray | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The CLI/API contract: `file` plus `faces`, or `file` plus `error` (a plain message)."""
        if not self.ok:
            return {"file": self.file, "error": self.error, "error_code": self.error_code}
        out: dict[str, Any] = {"file": self.file, "faces": [f.to_dict() for f in self.faces]}
        if self.notes:
            out["notes"] = self.notes
        return out


def analyze_bytes(pipeline: EmotionPipeline, name: str, data: bytes, landmarks: bool = False) -> ImageAnalysis:
    """Validate then analyse one uploaded file; validation problems become an error, not an exception."""
    try:
        valid = validate_image_bytes(data)
    except ImageRejected as exc:
        return ImageAnalysis(file=name, error_code=exc.code, error=exc.message)
    faces = pipeline.analyze(valid.image, landmarks=landmarks)
    return ImageAnalysis(file=name, faces=faces, image=valid.image, notes=valid.notes)


NO_FACE_MESSAGE = "no face found"  # the error text of a file analysed without finding a face


def face_rows(analysis: ImageAnalysis) -> list[dict[str, Any]]:
    """One row per face (box, scores, every probability), or a single row with `error` for a failed or
    faceless file; keys are `FACE_COLUMNS`'s (absent ones are blank). Batch rows add to these rows."""
    if not analysis.ok or not analysis.faces:
        return [{"file": analysis.file, "face": None,
                 "error": analysis.error if not analysis.ok else NO_FACE_MESSAGE}]
    rows: list[dict[str, Any]] = []
    for i, f in enumerate(analysis.faces, start=1):
        x1, y1, x2, y2 = (round(float(v), 1) for v in f.box)
        row: dict[str, Any] = {"file": analysis.file, "face": i, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                               "score": round(f.score, 4), "emotion": f.label, "confidence": round(f.confidence, 4)}
        row.update({f"p_{c}": round(p, 4) for c, p in f.probs_dict.items()})
        row["error"] = None
        rows.append(row)
    return rows


def results_table(analyses: Iterable[ImageAnalysis]) -> pd.DataFrame:
    """One row per face (or per failed / faceless file), with every probability as a column."""
    rows = [row for a in analyses for row in face_rows(a)]
    return pd.DataFrame(rows).reindex(columns=list(FACE_COLUMNS))


def table_to_csv(table: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue().encode()
