"""The review model behind the Annotate page: faces to label, their order, and every export.

A session holds images (original bytes) and one `ReviewFace` per detected or hand-added face. A person
sets each face's true emotion (or marks it "not a face"); the model's prediction stays beside it. The
state lives in the caller's memory only (Streamlit's session state): nothing here writes to disk.

Exports: the labelled-set zip (`core.datasets.labelled`, readable again to carry on), face crops in class
folders, COCO-style JSON, and Label Studio tasks with our predictions as pre-annotations.
"""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import cv2
import numpy as np

from core import settings
from core.archive import write_zip
from core.datasets.labelled import COLUMNS, NOT_A_FACE, Box, LabelledFace, LabelledSet, write_labels_zip
from core.emotion.vocabulary import EMOTIONS
from core.errors import UserFacingError

if TYPE_CHECKING:  # torch, OpenCV models: loaded by the caller, only named here
    from core.emotion.classifier import EmotionClassifier
    from core.pipeline import EmotionPipeline

THUMB_SIDE = 112


class AnnotationError(UserFacingError):
    """A request the session cannot carry out (bad box, bad column name); `message` is for people."""

    code = "invalid_annotation"


@dataclass
class ReviewFace:
    """One face under review. `emotion` is the person's label; None until they set or confirm it."""

    id: int
    file: str
    box: Box | None
    predicted: str | None
    confidence: float | None
    emotion: str | None = None
    reviewed: bool = False
    added: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    thumb: bytes | None = field(default=None, repr=False)  # small JPEG of the crop, for display

    @property
    def status(self) -> str:
        if not self.reviewed:
            return "unreviewed"
        return "not a face" if self.emotion == NOT_A_FACE else "labelled"

    @property
    def current(self) -> str | None:
        """What the label control shows: the person's choice, else the model's pre-label."""
        return self.emotion if self.emotion is not None else self.predicted


@dataclass
class AddResult:
    """The outcome of adding one upload: faces added, or why nothing was added."""

    file: str
    faces: int = 0
    error: str | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)


def safe_file_name(name: str, taken: set[str] | dict[str, Any]) -> str:
    """A flat, zip-safe, unique name for an upload ("IMG 1.jpg" twice -> "IMG 1.jpg", "IMG 1_2.jpg")."""
    base = PurePosixPath(name.replace("\\", "/")).name or "image"
    base = re.sub(r"[\x00-\x1f:*?\"<>|]", "_", base).lstrip(".") or "image"
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    candidate, n = base, 2
    while candidate in taken or candidate.lower() == "labels.csv":
        candidate = f"{stem}_{n}{'.' + ext if ext else ''}"
        n += 1
    return candidate


def _thumb(crop: np.ndarray) -> bytes:
    h, w = crop.shape[:2]
    scale = THUMB_SIDE / max(h, w)
    small = cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else b""


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


class AnnotationSession:
    """All review work of one browser session. Methods mutate it; exports never change the labels."""

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        self.faces: list[ReviewFace] = []
        self.extra_columns: list[str] = []
        self.classes: list[str] = list(EMOTIONS)
        self.digests: dict[str, str] = {}  # content sha256 -> file name, so a re-upload is not added twice
        self.changes = 0  # edits since the last labels-zip export (the page warns while > 0)
        self._next_id = 1

    # -------------------------------------------------------------------------------- adding work
    def _new_face(self, **kw: Any) -> ReviewFace:
        face = ReviewFace(id=self._next_id, extra={c: "" for c in self.extra_columns}, **kw)
        self._next_id += 1
        self.faces.append(face)
        return face

    def _add_file(self, name: str, data: bytes, image: np.ndarray) -> str:
        file = safe_file_name(name, self.images)
        self.images[file] = data
        self.sizes[file] = (int(image.shape[1]), int(image.shape[0]))
        self.digests[hashlib.sha256(data).hexdigest()] = file
        return file

    def add_image(self, name: str, data: bytes, pipeline: EmotionPipeline) -> AddResult:
        """Validate, detect and pre-label one uploaded image (same path as Upload and Predict)."""
        from core.analysis import analyze_bytes

        digest = hashlib.sha256(data).hexdigest()
        if digest in self.digests:
            return AddResult(file=name, skipped=f"already in this session as '{self.digests[digest]}'")
        result = analyze_bytes(pipeline, name, data)
        if not result.ok:
            return AddResult(file=name, error=result.error)
        file = self._add_file(name, data, result.image)
        for f in result.faces:
            self._new_face(file=file, box=tuple(float(v) for v in f.box), predicted=f.label,
                           confidence=f.confidence, thumb=_thumb(pipeline.classifier.crop(result.image, f.box)))
        self.changes += 1
        return AddResult(file=file, faces=len(result.faces), notes=result.notes)

    def add_labelled(self, labelled: LabelledSet, classifier: EmotionClassifier | None = None) -> AddResult:
        """Carry on a review from an exported zip (or any labelled set): rows keep their labels and state.

        Rows without a prediction (a hand-made set) are pre-labelled by `classifier` when given.
        """
        from core.emotion.preprocess import crop_face
        from core.validation import ImageRejected, validate_image_bytes

        for col in labelled.extra_columns:
            if col not in self.extra_columns:
                self.add_column(col)
        for f in labelled.faces:
            if f.emotion and f.emotion != NOT_A_FACE and f.emotion not in self.classes:
                self.classes.append(f.emotion)
        renamed: dict[str, str] = {}
        images: dict[str, np.ndarray] = {}
        notes: list[str] = []
        for name, data in labelled.images.items():
            digest = hashlib.sha256(data).hexdigest()
            if digest in self.digests:
                notes.append(f"'{name}' is already in this session; its rows were not added again.")
                continue
            try:
                images[name] = validate_image_bytes(data).image
            except ImageRejected as exc:
                return AddResult(file=name, error=f"'{name}': {exc.message}")
            renamed[name] = name
        for name in renamed:
            renamed[name] = self._add_file(name, labelled.images[name], images[name])
        crop = classifier.crop if classifier is not None else \
            (lambda image, box: crop_face(image, box, settings.get().face_crop_margin))
        rows = [f for f in labelled.faces if f.file in renamed]
        crops = [images[f.file] if f.box is None else crop(images[f.file], f.box) for f in rows]
        preds = [(f.predicted, f.confidence) for f in rows]
        missing = [i for i, f in enumerate(rows) if f.predicted is None]
        if classifier is not None and missing:
            probs = classifier.predict([crops[i] for i in missing])
            for i, p in zip(missing, probs):
                preds[i] = (classifier.classes[int(np.argmax(p))], float(np.max(p)))
        for f, crop, (predicted, confidence) in zip(rows, crops, preds):
            self._new_face(file=renamed[f.file], box=f.box, predicted=predicted, confidence=confidence,
                           emotion=f.emotion, reviewed=f.reviewed, thumb=_thumb(crop)).extra.update(f.extra)
        self.changes += 1
        return AddResult(file="labelled set", faces=len(rows), notes=notes)

    def add_face(self, file: str, box: Sequence[float], classifier: EmotionClassifier) -> ReviewFace:
        """A face the detector missed, drawn or typed by the person; the model pre-labels it too."""
        from core.validation import validate_image_bytes

        if file not in self.images:
            raise AnnotationError(f"'{file}' is not in this session.")
        w, h = self.sizes[file]
        x1, y1, x2, y2 = (float(v) for v in box)
        if not (x2 > x1 and y2 > y1):
            raise AnnotationError("The box needs x2 > x1 and y2 > y1.")
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            raise AnnotationError(f"The box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) is outside the {w}×{h} image.")
        if min(x2 - x1, y2 - y1) < 4:
            raise AnnotationError("The box is smaller than 4 pixels on a side; draw it around the whole face.")
        image = validate_image_bytes(self.images[file]).image
        crop = classifier.crop(image, (x1, y1, x2, y2))
        p = classifier.predict([crop])[0]
        self.changes += 1
        return self._new_face(file=file, box=(x1, y1, x2, y2), predicted=classifier.classes[int(np.argmax(p))],
                              confidence=float(np.max(p)), added=True, thumb=_thumb(crop))

    def add_column(self, name: str, default: str = "") -> str:
        """An extra per-face column (a group attribute, a subject id) carried into every export."""
        col = name.strip().lower().replace(" ", "_")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", col):
            raise AnnotationError("A column name starts with a letter and holds only letters, digits and _.")
        if col in COLUMNS or col in self.extra_columns:
            raise AnnotationError(f"There already is a column '{col}'.")
        self.extra_columns.append(col)
        for f in self.faces:
            f.extra[col] = default
        self.changes += 1
        return col

    # -------------------------------------------------------------------------------- reviewing
    def face(self, face_id: int) -> ReviewFace:
        for f in self.faces:
            if f.id == face_id:
                return f
        raise KeyError(face_id)

    def set_emotion(self, face_id: int, emotion: str) -> None:
        """The person's label (or NOT_A_FACE); setting it is reviewing it."""
        if emotion != NOT_A_FACE and emotion not in self.classes:
            raise AnnotationError(f"Unknown emotion '{emotion}'.")
        f = self.face(face_id)
        f.emotion, f.reviewed = emotion, True
        self.changes += 1

    def confirm(self, face_id: int) -> None:
        """Accept what the control shows (the model's label unless the person changed it)."""
        f = self.face(face_id)
        if f.current is None:
            raise AnnotationError("Choose an emotion first.")
        self.set_emotion(face_id, f.current)

    def set_extra(self, face_id: int, column: str, value: str) -> None:
        self.face(face_id).extra[column] = value
        self.changes += 1

    def queue(self, unreviewed_only: bool = False) -> list[ReviewFace]:
        """Least confident first, so the model's doubts are fixed before its certainties."""
        faces = [f for f in self.faces if not (unreviewed_only and f.reviewed)]
        return sorted(faces, key=lambda f: (f.confidence if f.confidence is not None else -1.0, f.id))

    def progress(self) -> tuple[int, int]:
        """(reviewed, total) faces."""
        return sum(f.reviewed for f in self.faces), len(self.faces)

    def mark_exported(self) -> None:
        """The person downloaded the labelled zip: nothing unsaved until the next edit."""
        self.changes = 0

    def unsaved(self) -> bool:
        return bool(self.faces) and self.changes > 0

    def draw(self, file: str) -> np.ndarray:
        """The image with every face box and its id (green: labelled, grey: unreviewed, red: not a face)."""
        from core.validation import validate_image_bytes

        image = validate_image_bytes(self.images[file]).image.copy()
        w, h = self.sizes[file]
        thick = max(1, round(min(w, h) / 300))
        colors = {"labelled": (0, 158, 115), "unreviewed": (190, 190, 190), "not a face": (213, 94, 0)}
        for f in self.faces:
            if f.file != file:
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in self._box(f))
            cv2.rectangle(image, (x1, y1), (x2, y2), colors[f.status], thick + 1)
            cv2.putText(image, str(f.id), (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick + 0.2,
                        colors[f.status], thick, cv2.LINE_AA)
        return image

    # -------------------------------------------------------------------------------- exports
    def to_labelled(self) -> LabelledSet:
        faces = [LabelledFace(file=f.file, box=f.box, emotion=f.emotion,
                              reviewed=f.reviewed, predicted=f.predicted, confidence=f.confidence,
                              extra={c: f.extra.get(c, "") for c in self.extra_columns}) for f in self.faces]
        return LabelledSet(images=dict(self.images), faces=faces, extra_columns=list(self.extra_columns))

    def export_labels_zip(self) -> bytes:
        """Images + labels.csv: upload it again to carry on where the person stopped."""
        return write_labels_zip(self.to_labelled())

    def labelled_faces(self) -> list[ReviewFace]:
        return [f for f in self.faces if f.reviewed and f.emotion not in (None, NOT_A_FACE)]

    def export_crops_zip(self, classifier: EmotionClassifier) -> bytes:
        """Reviewed face crops as `<emotion>/<image>_<face id>.png`, framed by `classifier.crop` (readable by
        `core.datasets.labelled` too)."""
        from core.validation import validate_image_bytes

        def crops() -> Iterator[tuple[str, bytes]]:
            decoded: dict[str, np.ndarray] = {}
            for f in self.labelled_faces():
                if f.file not in decoded:
                    decoded[f.file] = validate_image_bytes(self.images[f.file]).image
                img = decoded[f.file]
                crop = img if f.box is None else classifier.crop(img, f.box)
                yield f"{f.emotion}/{PurePosixPath(f.file).stem}_{f.id}.png", _png(crop)
        return write_zip(crops())

    def _box(self, f: ReviewFace) -> Box:
        w, h = self.sizes[f.file]
        return f.box if f.box is not None else (0.0, 0.0, float(w), float(h))

    def export_coco(self) -> dict[str, Any]:
        """COCO detection JSON: reviewed real faces, category = the person's emotion, bbox = [x, y, w, h]."""
        categories = [{"id": i + 1, "name": c, "supercategory": "face"} for i, c in enumerate(self.classes)]
        cat_id = {c["name"]: c["id"] for c in categories}
        image_id = {name: i + 1 for i, name in enumerate(self.images)}
        images = [{"id": image_id[n], "file_name": n, "width": self.sizes[n][0], "height": self.sizes[n][1]}
                  for n in self.images]
        annotations = []
        for f in self.labelled_faces():
            x1, y1, x2, y2 = self._box(f)
            annotations.append({
                "id": f.id, "image_id": image_id[f.file], "category_id": cat_id[f.emotion],
                "bbox": [round(x1, 1), round(y1, 1), round(x2 - x1, 1), round(y2 - y1, 1)],
                "area": round((x2 - x1) * (y2 - y1), 1), "iscrowd": 0,
                "attributes": {"predicted": f.predicted, "confidence": f.confidence, "added_by_hand": f.added,
                               **{c: f.extra.get(c, "") for c in self.extra_columns}}})
        return {"info": {"description": "EmoLens annotations (reviewed faces only)", "version": "1.0"},
                "licenses": [], "images": images, "annotations": annotations, "categories": categories}

    def export_label_studio(self, url_prefix: str = "", model_version: str = "emolens") -> list[dict[str, Any]]:
        """Label Studio tasks: our predictions as pre-annotations, reviewed labels as annotations.

        Label Studio reads images from URLs, so `url_prefix` (for example your local-storage path) is put
        before each file name. Pair with `label_studio_config(self.classes)`.
        """
        tasks = []
        for file in self.images:
            w, h = self.sizes[file]
            faces = [f for f in self.faces if f.file == file]
            pred, done = [], []
            for f in faces:
                x1, y1, x2, y2 = self._box(f)
                value = {"x": 100 * x1 / w, "y": 100 * y1 / h, "width": 100 * (x2 - x1) / w,
                         "height": 100 * (y2 - y1) / h, "rotation": 0}
                base = {"id": uuid.uuid5(uuid.NAMESPACE_URL, f"{file}#{f.id}").hex[:10], "type": "rectanglelabels",
                        "from_name": "emotion", "to_name": "image", "original_width": w, "original_height": h,
                        "image_rotation": 0}
                if f.predicted is not None:
                    pred.append({**base, "value": {**value, "rectanglelabels": [f.predicted]},
                                 "score": f.confidence})
                if f.reviewed and f.emotion not in (None, NOT_A_FACE):
                    done.append({**base, "value": {**value, "rectanglelabels": [f.emotion]}})
            scores = [f.confidence for f in faces if f.confidence is not None]
            task: dict[str, Any] = {"data": {"image": url_prefix + file, "file": file},
                                    "predictions": [{"model_version": model_version, "result": pred,
                                                     "score": float(np.mean(scores)) if scores else None}]}
            if done:
                task["annotations"] = [{"result": done, "ground_truth": False}]
            tasks.append(task)
        return tasks


def label_studio_config(classes: Sequence[str]) -> str:
    """The labelling interface XML that matches `export_label_studio` (paste it into the project)."""
    labels = "\n".join(f'    <Label value="{c}"/>' for c in classes)
    return (f'<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="emotion" toName="image">\n'
            f"{labels}\n  </RectangleLabels>\n</View>")


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2).encode()
