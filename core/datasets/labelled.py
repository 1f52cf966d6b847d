"""The labelled-set format: the one reader (and writer) for faces whose true emotion a person set.

Every consumer goes through `read_labelled`: the Annotate page (to carry on a review), Model Comparison's
"evaluate on your own data", the fairness page's "audit your own data" and `training.finetune`. So a set
annotated in the app is evaluated, audited and trained on without conversion.

Accepted inputs (bytes of a zip, or a path to a zip, a folder or a `labels.csv`):

1. **labels.csv + images** (what the Annotate page exports). Columns, case-insensitive:

   ``file, x1, y1, x2, y2, emotion, reviewed, predicted, confidence`` + any extra columns (for example
   ``group`` or ``subject``), kept as strings in `LabelledFace.extra`.

   - `file`: path of the image inside the zip/folder, relative to `labels.csv`.
   - `x1..y2`: the face box in pixels of the EXIF-oriented image. Blank (or columns absent) means the
     image *is* the face crop.
   - `emotion`: the true label; blank while unreviewed; ``not_a_face`` marks a false detection.
   - `reviewed`: 1/0 (true/false, yes/no). Absent column: every labelled row counts as reviewed, so a
     hand-made spreadsheet is ground truth.
   - `predicted`, `confidence`: the model's pre-label, kept so a review can carry on.

   Images without rows are part of the set (a reviewed image with no face).
2. **Class folders**: ``<emotion>/<image>`` (optionally under one top folder), each image a face crop;
   no boxes. This is also what the Annotate page's "crops" export writes.

Errors are one `LabelledSetError` listing every problem in plain words, each naming the `labels.csv` line
(the header is line 1) or the file: missing images, unknown emotion names, boxes outside the image,
duplicate rows, unreadable images, a file that is not a zip.
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from core import settings
from core.errors import UserFacingError
from core.emotion.vocabulary import EMOTIONS
from core.validation import sniff_format

Box = tuple[float, float, float, float]
Cropper = Callable[[np.ndarray, Box], np.ndarray]  # a classifier's `crop`: image, box -> face

LABELS_FILE = "labels.csv"
NOT_A_FACE = "not_a_face"
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
COLUMNS = ("file", *BOX_COLUMNS, "emotion", "reviewed", "predicted", "confidence")
BOX_TOLERANCE_PX = 1.0  # rounding in exported boxes must not turn an edge face into an error
MAX_LISTED_PROBLEMS = 10

# Names other datasets use for the same classes (FER+, AffectNet, RAF-DB, spreadsheets).
ALIASES = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "scared": "fear",
           "happiness": "happy", "joy": "happy", "sadness": "sad", "surprised": "surprise",
           "not a face": NOT_A_FACE, "not-a-face": NOT_A_FACE, "notaface": NOT_A_FACE}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


class LabelledSetError(UserFacingError):
    """A labelled set that cannot be used; `message` is for people and names each bad row or file."""

    code = "invalid_labelled_set"

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


@dataclass
class LabelledFace:
    """One face of a labelled set. `box` None: the whole image is the face crop."""

    file: str
    box: Box | None
    emotion: str | None
    reviewed: bool = True
    predicted: str | None = None
    confidence: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_face(self) -> bool:
        return self.emotion != NOT_A_FACE

    @property
    def labelled(self) -> bool:
        """True when a person confirmed a real emotion: the rows that evaluation and training use."""
        return self.reviewed and self.emotion is not None and self.emotion != NOT_A_FACE


@dataclass
class LabelledSet:
    """Images (name -> original bytes) and their face rows; `extra_columns` keeps the user's order."""

    images: dict[str, bytes]
    faces: list[LabelledFace]
    extra_columns: list[str] = field(default_factory=list)

    def labelled_faces(self, classes: Iterable[str] | None = None) -> list[LabelledFace]:
        """Reviewed real faces with an emotion, optionally only those in `classes`."""
        keep = set(classes) if classes is not None else None
        return [f for f in self.faces if f.labelled and (keep is None or f.emotion in keep)]

    def classes(self) -> list[str]:
        """Emotions present among labelled faces: FER-2013 order first, then others alphabetically."""
        present = {f.emotion for f in self.labelled_faces()}
        return [e for e in EMOTIONS if e in present] + sorted(present - set(EMOTIONS))

    def image(self, file: str) -> np.ndarray:
        """Decode one image (RGB uint8, EXIF-oriented) through the app's upload validation."""
        from core.validation import validate_image_bytes

        return validate_image_bytes(self.images[file]).image

    def crops(self, faces: Sequence[LabelledFace], crop: Cropper) -> list[np.ndarray]:
        """Face crops through the serving crop (`crop` is a classifier's `crop`); box-less rows are crops already."""
        decoded: dict[str, np.ndarray] = {}
        out = []
        for face in faces:
            if face.file not in decoded:
                decoded[face.file] = self.image(face.file)
            img = decoded[face.file]
            out.append(img if face.box is None else crop(img, face.box))
        return out

    def to_csv(self) -> bytes:
        """`labels.csv` bytes: the standard columns, then the extra ones."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*COLUMNS, *self.extra_columns])
        for f in self.faces:
            box = ["" if f.box is None else _fmt(v) for v in (f.box or (None,) * 4)]
            writer.writerow([f.file, *box, f.emotion or "", int(bool(f.reviewed)), f.predicted or "",
                             "" if f.confidence is None else f"{f.confidence:.4f}",
                             *[f.extra.get(c, "") for c in self.extra_columns]])
        return buf.getvalue().encode("utf-8")


def _fmt(v: float) -> str:
    return f"{float(v):.1f}".rstrip("0").rstrip(".")


def write_labels_zip(labelled: LabelledSet) -> bytes:
    """A zip of every image (original bytes) plus `labels.csv`, readable again by `read_labelled`."""
    for name in labelled.images:
        check_member_name(name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(LABELS_FILE, labelled.to_csv(), compress_type=zipfile.ZIP_DEFLATED)
        for name, data in labelled.images.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)  # images are compressed already
    return buf.getvalue()


def check_member_name(name: str) -> None:
    """Refuse names that would escape a folder when the zip is unpacked (absolute, `..`, backslashes)."""
    p = PurePosixPath(name)
    if not name or name == LABELS_FILE or p.is_absolute() or ".." in p.parts or "\\" in name or ":" in name:
        raise LabelledSetError(f"{name!r} cannot be used as a file name inside the zip.")


def normalize_emotion(value: str) -> str:
    """Lower-case, trimmed, common synonyms mapped to our names ("Happiness" -> "happy")."""
    v = " ".join(value.strip().lower().replace("_", " ").split())
    return ALIASES.get(v, v.replace(" ", "_"))


# ---------------------------------------------------------------------------------------------- reading

def read_labelled(data: bytes | str | Path, classes: Sequence[str] | None = None) -> LabelledSet:
    """Read a labelled set from zip bytes, or a path to a zip, a folder or a `labels.csv`.

    `classes` is the vocabulary of allowed emotion names (default: the seven FER-2013 emotions);
    ``not_a_face`` is always allowed. Raises `LabelledSetError` naming every bad row or file.
    """
    vocabulary = [normalize_emotion(c) for c in (classes or EMOTIONS)]
    if isinstance(data, (bytes, bytearray, memoryview)):
        return _from_files(_zip_members(bytes(data), "the uploaded file"), vocabulary)
    path = Path(data)
    if not path.exists():
        raise LabelledSetError(f"{path} does not exist.")
    if path.is_dir():
        return _from_files(_dir_members(path), vocabulary)
    if path.name.lower() == LABELS_FILE:
        return _from_files(_dir_members(path.parent), vocabulary)
    return _from_files(_zip_members(path.read_bytes(), path.name), vocabulary)


def _zip_members(data: bytes, label: str) -> dict[str, bytes]:
    """Images through the project's one safe zip reader (`core.archive`: bombs, traversal, file count),
    plus the small `labels.csv`, read only after that reader has accepted the archive."""
    from core.archive import ArchiveError, SafeZip

    try:
        archive = SafeZip(data)
    except ArchiveError as exc:
        if exc.code == "not_a_zip":
            raise LabelledSetError(f"{label} is not a zip archive. Upload the zip exported by the Annotate page "
                                   f"(images + {LABELS_FILE}) or a zip of class folders (<emotion>/<image>).") from exc
        raise LabelledSetError(f"{label}: {exc.message}") from exc
    out: dict[str, bytes] = {}
    problems: list[str] = []
    with archive:
        for name, content in archive:
            if isinstance(content, bytes):
                out[name] = content
            elif not _ignored(name):
                problems.append(f"'{name}': {content.message}")
    _raise(problems)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if PurePosixPath(info.filename).name.lower() != LABELS_FILE or _ignored(info.filename):
                continue
            if info.file_size > settings.get().labels_csv_max_bytes or info.flag_bits & 0x1:
                raise LabelledSetError(f"'{info.filename}' is larger than "
                                       f"{settings.get().labels_csv_max_bytes // 2**20} MB or encrypted.")
            try:
                with zf.open(info) as fh:
                    out[info.filename] = fh.read(settings.get().labels_csv_max_bytes + 1)[:info.file_size]
            except Exception as exc:  # damaged deflate stream / CRC mismatch in untrusted bytes
                raise LabelledSetError(f"'{info.filename}' is damaged inside the zip.") from exc
    return out


def _dir_members(root: Path) -> dict[str, bytes]:
    """A local folder (CLI use, trusted): every regular file, relative POSIX names, symlinks skipped."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def _ignored(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(part.startswith(".") or part == "__MACOSX" for part in parts) or name.endswith("/")


def _from_files(files: dict[str, bytes], vocabulary: list[str]) -> LabelledSet:
    files = {n: d for n, d in files.items() if not _ignored(n)}
    csvs = sorted((n for n in files if PurePosixPath(n).name.lower() == LABELS_FILE),
                  key=lambda n: (len(PurePosixPath(n).parts), n))
    if csvs:
        prefix = str(PurePosixPath(csvs[0]).parent)
        prefix = "" if prefix == "." else prefix + "/"
        members = {n[len(prefix):]: d for n, d in files.items() if n.startswith(prefix) and n != csvs[0]}
        return _from_csv(files[csvs[0]], members, vocabulary)
    return _from_class_folders(files, vocabulary)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the EXIF-oriented image from its header only; None when unreadable."""
    from PIL import Image

    fmt = sniff_format(data)
    if fmt is None:
        return None
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112)
    except Exception:  # any decoder failure is "unreadable" to the person
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _raise(problems: list[str]) -> None:
    if not problems:
        return
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    head = "The labelled set has a problem:" if len(problems) == 1 else \
        f"The labelled set has {len(problems)} problems:"
    text = head + "\n" + "\n".join(f"- {p}" for p in shown) + (f"\n- … and {more} more" if more else "")
    raise LabelledSetError(text, problems)


def _from_csv(raw: bytes, members: dict[str, bytes], vocabulary: list[str]) -> LabelledSet:
    images = {n: d for n, d in members.items() if sniff_format(d) is not None}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise LabelledSetError(f"{LABELS_FILE} is not a text file (save it as UTF-8 CSV).") from exc
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","  # spreadsheets in some locales
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in ("file", "emotion") if c not in header]
    if missing:
        raise LabelledSetError(f"{LABELS_FILE} has no column {', '.join(missing)}. Its first line must name the "
                               f"columns, for example: {', '.join(COLUMNS)}.")
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        raise LabelledSetError(f"{LABELS_FILE} names the column(s) {', '.join(dupes)} more than once.")
    has_boxes = [c in header for c in BOX_COLUMNS]
    if any(has_boxes) and not all(has_boxes):
        raise LabelledSetError(f"{LABELS_FILE} needs all four box columns x1, y1, x2, y2, or none of them.")
    extra_columns = [h for h in header if h and h not in COLUMNS]
    has_reviewed = "reviewed" in header

    problems: list[str] = []
    faces: list[LabelledFace] = []
    sizes: dict[str, tuple[int, int] | None] = {}
    seen: dict[tuple, int] = {}
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header):
            problems.append(f"{LABELS_FILE} line {line}: {len(values)} values but {len(header)} columns.")
            continue
        row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
        where = f"{LABELS_FILE} line {line}"
        file = row["file"].replace("\\", "/")
        file = file[2:] if file.startswith("./") else file
        if not file:
            problems.append(f"{where}: the file name is empty.")
            continue
        if file not in members:
            problems.append(f"{where}: image '{file}' is not in the set.")
            continue
        if file not in sizes:
            sizes[file] = _image_size(members[file])
        size = sizes[file]
        if size is None:
            problems.append(f"{where}: '{file}' is not an image we can read (JPEG, PNG, WebP, BMP or TIFF).")
            continue
        box, box_problem = _parse_box(row, size, all(has_boxes))
        if box_problem:
            problems.append(f"{where} ('{file}'): {box_problem}")
            continue
        emotion = normalize_emotion(row["emotion"]) if row["emotion"] else None
        if emotion is not None and emotion != NOT_A_FACE and emotion not in vocabulary:
            problems.append(f"{where}: unknown emotion '{row['emotion']}'. Use one of: "
                            f"{', '.join(vocabulary)} (or {NOT_A_FACE}).")
            continue
        predicted = normalize_emotion(row.get("predicted", "")) or None
        reviewed = emotion is not None
        if has_reviewed:
            flag = row["reviewed"].lower()
            if flag not in _TRUE | _FALSE:
                problems.append(f"{where}: reviewed must be 1 or 0, not '{row['reviewed']}'.")
                continue
            reviewed = flag in _TRUE
            if reviewed and emotion is None:
                problems.append(f"{where}: marked reviewed but the emotion is empty.")
                continue
        confidence = None
        if row.get("confidence"):
            try:
                confidence = float(row["confidence"])
            except ValueError:
                problems.append(f"{where}: confidence '{row['confidence']}' is not a number.")
                continue
        key = (file, None if box is None else tuple(round(v, 1) for v in box))
        if key in seen:
            what = "the same box" if box is not None else "no box (whole image)"
            problems.append(f"{where}: duplicate of line {seen[key]} ('{file}' with {what}).")
            continue
        seen[key] = line
        faces.append(LabelledFace(file=file, box=box, emotion=emotion, reviewed=reviewed, predicted=predicted,
                                  confidence=confidence, extra={c: row.get(c, "") for c in extra_columns}))
    _raise(problems)
    return LabelledSet(images=images, faces=faces, extra_columns=extra_columns)


def _parse_box(row: dict[str, str], size: tuple[int, int], has_boxes: bool) -> tuple[Box | None, str | None]:
    if not has_boxes:
        return None, None
    raw = [row[c] for c in BOX_COLUMNS]
    if not any(raw):
        return None, None
    if not all(raw):
        return None, "fill all four of x1, y1, x2, y2, or leave all four empty."
    try:
        x1, y1, x2, y2 = (float(v) for v in raw)
    except ValueError:
        return None, f"the box ({', '.join(raw)}) must be numbers."
    if not (x2 > x1 and y2 > y1):
        return None, f"the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) needs x2 > x1 and y2 > y1."
    w, h = size
    t = BOX_TOLERANCE_PX
    if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
        return None, (f"the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) is outside the "
                      f"{w}×{h} image.")
    return (max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)), None


def _from_class_folders(files: dict[str, bytes], vocabulary: list[str]) -> LabelledSet:
    from core.archive import is_image_name

    images = {n: d for n, d in files.items() if sniff_format(d) is not None}
    fake = sorted(n for n, d in files.items() if n not in images and is_image_name(n))
    if fake:  # named like a photo but not one: say so rather than silently leave it out
        _raise([f"'{n}' is not an image we can read (JPEG, PNG, WebP, BMP or TIFF)." for n in fake])
    if not images:
        raise LabelledSetError(f"No {LABELS_FILE} and no images found. Expected the Annotate page's export "
                               f"(images + {LABELS_FILE}) or class folders (<emotion>/<image>).")
    tops = {PurePosixPath(n).parts[0] for n in images}
    strip = 0
    if len(tops) == 1 and all(len(PurePosixPath(n).parts) >= 3 for n in images):
        strip = 1  # everything under one wrapping folder, e.g. my_set/happy/1.png
    problems: list[str] = []
    faces = []
    for name in sorted(images):
        parts = PurePosixPath(name).parts[strip:]
        if len(parts) != 2:
            problems.append(f"'{name}' is not inside an emotion folder (expected <emotion>/<image>).")
            continue
        emotion = normalize_emotion(parts[0])
        if emotion not in vocabulary:
            problems.append(f"'{name}': folder '{parts[0]}' is not an emotion. Use one of: "
                            f"{', '.join(vocabulary)}.")
            continue
        faces.append(LabelledFace(file=name, box=None, emotion=emotion, reviewed=True))
    # Same rule as labels.csv: every image must be one we can open.
    problems += [f"'{f.file}' is not an image we can read." for f in faces if _image_size(images[f.file]) is None]
    _raise(problems)
    return LabelledSet(images=images, faces=faces, extra_columns=[])


def labelled_summary(labelled: LabelledSet) -> dict[str, Any]:
    """Counts a page shows before using a set: images, rows, reviewed, labelled per class."""
    per_class: dict[str, int] = {}
    for f in labelled.labelled_faces():
        per_class[f.emotion] = per_class.get(f.emotion, 0) + 1  # type: ignore[index]
    return {"images": len(labelled.images), "rows": len(labelled.faces),
            "reviewed": sum(f.reviewed for f in labelled.faces),
            "not_a_face": sum(not f.is_face for f in labelled.faces), "per_class": per_class}
