"""Upload validation: bytes in, a safe RGB uint8 image out, or a typed error with a plain message.

Formats are recognised by content (magic bytes), never by file name. Limits are checked before any
pixel is decoded, so a decompression bomb costs nothing. Odd-but-valid images (CMYK, 16-bit, alpha,
palette, animated, EXIF-rotated) are converted and reported as notes instead of being refused.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from core import settings
from core.errors import UserFacingError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a half-grey picture

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")
MIN_SIDE = 16


class ImageRejected(UserFacingError):
    """Base of every validation error."""

    code = "invalid_image"


class EmptyFile(ImageRejected):
    code = "empty_file"


class FileTooLarge(ImageRejected):
    code = "file_too_large"


class UnreadableFile(ImageRejected):
    """A local file (CLI, batch) that is missing, a folder, a device or pipe, or cannot be read."""

    code = "unreadable_file"


def file_too_large(size: int, limit: int, per: str = "image") -> FileTooLarge:
    """The one wording of a size refusal, in the settings' megabytes (2**20 bytes), wherever a file is read."""
    return FileTooLarge(f"The file is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB per {per}. "
                        "Please resize or compress it.")


class UnsupportedFormat(ImageRejected):
    code = "unsupported_format"


class CorruptImage(ImageRejected):
    code = "corrupt_image"


class TooManyPixels(ImageRejected):
    code = "too_many_pixels"


class ImageTooSmall(ImageRejected):
    code = "image_too_small"


@dataclass
class ValidatedImage:
    """A decoded upload: RGB uint8 (H,W,3), EXIF-oriented, plus what was done to get there."""

    image: np.ndarray
    format: str
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


_OTHER_KNOWN = {
    b"GIF8": "GIF",
    b"%PDF": "PDF",
    b"\x00\x00\x00\x0cjP": "JPEG 2000",
    b"8BPS": "Photoshop (PSD)",
}


def sniff_format(data: bytes) -> str | None:
    """Identify a supported format from its first bytes; None when it is not one of ours."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM" and len(data) >= 26:
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _describe_unknown(data: bytes) -> str:
    for magic, name in _OTHER_KNOWN.items():
        if data.startswith(magic):
            return f"This is a {name} file, which is not supported."
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "This is a HEIC/AVIF photo, which is not supported."
    if data[4:8] == b"ftyp" or data[:4] == b"\x1aE\xdf\xa3":
        return "This looks like a video, not an image."
    return "This file is not an image we can read."


def _to_rgb(img: Image.Image, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        else:
            arr = arr / top * 255.0
        notes.append("High bit-depth image reduced to 8 bits per channel.")
        grey = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=-1)
    if mode == "P":
        notes.append("Palette image converted to full colour.")
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "RGBa"):
        notes.append("Transparent areas were placed on a white background.")
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    elif mode == "CMYK":
        notes.append("CMYK image converted to RGB.")
    elif mode not in ("RGB", "L"):
        notes.append(f"Image in colour mode {mode} converted to RGB.")
    return _rgb_array(img if img.mode == "RGB" else img.convert("RGB"))


def _rgb_array(img: Image.Image, rows: int = 256) -> np.ndarray:
    """The pixels as a writable (H, W, 3) array, copied strip by strip: converting the whole image at once
    goes through a full-size byte string built twice over, three extra photo-sized buffers for a moment
    (on a 36-megapixel upload that is 300 MB more than the pixels themselves)."""
    width, height = img.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, rows):
        out[top:top + rows] = np.asarray(img.crop((0, top, width, min(top + rows, height))))
    return out


def validate_image_bytes(data: bytes, *, max_bytes: int | None = None,
                         max_megapixels: float | None = None) -> ValidatedImage:
    """Check and decode one uploaded file; raise an `ImageRejected` subclass on anything unsafe."""
    max_bytes = settings.get().max_upload_bytes if max_bytes is None else max_bytes
    max_megapixels = settings.get().max_megapixels if max_megapixels is None else max_megapixels
    if not data:
        raise EmptyFile("The file is empty (0 bytes). Please choose the image again.")
    if len(data) > max_bytes:
        raise file_too_large(len(data), max_bytes)
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedFormat(_describe_unknown(data) + " Please upload a JPEG, PNG, WebP, BMP or TIFF image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            if width * height > max_megapixels * 1e6:
                raise TooManyPixels(f"The image is {width}×{height} ({width * height / 1e6:.0f} megapixels); "
                                    f"the limit is {max_megapixels:.0f} megapixels. Please resize it.")
            if min(width, height) < MIN_SIDE:
                raise ImageTooSmall(f"The image is only {width}×{height} pixels; faces need at least "
                                    f"{MIN_SIDE} pixels on each side.")
            notes: list[str] = []
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                notes.append(f"The file holds {frames} frames (animation or pages); only the first was analysed.")
                img.seek(0)
            img.load()
            if _exif_orientation(img) not in (None, 1):
                notes.append("The photo was rotated according to its EXIF orientation.")
                img = ImageOps.exif_transpose(img)  # a copy: made only when there is something to turn
            rgb = _to_rgb(img, notes)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels("The image declares far more pixels than it could hold "
                            "(a decompression bomb); it was not opened.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError,
            TypeError, KeyError, ZeroDivisionError, MemoryError, struct_error()) as exc:
        raise CorruptImage(f"The {fmt} file is damaged or incomplete (for example a partial download) "
                           "and could not be read.") from exc
    return ValidatedImage(image=rgb, format=fmt, notes=notes)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the EXIF-oriented image read from its header alone (nothing decoded), so a set or a
    request is budgeted before any pixel costs time; None when the header cannot be read (validation will
    refuse it). A header PIL itself calls a decompression bomb raises `TooManyPixels`."""
    fmt = sniff_format(data)
    if fmt is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                width, height = img.size
                orientation = _exif_orientation(img)
    except Image.DecompressionBombError as exc:
        raise TooManyPixels("The image declares far more pixels than it could hold "
                            "(a decompression bomb); it was not opened.") from exc
    except Exception:  # any header PIL cannot parse: validation gives the plain refusal
        return None
    return (int(height), int(width)) if orientation in (5, 6, 7, 8) else (int(width), int(height))


def _exif_orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(0x0112)
    except Exception:  # malformed EXIF must not block an otherwise fine image
        return None


def struct_error() -> type[Exception]:
    import struct

    return struct.error


def printable_name(name: str) -> str:
    """A file name as text that any JSON or CSV writer accepts: bytes the OS gave us that are not UTF-8
    (Python keeps them as lone surrogates) are written as `\\xNN` escapes instead of crashing the writer."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def read_local_file(path: Path, max_bytes: int, per: str = "image") -> bytes | ImageRejected:
    """Bytes of one file named on this machine (CLI, batch), or a typed rejection: missing, a folder, not a
    regular file (a device or FIFO would never end or block), too large (checked with `stat`, and the read is
    capped too), unreadable."""
    shown = printable_name(str(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        return UnreadableFile(f"File not found: {shown}.")
    except OSError as exc:
        return UnreadableFile(f"Could not read {shown}: {exc.strerror or exc}.")
    if path.is_dir():
        return UnreadableFile(f"{shown} is a folder, not an image file.")
    if not path.is_file():
        return UnreadableFile(f"{shown} is not a regular file (a device or pipe).")
    if st.st_size > max_bytes:
        return file_too_large(st.st_size, max_bytes, per=per)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return UnreadableFile(f"Could not read {shown}: {exc.strerror or exc}.")
    return file_too_large(len(data), max_bytes, per=per) if len(data) > max_bytes else data
