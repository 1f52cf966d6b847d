"""A whole video file through the live analyzer: one row per tracked face and analysed frame, in memory."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from core import settings
from core.live.tracking import LiveAnalyzer, LiveFrame
from core.live.video_io import ASSUMED_FPS, FrameSampler, VideoInfo


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
    sampler = FrameSampler(data, stride=stride)
    info = sampler.info
    notes = [] if info.fps else [f"The video does not state its frame rate; {ASSUMED_FPS:g} fps was assumed for times."]
    total = min(info.frames, sampler.max_frames) if info.frames else sampler.max_frames
    every = max(1, total // 50)
    frames: list[LiveFrame] = []
    start = time.perf_counter()
    reported = 0
    for sample in sampler:
        frame = analyzer.process(sample.rgb, t=sample.t_s)
        frame.index = sample.index
        frames.append(frame)
        if progress and sampler.position // every > reported:
            reported = sampler.position // every
            progress(min(1.0, sampler.position / total), f"Frame {sampler.position} of {total if info.frames else '?'}")
    if sampler.truncated:
        notes.append(f"Only the first {settings.get().video_max_seconds:.0f} s were analysed (the limit).")
    if progress:
        progress(1.0, f"Analysed {len(frames)} frames")
    return VideoAnalysis(name, info, frames, analyzer.classifier.classes, time.perf_counter() - start, notes)
