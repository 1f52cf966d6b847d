"""EmoLens REST API: a thin Flask layer over `core`, importable as `core.api:app` (a stable contract).

    flask --app core.api run                                    # development
    gunicorn -c deploy/gunicorn.conf.py core.api:app            # production (127.0.0.1, gthread workers)

Everything the API knows comes from `core`: validation (`core.analysis.analyze_bytes`), zip safety
(`core.archive`), per-file error handling (`core.batch.engine.analyze_payload`) and the JSON keys
(`ImageAnalysis.to_json`, the same as the CLI). Uploads stay in memory (never spooled to a temporary
file), request bodies are capped, and every failure is a JSON body `{"error": code, "message": text}`
with a fitting status; logs carry sizes, codes and timings, never image content or file names.

Cost per request is bounded before any pixel is decoded: every image's width × height is read from its
header (zip members too) and checked against a per-image and a per-request megapixel budget. Analyses
hold one of a few per-process "heavy slots" (waiting at most `api_busy_wait_s`, then 503 `busy`), so a
gthread worker always has threads left for /healthz and light requests. Optional API keys, a per-key
(or per-address) rate limit and an allow-list for CORS complete the deployment story.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import logging
import math
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator

import numpy as np
import torch
from flask import Flask, Request, Response, g, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import core  # noqa: F401  (offline switches before any third-party import)
from core import settings
from core.analysis import ImageAnalysis
from core.archive import ArchiveError, ArchiveLimits, SafeZip, is_zip
from core.batch.engine import analyze_payload
from core.detection import (
    FaceDetector,
    available_detectors,
    default_threshold,
    detector_description,
    make_detector,
)
from core.emotion.card import ModelCard, list_models
from core.emotion.classifier import EmotionClassifier
from core.errors import UserFacingError
from core.openapi import ERROR_STATUS, build_spec
from core.pipeline import EmotionPipeline, FaceResult
from core.validation import ImageRejected, TooManyPixels, header_size

log = logging.getLogger("emolens.api")

MAX_NAME_CHARS = 255


class ApiError(UserFacingError):
    """A request-level failure: stable `code`, plain `message`, HTTP status from `ERROR_STATUS`."""

    def __init__(self, code: str, message: str, status: int | None = None, file: str | None = None) -> None:
        super().__init__(message, code)
        self.file = file
        self.status = status or ERROR_STATUS.get(code, 400)


class InMemoryRequest(Request):
    """Uploaded files stay in memory: werkzeug would spool any file over 500 KB to a temporary file."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> BinaryIO:
        return io.BytesIO()


# ---- models: loaded once per process, shared by every thread ----------------------------------------

class _ServedPipeline(EmotionPipeline):
    """The pipeline with a lock around `analyze`: native detector state (MediaPipe graphs, OpenCV cascades)
    is not re-entrant, and the server's threads share one pipeline per (detector, threshold)."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier) -> None:
        super().__init__(detector, classifier)
        self._lock = threading.Lock()

    def analyze(self, image: np.ndarray, landmarks: bool = False, align: bool = False) -> list[FaceResult]:
        with self._lock:
            return super().analyze(image, landmarks=landmarks, align=align)


_models_lock = threading.Lock()
_classifier: EmotionClassifier | None = None
_pipelines: "OrderedDict[tuple[str, float], _ServedPipeline]" = OrderedDict()


def get_pipeline(detector: str, threshold: float) -> _ServedPipeline:
    """The process-wide pipeline for (detector, threshold); the emotion model is loaded once and shared.

    A bounded LRU (settings.get().api_max_cached_pipelines) so clients cycling through thresholds cannot
    grow memory without limit.
    """
    global _classifier
    key = (detector, threshold)
    with _models_lock:
        served = _pipelines.get(key)
        if served is not None:
            _pipelines.move_to_end(key)
            return served
        if _classifier is None:
            if settings.get().api_torch_threads > 0:
                torch.set_num_threads(settings.get().api_torch_threads)
            try:
                _classifier = EmotionClassifier.load()
            except FileNotFoundError as exc:
                log.error("emotion model unavailable: %s", exc)
                raise ApiError("model_unavailable", "No emotion model is installed on this server.") from exc
        served = _ServedPipeline(make_detector(detector, threshold), _classifier)
        _pipelines[key] = served
        while len(_pipelines) > max(1, settings.get().api_max_cached_pipelines):
            _pipelines.popitem(last=False)
        return served


def reset_models() -> None:
    """Forget loaded models (tests; or after new weights were installed)."""
    global _classifier
    with _models_lock:
        _classifier = None
        _pipelines.clear()


# ---- bounded cost: heavy slots and the pixel budget ---------------------------------------------------

class HeavySlots:
    """A per-process counting gate around analyses. Unlike a bare semaphore its size is read from settings
    at each acquire (tests and `configure()` change it), and a full gate answers `busy` after a short wait
    instead of queueing a request behind minutes of work while the client's own timeout runs out."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.in_use = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        limit, wait_s = settings.get().api_heavy_slots, settings.get().api_busy_wait_s
        with self._cond:
            if not self._cond.wait_for(lambda: self.in_use < limit, timeout=wait_s):
                raise ApiError("busy", "The server is busy analysing other images. Please retry in a few seconds.")
            self.in_use += 1
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= 1
                self._cond.notify()


heavy_slots = HeavySlots()


def _budget(items: list[tuple[str, bytes | ImageRejected]]) -> list[tuple[str, bytes | ImageRejected]]:
    """Read every image's pixel count from its header and refuse the request (413 `pixel_budget_exceeded`)
    when the total is over `api_max_request_megapixels`, before anything is decoded. An image over the
    API's per-image limit becomes a `too_many_pixels` rejection (never decoded, not counted)."""
    per_image = settings.get().api_max_megapixels
    out: list[tuple[str, bytes | ImageRejected]] = []
    total = 0
    for name, payload in items:
        if isinstance(payload, bytes):
            try:
                width, height = header_size(payload) or (0, 0)
                pixels = width * height
            except ImageRejected as exc:
                out.append((name, exc))
                continue
            if pixels > per_image * 1e6:
                payload = TooManyPixels(f"The image has {pixels / 1e6:.0f} megapixels; this server accepts at most "
                                        f"{per_image:g} megapixels per image. Please resize it.")
            else:
                total += pixels
        out.append((name, payload))
    limit = settings.get().api_max_request_megapixels
    if total > limit * 1e6:
        raise ApiError("pixel_budget_exceeded",
                       f"The images in this request hold {total / 1e6:.0f} megapixels in all; the limit is "
                       f"{limit:g} megapixels per request. Send fewer or smaller images per request.")
    return out


# ---- access: API keys, rate limit, CORS --------------------------------------------------------------

def _presented_key() -> str:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-API-Key", "").strip()


def _key_is_valid(presented: str) -> bool:
    """Constant-time comparison against every configured key (no early exit that would time the match)."""
    found = False
    for key in settings.get().api_keys:
        found |= hmac.compare_digest(presented.encode(), key.encode())
    return found


def _rate_key() -> str:
    """Whom a rate limit counts: the API key when one is valid (a hash, never the key), else the address."""
    presented = _presented_key()
    if presented and settings.get().api_keys and _key_is_valid(presented):
        return "key:" + hashlib.sha256(presented.encode()).hexdigest()[:16]
    return "addr:" + (get_remote_address() or "unknown")


def _rate_limit() -> str:
    value = settings.get().api_rate_limit
    return "1000000/second" if value == "off" else value  # exempted below; a valid string keeps the limiter calm


limiter = Limiter(key_func=_rate_key, default_limits=[_rate_limit], storage_uri="memory://",
                  headers_enabled=True, default_limits_exempt_when=lambda: settings.get().api_rate_limit == "off")

CORS_ALLOW_HEADERS = "Authorization, X-API-Key, Content-Type"


# ---- request parsing --------------------------------------------------------------------------------

def _require_multipart() -> None:
    if request.mimetype != "multipart/form-data":
        raise ApiError("unsupported_media_type",
                       "Send the image as multipart/form-data (for example: curl -F image=@photo.jpg ...).")


def _options() -> tuple[str, float]:
    """`detector` and `threshold` from the form (or the query string), checked against the registry."""
    detector = (request.form.get("detector") or request.args.get("detector") or settings.get().detector).strip()
    if detector not in available_detectors():
        raise ApiError("invalid_parameter", f"Unknown detector. Choose one of: {', '.join(available_detectors())}.")
    raw = request.form.get("threshold", request.args.get("threshold", ""))
    if raw.strip() == "":
        return detector, round(default_threshold(detector), 2)
    try:
        threshold = float(raw)
    except ValueError:
        threshold = math.nan
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ApiError("invalid_parameter", "threshold must be a number between 0 and 1.")
    return detector, round(threshold, 2)


def _name(filename: str | None, default: str) -> str:
    return (filename or default)[:MAX_NAME_CHARS]


def _uploads(*fields: str) -> list[FileStorage]:
    files = [f for field in fields for f in request.files.getlist(field)]
    if not files and not request.form and (request.content_length or 0) > 256:
        # A body with content arrived (an empty form is a few bytes) but no part could be read: werkzeug
        # drops a part whose headers are not UTF-8 (a Latin-1 file name, say) without a word.
        raise ApiError("unreadable_upload", "The upload could not be read: its multipart parts were not "
                                            "understood (for example a file name that is not UTF-8). Rename the "
                                            "file with plain letters, or send the name UTF-8 encoded.")
    if not files:
        raise ApiError("missing_image", f"No image was sent. Attach it as the multipart file field "
                                        f"'{fields[0]}'.")
    return files


def _archive_limits(images_left: int) -> ArchiveLimits:
    return ArchiveLimits(max_members=images_left, max_entries=max(settings.get().api_max_batch_files * 4, 64),
                         max_member_bytes=settings.get().max_upload_bytes,
                         max_total_bytes=min(settings.get().archive_max_total_bytes,
                                             settings.get().api_max_batch_files * settings.get().max_upload_bytes))


def _archive_error(exc: ArchiveError, name: str) -> ApiError:
    code = exc.code if exc.code in ERROR_STATUS else "invalid_archive"
    return ApiError(code, exc.message, file=name)


# ---- the app ----------------------------------------------------------------------------------------

def create_app() -> Flask:
    """Build the Flask app; `app` below is the one gunicorn and `flask --app core.api` serve."""
    flask_app = Flask(__name__)
    flask_app.request_class = InMemoryRequest
    flask_app.config["MAX_CONTENT_LENGTH"] = settings.get().api_max_request_bytes
    flask_app.config["MAX_FORM_PARTS"] = settings.get().api_max_batch_files * 2 + 16
    flask_app.json.sort_keys = False  # keep the CLI's key order

    @flask_app.before_request
    def _start_timer() -> None:
        g.t0 = time.perf_counter()

    limiter.init_app(flask_app)  # before the key check, so guessing keys is rate-limited per address too

    @flask_app.before_request
    def _require_key() -> None:
        if not settings.get().api_keys or request.path == "/healthz" or request.method == "OPTIONS":
            return
        if not _key_is_valid(_presented_key()):
            raise ApiError("unauthorized", "This server needs an API key: send it as 'Authorization: Bearer "
                                           "<key>' or 'X-API-Key: <key>'.")

    @flask_app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin", "").rstrip("/")
        if origin and origin in settings.get().api_cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "600"
        if settings.get().api_cors_origins:
            response.vary.add("Origin")
        return response

    @flask_app.after_request
    def _log_request(response: Response) -> Response:
        ms = (time.perf_counter() - g.get("t0", time.perf_counter())) * 1000
        log.info("%s %s -> %d (%s bytes in, %.0f ms)", request.method, request.path, response.status_code,
                 request.content_length if request.content_length is not None else "?", ms)
        return response

    @flask_app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": exc.code, "message": exc.message}
        if exc.file is not None:
            body["file"] = exc.file
        log.warning("%s %s rejected: %s", request.method, request.path, exc.code)
        response = jsonify(body)
        if exc.code == "unauthorized":
            response.headers["WWW-Authenticate"] = 'Bearer realm="emolens"'
        elif exc.code == "busy":
            response.headers["Retry-After"] = "5"
        return response, exc.status

    @flask_app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        length = request.content_length
        if (isinstance(exc, RequestEntityTooLarge) or status == 413) and length is not None and \
                length <= (flask_app.config.get("MAX_CONTENT_LENGTH") or length):
            return _api_error(ApiError(  # within the size limit, so werkzeug counted too many form parts
                "too_many_parts", f"The request has too many form parts: send at most "
                                  f"{settings.get().api_max_batch_files} images (plus the detector and threshold "
                                  "fields) in one request.", 413))
        if isinstance(exc, RequestEntityTooLarge) or status == 413:
            return _api_error(ApiError(
                "request_too_large",
                f"The request is too large: the limit is {settings.get().api_max_request_bytes / 2**20:.0f} MB and "
                f"{settings.get().api_max_batch_files} images per request. Send fewer or smaller images.", 413))
        code = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type",
                429: "rate_limited"}.get(status, "bad_request" if status < 500 else "internal_error")
        message = {404: "There is no such endpoint; see /openapi.json.",
                   405: "This endpoint does not accept that HTTP method; see /openapi.json.",
                   429: f"Too many requests: the limit is {settings.get().api_rate_limit}. "
                        "Please wait a little and retry."}.get(
            status, "The request could not be understood." if status < 500 else "Internal server error.")
        return _api_error(ApiError(code, message, status))

    @flask_app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify({"error": "internal_error", "message": "Internal server error. Nothing was stored; "
                                                              "please try again or report it."}), 500

    @flask_app.get("/healthz")
    @limiter.exempt
    def healthz() -> tuple[Response, int]:
        installed = settings.get().emotion_model in list_models()
        body = {"status": "ok" if installed else "unavailable", "model": settings.get().emotion_model,
                "model_installed": installed, "model_loaded": _classifier is not None}
        return jsonify(body), 200 if installed else 503

    @flask_app.get("/v1/models")
    def models() -> Response:
        root = settings.get().weights_dir
        cards = [ModelCard.load(root / f"{name}.json").raw for name in list_models(root)]
        return jsonify({
            "default_model": settings.get().emotion_model,
            "models": cards,
            "detectors": [{"name": d, "description": detector_description(d), "default_threshold": default_threshold(d)}
                          for d in available_detectors()],
            "limits": {"max_request_bytes": settings.get().api_max_request_bytes,
                       "max_image_bytes": settings.get().max_upload_bytes,
                       "max_megapixels": settings.get().api_max_megapixels,
                       "max_request_megapixels": settings.get().api_max_request_megapixels,
                       "max_batch_images": settings.get().api_max_batch_files,
                       "rate_limit": settings.get().api_rate_limit},
        })

    @flask_app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(build_spec())

    @flask_app.post("/v1/predict")
    def predict() -> Response:
        _require_multipart()
        detector, threshold = _options()
        files = _uploads("image")
        if len(files) > 1:
            raise ApiError("too_many_images", "Send one image to /v1/predict; use /v1/predict/batch for several.")
        name = _name(files[0].filename, "image")
        [(name, payload)] = _budget([(name, files[0].read())])
        if isinstance(payload, ImageRejected):
            raise ApiError(payload.code, payload.message, file=name)
        with heavy_slots.hold():
            analysis = analyze_payload(get_pipeline(detector, threshold), name, payload)
        if not analysis.ok:
            raise ApiError(analysis.error_code or "invalid_image", analysis.error or "", file=name)
        return jsonify(analysis.to_json())

    @flask_app.post("/v1/predict/batch")
    def predict_batch() -> Response:
        _require_multipart()
        detector, threshold = _options()
        uploads = _uploads("images", "image")
        # First pass: open every part (zips are checked, not unpacked) and count images against the limit.
        parts: list[tuple[str, bytes | SafeZip]] = []
        count = 0
        try:
            for n, f in enumerate(uploads, start=1):
                name, data = _name(f.filename, f"image_{n}"), f.read()
                if is_zip(data):
                    try:
                        archive = SafeZip(data, _archive_limits(max(settings.get().api_max_batch_files - count, 0)))
                    except ArchiveError as exc:
                        if exc.code == "too_many_files":
                            raise _too_many() from exc
                        raise _archive_error(exc, name) from exc
                    parts.append((name, archive))
                    count += len(archive)
                else:
                    parts.append((name, data))
                    count += 1
                if count > settings.get().api_max_batch_files:
                    raise _too_many()
            # Second pass: unpack zip members (bounded by the archive limits) and budget every header.
            items: list[tuple[str, bytes | ImageRejected]] = []
            for name, part in parts:
                items.extend(part if isinstance(part, SafeZip) else [(name, part)])
            items = _budget(items)
            if all(isinstance(payload, ImageRejected) for _, payload in items):  # nothing to analyse: no slot
                results = [ImageAnalysis(file=name, error_code=payload.code, error=payload.message)
                           for name, payload in items if isinstance(payload, ImageRejected)]
            else:
                with heavy_slots.hold():
                    pipeline = get_pipeline(detector, threshold)
                    results = [_slim(analyze_payload(pipeline, name, payload)) for name, payload in items]
        except ArchiveError as exc:  # e.g. a member that unpacks past its declared size
            raise _archive_error(exc, "archive") from exc
        finally:
            for _, part in parts:
                if isinstance(part, SafeZip):
                    part.close()
        ok = sum(r.ok for r in results)
        return jsonify({"results": [r.to_json() for r in results],
                        "summary": {"files": len(results), "ok": ok, "failed": len(results) - ok,
                                    "faces": sum(len(r.faces) for r in results)}})

    return flask_app


def _too_many() -> ApiError:
    return ApiError("too_many_files", f"Too many images in one request: the limit is "
                                      f"{settings.get().api_max_batch_files}. Split them over several requests.")


def _slim(analysis: ImageAnalysis) -> ImageAnalysis:
    analysis.image = None  # the decoded pixels are not needed once faces are known; free them early
    return analysis


__all__ = ["ApiError", "HeavySlots", "app", "create_app", "get_pipeline", "heavy_slots", "limiter", "reset_models"]

try:
    app = create_app()
except settings.SettingsError as exc:  # gunicorn and `flask run` print this line instead of a traceback
    raise SystemExit(exc.message) from None
