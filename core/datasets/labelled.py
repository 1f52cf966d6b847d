"""The labelled-set format: the one reader (and writer) for faces whose true emotion a person set.

Every consumer goes through `read_labelled` (or `read_uploads` for a page's loose files): the Annotate page
(to carry on a review), Model Comparison's "evaluate on your own data", the Fairness Audit ("audit your
own data" and `training.audit_fairness --data`) and fine-tuning. So a set annotated in the app is
evaluated, audited and trained on without conversion, and every rule below holds for all of them.

Accepted inputs (bytes of a zip, a path to a zip, a folder or a CSV, or uploaded files):

1. **labels.csv + images** (what the Annotate page exports). Columns, case-insensitive:

   ``file, x1, y1, x2, y2, emotion, reviewed, predicted, confidence`` + any extra columns (for example
   ``gender``, ``source`` or a subject column, see `SUBJECT_COLUMNS`), kept as strings in `LabelledFace.extra`.

   - `file`: path of the image relative to the CSV; a browser upload loses folders, so a name that is
     not found falls back to the one image with that base name.
   - `x1..y2`: the face box in pixels of the EXIF-oriented image. Blank (or columns absent) means the
     image *is* the face crop.
   - `emotion`: the true label (common synonyms accepted, see `ALIASES`); blank while unreviewed;
     ``not_a_face`` (also "not a face", "not-a-face", "notaface") marks a false detection.
   - `reviewed`: 1/0 (true/false, yes/no). Absent column: every labelled row counts as reviewed, so a
     hand-made spreadsheet is ground truth.
   - `predicted`, `confidence`: the model's pre-label, kept so a review can carry on.

   The table is `labels.csv` (the shallowest one), else the only CSV. It may be at most
   `settings.labels_csv_max_bytes`. Images without rows are part of the set (a reviewed image with no face).
2. **Class folders**: ``<emotion>/<image>`` (optionally under one top folder), each image a face crop;
   no boxes. This is also what the Annotate page's "crops" export writes.

Every image must be one we can read; a row needs an image of the set, a box inside it, a known emotion,
a valid reviewed flag and must not repeat an earlier row's image and box. `strict=True` (Annotate,
evaluation, fine-tuning) refuses a set with any problem in one `LabelledSetError` that lists them;
`strict=False` (the fairness audit) leaves those rows out and keeps each as a `LabelledProblem` naming its
CSV line (the header is line 1) or file. Problems with the whole set (not a zip, no `file`/`emotion`
column, an oversized CSV) are refused either way. Zips are read only through `core.archive.SafeZip`, and
images are read when used, so a folder of thousands of photos is never held in memory at once.
"""
from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from core import settings
from core.archive import ArchiveError, SafeZip, is_image_name, is_zip, write_zip
from core.emotion.vocabulary import EMOTIONS
from core.errors import UserFacingError
from core.validation import ImageRejected, header_size

Box = tuple[float, float, float, float]
Cropper = Callable[[np.ndarray, Box], np.ndarray]  # a classifier's `crop`: image, box -> face

LABELS_FILE = "labels.csv"
NOT_A_FACE = "not_a_face"
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
COLUMNS = ("file", *BOX_COLUMNS, "emotion", "reviewed", "predicted", "confidence")
# Columns that name the person in a photo, so splits and resampling keep one person's photos together.
SUBJECT_COLUMNS = ("subject", "subject_id", "identity", "person", "person_id", "participant")
BOX_TOLERANCE_PX = 1.0  # rounding in exported boxes must not turn an edge face into an error
MAX_LISTED_PROBLEMS = 10

# Names other datasets use for the same classes (FER+, AffectNet, RAF-DB, spreadsheets).
ALIASES = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "afraid": "fear", "scared": "fear",
           "happiness": "happy", "joy": "happy", "sadness": "sad", "surprised": "surprise",
           "not a face": NOT_A_FACE, "not-a-face": NOT_A_FACE, "notaface": NOT_A_FACE}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


@dataclass(frozen=True)
class LabelledProblem:
    """One row (or file) that cannot be used, and why, in words a person can act on."""

    message: str
    line: int | None = None  # line of the labels CSV (the header is line 1); None: a file, not a row
    file: str = ""
    csv_name: str = LABELS_FILE

    def __str__(self) -> str:
        if self.line is not None:
            where = f"{self.csv_name} line {self.line}" + (f" ({self.file})" if self.file else "")
        else:
            where = f"'{self.file}'" if self.file else self.csv_name
        return f"{where}: {self.message}"


class LabelledSetError(UserFacingError):
    """A labelled set that cannot be used; `message` is for people and names each bad row or file."""

    code = "invalid_labelled_set"

    def __init__(self, message: str, problems: Sequence[LabelledProblem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class LabelledFace:
    """One face of a labelled set. `box` None: the whole image is the face crop. `line`: its CSV line."""

    file: str
    box: Box | None
    emotion: str | None
    reviewed: bool = True
    predicted: str | None = None
    confidence: float | None = None
    extra: dict[str, str] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False)

    @property
    def is_face(self) -> bool:
        return self.emotion != NOT_A_FACE

    @property
    def labelled(self) -> bool:
        """True when a person confirmed a real emotion: the rows that evaluation and training use."""
        return self.reviewed and self.emotion is not None and self.emotion != NOT_A_FACE


@dataclass
class LabelledSet:
    """Images (name -> original bytes, read when used) and their face rows; `extra_columns` keeps the
    user's order. `problems`: what tolerant reading left out. `has_boxes`: the CSV has box columns."""

    images: Mapping[str, bytes]
    faces: list[LabelledFace]
    extra_columns: list[str] = field(default_factory=list)
    problems: list[LabelledProblem] = field(default_factory=list)
    labels_file: str | None = None  # the table's path inside the source; None: class folders or in memory
    has_boxes: bool = False

    @property
    def csv_name(self) -> str:
        return PurePosixPath(self.labels_file).name if self.labels_file else LABELS_FILE

    @property
    def subject_column(self) -> str | None:
        return subject_column(self.extra_columns)

    def labelled_faces(self, classes: Iterable[str] | None = None) -> list[LabelledFace]:
        """Reviewed real faces with an emotion, optionally only those in `classes`."""
        keep = set(classes) if classes is not None else None
        return [f for f in self.faces if f.labelled and (keep is None or f.emotion in keep)]

    def left_out(self) -> dict[str, int]:
        """Rows kept in the set but holding no true emotion: a review not finished, a false detection."""
        counts = {"not reviewed": sum(f.is_face and not f.labelled for f in self.faces),
                  "marked not a face": sum(not f.is_face for f in self.faces)}
        return {why: n for why, n in counts.items() if n}

    def classes(self) -> list[str]:
        """Emotions present among labelled faces: FER-2013 order first, then others alphabetically."""
        present = {f.emotion for f in self.labelled_faces()}
        return [e for e in EMOTIONS if e in present] + sorted(present - set(EMOTIONS))

    def image(self, file: str) -> np.ndarray:
        """Decode one image (RGB uint8, EXIF-oriented) through the app's upload validation."""
        from core.validation import validate_image_bytes

        return validate_image_bytes(self.images[file]).image

    def image_size(self, file: str) -> tuple[int, int] | None:
        """(width, height) of one image from its header, no pixels decoded: budgets are checked up front."""
        return _image_size(self.images[file])

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


def subject_column(columns: Iterable[str]) -> str | None:
    """The column naming who is in each photo: the first of `SUBJECT_COLUMNS` present, else None."""
    present = set(columns)
    return next((c for c in SUBJECT_COLUMNS if c in present), None)


def normalize_emotion(value: str) -> str:
    """Lower-case, trimmed, common synonyms mapped to our names ("Happiness" -> "happy", "Not a face" ->
    "not_a_face")."""
    v = " ".join(value.strip().lower().replace("_", " ").split())
    return ALIASES.get(v, v.replace(" ", "_"))


def write_labels_zip(labelled: LabelledSet) -> bytes:
    """A zip of every image (original bytes) plus `labels.csv`, readable again by `read_labelled`."""
    if any(name.lower() == LABELS_FILE for name in labelled.images):
        raise LabelledSetError(f"An image cannot be called {LABELS_FILE}: that name holds the labels.")
    return write_zip([(LABELS_FILE, labelled.to_csv()), *labelled.images.items()])


# ---------------------------------------------------------------------------------------------- reading

class _LazyFiles(Mapping[str, bytes]):
    """name -> bytes, read from the folder or the opened zip only when asked."""

    def __init__(self, keys: Mapping[str, str], read: Callable[[str], bytes]) -> None:
        self._keys = dict(keys)  # name shown to people -> name in the source
        self._read = read

    def __getitem__(self, name: str) -> bytes:
        return self._read(self._keys[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def renamed(self, keys: Mapping[str, str]) -> "_LazyFiles":
        """The same source seen under other names (new name -> current name)."""
        return _LazyFiles({new: self._keys[old] for new, old in keys.items()}, self._read)


@dataclass
class _Source:
    """What a zip, folder or upload holds: images (read lazily) and CSV tables (read with a byte cap)."""

    label: str  # how messages name it: "the uploaded file", "set.zip", a folder path
    images: _LazyFiles
    tables: dict[str, Callable[[], bytes]]


def read_labelled(source: bytes | str | Path, classes: Sequence[str] | None = None, *,
                  strict: bool = True) -> LabelledSet:
    """Read a labelled set from zip bytes, or a path to a zip, a folder or a CSV beside its images.

    `classes` is the vocabulary of allowed emotion names (default: the seven FER-2013 emotions);
    ``not_a_face`` is always allowed. `strict` raises `LabelledSetError` naming every bad row or file;
    otherwise those rows are left out and listed in the set's `problems`.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _read(_zip_source(bytes(source), "the uploaded file"), classes, strict)
    path = Path(source)
    if not path.exists():
        raise LabelledSetError(f"{path} does not exist.")
    if path.is_dir():
        return _read(_folder_source(path), classes, strict)
    if path.suffix.lower() == ".csv":
        folder = replace(_folder_source(path.parent), tables={path.name: lambda: _capped_file(path)})
        return _read(folder, classes, strict)
    return _read(_zip_source(path.read_bytes(), path.name), classes, strict)


def read_uploads(files: Sequence[tuple[str, bytes]], classes: Sequence[str] | None = None, *,
                 strict: bool = True) -> LabelledSet:
    """What a page receives as (name, bytes): one zip (optionally with a separate labels CSV), or images
    plus one CSV. Nothing is written to disk."""
    zips = [(n, d) for n, d in files if is_zip(d)]
    loose = {n: d for n, d in files if not is_zip(d)}
    tables = [n for n in loose if n.lower().endswith(".csv")]
    if len(zips) > 1 or len(tables) > 1:
        raise LabelledSetError("Upload one zip, or images plus one CSV; several zips or CSVs were given.")
    table = {n: (lambda n=n: _capped(loose[n], n)) for n in tables}
    if zips:
        source = _zip_source(zips[0][1], zips[0][0])
        return _read(replace(source, tables=table) if table else source, classes, strict)  # a CSV beside a zip labels it
    if not table:
        raise LabelledSetError("Add the labels CSV (columns file, emotion and any attributes) to the images.")
    images = _LazyFiles({n: n for n in loose if is_image_name(n)}, loose.__getitem__)
    return _read(_Source("the uploaded files", images, table), classes, strict)


def _check_table_size(name: str, size: int) -> None:
    limit = settings.get().labels_csv_max_bytes
    if size > limit:
        raise LabelledSetError(f"'{name}' is {size / 2**20:.1f} MB; a labels table may be at most "
                               f"{limit / 2**20:.0f} MB.")


def _capped(data: bytes, name: str) -> bytes:
    _check_table_size(name, len(data))
    return data


def _zip_source(data: bytes, label: str) -> _Source:
    """Through the project's one safe zip reader (`core.archive`: bombs, traversal, file count, sizes)."""
    try:
        archive = SafeZip(data)
    except ArchiveError as exc:
        if exc.code == "not_a_zip":
            raise LabelledSetError(f"{label} is not a zip archive. Upload the zip exported by the Annotate page "
                                   f"(images + {LABELS_FILE}) or a zip of class folders (<emotion>/<image>).") from exc
        raise LabelledSetError(f"{label}: {exc.message}") from exc

    def read_image(name: str) -> bytes:
        try:
            content = archive.read(name)
        except ArchiveError as exc:  # a member that inflates past its declared size: refuse the whole zip
            raise LabelledSetError(f"{label}: {exc.message}") from exc
        if isinstance(content, ImageRejected):
            raise content
        return content

    def read_table(name: str) -> bytes:
        try:
            return archive.read_member(name, settings.get().labels_csv_max_bytes)
        except ArchiveError as exc:
            raise LabelledSetError(f"{label}: {exc.message}") from exc

    images = _LazyFiles({n: n for n in archive.names if not _ignored(n)}, read_image)
    tables = {n: (lambda n=n: read_table(n)) for n in archive.other_names
              if n.lower().endswith(".csv") and not _ignored(n)}
    return _Source(label, images, tables)


def _folder_source(root: Path) -> _Source:
    """A local folder (CLI use, trusted): regular files by relative POSIX name, symlinks skipped."""
    images: dict[str, str] = {}
    tables: dict[str, Callable[[], bytes]] = {}
    for p in sorted(root.rglob("*")):
        name = p.relative_to(root).as_posix()
        if p.is_symlink() or not p.is_file() or _ignored(name):
            continue
        if is_image_name(name):
            images[name] = name
        elif name.lower().endswith(".csv"):
            tables[name] = lambda p=p: _capped_file(p)
    return _Source(str(root), _LazyFiles(images, lambda n: (root / n).read_bytes()), tables)


def _capped_file(path: Path) -> bytes:
    _check_table_size(str(path), path.stat().st_size)  # before reading it
    return path.read_bytes()


def _ignored(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(part.startswith(".") or part == "__MACOSX" for part in parts) or name.endswith("/")


def _read(source: _Source, classes: Sequence[str] | None, strict: bool) -> LabelledSet:
    vocabulary = [normalize_emotion(c) for c in (classes or EMOTIONS)]
    table = _pick_table(source)
    labelled = _from_csv(source, table, vocabulary) if table else _from_class_folders(source, vocabulary)
    if strict:
        _raise(labelled.problems)
    return labelled


def _pick_table(source: _Source) -> str | None:
    """The shallowest labels.csv, else the only CSV; None: no table (class folders)."""
    named = [n for n in source.tables if PurePosixPath(n).name.lower() == LABELS_FILE]
    if not named and len(source.tables) > 1:
        raise LabelledSetError(f"{source.label} holds {len(source.tables)} CSV files and none is called "
                               f"{LABELS_FILE}; name the labels table {LABELS_FILE}.")
    candidates = named or list(source.tables)
    return min(candidates, key=lambda n: (len(PurePosixPath(n).parts), n)) if candidates else None


def _raise(problems: list[LabelledProblem]) -> None:
    if not problems:
        return
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    head = "The labelled set has a problem:" if len(problems) == 1 else \
        f"The labelled set has {len(problems)} problems:"
    text = head + "\n" + "\n".join(f"- {p}" for p in shown) + (f"\n- … and {more} more" if more else "")
    raise LabelledSetError(text, problems)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the EXIF-oriented image from its header only; None when unreadable (a header
    claiming a decompression bomb included)."""
    try:
        return header_size(data)
    except ImageRejected:
        return None


def _probe(images: Mapping[str, bytes], name: str) -> tuple[int, int] | str:
    """The image's oriented size, or why it cannot be used (read one at a time: memory stays bounded)."""
    from core.validation import validate_image_bytes

    try:
        data = images[name]
    except ImageRejected as exc:  # a zip member refused alone: too large, encrypted, damaged
        return exc.message
    except OSError as exc:
        return f"could not be read ({exc.strerror or exc})."
    size = _image_size(data)
    if size is not None:
        return size
    try:  # the upload validation says best what is wrong ("a PDF file", "damaged or incomplete")
        validate_image_bytes(data)
    except ImageRejected as exc:
        return exc.message
    return "is not an image we can read (JPEG, PNG, WebP, BMP or TIFF)."


def _name_index(names: Iterable[str]) -> Callable[[str], str | None]:
    """CSV name -> image of the set: the exact relative path, else the only image with that base name
    (a browser upload loses folders, so 'images/a.jpg' in the CSV matches an uploaded 'a.jpg')."""
    exact = set(names)
    by_base: dict[str, list[str]] = {}
    for n in exact:
        by_base.setdefault(PurePosixPath(n).name, []).append(n)

    def lookup(name: str) -> str | None:
        if name in exact:
            return name
        found = by_base.get(PurePosixPath(name).name, [])
        return found[0] if len(found) == 1 else None
    return lookup


def _decode_table(raw: bytes, csv_name: str) -> tuple[list[str], Any]:
    """(lower-cased header, row reader) of a table from a spreadsheet: UTF-8 (BOM or not), UTF-16 with its BOM
    (Excel's "Unicode text") or cp1252; `,`, `;` (some locales) or tab separated."""
    try:
        text = raw.decode("utf-16") if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else \
            raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise LabelledSetError(f"{csv_name} is not a text file (save it as UTF-8 CSV).") from exc
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)  # the separator the header uses most; "," on a tie
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise LabelledSetError(f"{csv_name} could not be read as a CSV table ({exc}).") from exc
    missing = [c for c in ("file", "emotion") if c not in header]
    if missing:
        raise LabelledSetError(f"{csv_name} needs the columns 'file' and 'emotion'; it has no column "
                               f"{' or '.join(missing)} (its columns: {', '.join(h for h in header if h) or 'none'}). "
                               f"Its first line must name the columns, for example: {', '.join(COLUMNS)}.")
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        raise LabelledSetError(f"{csv_name} names the column(s) {', '.join(dupes)} more than once.")
    has_boxes = [c in header for c in BOX_COLUMNS]
    if any(has_boxes) and not all(has_boxes):
        raise LabelledSetError(f"{csv_name} needs all four box columns x1, y1, x2, y2, or none of them.")
    return header, reader


def _from_csv(source: _Source, table: str, vocabulary: list[str]) -> LabelledSet:
    csv_name = PurePosixPath(table).name
    header, reader = _decode_table(source.tables[table](), csv_name)
    prefix = str(PurePosixPath(table).parent)
    prefix = "" if prefix == "." else prefix + "/"
    images = source.images.renamed({n[len(prefix):]: n for n in source.images if n.startswith(prefix)})
    lookup = _name_index(images)
    extra_columns = [h for h in header if h and h not in COLUMNS]
    has_boxes = all(c in header for c in BOX_COLUMNS)
    has_reviewed = "reviewed" in header

    problems: list[LabelledProblem] = []
    faces: list[LabelledFace] = []
    sizes: dict[str, tuple[int, int] | str] = {}
    seen: dict[tuple, int] = {}
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise LabelledSetError(f"{csv_name} line {reader.line_num}: {exc}.") from exc
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
        name = row["file"].replace("\\", "/")
        name = name[2:] if name.startswith("./") else name

        def bad(message: str, file: str = name, line: int = line) -> None:
            problems.append(LabelledProblem(message, line, file, csv_name))

        if len(values) > len(header):
            bad(f"{len(values)} values but {len(header)} columns.")
            continue
        if not name:
            bad("the file name is empty.")
            continue
        emotion = normalize_emotion(row["emotion"]) if row["emotion"] else None
        if emotion is not None and emotion != NOT_A_FACE and emotion not in vocabulary:
            bad(f"emotion '{row['emotion']}' is not one of {', '.join(vocabulary)} (or {NOT_A_FACE}).")
            continue
        reviewed = emotion is not None
        if has_reviewed:
            flag = row["reviewed"].lower()
            if flag not in _TRUE | _FALSE:
                bad(f"reviewed must be 1 or 0, not '{row['reviewed']}'.")
                continue
            reviewed = flag in _TRUE
            if reviewed and emotion is None:
                bad("marked reviewed but the emotion is empty.")
                continue
        confidence = None
        if row.get("confidence"):
            try:
                confidence = float(row["confidence"])
            except ValueError:
                bad(f"confidence '{row['confidence']}' is not a number.")
                continue
        file = lookup(name)
        if file is None:
            bad("this image is not in the set (check the name and folder).")
            continue
        if file not in sizes:
            sizes[file] = _probe(images, file)
        size = sizes[file]
        if isinstance(size, str):
            bad(size)
            continue
        box, box_problem = _parse_box(row, size, has_boxes)
        if box_problem:
            bad(box_problem)
            continue
        key = (file, None if box is None else tuple(round(v, 1) for v in box))
        if key in seen:
            what = "face (same box)" if box is not None else "image (no box)"
            bad(f"the same {what} is already listed on line {seen[key]}.")
            continue
        seen[key] = line
        faces.append(LabelledFace(file=file, box=box, emotion=emotion, reviewed=reviewed,
                                  predicted=normalize_emotion(row.get("predicted", "")) or None,
                                  confidence=confidence, extra={c: row.get(c, "") for c in extra_columns},
                                  line=line))
    named = set(sizes)  # an unreadable image with rows is already reported on each of its lines
    for file in images:  # images without rows belong to the set too, so they must be readable as well
        if file not in sizes:
            sizes[file] = _probe(images, file)
    problems += [LabelledProblem(size, None, f, csv_name) for f, size in sizes.items()
                 if isinstance(size, str) and f not in named]
    readable = images.renamed({f: f for f in images if not isinstance(sizes[f], str)})
    return LabelledSet(images=readable, faces=faces, extra_columns=extra_columns, problems=problems,
                       labels_file=table, has_boxes=has_boxes)


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
    if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:  # NaN and infinity fail here too
        return None, (f"the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) is outside the "
                      f"{w}×{h} image.")
    return (max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)), None


def _from_class_folders(source: _Source, vocabulary: list[str]) -> LabelledSet:
    images = source.images
    if not images:
        raise LabelledSetError(f"No {LABELS_FILE} and no images found. Expected the Annotate page's export "
                               f"(images + {LABELS_FILE}) or class folders (<emotion>/<image>).")
    tops = {PurePosixPath(n).parts[0] for n in images}
    strip = 0
    if len(tops) == 1 and all(len(PurePosixPath(n).parts) >= 3 for n in images):
        strip = 1  # everything under one wrapping folder, e.g. my_set/happy/1.png
    problems: list[LabelledProblem] = []
    faces = []
    for name in sorted(images):
        parts = PurePosixPath(name).parts[strip:]
        if len(parts) != 2:
            problems.append(LabelledProblem("is not inside an emotion folder (expected <emotion>/<image>).",
                                            file=name))
            continue
        emotion = normalize_emotion(parts[0])
        if emotion not in vocabulary:
            problems.append(LabelledProblem(f"folder '{parts[0]}' is not an emotion. Use one of: "
                                            f"{', '.join(vocabulary)}.", file=name))
            continue
        size = _probe(images, name)  # the same rule as labels.csv: every image must be one we can open
        if isinstance(size, str):
            problems.append(LabelledProblem(size, file=name))
            continue
        faces.append(LabelledFace(file=name, box=None, emotion=emotion, reviewed=True))
    kept = images.renamed({f.file: f.file for f in faces})
    return LabelledSet(images=kept, faces=faces, extra_columns=[], problems=problems)

