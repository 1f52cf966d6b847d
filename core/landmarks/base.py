"""The landmarker interface every backend implements, and the crop helper they share."""
from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np

from core.detection.base import Box
from core.errors import UserFacingError
from core.landmarks.mapping import to_68


class LandmarkerUnavailable(UserFacingError):
    """A landmarker whose package or model file is not installed: the message says what to install."""

    code = "landmarker_unavailable"


class Landmarker(ABC):
    """Face points for one detected face: `landmarks(image, box)` -> (K, 2) float pixels, or None.

    `image` is RGB uint8 (H, W, 3); `box` is the detector's (x1, y1, x2, y2). Points use the pixel-centre
    convention of 300-W (pixel (0, 0)'s centre is (0.0, 0.0)). None means the backend found no face there.
    """

    name: str = "landmarker"
    num_points: int = 0

    @abstractmethod
    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        """Backend-specific points for the face in `box`."""

    def landmarks68(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        """The same face in the iBUG 68-point scheme (mapped for backends with other schemes)."""
        return to_68(self.landmarks(image, box))


def context_crop(image: np.ndarray, box: Box, context: float, min_side: int, max_side: int
                 ) -> tuple[np.ndarray, float, float, float]:
    """Square crop around `box` grown by `context` of its size per side, resized into [min_side, max_side].

    Returns (crop, x0, y0, scale): a crop pixel (u, v) is image pixel (u / scale + x0, v / scale + y0),
    in the pixel-centre convention. Outside the image is padded black so the face keeps its place.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * context)
    left = int(round((x1 + x2) / 2 - side / 2))
    top = int(round((y1 + y2) / 2 - side / 2))
    size = max(1, int(round(side)))
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + size - w, top + size - h)
    src = image
    if pad:
        src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    crop = src[top + pad:top + pad + size, left + pad:left + pad + size]
    target = int(min(max(size, min_side), max_side))
    scale = target / size
    if target != size:
        crop = cv2.resize(crop, (target, target),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop), float(left), float(top), float(scale)


def to_image_coords(points: np.ndarray, x0: float, y0: float, scale: float) -> np.ndarray:
    """Undo `context_crop` (pixel-centre convention on both sides)."""
    out = (np.asarray(points, dtype=np.float64) + 0.5) / scale - 0.5
    out[:, 0] += x0
    out[:, 1] += y0
    return out.astype(np.float32)
