"""Reading video in memory: open uploaded bytes with OpenCV's FFmpeg backend (no temporary file), check the
limits in `core.settings`, refuse what cannot be read with a plain `VideoRejected` message, and sample
frames (`FrameSampler`).

Shared by the Live Webcam page's video-file analysis (every n-th frame) and by batch (n frames per second),
so both read, skip, time and cut videos the same way.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from core import settings
from core.errors import UserFacingError


class VideoRejected(UserFacingError):
    """A video we will not analyse, with a message for people (no traceback); `code` says which limit."""

    code = "corrupt_video"


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int        # as the container reports it (may be 0 when unknown)
    duration_s: float  # 0 when unknown

    def describe(self) -> str:
        length = f"{self.duration_s:.1f} s" if self.duration_s else "unknown length"
        return f"{self.width}×{self.height}, {self.fps:.1f} fps, {length}"


class MemoryVideo:
    """An OpenCV capture reading video bytes from memory (FFmpeg reads a BytesIO: no temporary file).

    OpenCV does not keep a reference to the stream it reads, and releasing a capture whose stream was freed
    crashes the process, so this object owns both and releases them together.
    """

    def __init__(self, data: bytes) -> None:
        self._stream: io.BytesIO | None = io.BytesIO(data)
        self.cap = cv2.VideoCapture(self._stream, cv2.CAP_FFMPEG, [])

    def release(self) -> None:
        self.cap.release()
        self._stream = None


def open_video(data: bytes) -> tuple[MemoryVideo, VideoInfo]:
    """Open video bytes in memory and check the limits in core.settings; the caller releases the video.
    Raises VideoRejected with a plain message."""
    if not data:
        raise VideoRejected("The file is empty.", code="empty_file")
    if len(data) > settings.get().video_max_upload_bytes:
        raise VideoRejected(f"The video is {len(data) / 2**20:.1f} MB; the limit is "
                            f"{settings.get().video_max_upload_bytes / 2**20:.0f} MB.", code="file_too_large")
    video = MemoryVideo(data)
    cap = video.cap
    if not cap.isOpened():
        video.release()
        raise VideoRejected("This file is not a video that can be read (mp4, webm or avi), "
                            "or it is damaged.", code="corrupt_video")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 0 < fps < 1000 else 0.0
    frames = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    info = VideoInfo(w, h, fps, frames, frames / fps if fps and frames else 0.0)
    problem = None
    if w <= 0 or h <= 0:
        problem = VideoRejected("The video has no readable picture track.", code="corrupt_video")
    elif w * h > settings.get().video_max_megapixels * 1e6:
        problem = VideoRejected(f"The video is {w}×{h}; the limit is "
                                f"{settings.get().video_max_megapixels:g} megapixels per frame.", code="too_many_pixels")
    elif info.duration_s > settings.get().video_max_seconds:
        problem = VideoRejected(f"The video lasts {info.duration_s:.0f} s; the limit is "
                                f"{settings.get().video_max_seconds:.0f} s. Trim it and upload again.", code="too_long")
    if problem:
        video.release()
        raise problem
    return video, info


ASSUMED_FPS = 25.0  # for times, when the container does not state its frame rate


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame: its position in the video, its time (index / frame rate) and its RGB pixels."""

    index: int
    t_s: float
    rgb: np.ndarray = field(repr=False, compare=False)


class FrameSampler:
    """The sampled frames of video bytes, decoded in memory within the limits of `open_video` (which runs
    here, so a refused video raises `VideoRejected` at construction).

    Either every `stride`-th frame, or with `fps` > 0 about `fps` frames per second of video (every frame when
    the video has fewer). Frames between samples are grabbed, not decoded to pixels; a sample that fails to
    decode is skipped. Reading stops at `settings.video_max_seconds` (`truncated` then says whether frames
    were left); `position` counts the frames passed so far, for progress. Iterate once; iterating releases
    the video, and raises `VideoRejected` (code `no_frames`) when no frame at all could be decoded.
    """

    def __init__(self, data: bytes, stride: int = 1, fps: float = 0.0) -> None:
        if fps > 0 and stride != 1:
            raise ValueError("Give a stride or a frame rate to sample at, not both.")
        self.video, self.info = open_video(data)
        self.rate = self.info.fps or ASSUMED_FPS
        if fps > 0:
            self.step = 1.0 if fps >= self.rate else self.rate / fps
        else:
            self.step = float(max(1, int(stride)))
        self.max_frames = int(settings.get().video_max_seconds * self.rate)
        self.position = 0
        self.truncated = False

    def __iter__(self) -> Iterator[VideoFrame]:
        cap, next_pick, found = self.video.cap, 0.0, 0
        try:
            while self.position < self.max_frames and cap.grab():
                index = self.position
                self.position += 1
                if index < int(next_pick + 0.5):
                    continue
                next_pick += self.step
                ok, bgr = cap.retrieve()
                if ok:
                    found += 1
                    yield VideoFrame(index, index / self.rate, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            self.truncated = self.position >= self.max_frames and cap.grab()
        finally:
            self.video.release()
        if not found:
            raise VideoRejected("No frame of this video could be decoded.", code="no_frames")
