"""A whole video file through the live analyzer: one row per tracked face and analysed frame, in memory."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import pandas as pd

from core import settings
from core.live.tracking import LiveAnalyzer, LiveFrame
from core.live.video_io import VideoInfo, VideoRejected, open_video


@dataclass
class VideoAnalysis:
    """Per analysed frame, the tracked faces; `table()` gives one row per face and frame."""

    name: str
    info: VideoInfo
    frames: list[LiveFrame]
    classes: tuple[str, ...]
    seconds: float           # wall time of the analysis
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Columns: frame, time_s, face (track id), box, detector score, smoothed emotion and confidence,
        p_<emotion> (smoothed) and raw_<emotion> (that frame alone)."""
        cols = (["frame", "time_s", "face", "x1", "y1", "x2", "y2", "score", "emotion", "confidence"]
                + [f"p_{c}" for c in self.classes] + [f"raw_{c}" for c in self.classes])
        rows = []
        for fr in self.frames:
            for f in fr.faces:
                rows.append([fr.index, round(fr.time_s, 4), f.track_id, *(round(v, 1) for v in f.box),
                             round(f.score, 4), f.label, round(f.confidence, 4),
                             *(round(float(p), 4) for p in f.probs), *(round(float(p), 4) for p in f.raw_probs)])
        return pd.DataFrame(rows, columns=cols)

    def to_csv(self) -> bytes:
        return self.table().to_csv(index=False).encode()


def analyze_video(data: bytes, analyzer: LiveAnalyzer, name: str = "video", stride: int = 1,
                  progress: Callable[[float, str], None] | None = None) -> VideoAnalysis:
    """Analyse every `stride`-th frame of a video (bytes) with `analyzer`, in memory.

    `progress(fraction, text)` is called about every 2% of the video. Videos whose length the container
    does not tell are cut at VIDEO_MAX_SECONDS, with a note.
    """
    video, info = open_video(data)
    cap = video.cap
    stride = max(1, int(stride))
    fps = info.fps or 25.0
    notes = [] if info.fps else ["The video does not state its frame rate; 25 fps was assumed for times."]
    max_frames = int(settings.get().video_max_seconds * fps)
    total = min(info.frames, max_frames) if info.frames else max_frames
    every = max(1, total // 50)
    frames: list[LiveFrame] = []
    start = time.perf_counter()
    index = 0
    try:
        while index < max_frames:
            if index % stride:
                if not cap.grab():
                    break
            else:
                ok, bgr = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                frame = analyzer.process(rgb, t=index / fps)
                frame.index = index
                frames.append(frame)
            index += 1
            if progress and index % every == 0:
                progress(min(1.0, index / total), f"Frame {index} of {total if info.frames else '?'}")
        else:
            if cap.grab():
                notes.append(f"Only the first {settings.get().video_max_seconds:.0f} s were analysed (the limit).")
    finally:
        video.release()
    if not frames:
        raise VideoRejected("No frame of this video could be decoded.", code="no_frames")
    if progress:
        progress(1.0, f"Analysed {len(frames)} frames")
    return VideoAnalysis(name, info, frames, analyzer.classifier.classes, time.perf_counter() - start, notes)
