"""Every setting in one place: where data and weights live, and the limits on what users send.

Values come from environment variables so a deployment changes them without code edits.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Research data directory (FER-2013, faces, landmarks, fairness). Never inside the repo."""
    return Path(os.environ.get("EMOLENS_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def weights_dir() -> Path:
    return Path(os.environ.get("EMOLENS_WEIGHTS_DIR", PROJECT_ROOT / "weights"))


def cache_dir() -> Path:
    """Project-local cache for third-party config (ultralytics settings, fonts)."""
    return Path(os.environ.get("EMOLENS_CACHE_DIR", PROJECT_ROOT / ".cache"))


MAX_UPLOAD_BYTES = int(os.environ.get("EMOLENS_MAX_UPLOAD_MB", "10")) * 1024 * 1024
MAX_MEGAPIXELS = float(os.environ.get("EMOLENS_MAX_MEGAPIXELS", "40"))
MAX_FILES_PER_BATCH = int(os.environ.get("EMOLENS_MAX_FILES", "200"))
# Photos, batch, API: the most accurate shipped model (an ensemble, ~35 ms per face on 2 CPU cores).
DEFAULT_EMOTION_MODEL = os.environ.get("EMOLENS_EMOTION_MODEL", "emotion_ensemble")
DEFAULT_DETECTOR = os.environ.get("EMOLENS_DETECTOR", "mediapipe_full")
DEFAULT_DETECTION_THRESHOLD = 0.5
FACE_CROP_MARGIN = 0.2

# REST API (core.api) and batch (core.batch.engine, core.archive) limits.
API_MAX_REQUEST_BYTES = int(float(os.environ.get("EMOLENS_API_MAX_REQUEST_MB", "32")) * 1024 * 1024)
API_MAX_BATCH_FILES = int(os.environ.get("EMOLENS_API_MAX_BATCH_FILES", "32"))
API_MAX_CACHED_PIPELINES = int(os.environ.get("EMOLENS_API_MAX_CACHED_PIPELINES", "8"))
ARCHIVE_MAX_MEMBERS = int(os.environ.get("EMOLENS_ARCHIVE_MAX_FILES", "10000"))
ARCHIVE_MAX_ENTRIES = int(os.environ.get("EMOLENS_ARCHIVE_MAX_ENTRIES", "50000"))  # incl. folders, non-images
ARCHIVE_MAX_TOTAL_BYTES = int(float(os.environ.get("EMOLENS_ARCHIVE_MAX_TOTAL_MB", "2048")) * 1024 * 1024)
ARCHIVE_MAX_RATIO = float(os.environ.get("EMOLENS_ARCHIVE_MAX_RATIO", "100"))  # for members over the size limit

# Fairness audit (core.fairness.metrics, core.fairness.audit, training.audit_fairness, the Fairness Audit page).
# A group (or, for an emotion's recall, the group's examples of that emotion) smaller than this is marked
# "too few" and left out of gaps: below ~30, one person's photos can swing a rate by several points.
MIN_GROUP_SIZE = int(os.environ.get("EMOLENS_MIN_GROUP_SIZE", "30"))
FAIRNESS_BOOTSTRAP = int(os.environ.get("EMOLENS_FAIRNESS_BOOTSTRAP", "1000"))  # resamples per interval
FAIRNESS_CI_LEVEL = 0.95
FAIRNESS_MAX_GROUPS = 20        # a column with more distinct values is not offered as a group attribute
FAIRNESS_MAX_IMAGES = int(os.environ.get("EMOLENS_FAIRNESS_MAX_IMAGES", "5000"))  # per uploaded audit set
# When the best detected face covers at least this share of the image, the image already is a face crop
# (like IMFDB's): classify it whole instead of cropping a margin that is not there.
FACE_CROP_MIN_AREA = 0.5


def reports_dir() -> Path:
    """Reports written by the `training/` CLIs and read by the pages (`weights/reports/`)."""
    return Path(os.environ.get("EMOLENS_REPORTS_DIR", weights_dir() / "reports"))


LABELS_CSV_MAX_BYTES = int(float(os.environ.get("EMOLENS_LABELS_CSV_MAX_MB", "20")) * 1024 * 1024)  # labelled sets
# With subjects, a gap is flagged only when each compared group has at least this many people: a bootstrap
# over fewer clusters gives intervals that are too narrow, and the gap may be about those individuals.
MIN_GROUP_SUBJECTS = int(os.environ.get("EMOLENS_MIN_GROUP_SUBJECTS", "10"))

# Live webcam and video files (core.live.tracking, the Live Webcam page, training.benchmark).
LIVE_DEFAULT_DETECTOR = os.environ.get("EMOLENS_LIVE_DETECTOR", "mediapipe")  # short-range BlazeFace: webcam distance
LIVE_DEFAULT_EMOTION_MODEL = os.environ.get("EMOLENS_LIVE_EMOTION_MODEL", "emotion_vgg_s")  # ~3 ms/face on ONNX
LIVE_DETECT_EVERY = int(os.environ.get("EMOLENS_LIVE_DETECT_EVERY", "3"))  # detector every k frames, tracking between
LIVE_DETECT_MAX_SIDE = int(os.environ.get("EMOLENS_LIVE_DETECT_MAX_SIDE", "320"))  # frames shrunk to this to detect
LIVE_CLASSIFY_EVERY = int(os.environ.get("EMOLENS_LIVE_CLASSIFY_EVERY", "1"))  # re-classify known faces every n
LIVE_SMOOTHING_S = float(os.environ.get("EMOLENS_LIVE_SMOOTHING_S", "0.5"))  # EMA time constant of a face's probs
LIVE_TRACK_IOU = 0.3            # a detection continues a track when their boxes overlap at least this much
LIVE_TRACK_MAX_MISSES = 2       # detector rounds a track survives unmatched (a blink of the detector)
LIVE_HISTORY_S = 10.0           # seconds kept for the running emotion-share chart (numbers only, no frames)
LIVE_READOUT_REFRESH_S = 1.0    # how often the page redraws the FPS/latency readout and the chart while streaming
LIVE_STATS_WINDOW = 30          # frames averaged for the FPS and per-stage latency readout
VIDEO_FORMATS = ("mp4", "webm", "avi")
VIDEO_MAX_UPLOAD_BYTES = int(float(os.environ.get("EMOLENS_VIDEO_MAX_UPLOAD_MB", "50")) * 1024 * 1024)
VIDEO_MAX_SECONDS = float(os.environ.get("EMOLENS_VIDEO_MAX_SECONDS", "120"))
VIDEO_MAX_MEGAPIXELS = float(os.environ.get("EMOLENS_VIDEO_MAX_MEGAPIXELS", "8.3"))  # 3840x2160


def ice_servers() -> list[dict]:
    """WebRTC ICE servers from EMOLENS_ICE_SERVERS, a JSON list in RTCConfiguration's `iceServers` shape,
    e.g. '[{"urls": ["stun:stun.example.org:3478"]}]'. Default []: localhost needs none, and no public
    STUN/TURN server is contacted unless a deployment names one."""
    import json

    raw = os.environ.get("EMOLENS_ICE_SERVERS", "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"EMOLENS_ICE_SERVERS is not valid JSON ({exc.msg}); expected a list like "
                         '[{"urls": ["stun:stun.example.org:3478"]}].') from None
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError('EMOLENS_ICE_SERVERS must be a JSON list of objects with "urls" '
                         '(and "username"/"credential" for TURN).')
    return servers
ANNOTATE_PAGE_SIZE = int(os.environ.get("EMOLENS_ANNOTATE_PAGE_SIZE", "12"))  # faces per page on Annotate
# Torch intra-op threads per API worker process (0 = torch's default, one per core). Throughput comes from
# gunicorn workers (one per core); more threads per worker oversubscribe the cores, and OpenMP's spin-waits
# then make one classification ~50x slower on a busy machine (measured: 4.5 s vs 0.05 s per face).
API_TORCH_THREADS = int(os.environ.get("EMOLENS_API_TORCH_THREADS", "1"))

# Batch at scale (core.batch.engine*, `python -m core batch`, training.benchmark_batch, the Batch Results page).
BATCH_SIZE = int(os.environ.get("EMOLENS_BATCH_SIZE", "16"))  # files per engine batch and per committed flush
BATCH_VIDEO_FPS = float(os.environ.get("EMOLENS_BATCH_VIDEO_FPS", "1"))  # frames sampled per second of video
BATCH_TORCH_THREADS = int(os.environ.get("EMOLENS_BATCH_TORCH_THREADS", "1"))  # per Ray actor: actors give parallelism
BATCH_MAX_PENDING_CROPS = 256   # face crops held before a classifier call (bounds memory on long videos)
RAY_OBJECT_STORE_MB = int(os.environ.get("EMOLENS_RAY_OBJECT_STORE_MB", "200"))  # local Ray: results only, no pixels
# The Batch Results page may read a results file by its path on the server (handy locally); a shared
# deployment sets this to 0 so visitors cannot read the server's files.
BATCH_RESULTS_SERVER_PATHS = os.environ.get("EMOLENS_BATCH_RESULTS_SERVER_PATHS", "1") == "1"
BATCH_RESULTS_MAX_BYTES = int(float(os.environ.get("EMOLENS_BATCH_RESULTS_MAX_MB", "200")) * 1024 * 1024)
