"""Batch analysis: a folder, a zip or a list of paths in, one CSV row per face out; resumable.

Shape (so a later engine such as Ray slots in without touching the rest):
- `open_input(source)` discovers the files (folder searched recursively, zip read safely through
  `core.archive`, or a .txt list of paths) and yields `BatchItem`s lazily, skipping names already done.
- `process_item(pipeline, item)` is *all* the per-file work: read, validate, analyse, flatten to rows.
  It never raises for a bad file; the error becomes a row.
- An `Engine` maps `process_item` over items; `LocalEngine` does it in this process. A distributed
  engine builds its own pipeline per worker from the same `BatchConfig`.
- `run_batch` ties them together, appends rows to the CSV file by file (so a crash loses at most the
  file in flight) and on a rerun skips every file already in the CSV.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from core import settings
from core.analysis import ImageAnalysis, analyze_bytes, results_table
from core.archive import ArchiveLimits, SafeZip, is_image_name, is_zip_file
from core.validation import FileTooLarge, ImageRejected

log = logging.getLogger(__name__)

# The results_table columns (one row per face, `file` first) plus a stable error code per row.
BATCH_COLUMNS: list[str] = [*results_table([]).columns, "error_code"]
NO_FACE = "no_face"


class BatchError(ValueError):
    """The batch as a whole cannot run (bad source, foreign CSV); `message` is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnreadableFile(ImageRejected):
    code = "unreadable_file"


class AnalysisFailed(ImageRejected):
    code = "analysis_failed"


@dataclass(frozen=True)
class BatchItem:
    """One input file: a path read by the worker, or bytes already unpacked (zip member), or a known error."""

    name: str
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    error: ImageRejected | None = None


@dataclass(frozen=True)
class BatchConfig:
    """How to build the pipeline; engines build it where they run (in-process, or once per worker)."""

    detector: str | None = None
    threshold: float | None = None
    model: str | None = None

    def make_pipeline(self) -> Any:
        from core.pipeline import EmotionPipeline

        return EmotionPipeline.create(self.detector, self.threshold, self.model)


@dataclass(frozen=True)
class FileResult:
    """What one file produced: its CSV rows (one per face, or one error / no-face row)."""

    name: str
    rows: list[dict[str, Any]]
    ok: bool
    faces: int


@dataclass
class BatchSummary:
    total: int
    skipped: int
    processed: int = 0
    failed: int = 0
    faces: int = 0


# ---- per-file work ---------------------------------------------------------------------------------

def read_image_file(path: Path, max_bytes: int | None = None) -> bytes | ImageRejected:
    """Bytes of one image file, or a typed rejection (missing, a folder, too large, unreadable)."""
    max_bytes = settings.MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    try:
        st = path.stat()
    except FileNotFoundError:
        return UnreadableFile(f"File not found: {path}.")
    except OSError as exc:
        return UnreadableFile(f"Could not read {path}: {exc.strerror or exc}.")
    if path.is_dir():
        return UnreadableFile(f"{path} is a folder, not an image file.")
    if not path.is_file():
        return UnreadableFile(f"{path} is not a regular file (a device or pipe).")
    if st.st_size > max_bytes:
        return FileTooLarge(f"The file is {st.st_size / 1e6:.1f} MB; the limit is "
                            f"{max_bytes / 1e6:.0f} MB per image. Please resize or compress it.")
    try:
        return path.read_bytes()
    except OSError as exc:
        return UnreadableFile(f"Could not read {path}: {exc.strerror or exc}.")


def analyze_payload(pipeline: Any, name: str, payload: bytes | ImageRejected) -> ImageAnalysis:
    """`analyze_bytes` that never raises: a known rejection or an unexpected failure becomes an error result."""
    if isinstance(payload, ImageRejected):
        return ImageAnalysis(file=name, error_code=payload.code, error=payload.message)
    try:
        return analyze_bytes(pipeline, name, payload)
    except Exception:  # a bug or resource failure on one file must not stop a batch; logged without content
        log.exception("analysis failed on a %d-byte file", len(payload))
        err = AnalysisFailed("The image passed validation but could not be analysed (an internal error).")
        return ImageAnalysis(file=name, error_code=err.code, error=err.message)


def analysis_rows(analysis: ImageAnalysis) -> list[dict[str, Any]]:
    """One `BATCH_COLUMNS` row per face (a single row for an error or a faceless image), CSV-ready."""
    table = results_table([analysis])
    table["error_code"] = analysis.error_code if not analysis.ok else (None if analysis.faces else NO_FACE)
    if analysis.faces:
        table["face"] = table["face"].astype(int)
    return table.reindex(columns=BATCH_COLUMNS).to_dict("records")


def process_item(pipeline: Any, item: BatchItem) -> FileResult:
    """All the work for one file; the unit an engine distributes. Never raises for a bad file."""
    if item.error is not None:
        payload: bytes | ImageRejected = item.error
    elif item.data is not None:
        payload = item.data
    elif item.path is not None:
        payload = read_image_file(item.path)
    else:
        payload = UnreadableFile("No data for this file.")
    analysis = analyze_payload(pipeline, item.name, payload)
    return FileResult(name=item.name, rows=analysis_rows(analysis), ok=analysis.ok, faces=len(analysis.faces))


# ---- input discovery -------------------------------------------------------------------------------

@dataclass
class BatchInput:
    """The files of one source, by name (the CSV's `file` value), read lazily one at a time."""

    kind: str  # "folder" | "zip" | "list"
    names: list[str]
    _read: Callable[[str], BatchItem] = field(repr=False)
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    def items(self, skip: Iterable[str] = ()) -> Iterator[BatchItem]:
        done = set(skip)
        for name in self.names:
            if name not in done:
                yield self._read(name)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> "BatchInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _folder_files(root: Path) -> list[str]:
    """Image files under `root`, recursively, in a stable order; symlinked folders are not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            rel = Path(dirpath, fname).relative_to(root).as_posix()
            if is_image_name(rel):
                found.append(rel)
    return found


def _list_paths(list_file: Path) -> list[str]:
    """Non-empty, non-comment lines of a path list; relative paths are relative to the list's folder."""
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"Could not read the list {list_file}: {exc}.") from exc
    seen: dict[str, None] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            seen.setdefault(line, None)
    return list(seen)


def open_input(source: str | Path, limits: ArchiveLimits | None = None) -> BatchInput:
    """A folder (recursive), a zip (checked by `core.archive`), or a .txt list of image paths."""
    src = Path(source)
    if src.is_dir():
        return BatchInput("folder", _folder_files(src), lambda n: BatchItem(n, path=src / n))
    if not src.exists():
        raise BatchError(f"{source} does not exist.")
    if is_zip_file(src):
        archive = SafeZip(src, limits)  # raises ArchiveError (a ValueError) for a refused archive

        def read_member(name: str) -> BatchItem:
            payload = archive.read(name)
            if isinstance(payload, ImageRejected):
                return BatchItem(name, error=payload)
            return BatchItem(name, data=payload)

        return BatchInput("zip", list(dict.fromkeys(archive.names)), read_member, archive.close)
    if src.suffix.lower() in (".txt", ".lst", ".list"):
        base = src.parent

        def read_listed(name: str) -> BatchItem:
            path = Path(name).expanduser()
            return BatchItem(name, path=path if path.is_absolute() else base / path)

        return BatchInput("list", _list_paths(src), read_listed)
    raise BatchError(f"{source} is not a folder, a .zip archive or a .txt list of image paths.")


# ---- engines ---------------------------------------------------------------------------------------

class Engine(Protocol):
    """Maps `process_item` over items, yielding results as they finish (order may differ)."""

    def run(self, items: Iterable[BatchItem], config: BatchConfig) -> Iterator[FileResult]: ...


class LocalEngine:
    """One pipeline in this process, files one after another (the CPU is used by torch's own threads)."""

    def __init__(self, pipeline: Any | None = None) -> None:
        self._pipeline = pipeline

    def run(self, items: Iterable[BatchItem], config: BatchConfig) -> Iterator[FileResult]:
        pipeline = self._pipeline or config.make_pipeline()
        for item in items:
            yield process_item(pipeline, item)


ENGINES: dict[str, Callable[[], Engine]] = {"local": LocalEngine}


def make_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise ValueError(f"Unknown engine {name!r}. Choose one of: {', '.join(ENGINES)}.")
    return ENGINES[name]()


# ---- the CSV (resume) ------------------------------------------------------------------------------

def _repair_tail(path: Path) -> None:
    """Drop a half-written last line (the process was killed mid-write) so appends stay well-formed."""
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        back = min(size, 1 << 20)
        fh.seek(size - back)
        cut = fh.read(back).rfind(b"\n")
        fh.truncate(size - back + cut + 1 if cut >= 0 else 0)


def completed_files(out: Path) -> set[str]:
    """Names already in an earlier results CSV (any row: faces, no face or error), for resuming."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    _repair_tail(out)
    with open(out, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return set()
        if header != BATCH_COLUMNS:
            raise BatchError(f"{out} exists but is not an EmoLens batch results file (different columns); "
                             "choose another --out or move it away.")
        return {row[0] for row in reader if row}


def _csv_text(rows: list[dict[str, Any]], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BATCH_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and v != v) else v) for k, v in row.items()})
    return buf.getvalue()


def run_batch(source: str | Path, out: str | Path, config: BatchConfig | None = None,
              engine: str | Engine = "local", progress: bool = True,
              limits: ArchiveLimits | None = None) -> BatchSummary:
    """Analyse every file of `source` into the CSV `out`, skipping files it already holds."""
    from tqdm import tqdm

    config = config or BatchConfig()
    out = Path(out)
    done = completed_files(out)
    runner = make_engine(engine) if isinstance(engine, str) else engine
    with open_input(source, limits) as inputs:
        todo = [n for n in inputs.names if n not in done]
        summary = BatchSummary(total=len(inputs.names), skipped=len(inputs.names) - len(todo))
        if not todo:
            return summary
        out.parent.mkdir(parents=True, exist_ok=True)
        new_file = not out.exists() or out.stat().st_size == 0
        with open(out, "a", newline="", encoding="utf-8") as fh, \
                tqdm(total=len(todo), unit="file", disable=not progress, dynamic_ncols=True) as bar:
            if new_file:
                fh.write(_csv_text([], header=True))
            for result in runner.run(inputs.items(skip=done), config):
                fh.write(_csv_text(result.rows, header=False))
                fh.flush()
                summary.processed += 1
                summary.failed += not result.ok
                summary.faces += result.faces
                bar.set_postfix(faces=summary.faces, errors=summary.failed, refresh=False)
                bar.update(1)
    return summary
