"""The OpenAPI 3.1 description of `core.api`, served at `/openapi.json`.

Built from the same settings and registries the API uses (detector names, limits), so the document
cannot drift from what the server accepts. Its schemas are JSON Schema 2020-12; the tests validate
real responses against them.
"""
from __future__ import annotations

from typing import Any

from core import settings
from core.detection import available_detectors
from core.emotion.vocabulary import EMOTIONS

API_VERSION = "1.0.0"

# Stable `error` codes of request-level failures and the HTTP status each one comes with.
ERROR_STATUS: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "missing_image": 400,
    "unreadable_upload": 400,
    "invalid_parameter": 400,
    "too_many_images": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_too_large": 413,
    "too_many_parts": 413,
    "file_too_large": 413,
    "too_many_files": 413,
    "pixel_budget_exceeded": 413,
    "zip_bomb": 413,
    "unsupported_media_type": 415,
    "unsupported_format": 415,
    "empty_file": 422,
    "corrupt_image": 422,
    "too_many_pixels": 422,
    "image_too_small": 422,
    "invalid_image": 422,
    "unreadable_member": 422,
    "corrupt_archive": 422,
    "unsafe_path": 422,
    "not_a_zip": 422,
    "invalid_archive": 422,
    "rate_limited": 429,
    "internal_error": 500,
    "analysis_failed": 500,
    "model_unavailable": 503,
    "busy": 503,
}


def _json_response(description: str, schema: str = "Error") -> dict[str, Any]:
    """A response whose JSON body is one of the document's schemas (errors by default)."""
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _form(batch: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "detector": {"type": "string", "enum": available_detectors(), "default": settings.get().detector,
                     "description": "face detector"},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1,
                      "description": "detector score threshold (default: the detector's own); rounded to 0.01"},
    }
    if batch:
        props["images"] = {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                           "description": f"image files and/or zip archives of images (at most "
                                          f"{settings.get().api_max_batch_files} images in all)"}
        required = ["images"]
    else:
        props["image"] = {"type": "string", "contentMediaType": "application/octet-stream",
                          "description": "one JPEG, PNG, WebP, BMP or TIFF image (format read from the content)"}
        required = ["image"]
    return {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "properties": props, "required": required}}}}


def build_spec() -> dict[str, Any]:
    """The whole OpenAPI document as a dict (JSON-serialisable)."""
    s = settings.get()
    limits = (f"Limits: {s.api_max_request_bytes // 2**20} MB and {s.api_max_request_megapixels:g} megapixels "
              f"(read from the image headers, before decoding) per request, {s.max_upload_bytes // 2**20} MB and "
              f"{s.api_max_megapixels:g} megapixels per image, {s.api_max_batch_files} images per batch"
              + (f", {s.api_rate_limit} per API key or client address" if s.api_rate_limit != "off" else "")
              + ". " + ("Every endpoint but /healthz needs an API key (`Authorization: Bearer <key>` or "
                        "`X-API-Key`)." if s.api_keys else "No API key is required on this server."))
    probs = {"type": "object", "properties": {e: {"type": "number", "minimum": 0, "maximum": 1} for e in EMOTIONS},
             "required": list(EMOTIONS), "additionalProperties": {"type": "number"}}
    schemas: dict[str, Any] = {
        "Face": {
            "type": "object",
            "required": ["box", "score", "emotion", "confidence", "probs"],
            "properties": {
                "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                        "description": "[x1, y1, x2, y2] in pixels of the EXIF-oriented image"},
                "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "detector score"},
                "emotion": {"type": "string"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "probs": probs,
                "landmarks": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            },
        },
        "ImageResult": {
            "description": "Same keys as `python -m core predict --json`: faces, or a per-file error.",
            "oneOf": [
                {"type": "object", "required": ["file", "faces"], "additionalProperties": False,
                 "properties": {"file": {"type": "string"},
                                "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
                                "notes": {"type": "array", "items": {"type": "string"}}}},
                {"type": "object", "required": ["file", "error", "error_code"], "additionalProperties": False,
                 "properties": {"file": {"type": "string"},
                                "error": {"type": "string", "description": "plain message"},
                                "error_code": {"type": "string", "description": "stable code"}}},
            ],
        },
        "BatchResult": {
            "type": "object", "required": ["results", "summary"],
            "properties": {
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/ImageResult"}},
                "summary": {"type": "object", "required": ["files", "ok", "failed", "faces"],
                            "properties": {k: {"type": "integer", "minimum": 0}
                                           for k in ("files", "ok", "failed", "faces")}},
            },
        },
        "Error": {
            "type": "object", "required": ["error", "message"],
            "properties": {"error": {"type": "string", "enum": sorted(ERROR_STATUS)},
                           "message": {"type": "string"},
                           "file": {"type": "string"}},
        },
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]},
                                  "model": {"type": "string"}, "model_installed": {"type": "boolean"},
                                  "model_loaded": {"type": "boolean"}}},
        "Models": {"type": "object", "required": ["default_model", "models", "detectors", "limits"],
                   "properties": {"default_model": {"type": "string"},
                                  "models": {"type": "array", "items": {"type": "object"},
                                             "description": "model cards, as shipped beside the weights"},
                                  "detectors": {"type": "array", "items": {"type": "object"}},
                                  "limits": {"type": "object"}}},
    }
    auth_errors = {
        "401": _json_response("an API key is required and none (or a wrong one) was sent"),
        "429": _json_response("over the rate limit; `Retry-After` says when to retry"),
    }
    common_errors = {
        "400": _json_response("bad parameters or no image"),
        **auth_errors,
        "413": _json_response("request, image or batch over a limit (bytes, files, or "
                              "`pixel_budget_exceeded`: megapixels of the whole request)"),
        "415": _json_response("not multipart/form-data, or not a supported image format"),
        "422": _json_response("the image (or archive) is empty, damaged, too small or too large in pixels"),
        "500": _json_response("internal error (no details are exposed)"),
        "503": _json_response("no emotion model is installed, or `busy`: every analysis slot is taken "
                              "(retry after `Retry-After` seconds)"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "EmoLens API", "version": API_VERSION,
                 "description": "Facial-emotion analysis, offline. Images are analysed in memory and never stored. "
                                + limits},
        "paths": {
            "/v1/predict": {"post": {
                "summary": "Detect faces in one image and classify each one's emotion",
                "requestBody": _form(batch=False),
                "responses": {"200": _json_response("the faces found (possibly none)", "ImageResult"),
                              **common_errors},
            }},
            "/v1/predict/batch": {"post": {
                "summary": "Several images, or zip archives of images, in one request",
                "description": "Each file gets its own result; a bad image is an entry with `error`, not a "
                               "failed request. A zip is recognised by its content.",
                "requestBody": _form(batch=True),
                "responses": {"200": _json_response("one result per image", "BatchResult"), **common_errors},
            }},
            "/v1/models": {"get": {
                "summary": "The installed emotion models (their cards), detectors and limits",
                "responses": {"200": _json_response("models", "Models"), **auth_errors},
            }},
            "/healthz": {"get": {
                "summary": "Liveness and readiness (never needs a key, never rate-limited)",
                "security": [],
                "responses": {"200": _json_response("ready", "Health"),
                              "503": _json_response("no emotion model installed", "Health")},
            }},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}, **auth_errors}}},
        },
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        **({"security": [{"bearer": []}, {"apiKey": []}]} if s.api_keys else {}),
    }
