"""What a batch reads: a folder (recursive), a zip of images, or a text list of paths; images and videos.

Discovery (`open_input`) runs once, where the job starts, and yields only *names*. Reading a name into
bytes (`ItemReader`) happens where the work runs: in this process for the local engine, inside each Ray
actor for the Ray engine. So pixels never travel between processes (nor into Ray's object store, which
may spill to disk), and an `InputSpec` is all a remote worker needs: it is small and picklable.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core import settings
from core.archive import (ArchiveLimits, NestedArchive, SafeZip, is_archive_name, is_image_name, is_zip_file,
                          named_like)
from core.errors import UserFacingError
from core.validation import ImageRejected, printable_name

VIDEO_SUFFIXES = frozenset(f".{ext}" for ext in settings.VIDEO_FORMATS)
LIST_SUFFIXES = (".txt", ".lst", ".list")


class BatchError(UserFacingError):
    """The batch as a whole cannot run (bad source, foreign output); `message` is for people."""

    code = "batch_refused"


def is_video_name(name: str) -> bool:
    """mp4 / webm / avi by suffix, with the same OS-clutter rules as images (`.x.mp4`, `__MACOSX/`)."""
    return named_like(name, VIDEO_SUFFIXES)


def is_media_name(name: str) -> bool:
    return is_image_name(name) or is_video_name(name)


@dataclass(frozen=True)
class BatchItem:
    """One input file: a path read by the worker, or bytes already unpacked (zip member), or a known error."""

    name: str
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    error: ImageRejected | None = None

    @property
    def is_video(self) -> bool:
        return is_video_name(self.name)


@dataclass(frozen=True)
class InputSpec:
    """Where names come from: enough for any process that sees the same files to read them."""

    kind: str  # "folder" | "zip" | "list"
    root: str  # the folder, the zip file, or the folder a list's relative paths are relative to
    limits: ArchiveLimits | None = None


class ItemReader:
    """Turns names into `BatchItem`s; opens a zip once and keeps it for every later read."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self._zip: SafeZip | None = None

    def read(self, name: str) -> BatchItem:
        spec = self.spec
        if is_archive_name(name):
            return BatchItem(name, error=NestedArchive("A zip inside the input is not opened. Unzip it and add its "
                                                       "files to the input (or run the batch on it on its own)."))
        if spec.kind == "folder":
            return BatchItem(name, path=path_on_disk(Path(spec.root), name))
        if spec.kind == "list":
            path = Path(name).expanduser()
            return BatchItem(name, path=path if path.is_absolute() else Path(spec.root) / path)
        if self._zip is None:
            self._zip = SafeZip(spec.root, spec.limits)
        payload = self._zip.read(name)
        if isinstance(payload, ImageRejected):
            return BatchItem(name, error=payload)
        return BatchItem(name, data=payload)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


@dataclass
class BatchInput:
    """The files of one source, by name (the output's `file` value), read lazily one at a time."""

    kind: str
    names: list[str]
    spec: InputSpec
    _reader: ItemReader | None = field(default=None, repr=False)

    @property
    def reader(self) -> ItemReader:
        if self._reader is None:
            self._reader = ItemReader(self.spec)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> "BatchInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def folder_files(root: Path) -> list[str]:
    """Image and video files under `root`, recursively, in a stable order; hidden folders are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            rel = Path(dirpath, fname).relative_to(root).as_posix()
            if is_media_name(rel) or is_archive_name(rel):  # a zip becomes a row saying it was not opened
                found.append(printable_name(rel))  # the output's `file`: valid text whatever the OS allows
    return found


def path_on_disk(root: Path, name: str) -> Path:
    """The file a `folder_files` name stands for: the name itself when it exists, else the name with its
    `\\xNN` escapes turned back into the bytes the file system holds (see `printable_name`)."""
    path = root / name
    if "\\x" not in name or path.exists():
        return path
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), name.encode("utf-8"))
    return root / os.fsdecode(raw)


def list_paths(list_file: Path) -> list[str]:
    """Non-empty, non-comment lines of a path list, first occurrence kept; relative to the list's folder."""
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
    """A folder (recursive, images and videos), a zip of images (checked by `core.archive`), or a .txt list."""
    src = Path(source)
    if src.is_dir():
        spec = InputSpec("folder", str(src.absolute()), limits)  # workers may run elsewhere
        return BatchInput("folder", folder_files(src), spec)
    if not src.exists():
        raise BatchError(f"{source} does not exist.")
    if is_zip_file(src):
        spec = InputSpec("zip", str(src.absolute()), limits)
        reader = ItemReader(spec)
        reader._zip = SafeZip(src, limits)  # raises ArchiveError (a ValueError) for a refused archive
        nested = [n for n in reader._zip.other_names if is_archive_name(n)]
        return BatchInput("zip", list(dict.fromkeys([*reader._zip.names, *nested])), spec, reader)
    if src.suffix.lower() in LIST_SUFFIXES:
        return BatchInput("list", list_paths(src), InputSpec("list", str(src.absolute().parent), limits))
    raise BatchError(f"{source} is not a folder, a .zip archive or a .txt list of image and video paths.")
