"""Every kind of bad or odd upload gets a typed error with a plain message, or a clean RGB image."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.validation import (CorruptImage, EmptyFile, FileTooLarge, ImageRejected, ImageTooSmall,
                             TooManyPixels, UnsupportedFormat, sniff_format, validate_image_bytes)
from tests.conftest import encode

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 255, (64, 80, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_each_supported_format_decodes_to_rgb(fmt):
    result = validate_image_bytes(encode(RGB, fmt))
    assert result.format == fmt
    assert result.image.shape == (64, 80, 3) and result.image.dtype == np.uint8


def test_format_comes_from_content_not_name():
    assert sniff_format(encode(RGB, "PNG")) == "PNG"
    assert sniff_format(b"just text pretending to be photo.jpg") is None


def assert_plain(exc: ImageRejected):
    msg = exc.message
    assert msg and "Traceback" not in msg and len(msg) < 300
    assert msg[0].isupper() and msg.rstrip().endswith(".")


def test_empty_file():
    with pytest.raises(EmptyFile) as e:
        validate_image_bytes(b"")
    assert_plain(e.value)
    assert "empty" in e.value.message


def test_file_too_large():
    with pytest.raises(FileTooLarge) as e:
        validate_image_bytes(encode(RGB, "PNG"), max_bytes=1000)
    assert_plain(e.value)
    assert "limit" in e.value.message


@pytest.mark.parametrize("data, word", [
    (b"GIF89a" + b"\x00" * 100, "GIF"),
    (b"%PDF-1.7\n" + b"\x00" * 100, "PDF"),
    (b"hello, I am a text file", "not an image"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, "video"),
])
def test_unsupported_content(data, word):
    with pytest.raises(UnsupportedFormat) as e:
        validate_image_bytes(data)
    assert_plain(e.value)
    assert word in e.value.message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_truncated_file(fmt):
    data = encode(RNG.integers(0, 255, (256, 256, 3), dtype=np.uint8), fmt)
    with pytest.raises(CorruptImage) as e:
        validate_image_bytes(data[: len(data) // 2])
    assert_plain(e.value)


def test_garbage_after_valid_magic():
    with pytest.raises(CorruptImage):
        validate_image_bytes(b"\x89PNG\r\n\x1a\n" + bytes(RNG.integers(0, 255, 500, dtype=np.uint8)))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that *declares* width x height but holds one tiny compressed row: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda tag, body: (struct.pack(">I", len(body)) + tag + body
                               + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [7000, 30000, 65000])
def test_decompression_bomb_is_refused_before_decoding(side):
    with pytest.raises(TooManyPixels) as e:
        validate_image_bytes(_png_header_only(side, side))
    assert_plain(e.value)


def test_megapixel_limit_on_real_pixels():
    big = encode(np.zeros((2000, 3000, 3), np.uint8), "PNG")  # 6 MP, tiny file
    with pytest.raises(TooManyPixels):
        validate_image_bytes(big, max_megapixels=5)


def test_tiny_image():
    with pytest.raises(ImageTooSmall):
        validate_image_bytes(encode(np.zeros((8, 8, 3), np.uint8)))


def test_animated_image_uses_first_frame():
    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (10, 200, 90)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    result = validate_image_bytes(buf.getvalue())
    assert abs(int(result.image.mean()) - 10) <= 2
    assert any("first" in n for n in result.notes)


def test_animated_png_uses_first_frame():
    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (30, 220)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    result = validate_image_bytes(buf.getvalue())
    assert int(result.image.mean()) == 30 and result.notes


def test_cmyk_jpeg_is_converted():
    cmyk = Image.fromarray(RGB).convert("CMYK")
    result = validate_image_bytes(encode(cmyk, "JPEG"))
    assert result.image.shape == (64, 80, 3)
    assert any("CMYK" in n for n in result.notes)


def test_16_bit_png_is_scaled_to_8_bit():
    grey16 = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    result = validate_image_bytes(encode(Image.fromarray(grey16), "PNG"))
    assert result.image.dtype == np.uint8 and result.image.shape == (64, 64, 3)
    assert result.image.max() == 255 and result.image.min() == 0
    assert any("bit" in n for n in result.notes)


def test_16_bit_tiff():
    grey16 = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    result = validate_image_bytes(encode(Image.fromarray(grey16), "TIFF"))
    assert result.image.shape == (64, 64, 3)


def test_alpha_is_composited_on_white():
    rgba = np.zeros((32, 32, 4), np.uint8)  # fully transparent black
    result = validate_image_bytes(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (result.image == 255).all()


def test_palette_image():
    pal = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    result = validate_image_bytes(encode(pal, "PNG"))
    assert result.image.shape == (64, 80, 3)
    assert any("Palette" in n for n in result.notes)


def test_greyscale_becomes_three_channels():
    result = validate_image_bytes(encode(np.zeros((30, 30), np.uint8), "PNG"))
    assert result.image.shape == (30, 30, 3)


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((40, 100, 3), np.uint8))  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display: portrait
    result = validate_image_bytes(encode(img, "JPEG", exif=exif.tobytes()))
    assert result.image.shape[:2] == (100, 40)
    assert any("EXIF" in n for n in result.notes)
