"""Draw results on the image: a box, the emotion and its confidence per face (OpenCV's built-in font)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from core.pipeline import FaceResult

# One colour per emotion (RGB), chosen to stay distinguishable for common colour-vision deficiencies.
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (213, 94, 0),
    "disgust": (0, 158, 115),
    "fear": (204, 121, 167),
    "happy": (240, 228, 66),
    "sad": (0, 114, 178),
    "surprise": (230, 159, 0),
    "neutral": (190, 190, 190),
}


def render(image: np.ndarray, faces: Sequence[FaceResult], show_landmarks: bool = True) -> np.ndarray:
    """Return a copy of the RGB image with every face annotated; labels scale with the image."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.4, min(h, w) / 900)
    thickness = max(1, int(round(2 * scale)))
    for i, face in enumerate(faces, start=1):
        color = EMOTION_COLORS.get(face.label, (255, 255, 255))
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness + 1)
        text = f"#{i} {face.label} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(h - 1, y2 + th + base + 4)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), color, -1)
        text_color = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        cv2.putText(out, text, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, text_color,
                    thickness, cv2.LINE_AA)
        if show_landmarks and face.landmarks is not None:
            radius = max(1, thickness)
            for px, py in np.asarray(face.landmarks).reshape(-1, 2):
                cv2.circle(out, (int(px), int(py)), radius, (0, 255, 255), -1, cv2.LINE_AA)
    return out


def encode_png(image: np.ndarray) -> bytes:
    """RGB uint8 -> PNG bytes (for downloads), in memory only."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
