# ruff: noqa: F811  (pytest fixtures imported from test_api are used as arguments by name)
"""Bounded cost and access control of the REST API: the megapixel budget (checked from headers, before any
decoding), heavy-analysis slots that keep /healthz answering, API keys, the rate limit, CORS, and the
deployment's gunicorn settings. Generated data only; the tiny random model stands in for the shipped one."""
from __future__ import annotations

import io
import runpy
import struct
import threading
import time
import zipfile
import zlib

import pytest
from PIL import ImageFile

from core import settings
from tests.conftest import ROOT
from tests.unit.test_api import (  # noqa: F401
    api,
    assert_error,
    client,
    face_png,
    post_image,
    spec,
    tiny_weights,
)

KEY = "k3y-for-tests-0123456789"


def png_header(width: int, height: int) -> bytes:
    """A small valid 16-bit greyscale PNG that declares width × height (IHDR); decoding it would be slow."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture()
def no_decoding(monkeypatch):
    """Fail the test if any pixel is decoded or any image reaches validation."""
    def refuse(*_a, **_k):
        raise AssertionError("an image was decoded before the budget check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr("core.analysis.validate_image_bytes", refuse)


def post_batch(client, files: list[tuple[bytes, str]], **kw):
    return client.post("/v1/predict/batch", data={"images": [(io.BytesIO(d), n) for d, n in files]},
                       content_type="multipart/form-data", **kw)


# ---- the megapixel budget ------------------------------------------------------------------------

def test_request_over_the_megapixel_budget_is_413_before_decoding(client, spec, no_decoding):
    settings.configure(api_max_megapixels=40, api_max_request_megapixels=100)
    files = [(png_header(6000, 6000), f"big{i}.png") for i in range(4)]  # 4 × 36 MP = 144 MP
    body = assert_error(post_batch(client, files), 413, "pixel_budget_exceeded", spec)
    assert "144 megapixels" in body["message"] and "100 megapixels per request" in body["message"]


def test_zip_members_count_towards_the_budget(client, spec, no_decoding):
    settings.configure(api_max_megapixels=40, api_max_request_megapixels=100)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"m{i}.png", png_header(6000, 6000))
    files = [(buf.getvalue(), "photos.zip")]
    assert_error(post_batch(client, files), 413, "pixel_budget_exceeded", spec)


def test_image_over_the_api_per_image_limit_is_refused_undecoded(client, spec, no_decoding):
    settings.configure(api_max_megapixels=12)
    body = assert_error(post_image(client, png_header(5000, 5000), name="x.png"), 422, "too_many_pixels", spec)
    assert "25 megapixels" in body["message"] and body["file"] == "x.png"


def test_batch_entries_over_the_per_image_limit_are_errors_not_a_failed_request(client, face_png, no_decoding,
                                                                                 monkeypatch):
    settings.configure(api_max_megapixels=12)
    resp = post_batch(client, [(png_header(5000, 5000), f"big{i}.png") for i in range(3)])
    assert resp.status_code == 200
    assert [r["error_code"] for r in resp.get_json()["results"]] == ["too_many_pixels"] * 3


def test_the_testers_request_is_refused_quickly(client, spec):
    """32 × 40 MP 16-bit PNGs (the report's request) answer in well under a second, with no decoding."""
    t0 = time.perf_counter()
    resp = post_batch(client, [(png_header(8000, 5000), f"p{i}.png") for i in range(32)])
    assert resp.status_code == 200 and time.perf_counter() - t0 < 5
    assert {r["error_code"] for r in resp.get_json()["results"]} == {"too_many_pixels"}


def test_images_within_budget_are_still_analysed(client, face_png):
    resp = post_batch(client, [(face_png, "a.png"), (face_png, "b.png")])
    assert resp.status_code == 200 and resp.get_json()["summary"]["ok"] == 2


# ---- heavy slots ---------------------------------------------------------------------------------

def test_healthz_answers_while_the_heavy_slots_are_held_and_heavy_requests_get_busy(client, api, face_png, spec):
    settings.configure(api_heavy_slots=1, api_busy_wait_s=0.3)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with api.heavy_slots.hold():
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        t0 = time.perf_counter()
        assert api.app.test_client().get("/healthz").status_code == 200
        assert api.app.test_client().get("/v1/models").status_code == 200
        assert time.perf_counter() - t0 < 1.0
        t0 = time.perf_counter()
        resp = post_image(api.app.test_client(), face_png)
        assert_error(resp, 503, "busy", spec)
        assert resp.headers["Retry-After"] and time.perf_counter() - t0 < 3.0
    finally:
        release.set()
        t.join()
    assert post_image(client, face_png).status_code == 200  # the slot is free again


# ---- API keys ------------------------------------------------------------------------------------

def test_no_key_needed_when_none_configured(client):
    assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize("path", ["/v1/models", "/openapi.json", "/v1/predict"])
def test_keys_required_when_configured(client, spec, path):
    settings.configure(api_keys=(KEY,))
    method = client.post if path == "/v1/predict" else client.get
    resp = method(path)
    assert_error(resp, 401, "unauthorized", spec)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(method(path, headers={"Authorization": "Bearer wrong-key-wrong-key"}), 401, "unauthorized", spec)


def test_a_configured_key_is_accepted_in_either_header(client, face_png):
    settings.configure(api_keys=("another-key-abcdefghij", KEY))
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
    resp = client.post("/v1/predict", data={"image": (io.BytesIO(face_png), "f.png")},
                       content_type="multipart/form-data", headers={"X-API-Key": KEY})
    assert resp.status_code == 200


def test_healthz_never_needs_a_key(client):
    settings.configure(api_keys=(KEY,))
    assert client.get("/healthz").status_code == 200


# ---- rate limit ----------------------------------------------------------------------------------

def test_rate_limit_answers_429_in_the_api_error_shape(client, spec):
    settings.configure(api_rate_limit="2/minute")
    assert [client.get("/v1/models").status_code for _ in range(2)] == [200, 200]
    resp = client.get("/v1/models")
    body = assert_error(resp, 429, "rate_limited", spec)
    assert "2/minute" in body["message"] and resp.headers.get("Retry-After")
    assert client.get("/healthz").status_code == 200  # health checks are never limited


def test_rate_limit_counts_each_key_separately(client):
    other = "second-key-0123456789abcdef"
    settings.configure(api_rate_limit="1/minute", api_keys=(KEY, other))
    assert client.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 429
    assert client.get("/v1/models", headers={"X-API-Key": other}).status_code == 200


def test_rate_limit_off_means_no_limit(client):
    settings.configure(api_rate_limit="off")
    assert {client.get("/v1/models").status_code for _ in range(30)} == {200}


# ---- CORS ----------------------------------------------------------------------------------------

def test_no_cors_headers_unless_origins_are_configured(client):
    resp = client.get("/v1/models", headers={"Origin": "https://app.example.org"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_headers_only_for_configured_origins(client):
    settings.configure(api_cors_origins=("https://app.example.org",), api_keys=(KEY,))
    ok = client.get("/v1/models", headers={"Origin": "https://app.example.org", "X-API-Key": KEY})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert "X-API-Key" in ok.headers["Access-Control-Allow-Headers"] and "Origin" in ok.headers["Vary"]
    other = client.get("/v1/models", headers={"Origin": "https://evil.example.com", "X-API-Key": KEY})
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options("/v1/predict", headers={"Origin": "https://app.example.org",
                                                       "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200  # a preflight carries no key
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.org"


# ---- settings and deployment ---------------------------------------------------------------------

def test_api_limit_settings_are_read_and_checked():
    s = settings.Settings.from_env({"EMOLENS_API_KEYS": f" {KEY} , b-key-0123456789abcd ",
                                    "EMOLENS_API_RATE_LIMIT": "10/second;500/hour",
                                    "EMOLENS_API_CORS_ORIGINS": "https://a.example/,http://localhost:8501",
                                    "EMOLENS_API_MAX_MEGAPIXELS": "8"})
    assert s.api_keys == (KEY, "b-key-0123456789abcd") and s.api_rate_limit == "10/second;500/hour"
    assert s.api_cors_origins == ("https://a.example", "http://localhost:8501") and s.api_max_megapixels == 8
    defaults = settings.Settings.from_env({})
    assert defaults.api_max_megapixels < defaults.max_megapixels and defaults.api_keys == ()
    with pytest.raises(settings.SettingsError) as err:
        settings.Settings.from_env({"EMOLENS_API_RATE_LIMIT": "lots", "EMOLENS_API_CORS_ORIGINS": "*"})
    assert "EMOLENS_API_RATE_LIMIT" in err.value.message and "EMOLENS_API_CORS_ORIGINS" in err.value.message


def test_gunicorn_conf_uses_threads_local_bind_and_request_limits():
    conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert conf["worker_class"] == "gthread" and conf["threads"] >= 2
    assert all(b.startswith("127.0.0.1:") for b in conf["bind"])
    assert conf["timeout"] > 0 and conf["graceful_timeout"] > 0 and conf["backlog"] <= 256
    assert conf["limit_request_line"] and conf["limit_request_fields"] and conf["limit_request_field_size"]


def test_a_part_werkzeug_cannot_read_is_named_not_called_missing(client, face_png, spec):
    """A Latin-1 file name makes werkzeug drop the part silently: the answer says so instead of 'no image'."""
    b = "bnd"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"".encode()
            + "café.png".encode("latin-1") + b"\"\r\nContent-Type: image/png\r\n\r\n" + face_png
            + f"\r\n--{b}--\r\n".encode())
    resp = client.post("/v1/predict", data=body, content_type=f"multipart/form-data; boundary={b}")
    assert_error(resp, 400, "unreadable_upload", spec)
    assert_error(client.post("/v1/predict", data={}, content_type="multipart/form-data"), 400, "missing_image", spec)


def test_too_many_form_parts_is_its_own_refusal(client, spec):
    b = "bnd"
    parts = b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n".encode() for i in range(500))
    resp = client.post("/v1/predict", data=parts + f"--{b}--\r\n".encode(),
                       content_type=f"multipart/form-data; boundary={b}")
    body = assert_error(resp, 413, "too_many_parts", spec)
    assert "MB" not in body["message"]
