"""Every setting in one place: where data and weights live, and the limits on what users send.

Values come from `EMOLENS_*` environment variables, so a deployment changes them without code edits. They
are read once per process into one frozen `Settings` (`get()`); a malformed value stops with a plain message
that names the variable and what it accepts (`SettingsError`), never a traceback from `int()`.
Programs that choose a value themselves (a CLI flag, a test) install a changed copy with `configure()`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from core.errors import UserFacingError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VIDEO_FORMATS = ("mp4", "webm", "avi")
T = TypeVar("T")


class SettingsError(UserFacingError):
    """One or more `EMOLENS_*` variables hold a value we cannot use; the message names each and its format."""

    code = "invalid_setting"


@dataclass(frozen=True)
class Settings:
    """The whole configuration. Field names are the variables' names without `EMOLENS_`, lower-cased
    (sizes are stored in bytes; their variables are in MB)."""

    # Where things live
    data_dir: Path                     # research data (FER-2013, faces, landmarks, fairness); never in the repo
    weights_dir: Path                  # shipped models and their cards
    reports_dir: Path                  # JSON reports written by training/ CLIs and read by pages
    cache_dir: Path                    # third-party config (Ultralytics settings, fonts)
    # Models
    emotion_model: str                 # photos, batch, API: the most accurate shipped model
    detector: str
    face_yolo: Path                    # our YOLO's weights
    yolo_imgsz: int | None             # input-size studies (`evaluate_detector --yolo-imgsz`); None: the card's
    yolo_backend: str                  # auto | onnxruntime | torch
    # Uploads (pages, CLI, API)
    max_upload_bytes: int
    max_megapixels: float
    max_files: int                     # images per upload on the pages
    labels_csv_max_bytes: int          # the labels.csv of a labelled set
    own_eval_max_faces: int            # labelled faces per "evaluate on your own data" set
    own_eval_max_megapixels: float     # decoded pixels across that set's images, read from headers first
    # REST API
    api_max_request_bytes: int
    api_max_batch_files: int
    api_max_cached_pipelines: int
    api_torch_threads: int             # per worker process: throughput comes from gunicorn workers
    api_max_megapixels: float          # per image sent to the API: stricter than the CLI's max_megapixels
    api_max_request_megapixels: float  # all images of one request together, read from headers before decoding
    api_heavy_slots: int               # analyses running at once per worker process; other threads stay free
    api_busy_wait_s: float             # how long a request waits for a heavy slot before a 503 `busy`
    api_keys: tuple[str, ...]          # accepted API keys; none: no authentication (a trusted network)
    api_rate_limit: str                # Flask-Limiter string per key or client address, e.g. 60/minute; off
    api_cors_origins: tuple[str, ...]  # browser origins allowed to call the API; none: no CORS headers
    api_bind: str                      # deploy/gunicorn.conf.py: address:port
    api_workers: int                   # deploy/gunicorn.conf.py: worker processes
    api_threads: int                   # deploy/gunicorn.conf.py: threads per worker (gthread)
    # Zips (core.archive)
    archive_max_files: int
    archive_max_entries: int           # folders and non-images included
    archive_max_total_bytes: int
    archive_max_ratio: float           # compression ratio allowed for members over the size limit
    # Fairness audit: below ~30, one person's photos can swing a rate by several points
    min_group_size: int
    min_group_subjects: int            # people per group before a gap is flagged
    fairness_bootstrap: int            # resamples per interval
    fairness_max_images: int           # per audited set
    # Live webcam and video files
    live_detector: str                 # short-range BlazeFace: webcam distance
    live_emotion_model: str
    live_detect_every: int             # detector every k frames, tracking between
    live_detect_max_side: int          # frames shrunk to this to detect
    live_classify_every: int           # re-classify known faces every n frames
    live_smoothing_s: float            # EMA time constant of a face's probabilities
    ice_servers: tuple[dict[str, Any], ...]  # WebRTC ICE servers; none unless a deployment names them
    video_max_upload_bytes: int
    video_max_seconds: float
    video_max_megapixels: float
    # Annotate page
    annotate_page_size: int            # faces per page
    # Batch at scale
    batch_size: int                    # files per engine batch and per committed flush
    batch_video_fps: float             # frames sampled per second of video
    batch_torch_threads: int           # per Ray actor: actors give the parallelism
    ray_object_store_mb: int           # local Ray: results only, no pixels
    batch_results_root: Path | None    # Batch Results may open results files below this folder; None: off
    batch_results_max_bytes: int
    # Fixed design values (not read from the environment)
    face_crop_margin: float = 0.2      # framing for a model card that does not set its own
    fairness_ci_level: float = 0.95
    fairness_max_groups: int = 20      # a column with more distinct values is not a group attribute
    face_crop_min_area: float = 0.5    # a face covering this share of the image: the image is the crop
    live_track_iou: float = 0.3        # a detection continues a track when boxes overlap this much
    live_track_max_misses: int = 2     # detector rounds a track survives unmatched
    live_history_s: float = 10.0       # seconds kept for the running emotion-share chart
    live_readout_refresh_s: float = 1.0
    live_stats_window: int = 30        # frames averaged for the FPS and latency readout
    batch_max_pending_crops: int = 256  # face crops held before a classifier call
    video_formats: tuple[str, ...] = field(default=VIDEO_FORMATS)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read every `EMOLENS_*` variable; all malformed ones are reported together in one `SettingsError`."""
        reader = _Reader(os.environ if env is None else env)
        weights = reader.path("WEIGHTS_DIR", PROJECT_ROOT / "weights")
        values = dict(
            data_dir=reader.path("DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"),
            weights_dir=weights,
            reports_dir=reader.path("REPORTS_DIR", weights / "reports"),
            cache_dir=reader.path("CACHE_DIR", PROJECT_ROOT / ".cache"),
            emotion_model=reader.text("EMOTION_MODEL", "emotion_ensemble"),
            detector=reader.text("DETECTOR", "mediapipe_full"),
            face_yolo=reader.path("FACE_YOLO", weights / "face_yolo.pt"),
            yolo_imgsz=reader.number("YOLO_IMGSZ", None, int, minimum=32),
            yolo_backend=reader.choice("YOLO_BACKEND", "auto", ("auto", "onnxruntime", "torch")),
            max_upload_bytes=reader.megabytes("MAX_UPLOAD_MB", 10),
            max_megapixels=reader.number("MAX_MEGAPIXELS", 40.0, float, minimum=0.01),
            max_files=reader.number("MAX_FILES", 200, int, minimum=1),
            labels_csv_max_bytes=reader.megabytes("LABELS_CSV_MAX_MB", 20),
            own_eval_max_faces=reader.number("OWN_EVAL_MAX_FACES", 5000, int, minimum=1),
            own_eval_max_megapixels=reader.number("OWN_EVAL_MAX_MEGAPIXELS", 1000.0, float, minimum=1.0),
            api_max_request_bytes=reader.megabytes("API_MAX_REQUEST_MB", 32),
            api_max_batch_files=reader.number("API_MAX_BATCH_FILES", 32, int, minimum=1),
            api_max_cached_pipelines=reader.number("API_MAX_CACHED_PIPELINES", 8, int, minimum=1),
            api_torch_threads=reader.number("API_TORCH_THREADS", 1, int, minimum=0),
            api_max_megapixels=reader.number("API_MAX_MEGAPIXELS", 12.0, float, minimum=0.01),
            api_max_request_megapixels=reader.number("API_MAX_REQUEST_MEGAPIXELS", 64.0, float, minimum=0.01),
            api_heavy_slots=reader.number("API_HEAVY_SLOTS", 1, int, minimum=1),
            api_busy_wait_s=reader.number("API_BUSY_WAIT_S", 2.0, float, minimum=0.0),
            api_keys=reader.parse("API_KEYS", (), _words, "comma-separated keys"),
            api_rate_limit=reader.parse("API_RATE_LIMIT", "60/minute", _rate_limit,
                                        'a rate like "60/minute" or "10/second;500/hour", or off (default 60/minute)'),
            api_cors_origins=reader.parse("API_CORS_ORIGINS", (), _origins,
                                          "comma-separated origins like https://app.example.org"),
            api_bind=reader.text("API_BIND", "127.0.0.1:8000"),
            api_workers=reader.number("API_WORKERS", 2, int, minimum=1),
            api_threads=reader.number("API_THREADS", 4, int, minimum=2),
            archive_max_files=reader.number("ARCHIVE_MAX_FILES", 10000, int, minimum=1),
            archive_max_entries=reader.number("ARCHIVE_MAX_ENTRIES", 50000, int, minimum=1),
            archive_max_total_bytes=reader.megabytes("ARCHIVE_MAX_TOTAL_MB", 2048),
            archive_max_ratio=reader.number("ARCHIVE_MAX_RATIO", 100.0, float, minimum=1.0),
            min_group_size=reader.number("MIN_GROUP_SIZE", 30, int, minimum=1),
            min_group_subjects=reader.number("MIN_GROUP_SUBJECTS", 10, int, minimum=1),
            fairness_bootstrap=reader.number("FAIRNESS_BOOTSTRAP", 1000, int, minimum=0),
            fairness_max_images=reader.number("FAIRNESS_MAX_IMAGES", 5000, int, minimum=1),
            live_detector=reader.text("LIVE_DETECTOR", "mediapipe"),
            live_emotion_model=reader.text("LIVE_EMOTION_MODEL", "emotion_vgg_s"),
            live_detect_every=reader.number("LIVE_DETECT_EVERY", 3, int, minimum=1),
            live_detect_max_side=reader.number("LIVE_DETECT_MAX_SIDE", 320, int, minimum=64),
            live_classify_every=reader.number("LIVE_CLASSIFY_EVERY", 1, int, minimum=1),
            live_smoothing_s=reader.number("LIVE_SMOOTHING_S", 0.5, float, minimum=0.0),
            ice_servers=reader.parse("ICE_SERVERS", (), _ice_servers,
                                     'a JSON list like [{"urls": ["stun:stun.example.org:3478"]}] '
                                     '(with "username"/"credential" for TURN)'),
            video_max_upload_bytes=reader.megabytes("VIDEO_MAX_UPLOAD_MB", 50),
            video_max_seconds=reader.number("VIDEO_MAX_SECONDS", 120.0, float, minimum=0.1),
            video_max_megapixels=reader.number("VIDEO_MAX_MEGAPIXELS", 8.3, float, minimum=0.01),
            annotate_page_size=reader.number("ANNOTATE_PAGE_SIZE", 12, int, minimum=1),
            batch_size=reader.number("BATCH_SIZE", 16, int, minimum=1),
            batch_video_fps=reader.number("BATCH_VIDEO_FPS", 1.0, float, minimum=0.0),
            batch_torch_threads=reader.number("BATCH_TORCH_THREADS", 1, int, minimum=0),
            ray_object_store_mb=reader.number("RAY_OBJECT_STORE_MB", 200, int, minimum=64),
            batch_results_root=reader.path("BATCH_RESULTS_ROOT", None),
            batch_results_max_bytes=reader.megabytes("BATCH_RESULTS_MAX_MB", 200),
        )
        reader.raise_problems()
        return cls(**values)


class _Reader:
    """Parses `EMOLENS_<NAME>` values, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def parse(self, name: str, default: T, convert: Callable[[str], T], accepts: str) -> T:
        var = f"EMOLENS_{name}"
        raw = self.env.get(var, "").strip()
        if not raw:
            return default
        try:
            return convert(raw)
        except (ValueError, TypeError, KeyError):
            shown = raw if len(raw) <= 60 else raw[:57] + "..."
            self.problems.append(f"{var}={shown!r} is not valid: it takes {accepts}.")
            return default

    def text(self, name: str, default: str) -> str:
        return self.parse(name, default, str, "a name")

    def path(self, name: str, default: Path) -> Path:
        return self.parse(name, default, lambda raw: Path(raw).expanduser(), "a folder or file path")

    def number(self, name: str, default: Any, kind: type, minimum: float | None = None,
               maximum: float | None = None) -> Any:
        def convert(raw: str) -> Any:
            value = kind(raw)
            if value != value or (minimum is not None and value < minimum) or \
                    (maximum is not None and value > maximum):
                raise ValueError(raw)
            return value
        what = "a whole number" if kind is int else "a number"
        bounds = (f" from {minimum:g} to {maximum:g}" if minimum is not None and maximum is not None
                  else f" of at least {minimum:g}" if minimum is not None else "")
        return self.parse(name, default, convert, f"{what}{bounds} (default {default})")

    def megabytes(self, name: str, default_mb: float) -> int:
        def convert(raw: str) -> int:
            mb = float(raw)
            if not mb > 0 or mb == float("inf"):
                raise ValueError(raw)
            return int(mb * 1024 * 1024)
        return self.parse(name, int(default_mb * 1024 * 1024), convert,
                          f"a size in megabytes greater than 0 (default {default_mb:g})")

    def flag(self, name: str, default: bool) -> bool:
        words = {**dict.fromkeys(("1", "true", "yes", "on"), True), **dict.fromkeys(("0", "false", "no", "off"), False)}
        return self.parse(name, default, lambda raw: words[raw.lower()], f"1 or 0 (default {int(default)})")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        known = {c: c for c in choices}
        return self.parse(name, default, lambda raw: known[raw.lower()],
                          f"one of {', '.join(choices)} (default {default})")

    def raise_problems(self) -> None:
        if self.problems:
            head = "EmoLens cannot start: a setting is malformed." if len(self.problems) == 1 else \
                f"EmoLens cannot start: {len(self.problems)} settings are malformed."
            raise SettingsError(head + "\n" + "\n".join(f"- {p}" for p in self.problems))


def _ice_servers(raw: str) -> tuple[dict[str, Any], ...]:
    servers = json.loads(raw)
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError(raw)
    return tuple(servers)


def _words(raw: str) -> tuple[str, ...]:
    """Comma-separated API keys. Never raises: a malformed-setting message would echo the secret into logs."""
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def _rate_limit(raw: str) -> str:
    """`off`, or a Flask-Limiter rate string checked now so a typo stops the server at start, not per request."""
    if raw.lower() == "off":
        return "off"
    from limits import parse_many

    parse_many(raw)  # raises ValueError on a malformed rate
    return raw


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    if not origins or any(not o.startswith(("http://", "https://")) for o in origins):
        raise ValueError(raw)
    return origins


_current: Settings | None = None


def get() -> Settings:
    """The process's settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def configure(**changes: Any) -> Settings:
    """Install a copy of the settings with `changes` (a CLI flag that overrides a variable, a test)."""
    global _current
    unknown = sorted(set(changes) - {f.name for f in fields(Settings)})
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(unknown)}")
    _current = replace(get(), **changes)
    return _current
