"""The live frame-by-frame analyzer (`LiveAnalyzer`): the detector runs every k frames on a downscaled copy; between detections each face's
box follows Lucas-Kanade optical flow, and detections are joined to tracks by IoU (Hungarian matching).
All faces of a frame are classified in one batch, and each track's probabilities are smoothed with an
exponential moving average whose time constant is in seconds (frame rate independent), so labels do not
flicker. Every stage is timed. The WebRTC callback processes only the newest frame and drops stale ones
instead of queueing them, so latency stays bounded when the CPU is busy.

No frame is stored anywhere: only boxes, probabilities and timings are kept.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar, Sequence

import cv2
import numpy as np
import pandas as pd

from core import settings
from core.detection import Detection, FaceDetector
from core.detection.base import box_iou
from core.emotion.classifier import EmotionClassifier
from core.landmarks.base import Landmarker
from core.pipeline import FaceResult
from core.render import render

if TYPE_CHECKING:
    import av  # streamlit-webrtc's frames; imported where the callbacks run


@dataclass
class StageTimings:
    """Milliseconds spent per stage on one frame (0 where a stage did not run on that frame)."""

    convert_in: float = 0.0   # WebRTC frame (YUV) -> RGB array
    detect: float = 0.0       # downscale + detector; only on detection frames
    track: float = 0.0        # optical flow between frames + IoU association
    classify: float = 0.0     # crops + one batched forward pass for all faces
    landmarks: float = 0.0    # optional landmarker
    render: float = 0.0       # boxes, labels, readout
    convert_out: float = 0.0  # RGB array -> WebRTC frame
    total: float = 0.0

    STAGES: ClassVar[tuple[str, ...]] = ("convert_in", "detect", "track", "classify", "landmarks", "render",
                                         "convert_out")


@dataclass
class LiveConfig:
    """Speed/stability knobs of the live pipeline (defaults from core.settings)."""

    detect_every: int = field(default_factory=lambda: settings.get().live_detect_every)
    detect_max_side: int = field(default_factory=lambda: settings.get().live_detect_max_side)  # 0: detect at full size
    classify_every: int = field(default_factory=lambda: settings.get().live_classify_every)    # re-classify tracked faces every n frames
    smoothing_s: float = field(default_factory=lambda: settings.get().live_smoothing_s)        # EMA time constant; 0: no smoothing
    iou_match: float = field(default_factory=lambda: settings.get().live_track_iou)
    max_misses: int = field(default_factory=lambda: settings.get().live_track_max_misses)
    landmarks: bool = False                               # draw landmarks (detector keypoints or landmarker)
    readout: bool = True                                  # FPS/latency text in the frame corner
    history_s: float = field(default_factory=lambda: settings.get().live_history_s)


@dataclass(kw_only=True)
class LiveFace(FaceResult):
    """One tracked face on one frame: a `FaceResult` whose `probs` are smoothed over time (so labels do not
    flicker), plus its track and that frame's own (raw) probabilities, in the classifier's class order."""

    track_id: int
    raw_probs: np.ndarray


@dataclass
class LiveFrame:
    """What the pipeline made of one frame."""

    index: int
    time_s: float
    detected: bool
    faces: list[LiveFace]
    timings: StageTimings


@dataclass
class LiveStats:
    """A consistent snapshot for the page: rates, mean stage latencies over the last frames, recent shares."""

    frames: int
    dropped: int
    fps: float
    timings_ms: dict[str, float]
    faces: list[LiveFace]
    history: pd.DataFrame  # columns: time_s (seconds before now, <= 0), emotion, share


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # (4,) float, full-frame pixels
    score: float
    keypoints: np.ndarray | None
    probs: np.ndarray | None = None
    raw: np.ndarray | None = None
    last_t: float = 0.0
    misses: int = 0


class IoUTracker:
    """Keeps face identities across detector rounds: optimal IoU matching, new tracks for new faces,
    and a track ends after `max_misses` rounds without a detection."""

    def __init__(self, iou_match: float | None = None, max_misses: int | None = None) -> None:
        config = settings.get()
        self.iou_match = config.live_track_iou if iou_match is None else iou_match
        self.max_misses = config.live_track_max_misses if max_misses is None else max_misses
        self.tracks: list[_Track] = []
        self._next_id = 1

    def update(self, detections: Sequence[Detection]) -> list[_Track]:
        from scipy.optimize import linear_sum_assignment

        matched_t: set[int] = set()
        matched_d: set[int] = set()
        if self.tracks and detections:
            iou = box_iou(np.stack([t.box for t in self.tracks]), np.array([d.box for d in detections]))
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.iou_match:
                    track, det = self.tracks[r], detections[c]
                    track.box, track.score, track.keypoints, track.misses = (
                        np.asarray(det.box, float), det.score, det.keypoints, 0)
                    matched_t.add(r)
                    matched_d.add(c)
        for i, track in enumerate(self.tracks):
            if i not in matched_t:
                track.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        for j, det in enumerate(detections):
            if j not in matched_d:
                self.tracks.append(_Track(self._next_id, np.asarray(det.box, float), det.score, det.keypoints))
                self._next_id += 1
        return self.tracks


def _flow_shifts(prev: np.ndarray, grey: np.ndarray, boxes: list[np.ndarray], grid: int = 5
                 ) -> list[np.ndarray | None]:
    """Median Lucas-Kanade motion (dx, dy) of a point grid inside each box (small-image pixels); None where
    too few points were followed."""
    pts, owner = [], []
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        mx, my = 0.2 * (x2 - x1), 0.2 * (y2 - y1)  # the inner face, away from background edges
        xs, ys = np.linspace(x1 + mx, x2 - mx, grid), np.linspace(y1 + my, y2 - my, grid)
        g = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        pts.append(g)
        owner += [k] * len(g)
    if not pts:
        return []
    p0 = np.concatenate(pts).astype(np.float32).reshape(-1, 1, 2)
    p1, status, _ = cv2.calcOpticalFlowPyrLK(prev, grey, p0, None, winSize=(15, 15), maxLevel=2)
    ok = status.ravel() == 1
    owner_arr = np.array(owner)
    moves = (p1 - p0).reshape(-1, 2)
    out: list[np.ndarray | None] = []
    for k in range(len(boxes)):
        sel = ok & (owner_arr == k)
        out.append(np.median(moves[sel], axis=0) if sel.sum() >= grid else None)
    return out


class LiveAnalyzer:
    """Frame-by-frame emotion analysis for one video stream (one instance per stream: it holds tracks).

    Thread-safe: frames are processed one at a time under a lock, and `snapshot()` may be called from any
    thread (the page's periodic readout) while frames are being processed.
    """

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, config: LiveConfig | None = None,
                 landmarker: Landmarker | None = None) -> None:
        self.detector, self.classifier = detector, classifier
        self.config = config or LiveConfig()
        self.landmarker = landmarker
        self.tracker = IoUTracker(self.config.iou_match, self.config.max_misses)
        self._lock = threading.Lock()        # processing: tracks and the previous frame
        self._stats_lock = threading.Lock()  # counters and history, read by snapshot()
        self._prev_grey: np.ndarray | None = None
        self._since_detect = 0
        self._index = 0
        self._frames = self._dropped = 0
        self._done: deque[float] = deque(maxlen=settings.get().live_stats_window)
        self._timings: deque[StageTimings] = deque(maxlen=settings.get().live_stats_window)
        self._history: deque[tuple[float, tuple[str, ...]]] = deque()
        self._faces: list[LiveFace] = []
        self.last_frame: LiveFrame | None = None  # the latest recorded frame's results (no pixels)

    # -- analysis -------------------------------------------------------------------------------------
    def process(self, rgb: np.ndarray, t: float | None = None, timings: StageTimings | None = None) -> LiveFrame:
        """Detect or track, classify and smooth the faces of one RGB uint8 frame taken at `t` seconds."""
        timings = timings or StageTimings()
        t = time.monotonic() if t is None else float(t)
        with self._lock:
            frame = self._process(rgb, t, timings)
        return frame

    def _process(self, rgb: np.ndarray, t: float, timings: StageTimings) -> LiveFrame:
        cfg = self.config
        h, w = rgb.shape[:2]
        t0 = time.perf_counter()
        scale = min(1.0, cfg.detect_max_side / max(h, w)) if cfg.detect_max_side else 1.0
        small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                                    interpolation=cv2.INTER_AREA)
        scale = small.shape[1] / w  # the exact factor after rounding to whole pixels
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        detect_now = not self.tracker.tracks or self._since_detect + 1 >= max(1, cfg.detect_every)
        if detect_now:
            dets = [Detection(tuple(float(v) / scale for v in d.box), d.score,  # type: ignore[arg-type]
                              None if d.keypoints is None else d.keypoints / scale)
                    for d in self.detector.detect(small)]
            t1 = time.perf_counter()
            timings.detect = (t1 - t0) * 1000
            self.tracker.update(dets)
            self._since_detect = 0
            timings.track = (time.perf_counter() - t1) * 1000
        else:
            self._since_detect += 1
            tracks = self.tracker.tracks
            if self._prev_grey is not None and self._prev_grey.shape == grey.shape:
                shifts = _flow_shifts(self._prev_grey, grey, [tr.box * scale for tr in tracks])
                for tr, d in zip(tracks, shifts):
                    if d is not None:
                        move = np.asarray(d, float) / scale
                        tr.box = tr.box + np.array([move[0], move[1], move[0], move[1]])
                        if tr.keypoints is not None:
                            tr.keypoints = tr.keypoints + move.astype(np.float32)
            timings.track = (time.perf_counter() - t0) * 1000
        self._prev_grey = grey

        tracks = [tr for tr in self.tracker.tracks if self._box_ok(tr.box, w, h)]
        # New faces are classified at once; known ones every `classify_every` frames (EMA bridges the gap).
        due = [tr for tr in tracks if tr.probs is None or self._index % max(1, cfg.classify_every) == 0]
        faces: list[LiveFace] = []
        if due:
            t2 = time.perf_counter()
            probs = self.classifier.predict([self.classifier.crop(rgb, tuple(tr.box)) for tr in due])
            for tr, p in zip(due, probs):
                tr.probs = p if tr.probs is None else self._smooth(tr.probs, p, t - tr.last_t)
                tr.raw, tr.last_t = p, t
            timings.classify = (time.perf_counter() - t2) * 1000
        if tracks:
            t3 = time.perf_counter()
            for tr in tracks:
                points = tr.keypoints
                if cfg.landmarks and self.landmarker is not None:
                    points = self.landmarker.landmarks(rgb, tuple(tr.box))
                box = tuple(float(v) for v in tr.box)
                faces.append(LiveFace(track_id=tr.track_id, box=box, score=tr.score,  # type: ignore[arg-type]
                                      probs=tr.probs, raw_probs=tr.raw,  # type: ignore[arg-type]
                                      classes=self.classifier.classes, landmarks=points if cfg.landmarks else None))
            if cfg.landmarks and self.landmarker is not None:
                timings.landmarks = (time.perf_counter() - t3) * 1000
        frame = LiveFrame(self._index, t, detect_now, sorted(faces, key=lambda f: f.track_id), timings)
        self._index += 1
        return frame

    def _smooth(self, old: np.ndarray, new: np.ndarray, dt: float) -> np.ndarray:
        tau = self.config.smoothing_s
        alpha = 1.0 if tau <= 0 else 1.0 - math.exp(-max(dt, 0.0) / tau)
        out = (1 - alpha) * old + alpha * new
        return (out / out.sum()).astype(np.float32)

    @staticmethod
    def _box_ok(box: np.ndarray, w: int, h: int) -> bool:
        """A tracked box that drifted (mostly) out of the frame is not classified."""
        x1, y1, x2, y2 = box
        return min(x2, w) - max(x1, 0) >= 4 and min(y2, h) - max(y1, 0) >= 4

    # -- drawing and the WebRTC callbacks ---------------------------------------------------------------
    def annotate(self, rgb: np.ndarray, frame: LiveFrame) -> np.ndarray:
        """Boxes, labels (and landmarks) for `frame` drawn on a copy of `rgb`; adds the render time."""
        t0 = time.perf_counter()
        out = render(rgb, frame.faces, show_landmarks=self.config.landmarks)
        if self.config.readout:
            fps, total = self._rate(), self._mean_total()
            text = f"{fps:4.1f} FPS  {total:4.1f} ms" if total else "measuring..."
            cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        frame.timings.render = (time.perf_counter() - t0) * 1000
        return out

    def frame_callback(self, frame: av.VideoFrame) -> av.VideoFrame:
        """streamlit-webrtc `video_frame_callback`: av.VideoFrame in, annotated av.VideoFrame out."""
        import av

        timings = StageTimings()
        t0 = time.perf_counter()
        rgb = frame.to_ndarray(format="rgb24")
        timings.convert_in = (time.perf_counter() - t0) * 1000
        live = self.process(rgb, frame.time, timings)
        annotated = self.annotate(rgb, live)
        t1 = time.perf_counter()
        out = av.VideoFrame.from_ndarray(annotated, format="rgb24")
        timings.convert_out = (time.perf_counter() - t1) * 1000
        timings.total = (time.perf_counter() - t0) * 1000
        self._record(live)
        return out

    async def queued_frames_callback(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        """streamlit-webrtc `queued_video_frames_callback`: frames that queued up while the previous one
        was processed are stale; only the newest is analysed, the rest are dropped (and counted)."""
        with self._stats_lock:
            self._dropped += len(frames) - 1
        return [self.frame_callback(frames[-1])]

    # -- statistics -------------------------------------------------------------------------------------
    def _record(self, frame: LiveFrame) -> None:
        now = time.monotonic()
        with self._stats_lock:
            self._frames += 1
            self._done.append(now)
            self._timings.append(frame.timings)
            self._faces = frame.faces
            self.last_frame = frame
            self._history.append((now, tuple(f.label for f in frame.faces)))
            while self._history and now - self._history[0][0] > self.config.history_s:
                self._history.popleft()

    def _rate(self) -> float:
        done = list(self._done)
        return (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else 0.0

    def _mean_total(self) -> float:
        timings = list(self._timings)
        return float(np.mean([t.total for t in timings])) if timings else 0.0

    def snapshot(self, bin_s: float = 0.5) -> LiveStats:
        """Processed frames, dropped frames, processed FPS, mean ms per stage over the last frames, the current
        faces, and the share of each emotion among faces seen per `bin_s` over the last `history_s`."""
        with self._stats_lock:
            timings = list(self._timings)
            history = list(self._history)
            stats = LiveStats(self._frames, self._dropped, self._rate(), {}, list(self._faces), pd.DataFrame())
        names = [f.name for f in fields(StageTimings)]
        stats.timings_ms = {n: float(np.mean([getattr(t, n) for t in timings])) if timings else 0.0 for n in names}
        rows = []
        if history:
            now = time.monotonic()
            classes = self.classifier.classes
            bins: dict[float, list[str]] = {}
            for t, labels in history:
                bins.setdefault(round((now - t) // bin_s * bin_s, 3), []).extend(labels)
            for ago, labels in sorted(bins.items()):
                for c in classes:
                    rows.append({"time_s": -ago, "emotion": c,
                                 "share": labels.count(c) / len(labels) if labels else 0.0})
        stats.history = pd.DataFrame(rows, columns=["time_s", "emotion", "share"])
        return stats
