"""Draw landmark sets on a copy of the image, one colour per set, sizes scaled to the image."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from core.detection.base import Box

# Colour-blind-safe pair (Okabe-Ito): MediaPipe blue / sky blue, dlib vermillion.
COLORS: dict[str, tuple[int, int, int]] = {
    "mediapipe_mesh": (86, 180, 233), "mediapipe_mesh_68": (0, 114, 178), "dlib68": (213, 94, 0),
}


def draw_landmarks(image: np.ndarray, point_sets: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
                   boxes: Sequence[Box] = (), radius: float | None = None) -> np.ndarray:
    """RGB copy with every (points, colour) set drawn as dots and every box as a thin white frame."""
    out = image.copy()
    h, w = out.shape[:2]
    r = max(1, int(round(radius if radius is not None else min(h, w) / 300)))
    for i, (x1, y1, x2, y2) in enumerate(boxes, start=1):
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), (255, 255, 255), max(1, r // 2))
        cv2.putText(out, f"#{i}", (int(x1) + 2, max(12, int(y1) - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.4, r / 3), (255, 255, 255), max(1, r // 2), cv2.LINE_AA)
    for points, color in point_sets:
        for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(out, (int(round(x)), int(round(y))), r, color, -1, cv2.LINE_AA)
    return out
