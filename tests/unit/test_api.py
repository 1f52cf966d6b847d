"""The REST API (core.api): happy paths, every error class, limits, no disk, no content in logs, threads.

A randomly initialised model with a real card stands in for the shipped one (fast, and the API must
not care which weights it serves); detectors are the real ones on a scikit-image sample photo.
"""
from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import timm
import torch
from flask import Flask
from PIL import Image
from safetensors.torch import save_file

import core.emotion.architectures  # noqa: F401
from core import settings
from core.emotion.vocabulary import EMOTIONS
from tests.conftest import encode, reread_settings


def make_tiny_weights(root: Path, name: str = settings.get().emotion_model) -> Path:
    """A random emolens_vgg_s with a valid model card, saved under the default model's name."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = timm.create_model("emolens_vgg_s", num_classes=7, in_chans=1).eval()
    save_file(model.state_dict(), str(root / f"{name}.safetensors"))
    card = {"name": name, "task": "facial-emotion-classification", "architecture": "emolens_vgg_s",
            "weights": f"{name}.safetensors", "input_size": 48, "in_chans": 1, "mean": [0.5], "std": [0.25],
            "classes": list(EMOTIONS), "temperature": 1.0}
    (root / f"{name}.json").write_text(json.dumps(card))
    return root


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    root = make_tiny_weights(tmp_path_factory.mktemp("weights"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOLENS_WEIGHTS_DIR", str(root))
        mp.setenv("EMOLENS_API_RATE_LIMIT", "off")  # one test client makes hundreds of requests; tests below turn it on
        reread_settings()
        yield root


@pytest.fixture()
def api(tiny_weights):
    from core import api as api_module

    api_module.reset_models()
    api_module.limiter.reset()
    yield api_module
    api_module.reset_models()
    api_module.limiter.reset()


@pytest.fixture()
def client(api):
    return api.app.test_client()


@pytest.fixture(scope="module")
def face_png(astronaut) -> bytes:
    return encode(np.asarray(Image.fromarray(astronaut).resize((256, 256))), "PNG")


@pytest.fixture(scope="module")
def spec():
    from core.openapi import build_spec

    return build_spec()


def check_schema(spec, name: str, body) -> None:
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{name}", "components": spec["components"]})


def post_image(client, data: bytes, name: str = "face.png", path: str = "/v1/predict", **form):
    return client.post(path, data={"image": (io.BytesIO(data), name), **form}, content_type="multipart/form-data")


def assert_error(resp, status: int, code: str, spec) -> dict:
    from core.openapi import ERROR_STATUS

    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["error"] == code and ERROR_STATUS[code] == status
    assert body["message"] and "Traceback" not in body["message"] and 'File "' not in body["message"]
    check_schema(spec, "Error", body)
    return body


# ---- happy paths -----------------------------------------------------------------------------------

def test_healthz(client, spec):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok" and body["model_installed"] and not body["model_loaded"]
    check_schema(spec, "Health", body)


def test_healthz_without_a_model_is_503(client, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_WEIGHTS_DIR", str(tmp_path))
    reread_settings()
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.get_json()["status"] == "unavailable"


def test_models_lists_cards_detectors_and_limits(client, spec):
    from core.detection import available_detectors

    body = client.get("/v1/models").get_json()
    check_schema(spec, "Models", body)
    assert [m["name"] for m in body["models"]] == [settings.get().emotion_model]
    assert body["models"][0]["classes"] == list(EMOTIONS)
    assert [d["name"] for d in body["detectors"]] == available_detectors()
    assert body["limits"]["max_batch_images"] == settings.get().api_max_batch_files


def test_openapi_documents_every_route(client, api):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    routes = {r.rule for r in api.app.url_map.iter_rules() if r.endpoint != "static"}
    assert routes == set(doc["paths"])
    jsonschema.Draft202012Validator.check_schema(doc["components"]["schemas"]["ImageResult"])


@pytest.mark.parametrize("detector", ["mediapipe_full", "haar"])
def test_predict_matches_the_cli_json(client, api, face_png, spec, detector):
    from core.analysis import analyze_bytes
    from core.emotion.classifier import EmotionClassifier
    from core.detection import make_detector
    from core.pipeline import EmotionPipeline

    resp = post_image(client, face_png, detector=detector)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    check_schema(spec, "ImageResult", body)
    assert body["file"] == "face.png" and len(body["faces"]) == 1
    assert list(body["faces"][0]) == ["box", "score", "emotion", "confidence", "probs"]
    direct = analyze_bytes(EmotionPipeline(make_detector(detector), EmotionClassifier.load()), "face.png", face_png)
    assert body == json.loads(json.dumps(direct.to_json()))  # byte-for-byte the CLI's JSON


def test_threshold_is_applied(client, face_png):
    assert len(post_image(client, face_png, detector="haar", threshold="0.05").get_json()["faces"]) == 1
    assert post_image(client, face_png, detector="haar", threshold="1").get_json()["faces"] == []


def test_query_string_options_work_too(client, face_png):
    resp = client.post("/v1/predict?detector=haar&threshold=1", data={"image": (io.BytesIO(face_png), "f.png")})
    assert resp.status_code == 200 and resp.get_json()["faces"] == []


def test_batch_of_images_zip_and_bad_files(client, face_png, spec):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("set/one.png", face_png)
        zf.writestr("set/broken.jpg", b"\xff\xd8\xff" + b"\x00" * 50)
        zf.writestr("__MACOSX/set/._one.png", b"junk")
        zf.writestr("set/readme.md", b"not an image, not counted")
    files = [(io.BytesIO(face_png), "a.png"), (io.BytesIO(b"hello"), "b.png"), (io.BytesIO(buf.getvalue()), "s.zip")]
    resp = client.post("/v1/predict/batch", data={"images": files, "detector": "haar"})
    assert resp.status_code == 200
    body = resp.get_json()
    check_schema(spec, "BatchResult", body)
    assert [r["file"] for r in body["results"]] == ["a.png", "b.png", "set/one.png", "set/broken.jpg"]
    assert [r.get("error_code") for r in body["results"]] == [None, "unsupported_format", None, "corrupt_image"]
    assert body["summary"] == {"files": 4, "ok": 2, "failed": 2, "faces": 2}
    assert body["results"][0]["faces"] == body["results"][2]["faces"]


# ---- every error class ------------------------------------------------------------------------------

def _png_bomb(side: int = 60000) -> bytes:
    import struct
    import zlib

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data, status, code", [
    (b"", 422, "empty_file"),
    (b"%PDF-1.7 pretending", 415, "unsupported_format"),
    (b"GIF89a" + b"\0" * 64, 415, "unsupported_format"),
    ("truncated", 422, "corrupt_image"),
    ("tiny", 422, "image_too_small"),
    ("bomb", 422, "too_many_pixels"),
])
def test_image_errors(client, face_png, spec, data, status, code):
    if data == "truncated":
        data = face_png[: len(face_png) // 2]
    elif data == "tiny":
        data = encode(np.zeros((8, 8, 3), np.uint8))
    elif data == "bomb":
        data = _png_bomb()
    body = assert_error(post_image(client, data, name="x.png"), status, code, spec)
    assert body["file"] == "x.png"


def test_file_over_the_per_image_limit_is_413(client, face_png, spec, monkeypatch):
    settings.configure(max_upload_bytes=len(face_png) - 1)
    assert_error(post_image(client, face_png), 413, "file_too_large", spec)


@pytest.mark.parametrize("form, code", [
    ({"detector": "yolo-nope"}, "invalid_parameter"),
    ({"threshold": "high"}, "invalid_parameter"),
    ({"threshold": "1.5"}, "invalid_parameter"),
    ({"threshold": "-0.1"}, "invalid_parameter"),
    ({"threshold": "nan"}, "invalid_parameter"),
    ({"threshold": "inf"}, "invalid_parameter"),
])
def test_bad_parameters_are_400(client, face_png, spec, form, code):
    assert_error(post_image(client, face_png, **form), 400, code, spec)


def test_missing_image_is_400(client, spec):
    resp = client.post("/v1/predict", data={"detector": "haar"}, content_type="multipart/form-data")
    assert_error(resp, 400, "missing_image", spec)
    assert_error(client.post("/v1/predict/batch", data={"photo": (io.BytesIO(b"x"), "x.png")}), 400,
                 "missing_image", spec)


def test_two_images_to_single_predict_is_400(client, face_png, spec):
    resp = client.post("/v1/predict", data={"image": [(io.BytesIO(face_png), "a.png"), (io.BytesIO(face_png), "b.png")]})
    assert_error(resp, 400, "too_many_images", spec)


@pytest.mark.parametrize("kwargs", [
    {"data": b"\x89PNG...", "content_type": "image/png"},
    {"json": {"image": "aGVsbG8="}},
    {"data": "image=abc", "content_type": "application/x-www-form-urlencoded"},
])
def test_not_multipart_is_415(client, spec, kwargs):
    assert_error(client.post("/v1/predict", **kwargs), 415, "unsupported_media_type", spec)


def test_unknown_route_and_method(client, spec):
    assert_error(client.get("/v2/predict"), 404, "not_found", spec)
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed", spec)


def test_malformed_multipart_is_a_clean_client_error(client):
    resp = client.post("/v1/predict", data=b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\n"
                       b"abc", content_type="multipart/form-data; boundary=xyz")
    assert resp.status_code in (400, 413, 415, 422) and resp.get_json()["error"]


def test_unexpected_failure_is_500_without_a_trace(client, api, face_png, spec, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("secret internal detail /srv/emolens/core/pipeline.py line 42")

    monkeypatch.setattr(api, "get_pipeline", boom)
    body = assert_error(post_image(client, face_png), 500, "internal_error", spec)
    assert "secret" not in json.dumps(body)


def test_analysis_failure_on_one_image_is_500_single_and_an_entry_in_a_batch(client, api, face_png, spec, monkeypatch):
    real = api.get_pipeline

    class Broken:
        def analyze(self, *_a, **_k):
            raise RuntimeError("native crash")

    monkeypatch.setattr(api, "get_pipeline", lambda d, t: Broken())
    assert_error(post_image(client, face_png), 500, "analysis_failed", spec)
    resp = client.post("/v1/predict/batch", data={"images": [(io.BytesIO(face_png), "a.png")]})
    assert resp.status_code == 200 and resp.get_json()["results"][0]["error_code"] == "analysis_failed"
    monkeypatch.setattr(api, "get_pipeline", real)


def test_missing_model_is_503(client, spec, tmp_path, monkeypatch, face_png):
    monkeypatch.setenv("EMOLENS_WEIGHTS_DIR", str(tmp_path))
    reread_settings()
    body = assert_error(post_image(client, face_png), 503, "model_unavailable", spec)
    assert str(tmp_path) not in body["message"]  # server paths stay in the server log


# ---- limits ----------------------------------------------------------------------------------------

def test_oversized_body_is_413_before_it_is_parsed(client, api, spec):
    limit = api.app.config["MAX_CONTENT_LENGTH"]
    assert limit == settings.get().api_max_request_bytes
    resp = post_image(client, b"\0" * (limit + 1))
    assert_error(resp, 413, "request_too_large", spec)


def test_oversized_body_without_content_length_is_413(client, api, spec, monkeypatch):
    """A chunked upload has no Content-Length; the cap must hold while streaming."""
    monkeypatch.setitem(api.app.config, "MAX_CONTENT_LENGTH", 64 * 1024)
    body = (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
            + b"\0" * 200_000 + b"\r\n--b--\r\n")
    resp = client.post("/v1/predict", input_stream=io.BytesIO(body), content_type="multipart/form-data; boundary=b",
                       environ_overrides={"wsgi.input_terminated": True}, headers={"Transfer-Encoding": "chunked"})
    assert_error(resp, 413, "request_too_large", spec)


def test_too_many_images_in_a_batch_is_413(client, face_png, spec, monkeypatch):
    settings.configure(api_max_batch_files=3)
    files = [(io.BytesIO(face_png), f"{i}.png") for i in range(4)]
    assert_error(client.post("/v1/predict/batch", data={"images": files}), 413, "too_many_files", spec)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.png", face_png)
    files = [(io.BytesIO(face_png), "x.png"), (io.BytesIO(buf.getvalue()), "three.zip")]
    assert_error(client.post("/v1/predict/batch", data={"images": files}), 413, "too_many_files", spec)


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


@pytest.mark.parametrize("archive, status, code", [
    (lambda: _zip({"bomb.png": b"\0" * (settings.get().max_upload_bytes * 3)}), 413, "zip_bomb"),
    (lambda: _zip({"../../etc/evil.png": b"x"}), 422, "unsafe_path"),
    (lambda: _zip({"a.png": b"x"})[:30], 422, "corrupt_archive"),
])
def test_hostile_archives(client, spec, archive, status, code):
    data = archive()
    assert len(data) < 200_000
    assert_error(client.post("/v1/predict/batch", data={"images": [(io.BytesIO(data), "a.zip")]}), status, code, spec)


# ---- privacy: nothing on disk, nothing in logs ---------------------------------------------------------

def _no_tempfiles(monkeypatch):
    import tempfile

    import werkzeug.formparser as fp

    def refuse(*_a, **_k):
        raise AssertionError("an upload was about to be written to a temporary file")

    for mod in (tempfile, fp):
        for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, refuse)


def test_large_uploads_never_touch_disk(client, monkeypatch):
    big = encode(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8), "PNG")
    assert len(big) > 1_000_000  # werkzeug spools anything over 500 KB by default
    _no_tempfiles(monkeypatch)
    # The canary: a stock Flask app *would* spool this upload, so the guard above is live.
    stock = Flask("stock")
    stock.post("/")(lambda: str(len(__import__("flask").request.files["image"].read())))
    stock.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(AssertionError, match="temporary file"):
        stock.test_client().post("/", data={"image": (io.BytesIO(big), "a.png")})
    resp = post_image(client, big, detector="haar")
    assert resp.status_code == 200
    resp = client.post("/v1/predict/batch", data={"images": [(io.BytesIO(big), "a.png"), (io.BytesIO(big), "b.png")],
                                                  "detector": "haar"})
    assert resp.status_code == 200 and resp.get_json()["summary"]["files"] == 2


def test_logs_hold_no_image_content_or_names(client, api, face_png, caplog, monkeypatch):
    secret_name = "patient-jane-doe-1984.png"
    marker = b"SECRET-PIXELS-0123456789"
    caplog.set_level(logging.DEBUG)
    post_image(client, face_png, name=secret_name, detector="haar")
    post_image(client, b"\x89PNG\r\n\x1a\n" + marker * 20, name=secret_name)
    post_image(client, marker * 5, name=secret_name)

    class Broken:
        def analyze(self, *_a, **_k):
            raise RuntimeError("boom")

    monkeypatch.setattr(api, "get_pipeline", lambda d, t: Broken())
    post_image(client, face_png, name=secret_name)
    text = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records)
    assert "emolens.api" in {r.name for r in caplog.records}  # requests are logged ...
    assert secret_name not in text and "jane" not in text  # ... but not what was in them
    assert marker.decode() not in text and face_png[:64].hex() not in text and repr(face_png[:16]) not in text


# ---- concurrency and the model singleton -----------------------------------------------------------

def test_concurrent_requests_share_one_model_and_agree(client, api, face_png, monkeypatch):
    from core.emotion.classifier import EmotionClassifier

    loads = []
    real_load = EmotionClassifier.load.__func__

    def counting_load(cls, *a, **k):
        loads.append(threading.get_ident())
        return real_load(cls, *a, **k)

    monkeypatch.setattr(EmotionClassifier, "load", classmethod(counting_load))
    settings.configure(api_heavy_slots=4, api_busy_wait_s=120)  # contention on the pipelines, not on the gate
    other = encode(Image.open(io.BytesIO(face_png)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG")
    jobs = [(img, det) for img in (face_png, other) for det in ("haar", "mediapipe") for _ in range(8)]
    barrier = threading.Barrier(16)

    def call(job):
        img, det = job
        try:
            barrier.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        resp = post_image(api.app.test_client(), img, detector=det)
        return job, resp.status_code, resp.get_json()

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, jobs))
    assert all(status == 200 for _, status, _ in results), [b for _, s, b in results if s != 200][:3]
    by_job: dict = {}
    for (img, det), _, body in results:
        by_job.setdefault((img[:100], det), []).append(json.dumps(body, sort_keys=True))
    assert all(len(set(v)) == 1 for v in by_job.values())  # the same answer under contention
    assert len(loads) == 1  # the emotion model was loaded once for all threads and detectors
    assert set(api._pipelines) == {("haar", 0.5), ("mediapipe", 0.5)}


def test_pipeline_cache_is_bounded(client, api, face_png, monkeypatch):
    settings.configure(api_max_cached_pipelines=3)
    for t in ("0.1", "0.2", "0.3", "0.4", "0.5", "0.55"):
        assert post_image(client, face_png, detector="haar", threshold=t).status_code == 200
    assert list(api._pipelines) == [("haar", 0.4), ("haar", 0.5), ("haar", 0.55)]


def test_workers_use_the_configured_torch_threads(client, face_png, monkeypatch):
    settings.configure(api_torch_threads=1)
    before = torch.get_num_threads()
    try:
        assert post_image(client, face_png, detector="haar").status_code == 200
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
