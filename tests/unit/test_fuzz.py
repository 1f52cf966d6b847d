"""Fuzzing (hypothesis): thousands of random and mutated byte strings against the validator, the zip
reader and the API. Each must answer with a typed rejection or a clean result, never crash or 500.

Example counts are sized so the whole file runs in well under a minute on a busy 2-core machine.
"""
from __future__ import annotations

import io
import random
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image

from core import settings as emolens_settings

from core.archive import ArchiveError, SafeZip
from core.validation import ImageRejected, ValidatedImage, validate_image_bytes
from tests.conftest import encode

# Hypothesis caches things on disk (no example database here, but a constants cache): keep it in the
# ignored project cache, not as a stray .hypothesis/ in the repository root.
set_hypothesis_home_dir(emolens_settings.get().cache_dir / "hypothesis")
_BASE = settings(deadline=None, database=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                        HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    return settings(_BASE, max_examples=examples)


def _seeds() -> list[bytes]:
    """Small valid files in every supported format (and a few odd modes) to mutate."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    out = [encode(rgb, fmt) for fmt in ("PNG", "JPEG", "WEBP", "BMP", "TIFF")]
    out.append(encode(Image.fromarray(rgb).convert("P"), "PNG"))
    out.append(encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"))
    out.append(encode(Image.fromarray(rgb).convert("RGBA"), "TIFF", compression="tiff_deflate"))
    out.append(encode(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG"))
    out.append(encode(rgb, "JPEG", progressive=True))
    return out


SEEDS = _seeds()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "corrupt EXIF" chatter on broken files


def _mutate(seed_file: bytes, seed: int) -> bytes:
    """1-6 edits chosen by `seed`: bit flips, byte overwrites, inserts, deletes, truncation, splices, and
    hostile 32-bit integers (0, -1, huge) written over header fields."""
    rnd = random.Random(seed)
    data = bytearray(seed_file)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.choice(["flip", "set", "insert", "delete", "truncate", "splice", "int"])
        pos = rnd.randrange(max(len(data), 1))
        if op == "flip" and data:
            data[pos] ^= 1 << rnd.randrange(8)
        elif op == "set" and data:
            data[pos] = rnd.randrange(256)
        elif op == "insert":
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        elif op == "delete":
            del data[pos:pos + rnd.randint(1, 32)]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = rnd.choice(SEEDS + ZIP_SEEDS)
            start = rnd.randrange(len(other))
            data[pos:pos + 16] = other[start:start + rnd.randint(1, 64)]
        elif op == "int":
            value = rnd.choice([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])
            data[pos:pos + 4] = value.to_bytes(4, rnd.choice(["big", "little"]))
    return bytes(data)


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Valid files with random edits. The edits come from one drawn integer: cheap to generate, so
    thousands of examples fit the time budget, and a failure still replays exactly."""
    return st.builds(_mutate, st.sampled_from(seeds), st.integers(0, 2**64 - 1))


MAGICS = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBPVP8 ", b"BM" + b"\0" * 24, b"II*\x00", b"MM\x00*",
          b"GIF89a", b"PK\x03\x04", b"PK\x05\x06"]
random_bytes = st.one_of(
    st.binary(max_size=64),  # hypothesis's own edge cases: empty, all zero, short
    st.builds(lambda seed, n: random.Random(seed).randbytes(n), st.integers(0, 2**64 - 1), st.integers(0, 4096)),
    st.builds(lambda magic, seed, n: magic + random.Random(seed).randbytes(n),  # right magic, garbage body
              st.sampled_from(MAGICS), st.integers(0, 2**64 - 1), st.integers(0, 1024)),
)


def check_validator(data: bytes) -> None:
    try:
        result = validate_image_bytes(data)
    except ImageRejected as exc:
        assert exc.code and exc.message and "Traceback" not in exc.message
        return
    assert isinstance(result, ValidatedImage)
    assert result.image.dtype == np.uint8 and result.image.ndim == 3 and result.image.shape[2] == 3


@fuzz(1500)
@given(random_bytes)
def test_validator_on_random_bytes(data):
    check_validator(data)


@fuzz(1500)
@given(mutated(SEEDS))
def test_validator_on_mutated_images(data):
    check_validator(data)


def _zip_seeds() -> list[bytes]:
    out = []
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as zf:
            zf.writestr("a/one.png", SEEDS[0])
            zf.writestr("two.jpg", SEEDS[1])
            zf.writestr("notes.txt", b"hello")
        out.append(buf.getvalue())
    return out


ZIP_SEEDS = _zip_seeds()


@fuzz(800)
@given(st.one_of(mutated(ZIP_SEEDS), random_bytes))
def test_zip_reader_on_mutated_archives(data):
    try:
        archive = SafeZip(data)
    except ArchiveError as exc:
        assert exc.code and exc.message
        return
    with archive:
        for name, payload in archive:
            assert isinstance(name, str)
            if isinstance(payload, ImageRejected):
                assert payload.code and payload.message
            else:
                assert isinstance(payload, bytes)
                check_validator(payload)


# ---- the API ---------------------------------------------------------------------------------------

from tests.unit.test_api import tiny_weights  # noqa: E402,F401  (the module-scoped tiny model fixture)

CLIENT_ERRORS = {400, 413, 415, 422}


@pytest.fixture(scope="module")
def client(tiny_weights):  # noqa: F811
    from core import api

    api.reset_models()
    api.get_pipeline("haar", 0.5)  # load once, outside the timed examples
    yield api.app.test_client()
    api.reset_models()


@fuzz(600)
@given(st.one_of(mutated(SEEDS), random_bytes), st.sampled_from(["/v1/predict", "/v1/predict/batch"]))
def test_api_on_random_and_mutated_uploads(client, data, path):
    field = "image" if path == "/v1/predict" else "images"
    resp = client.post(path, data={field: (io.BytesIO(data), "f.bin"), "detector": "haar"},
                       content_type="multipart/form-data")
    body = resp.get_json()
    assert resp.status_code == 200 or resp.status_code in CLIENT_ERRORS, (resp.status_code, body)
    if resp.status_code != 200:
        assert set(body) >= {"error", "message"} and "Traceback" not in body["message"]


@fuzz(400)
@given(st.binary(max_size=1024), st.sampled_from(["", "; boundary=b", "; boundary=", '; boundary="x y"']),
       st.sampled_from([None, "0", "-1", "abc", "99999999999"]))
def test_api_on_raw_garbage_bodies(client, body, ctype_params, detector_threshold):
    query = "" if detector_threshold is None else f"?threshold={detector_threshold}"
    resp = client.post("/v1/predict" + query, data=body, content_type="multipart/form-data" + ctype_params)
    assert resp.status_code in CLIENT_ERRORS, (resp.status_code, resp.get_data()[:200])
    assert resp.get_json()["error"]



def test_zip_with_an_empty_member_name_is_refused():
    """Found by the fuzzer: a member named "" made zipfile's own `is_dir()` raise IndexError."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo(""), SEEDS[0])
    with pytest.raises(ArchiveError) as err:
        SafeZip(buf.getvalue())
    assert err.value.code == "unsafe_path"
