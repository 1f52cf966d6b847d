"""Labelled face sets for fairness audits: read them, check them, and run them through the pipeline.

A set is images plus one CSV with a row per image: `file`, `emotion`, optionally a face box
`x1, y1, x2, y2` (pixels), a `subject` (who is in the photo) and a `source`, and any attribute columns
(gender, age_group, lighting, ...). It can be a folder (`labels.csv` beside the images, like
`../shared/data/fairness`), a zip (images + one CSV, as the labelled-set reader uses), or files uploaded
on the page. Bad rows never stop an audit: each becomes a plain message naming its CSV line. The
labelled-set format's extra columns are understood: `reviewed` = 0 rows and `not_a_face` rows are left out
(counted), and `predicted`/`confidence` are replaced by the audited model's own predictions.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from core import settings
from core.errors import UserFacingError
from core.emotion.vocabulary import EMOTIONS
from core.fairness.metrics import BootstrapConfig, FairnessAudit, audit_frame, is_missing
from core.validation import FileTooLarge, ImageRejected, validate_image_bytes

if TYPE_CHECKING:  # the pipeline (torch, OpenCV) loads only when images are analysed, not to read a CSV
    from core.pipeline import EmotionPipeline

BOX_COLUMNS = ("x1", "y1", "x2", "y2")
SUBJECT_COLUMNS = ("subject", "subject_id", "identity", "person", "person_id")
SCOPE_COLUMN = "source"
# Columns that describe the file or its provenance, never a group of people.
RESERVED = {"file", "emotion", *BOX_COLUMNS, *SUBJECT_COLUMNS, "split", "width", "height", "orig_path", "path",
            "predicted", "confidence", "reviewed", "face", "error", "line"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
EMOTION_ALIASES = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "afraid": "fear", "scared": "fear",
                   "happiness": "happy", "joy": "happy", "sadness": "sad", "surprised": "surprise"}
# Rows the labelled-set format (Annotate exports) keeps but that hold no true emotion to audit.
NOT_A_FACE = {"not_a_face", "not a face", "not-a-face", "notaface"}
NOT_REVIEWED = {"0", "false", "no", "n", "f", ""}
FACE_MODES = ("auto", "detect", "whole")
FACE_MODE_HELP = {
    "auto": "detect the face; if none is found, or it fills most of the image, the image is a face crop",
    "detect": "detect the face; images without a detected face are left out",
    "whole": "every image already is a face crop: classify it whole",
}


class DatasetError(UserFacingError):
    """The set as a whole cannot be used (no CSV, missing columns, damaged zip); `message` is for people."""

    code = "invalid_labelled_set"


@dataclass
class RowProblem:
    """One CSV row (or image) left out, and why, in words a person can act on."""

    line: int
    file: str
    message: str
    csv_name: str = "labels.csv"

    def __str__(self) -> str:
        where = f"{self.csv_name} line {self.line}" if self.line else self.csv_name
        return f"{where}" + (f" ({self.file})" if self.file else "") + f": {self.message}"


@dataclass
class LabelledSet:
    """Valid rows (`line` = CSV line), what each column means, and how to fetch an image's bytes."""

    rows: pd.DataFrame
    reader: Callable[[str], bytes] = field(repr=False)
    origin: str
    csv_name: str = "labels.csv"
    problems: list[RowProblem] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # rows left out on purpose: not reviewed, not a face
    subject: str | None = None
    scope: str | None = None
    has_boxes: bool = False

    def __len__(self) -> int:
        return len(self.rows)

    def attribute_candidates(self) -> list[str]:
        """Columns that split people into groups: not reserved, 2..FAIRNESS_MAX_GROUPS values, not a measurement."""
        out = []
        for col in self.rows.columns:
            if col in RESERVED or col == self.scope or col.endswith("_provenance"):
                continue
            known = {str(v).strip() for v in self.rows[col] if not is_missing(v)}
            numeric = pd.to_numeric(pd.Series(sorted(known)), errors="coerce").notna().all()
            if numeric and len(known) > 10:
                continue  # a measurement such as age in years: bin it (age_group) to audit it
            if 2 <= len(known) <= settings.get().fairness_max_groups:
                out.append(col)
        return out

    def sample(self, n: int, seed: int = 0) -> "LabelledSet":
        """A seeded random subset (for quick checks); the full set when n >= its size."""
        if n >= len(self.rows):
            return self
        rows = self.rows.sample(n=n, random_state=seed).sort_values("line").reset_index(drop=True)
        return LabelledSet(rows=rows, reader=self.reader, origin=self.origin, csv_name=self.csv_name,
                           problems=list(self.problems), excluded=dict(self.excluded), subject=self.subject,
                           scope=self.scope, has_boxes=self.has_boxes)


# ----------------------------------------------------------------------------------------------- reading

def normalize_emotion(value: Any) -> str | None:
    """'Happy', 'HAPPINESS', 'surprised' -> the 7-class name; None when it is not one of them."""
    if is_missing(value):
        return None
    word = str(value).strip().lower()
    if word in EMOTIONS:
        return word
    return EMOTION_ALIASES.get(word)


def parse_labels(data: bytes, has_file: Callable[[str], str | None], csv_name: str = "labels.csv",
                 ) -> tuple[pd.DataFrame, list[RowProblem], dict[str, int]]:
    """Check a labels CSV row by row. `has_file(name)` returns the image's key in the set, or None.

    Returns the valid rows, the problems, and counts of rows left out on purpose: `reviewed` = 0 (a
    review not finished) and `not_a_face` (a false detection), as the labelled-set format writes them.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{csv_name} is not UTF-8 text. Save it as 'CSV UTF-8' and try again.") from None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{csv_name} could not be read as a CSV table ({str(exc).strip()}).") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("file", "emotion") if c not in frame.columns]
    if missing:
        raise DatasetError(f"{csv_name} needs the columns 'file' and 'emotion'; it lacks {', '.join(missing)} "
                           f"(its columns are: {', '.join(frame.columns) or 'none'}).")
    present_box = [c for c in BOX_COLUMNS if c in frame.columns]
    if present_box and len(present_box) < 4:
        raise DatasetError(f"{csv_name} has only some of the face-box columns ({', '.join(present_box)}); "
                           "give all of x1, y1, x2, y2 or none.")
    problems: list[RowProblem] = []
    excluded = {"not reviewed": 0, "marked not a face": 0}
    keep: list[dict[str, Any]] = []
    seen: dict[tuple, int] = {}  # (image, box): one image may hold several labelled faces
    for i, row in enumerate(frame.to_dict("records")):
        line = i + 2  # line 1 is the header
        name = str(row["file"]).strip()
        if not name:
            problems.append(RowProblem(line, "", "the 'file' cell is empty.", csv_name))
            continue
        if str(row["emotion"]).strip().lower() in NOT_A_FACE:
            excluded["marked not a face"] += 1
            continue
        if "reviewed" in row and str(row["reviewed"]).strip().lower() in NOT_REVIEWED:
            excluded["not reviewed"] += 1
            continue
        emotion = normalize_emotion(row["emotion"])
        if emotion is None:
            given = str(row["emotion"]).strip() or "(empty)"
            problems.append(RowProblem(line, name, f"emotion '{given}' is not one of {', '.join(EMOTIONS)}.",
                                       csv_name))
            continue
        key = has_file(name)
        if key is None:
            problems.append(RowProblem(line, name, "this image is not in the set (check the name and folder).",
                                       csv_name))
            continue
        if present_box:
            box_problem = _check_box(row)
            if box_problem:
                problems.append(RowProblem(line, name, box_problem, csv_name))
                continue
        face = (key, *(str(row[c]).strip() for c in present_box))
        if face in seen:
            what = "face" if present_box else "image"
            problems.append(RowProblem(line, name, f"the same {what} is already listed on line {seen[face]}.",
                                       csv_name))
            continue
        seen[face] = line
        keep.append({**row, "file": key, "emotion": emotion, "line": line})
    if len(keep) > settings.get().fairness_max_images:
        raise DatasetError(f"{csv_name} lists {len(keep)} usable images; the limit is "
                           f"{settings.get().fairness_max_images}. Audit a sample or split the set.")
    rows = pd.DataFrame(keep, columns=[*frame.columns, "line"])
    if present_box:
        rows[list(BOX_COLUMNS)] = rows[list(BOX_COLUMNS)].replace("", np.nan).astype(float)
    return rows, problems, {k: v for k, v in excluded.items() if v}


def _check_box(row: dict[str, Any]) -> str | None:
    cells = [str(row[c]).strip() for c in BOX_COLUMNS]
    if not any(cells):
        return None  # no box: the image itself is the face crop
    try:
        x1, y1, x2, y2 = (float(c) for c in cells)
    except ValueError:
        return f"the face box ({', '.join(cells)}) must be four numbers."
    if not all(np.isfinite([x1, y1, x2, y2])) or x2 <= x1 or y2 <= y1 or min(x1, y1) < 0:
        return f"the face box ({', '.join(cells)}) needs 0 <= x1 < x2 and 0 <= y1 < y2."
    return None


def _finish(parsed: tuple[pd.DataFrame, list[RowProblem], dict[str, int]], reader: Callable[[str], bytes],
            origin: str, csv_name: str) -> LabelledSet:
    rows, problems, excluded = parsed
    if rows.empty:
        detail = "; ".join(str(p) for p in problems[:3])
        raise DatasetError(f"No usable rows in {csv_name}" + (f". First problems: {detail}" if detail else "."))
    subject = next((c for c in SUBJECT_COLUMNS if c in rows.columns), None)
    scope = SCOPE_COLUMN if SCOPE_COLUMN in rows.columns else None
    has_boxes = all(c in rows.columns for c in BOX_COLUMNS)
    return LabelledSet(rows=rows.reset_index(drop=True), reader=reader, origin=origin, csv_name=csv_name,
                       problems=problems, excluded=excluded, subject=subject, scope=scope, has_boxes=has_boxes)


def open_folder(folder: str | Path) -> LabelledSet:
    """A folder with `labels.csv` (or its only CSV); `file` paths are relative to the folder."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    csv_path = root / "labels.csv"
    if not csv_path.exists():
        csvs = sorted(root.glob("*.csv"))
        if len(csvs) != 1:
            raise DatasetError(f"{root} needs a labels.csv (file, emotion, attribute columns) beside the images.")
        csv_path = csvs[0]
    resolved_root = root.resolve()

    def has_file(name: str) -> str | None:
        path = (root / name).resolve()
        inside = path == resolved_root or resolved_root in path.parents
        return name if inside and path.is_file() else None

    def reader(name: str) -> bytes:
        return (root / name).read_bytes()

    return _finish(parse_labels(csv_path.read_bytes(), has_file, csv_path.name), reader, str(root), csv_path.name)


def open_zip(data: bytes, name: str = "upload.zip", labels_csv: tuple[str, bytes] | None = None) -> LabelledSet:
    """A zip of images plus one CSV (`labels.csv` preferred). Read in memory: nothing touches the disk."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir() and not _hidden(i.filename)]
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DatasetError(f"{name} is not a readable zip file.") from None
    images = {i.filename: i for i in infos if i.filename.lower().endswith(IMAGE_SUFFIXES)}
    if labels_csv is None:
        csvs = [i for i in infos if i.filename.lower().endswith(".csv")]
        chosen = [i for i in csvs if PurePosixPath(i.filename).name.lower() == "labels.csv"] or csvs
        if len(chosen) != 1:
            raise DatasetError(f"{name} must hold exactly one CSV (labels.csv) with the columns file and emotion; "
                               f"it holds {len(csvs)}.")
        csv_info = chosen[0]
        if csv_info.file_size > 50 * 2**20:
            raise DatasetError(f"{csv_info.filename} is larger than 50 MB; that is not a labels table.")
        labels_csv = (PurePosixPath(csv_info.filename).name, archive.read(csv_info))
        base = str(PurePosixPath(csv_info.filename).parent)
    else:
        base = "."
    lookup = _name_index(list(images), base)

    def reader(member: str) -> bytes:
        info = images[member]
        if info.file_size > settings.get().max_upload_bytes:  # checked before inflating anything (zip bombs)
            raise FileTooLarge(f"The image is {info.file_size / 1e6:.1f} MB; the limit is "
                               f"{settings.get().max_upload_bytes / 1e6:.0f} MB per image.")
        return archive.read(info)

    return _finish(parse_labels(labels_csv[1], lookup, labels_csv[0]), reader, name, labels_csv[0])


def open_upload(files: Sequence[tuple[str, bytes]]) -> LabelledSet:
    """What the page receives: one zip (optionally with a separate CSV), or images plus one CSV."""
    zips = [f for f in files if f[0].lower().endswith(".zip")]
    csvs = [f for f in files if f[0].lower().endswith(".csv")]
    if len(zips) > 1 or len(csvs) > 1:
        raise DatasetError("Upload one zip, or images plus one CSV; several zips or CSVs were given.")
    if zips:
        return open_zip(zips[0][1], zips[0][0], csvs[0] if csvs else None)
    if not csvs:
        raise DatasetError("Add the labels CSV (columns file, emotion and any attributes) to the images.")
    images = {n: d for n, d in files if not n.lower().endswith(".csv")}
    lookup = _name_index(list(images), ".")
    return _finish(parse_labels(csvs[0][1], lookup, csvs[0][0]), images.__getitem__, "upload", csvs[0][0])


def open_dataset(path: str | Path) -> LabelledSet:
    """A folder or a .zip on disk (the CLI's `--data`)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p} does not exist.")
    if p.is_file() and p.suffix.lower() == ".zip":
        return open_zip(p.read_bytes(), p.name)
    return open_folder(p)


def _hidden(name: str) -> bool:
    return name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith(".")


def _norm(name: str) -> str:
    return re.sub(r"^(\./)+", "", name.strip().replace("\\", "/"))


def _name_index(members: list[str], base: str) -> Callable[[str], str | None]:
    """CSV name -> member: exact path, path relative to the CSV's folder, else a base name that is unique
    (a browser upload loses folders, so 'images/a.jpg' in the CSV matches an uploaded 'a.jpg')."""
    exact: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for m in members:
        exact[_norm(m)] = m
        if base not in (".", "") and m.startswith(base + "/"):
            exact.setdefault(_norm(m[len(base) + 1:]), m)
        by_name.setdefault(PurePosixPath(m).name, []).append(m)

    def lookup(name: str) -> str | None:
        name = _norm(name)
        found = by_name.get(PurePosixPath(name).name, [])
        return exact.get(name) or (found[0] if len(found) == 1 else None)
    return lookup


# -------------------------------------------------------------------------------------------- predicting

@dataclass
class AuditRun:
    """Predictions for every valid row (or the reason it failed), and the audit of those predicted."""

    predictions: pd.DataFrame
    audit: FairnessAudit
    problems: list[RowProblem]

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


def predict_set(pipeline: EmotionPipeline, dataset: LabelledSet, face_mode: str = "auto",
                progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[RowProblem]]:
    """Run every row through the pipeline; failures (bad image, no face) become row problems."""
    if face_mode not in FACE_MODES:
        raise ValueError(f"Unknown face mode {face_mode!r}. Choose one of: {', '.join(FACE_MODES)}.")
    out = dataset.rows.copy()
    predicted: list[str | None] = []
    confidence: list[float | None] = []
    how: list[str] = []
    problems: list[RowProblem] = []
    total = len(out)
    for i, row in enumerate(out.to_dict("records")):
        label, conf, path = None, None, "error"
        try:
            image = validate_image_bytes(dataset.reader(row["file"])).image
        except ImageRejected as exc:
            problems.append(RowProblem(row["line"], row["file"], exc.message, dataset.csv_name))
        except (OSError, KeyError) as exc:
            problems.append(RowProblem(row["line"], row["file"], f"could not be read ({exc}).", dataset.csv_name))
        else:
            box, mode = None, face_mode
            if dataset.has_boxes:  # the labelled-set format: a blank box means the image is the face crop
                if any(pd.isna(row[c]) for c in BOX_COLUMNS):
                    mode = "whole"
                else:
                    box = [row[c] for c in BOX_COLUMNS]
            probs, path = classify_image(pipeline, image, mode, box)
            if probs is None:
                problems.append(RowProblem(row["line"], row["file"], "no face was found in this image.",
                                           dataset.csv_name))
            else:
                label = pipeline.classifier.classes[int(np.argmax(probs))]
                conf = round(float(np.max(probs)), 4)
        predicted.append(label)
        confidence.append(conf)
        how.append(path)
        if progress is not None:
            progress(i + 1, total)
    out["predicted"], out["confidence"], out["face"] = predicted, confidence, how
    return out, problems


def audit_dataset(pipeline: EmotionPipeline, dataset: LabelledSet, attributes: Sequence[str] | None = None, *,
                  face_mode: str = "auto", within: str | None = "auto", config: BootstrapConfig = BootstrapConfig(),
                  progress: Callable[[int, int], None] | None = None, meta: dict[str, Any] | None = None) -> AuditRun:
    """Predict, then audit the rows that got a prediction. `within="auto"` uses `source` when present."""
    attributes = list(dataset.attribute_candidates() if attributes is None else attributes)
    unknown = [a for a in attributes if a not in dataset.rows.columns]
    if unknown:
        raise DatasetError(f"No column {', '.join(repr(a) for a in unknown)} in {dataset.csv_name}; "
                           f"attribute columns found: {', '.join(dataset.attribute_candidates()) or 'none'}.")
    scope = dataset.scope if within == "auto" else within
    predictions, failed = predict_set(pipeline, dataset, face_mode, progress)
    ok = predictions[predictions["predicted"].notna()]
    if ok.empty:
        raise DatasetError("No image could be analysed, so there is nothing to audit. " +
                           "; ".join(str(p) for p in failed[:3]))
    paths = {str(k): int(v) for k, v in predictions["face"].value_counts().items()}
    if scope:
        paths_by_scope = {str(s): {str(k): int(v) for k, v in part["face"].value_counts().items()}
                          for s, part in predictions.groupby(scope)}
    else:
        paths_by_scope = {"all": paths}
    info = {"n_rows": int(len(dataset) + len(dataset.problems) + sum(dataset.excluded.values())),
            "n_audited": int(len(ok)), "n_skipped_rows": len(dataset.problems), "rows_left_out": dataset.excluded,
            "n_failed_images": len(failed), "face_mode": face_mode,
            "face_paths": paths_by_scope, "within": scope, "subject_column": dataset.subject,
            "attributes_requested": attributes}
    audit = audit_frame(ok, attributes, within=scope, subject=dataset.subject, config=config,
                        meta={**(meta or {}), **info})
    return AuditRun(predictions=predictions, audit=audit, problems=[*dataset.problems, *failed])
