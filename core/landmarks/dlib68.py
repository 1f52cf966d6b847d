"""dlib's 68-point shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014).

The model file ships inside the `face-recognition-models` package (no download). It was trained on
iBUG 300-W, whose annotations are for non-commercial research only.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from core.detection import dlib_hog
from core.detection.base import Box
from core.landmarks.base import Landmarker, LandmarkerUnavailable, context_crop, to_image_coords

MODEL_FILE = "shape_predictor_68_face_landmarks.dat"


def model_path() -> Path | None:
    """Where face-recognition-models keeps the predictor, found without importing the package
    (its import pulls in the deprecated pkg_resources); None when the package is not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE


def install_hint() -> str | None:
    """The registry's check: None when dlib and its 68-point model are installed, else what to install."""
    path = model_path()
    if path is None or not path.is_file():
        return "dlib's 68-point model is missing (`pip install face-recognition-models==0.3.0`)."
    return dlib_hog.install_hint()


class Dlib68Landmarker(Landmarker):
    """68 iBUG points inside the detector's box. The predictor always answers (it has no notion of
    'no face'), so a wrong box gives wrong points rather than None.

    Faces are resampled so the box is at least `min_box` pixels: the trees were trained on faces of
    roughly 100-300 pixels, and upscaled 48-pixel faces land far closer to that than the raw pixels do.
    """

    name = "dlib68"
    num_points = 68

    def __init__(self, min_box: int = 160, max_box: int = 400, context: float = 0.25) -> None:
        hint = install_hint()
        if hint is not None:
            raise LandmarkerUnavailable(f"The dlib 68-point landmarker cannot run here: {hint}")
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(model_path()))
        self.min_box, self.max_box, self.context = min_box, max_box, context

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        if w < 2 or h < 2:
            return None
        grow = 1 + 2 * self.context
        side = max(w, h) * grow
        crop, x0, y0, scale = context_crop(image, box, self.context, int(self.min_box * grow),
                                           int(self.max_box * grow))
        if side * scale < 1:
            return None
        # The box (pixel-edge coordinates) inside the crop; dlib rectangles have inclusive integer corners.
        bx1, by1 = (x1 - x0) * scale, (y1 - y0) * scale
        bx2, by2 = (x2 - x0) * scale - 1, (y2 - y0) * scale - 1
        rect = self._dlib.rectangle(int(round(bx1)), int(round(by1)), int(round(bx2)), int(round(by2)))
        shape = self._predictor(crop, rect)
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=np.float64)
        return to_image_coords(pts, x0, y0, scale)
