"""Safe reading (and the one writer) of zip archives, entirely in memory (nothing is extracted to disk).

The batch CLI, the API and the pages accept a zip of photos. A zip from a stranger can be a bomb
(a few KB that claim to unpack to terabytes), hold `../` or absolute names meant to escape a folder,
or hold millions of entries. Every such check happens on the central directory, before a single
member is decompressed, and each one is a typed `ArchiveError` with a stable `code` and a plain
`message` (like `core.validation.ImageRejected`). A member that alone cannot be used (too large,
encrypted, damaged) does not sink the archive: it comes back as an `ImageRejected` in its slot, so
the other images are still analysed and the bad one is reported by name. A small non-image member (a
labelled set's labels.csv) is read only through `SafeZip.read_member`, with a byte cap; every zip EmoLens
writes goes through `write_zip`.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, Iterator

from core import settings
from core.errors import UserFacingError
from core.validation import ImageRejected, file_too_large

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; end of central directory (empty zip)

# File names treated as images when scanning a folder or an archive. Content is still checked by
# magic bytes (core.validation); known-but-unsupported formats are listed so they are *reported*
# ("HEIC is not supported") instead of silently skipped.
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff",
    ".gif", ".heic", ".heif", ".avif", ".jp2", ".psd",
})


class ArchiveError(UserFacingError):
    """Base of every archive-level refusal."""

    code = "invalid_archive"


class NotAZip(ArchiveError):
    code = "not_a_zip"


class CorruptArchive(ArchiveError):
    code = "corrupt_archive"


class ZipBomb(ArchiveError):
    code = "zip_bomb"


class UnsafePath(ArchiveError):
    code = "unsafe_path"


class TooManyFiles(ArchiveError):
    code = "too_many_files"


class MemberUnreadable(ImageRejected):
    """One member could not be decompressed (encrypted, damaged, unknown compression)."""

    code = "unreadable_member"


class NestedArchive(ImageRejected):
    """A zip inside the input: never opened (its limits would have to be checked all over again), but
    reported, so no file is left out without a word."""

    code = "nested_archive"


def is_archive_name(name: str) -> bool:
    return named_like(name, (".zip",))


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may hold. Defaults come from `core.settings`; the API passes tighter ones."""

    max_members: int = field(default_factory=lambda: settings.get().archive_max_files)  # image members
    # every entry, folders and non-images included
    max_entries: int = field(default_factory=lambda: settings.get().archive_max_entries)
    # one image, uncompressed
    max_member_bytes: int = field(default_factory=lambda: settings.get().max_upload_bytes)
    # all images read, uncompressed
    max_total_bytes: int = field(default_factory=lambda: settings.get().archive_max_total_bytes)
    # compression ratio allowed for members over the size limit
    max_ratio: float = field(default_factory=lambda: settings.get().archive_max_ratio)


def named_like(name: str, suffixes: tuple[str, ...] | frozenset[str]) -> bool:
    """True when `name` ends in one of `suffixes` and is not OS clutter (`__MACOSX/`, `.DS_Store`, `._x.jpg`)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.name.startswith(".") or "__MACOSX" in path.parts:
        return False
    return path.suffix.lower() in suffixes


def is_image_name(name: str) -> bool:
    return named_like(name, IMAGE_SUFFIXES)


def is_zip(data: bytes) -> bool:
    """Recognise a zip by content (its first bytes), never by file name."""
    return data[:4] in ZIP_MAGICS


def is_zip_file(path: str | Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return is_zip(fh.read(4))
    except OSError:
        return False


def _unsafe_name(name: str) -> bool:
    """Empty, absolute, drive-letter, NUL or `..` names: harmless to us (we never extract), hostile in intent
    (an empty name is also one no real zip tool writes)."""
    if not name or "\x00" in name:
        return True
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":" and posix[0].isalpha()):
        return True
    return ".." in posix.split("/")


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"


class SafeZip:
    """An opened, checked zip of images. Construction raises `ArchiveError`; reads never do for one bad member.

    `names` lists the image members in archive order, so callers can count, skip (resume) and read
    selectively without decompressing anything they do not need.
    """

    def __init__(self, source: bytes | str | Path | BinaryIO, limits: ArchiveLimits | None = None) -> None:
        self.limits = limits or ArchiveLimits()
        if isinstance(source, (bytes, bytearray, memoryview)):
            fh: BinaryIO = io.BytesIO(bytes(source))
        elif isinstance(source, (str, os.PathLike)):
            try:
                fh = open(source, "rb")  # noqa: SIM115 (closed in close())
            except OSError as exc:
                raise NotAZip(f"Could not open {source}: {exc.strerror or exc}.") from exc
        else:
            fh = source
        self._fh = fh
        head = fh.read(4)
        fh.seek(0)
        try:
            self._zip = zipfile.ZipFile(fh)
        except Exception as exc:  # any parse failure of untrusted bytes is "damaged", never a crash
            self._fh.close()
            if is_zip(head):
                raise CorruptArchive("The zip file is damaged or incomplete and could not be opened.") from exc
            raise NotAZip("This file is not a zip archive. Please send a .zip of images.") from exc
        try:
            self._members = self._check()
        except Exception:
            self.close()
            raise
        self.names = [m.filename for m in self._members]
        self._by_name = {m.filename: m for m in self._members}
        # Everything else (a labels.csv, a README): never read unless asked, and then only up to a cap.
        self._others = {i.filename: i for i in self._zip.infolist()
                        if not i.is_dir() and i.filename not in self._by_name}
        self.other_names = list(self._others)

    def _check(self) -> list[zipfile.ZipInfo]:
        lim = self.limits
        entries = self._zip.infolist()
        if len(entries) > lim.max_entries:
            raise TooManyFiles(f"The zip holds {len(entries)} entries; the limit is {lim.max_entries}.")
        for info in entries:
            if _unsafe_name(info.filename):
                raise UnsafePath("The zip contains a file name that points outside the archive "
                                 "(an absolute path or '..'); it was refused for safety.")
        members = [i for i in entries if not i.is_dir() and is_image_name(i.filename)]
        if len(members) > lim.max_members:
            raise TooManyFiles(f"The zip holds {len(members)} images; the limit is {lim.max_members} "
                               "per archive. Please split it.")
        total = 0
        for info in members:
            if info.file_size > lim.max_member_bytes:
                if info.file_size > lim.max_ratio * max(info.compress_size, 1):
                    raise ZipBomb(f"A {_mb(info.compress_size)} member claims to unpack to "
                                  f"{_mb(info.file_size)} (a zip bomb); the archive was not opened.")
                continue  # reported by read() as a too-large file, never decompressed
            total += info.file_size
        if total > lim.max_total_bytes:
            raise ZipBomb(f"The images in this zip would unpack to {_mb(total)}; the limit is "
                          f"{_mb(lim.max_total_bytes)}. Please split the archive.")
        return members

    def read(self, name: str) -> bytes | ImageRejected:
        """The member's bytes, or a typed rejection for this member alone."""
        info = self._by_name[name]
        lim = self.limits
        if info.file_size > lim.max_member_bytes:
            return file_too_large(info.file_size, lim.max_member_bytes)
        return self._inflate(info)

    def read_member(self, name: str, max_bytes: int) -> bytes:
        """A small non-image member (a labels.csv), refused before inflating when it declares more than
        `max_bytes`. Raises `ArchiveError` naming the member: it is the one file the caller needs."""
        info = self._others[name]
        if info.file_size > max_bytes:
            raise ArchiveError(f"'{name}' is {_mb(info.file_size)} unpacked; the limit is {_mb(max_bytes)}.",
                               code="member_too_large")
        data = self._inflate(info)
        if isinstance(data, ImageRejected):
            raise ArchiveError(f"'{name}': {data.message}", code=data.code)
        return data

    def _inflate(self, info: zipfile.ZipInfo) -> bytes | ImageRejected:
        """Decompress one member whose declared size was already accepted, never beyond that size."""
        if info.flag_bits & 0x1:
            return MemberUnreadable("This file is encrypted (password-protected) inside the zip and cannot be read.")
        try:
            with self._zip.open(info) as member:
                data = member.read(info.file_size + 1)  # zipfile stops at the declared size and checks the CRC
        except NotImplementedError:
            return MemberUnreadable("This file uses a zip compression method that is not supported.")
        except Exception:  # damaged deflate stream, CRC mismatch, truncated archive
            return MemberUnreadable("This file is damaged inside the zip and could not be unpacked.")
        if len(data) > info.file_size:  # defence in depth: never trust more bytes than declared
            raise ZipBomb("A member unpacks to more than its header declares (a zip bomb); reading stopped.")
        return data

    def __iter__(self) -> Iterator[tuple[str, bytes | ImageRejected]]:
        for name in self.names:
            yield name, self.read(name)

    def __len__(self) -> int:
        return len(self.names)

    def close(self) -> None:
        zf = getattr(self, "_zip", None)
        if zf is not None:
            zf.close()
        self._fh.close()

    def __enter__(self) -> "SafeZip":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_zip(members: Iterable[tuple[str, bytes]]) -> bytes:
    """The one way EmoLens writes a zip (exports, downloads), in memory: names that could escape a folder
    when unpacked are refused (`UnsafePath`); images are stored as they are (already compressed), the
    rest deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            if _unsafe_name(name) or "\\" in name or ":" in name or name.endswith("/"):
                raise UnsafePath(f"{name!r} cannot be used as a file name inside a zip.")
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if is_image_name(name) else zipfile.ZIP_DEFLATED)
    return buf.getvalue()

