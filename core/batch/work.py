"""The per-file work of a batch, shared by every engine: read, decode, detect, classify, flatten to rows.

Both engines call `process_batch` on lists of items, so they produce the same rows by construction; the
only difference is where it runs (this process, or one Ray actor per worker). Within a batch every frame
is detected first and all face crops are classified together (few large forward passes instead of many
small ones). Each stage is timed, so benchmarks can say where the time goes. Nothing here raises for a
bad file: its problem becomes an error row and the batch goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import settings
from core.analysis import ImageAnalysis, face_rows
from core.batch.inputs import BatchItem
from core.batch.schema import NO_FACE, VIDEO_TRUNCATED, batch_row
from core.detection import Detection
from core.emotion.classifier import EmotionClassifier
from core.errors import UserFacingError
from core.live.video_io import FrameSampler, VideoRejected
from core.pipeline import EmotionPipeline, FaceResult
from core.validation import ImageRejected, UnreadableFile, read_local_file, validate_image_bytes

log = logging.getLogger(__name__)


class AnalysisFailed(ImageRejected):
    """A file that passed validation but whose analysis failed (a bug or a resource failure, logged)."""

    code = "analysis_failed"

    def __init__(self, message: str = "The image passed validation but could not be analysed "
                                      "(an internal error).", code: str | None = None) -> None:
        super().__init__(message, code)


@dataclass(frozen=True)
class BatchConfig:
    """How to build the pipeline and cut the work; engines build the pipeline where they run."""

    detector: str | None = None
    threshold: float | None = None
    model: str | None = None
    fps: float = field(default_factory=lambda: settings.get().batch_video_fps)  # video frames sampled per second (0: every frame)
    batch_size: int = field(default_factory=lambda: settings.get().batch_size)  # files per batch: one classifier pass, one committed flush

    def make_pipeline(self) -> EmotionPipeline:
        return EmotionPipeline.create(self.detector, self.threshold, self.model)


@dataclass
class StageTimes:
    """Seconds spent per stage (decode: read + validate/decode image or video frames)."""

    decode: float = 0.0
    detect: float = 0.0
    classify: float = 0.0

    def add(self, other: "StageTimes") -> None:
        self.decode += other.decode
        self.detect += other.detect
        self.classify += other.classify

    def as_dict(self) -> dict[str, float]:
        return {"decode": self.decode, "detect": self.detect, "classify": self.classify}


@dataclass(frozen=True)
class FileResult:
    """What one file produced: its rows (one per face, or one error / no-face row) and its stage times."""

    name: str
    rows: list[dict[str, Any]]
    ok: bool
    faces: int
    times: StageTimes = field(default_factory=StageTimes)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "ok": self.ok, "faces": self.faces,
                "times": self.times.as_dict()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FileResult":
        return cls(d["name"], d["rows"], d["ok"], d["faces"], StageTimes(**d["times"]))


# ---- rows ------------------------------------------------------------------------------------------

def analysis_rows(analysis: ImageAnalysis, frame: int | None = None, t_s: float | None = None
                  ) -> list[dict[str, Any]]:
    """One batch row per face (a single row for an error or a faceless file): the per-face rows of
    `core.analysis` plus the frame and time of a video frame and the stable error code."""
    code = analysis.error_code if not analysis.ok else (None if analysis.faces else NO_FACE)
    video = {"frame": frame, "t_s": t_s} if analysis.faces else {}
    return [batch_row({**row, **video, "error_code": code}) for row in face_rows(analysis)]


def error_result(name: str, error: UserFacingError, times: StageTimes | None = None) -> FileResult:
    rows = analysis_rows(ImageAnalysis(file=name, error_code=error.code, error=error.message))
    return FileResult(name, rows, ok=False, faces=0, times=times or StageTimes())


# ---- reading and decoding --------------------------------------------------------------------------

def item_payload(item: BatchItem) -> bytes | ImageRejected:
    if item.error is not None:
        return item.error
    if item.data is not None:
        return item.data
    if item.path is not None:
        limit = settings.get().video_max_upload_bytes if item.is_video else settings.get().max_upload_bytes
        return read_local_file(item.path, limit, per="file")
    return UnreadableFile("No data for this file.")


# ---- the batch -------------------------------------------------------------------------------------

@dataclass
class _Frame:
    index: int | None
    t_s: float | None
    boxes: list[Detection]
    probs: list[np.ndarray] = field(default_factory=list)


@dataclass
class _FileWork:
    item: BatchItem
    frames: list[_Frame] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)
    error: UserFacingError | None = None
    truncated: bool = False  # a video with frames left past the length limit (counted by decoding, not its header)


class _CropQueue:
    """Face crops waiting for one batched classifier pass; probabilities go back to their frames."""

    def __init__(self, classifier: EmotionClassifier) -> None:
        self.classifier = classifier
        self.crops: list[np.ndarray] = []
        self.owners: list[tuple[_FileWork, _Frame]] = []

    def add(self, work: _FileWork, frame: _Frame, crop: np.ndarray) -> None:
        self.crops.append(crop)
        self.owners.append((work, frame))
        if len(self.crops) >= settings.get().batch_max_pending_crops:
            self.flush()

    def flush(self) -> None:
        if not self.crops:
            return
        t0 = time.perf_counter()
        try:
            probs = self.classifier.predict(self.crops)
        except Exception:  # one bad batch must not stop the run: its files get an error row
            log.exception("classification failed for %d faces", len(self.crops))
            for work, _ in self.owners:
                work.error = AnalysisFailed()
            probs = [None] * len(self.crops)
        spent = time.perf_counter() - t0
        for (work, frame), p in zip(self.owners, probs):
            frame.probs.append(p)
            work.times.classify += spent / len(self.crops)  # a batch's time, shared by its faces
        self.crops, self.owners = [], []


def _detect_frame(pipeline: EmotionPipeline, work: _FileWork, queue: _CropQueue, image: np.ndarray,
                  index: int | None, t_s: float | None) -> None:
    t0 = time.perf_counter()
    detections = pipeline.detector.detect(image)
    work.times.detect += time.perf_counter() - t0
    frame = _Frame(index, t_s, list(detections))
    work.frames.append(frame)
    for d in detections:
        queue.add(work, frame, pipeline.classifier.crop(image, d.box))


def _decode_and_detect(pipeline: EmotionPipeline, work: _FileWork, queue: _CropQueue, fps: float) -> None:
    """Fill `work.frames` (and the crop queue) for one file, or set `work.error`."""
    t0 = time.perf_counter()
    payload = item_payload(work.item)
    if isinstance(payload, ImageRejected):
        work.error = payload
        work.times.decode += time.perf_counter() - t0
        return
    if not work.item.is_video:
        try:
            image = validate_image_bytes(payload).image
        except ImageRejected as exc:
            work.error = exc
            return
        finally:
            work.times.decode += time.perf_counter() - t0
        _detect_frame(pipeline, work, queue, image, None, None)
        return
    try:
        sampler = FrameSampler(payload, fps=fps)
        frames = iter(sampler)
        while (frame := next(frames, None)) is not None:
            work.times.decode += time.perf_counter() - t0
            _detect_frame(pipeline, work, queue, frame.rgb, frame.index, round(frame.t_s, 3))  # t_s: ms
            t0 = time.perf_counter()
        work.truncated = sampler.truncated
    except VideoRejected as exc:
        work.error = exc
    finally:
        work.times.decode += time.perf_counter() - t0


def _file_result(work: _FileWork, classes: tuple[str, ...]) -> FileResult:
    name = work.item.name
    if work.error is not None:
        return error_result(name, work.error, work.times)
    rows: list[dict[str, Any]] = []
    faces = 0
    for frame in work.frames:
        results = [FaceResult(box=d.box, score=d.score, probs=p, classes=classes)
                   for d, p in zip(frame.boxes, frame.probs)]
        if results:
            faces += len(results)
            rows += analysis_rows(ImageAnalysis(file=name, faces=results), frame.index, frame.t_s)
    if not rows:  # no face in the image (or in any sampled frame of the video): one row says so
        rows = analysis_rows(ImageAnalysis(file=name))
    if work.truncated:  # one more row says the rest of the video was not read
        limit = settings.get().video_max_seconds
        rows.append(batch_row({"file": name, "error_code": VIDEO_TRUNCATED,
                               "error": f"Only the first {limit:g} s were analysed (the length limit); the rest of "
                                        "the video was not read."}))
    return FileResult(name, rows, ok=True, faces=faces, times=work.times)


def process_batch(pipeline: EmotionPipeline, items: list[BatchItem], config: BatchConfig | None = None
                  ) -> list[FileResult]:
    """All the work for a list of files: the unit an engine distributes. Never raises for a bad file."""
    config = config or BatchConfig()
    files = [_FileWork(item) for item in items]
    queue = _CropQueue(pipeline.classifier)
    for work in files:
        try:
            _decode_and_detect(pipeline, work, queue, config.fps)
        except Exception:  # a bug or native failure on one file is logged without its content
            log.exception("analysis failed on %s", "a video" if work.item.is_video else "an image")
            work.error = AnalysisFailed()
    queue.flush()
    classes = tuple(pipeline.classifier.classes)
    return [_file_result(work, classes) for work in files]

