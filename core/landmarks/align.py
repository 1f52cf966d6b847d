"""Face alignment from landmarks: eyes level, a fixed inter-ocular distance, FER-2013's framing.

The classifier learned on FER-2013 faces, so an aligned crop should look like one: `FER_TEMPLATES` say
where FER-2013's eyes sit in its 48x48 frame as each landmarker sees them (medians over Training faces;
`python -m training.landmark_emotion_study` re-measures them and records the values beside the ones used).
Landmarkers disagree slightly on where an "eye centre" is (dlib's eye contours are tighter than the
mesh's), so each one gets its own template; otherwise dlib-aligned faces come out ~6% too large. The unaligned path, `EmotionClassifier.crop` with the model
card's margin, aims at the same framing from a detector box; alignment additionally removes roll and
scale differences, which the box cannot see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from core.landmarks.mapping import LEFT_EYE, RIGHT_EYE, to_68


@dataclass(frozen=True)
class AlignTemplate:
    """Where the eye centres go, as fractions of the output side (pixel-edge convention, 0..1)."""

    eye_x: float  # midpoint between the eyes, horizontally (0.5 = centred)
    eye_y: float  # midpoint between the eyes, vertically
    iod: float    # distance between the eye centres


# Medians over the same 2,000 random FER-2013 Training faces (seed 0), per landmarker. Eye midpoint x was
# measured at 0.5004 (MediaPipe; 22 faces without a mesh) and 0.5018 (dlib) and is set to 0.5 by symmetry.
FER_TEMPLATES: dict[str, AlignTemplate] = {
    "mediapipe_mesh": AlignTemplate(eye_x=0.5, eye_y=0.3894, iod=0.3723),
    "dlib68": AlignTemplate(eye_x=0.5, eye_y=0.3881, iod=0.3513),
}
# The default, also used for points of unknown origin such as BlazeFace's eye keypoints (not measured).
FER_TEMPLATE = FER_TEMPLATES["mediapipe_mesh"]


def template_for(source: str | None) -> AlignTemplate:
    """The FER template measured with landmarker `source` (registry name), else the default."""
    return FER_TEMPLATES.get(source or "", FER_TEMPLATE)


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye, subject's left eye) centres from 68-point, mesh (468/478) or BlazeFace (6) points.

    68/mesh: the mean of each eye's six contour points (mesh points go through the 68 mapping, so both
    landmarkers define "eye centre" the same way). BlazeFace keypoints 0 and 1 are the eyes themselves.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise ValueError(f"expected (K, 2) points, got {pts.shape}")
    if pts.shape[0] == 6:
        return pts[0, :2], pts[1, :2]
    pts68 = to_68(pts[:, :2]) if pts.shape[0] in (68, 468, 478) else None
    if pts68 is None:
        raise ValueError(f"cannot find the eyes in a {pts.shape[0]}-point set (want 68, 468, 478 or 6)")
    pts68 = np.asarray(pts68, dtype=np.float64)
    return pts68[list(RIGHT_EYE)].mean(axis=0), pts68[list(LEFT_EYE)].mean(axis=0)


def alignment_matrix(right_eye: np.ndarray, left_eye: np.ndarray, size: int,
                     template: AlignTemplate = FER_TEMPLATE) -> np.ndarray:
    """2x3 similarity transform (rotation, uniform scale, shift) taking the eyes to the template.

    The subject's right eye lands on the image's left, as in an upright, unmirrored photo.
    """
    re, le = np.asarray(right_eye, dtype=np.float64), np.asarray(left_eye, dtype=np.float64)
    d = le - re
    dist = float(np.hypot(*d))
    if dist <= 0:
        raise ValueError("the two eye centres coincide")
    scale = template.iod * size / dist
    cos, sin = d[0] / dist * scale, d[1] / dist * scale
    mid = (re + le) / 2
    target = np.array([template.eye_x * size - 0.5, template.eye_y * size - 0.5])  # pixel centres
    rot = np.array([[cos, sin], [-sin, cos]])
    return np.hstack([rot, (target - rot @ mid)[:, None]])


def align_face(image: np.ndarray, points: np.ndarray | None, size: int | None = None,
               template: AlignTemplate = FER_TEMPLATE, min_iod: float = 4.0) -> np.ndarray | None:
    """Aligned square face crop, or None when the points cannot define one (missing, eyes < `min_iod` px).

    `size` defaults to the face's own resolution (no up- or down-sampling beyond the rotation); the
    classifier resizes to its input size either way. Borders replicate the edge, as in `crop_face`.
    """
    if points is None:
        return None
    try:
        re, le = eye_centres(points)
    except ValueError:
        return None
    dist = float(np.hypot(*(le - re)))
    if not np.isfinite(dist) or dist < min_iod:
        return None
    side = int(size or max(8, min(2048, round(dist / template.iod))))
    m = alignment_matrix(re, le, side, template)
    return cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def template_from_eyes(eyes: Iterable[tuple[np.ndarray, np.ndarray]], side: float) -> AlignTemplate:
    """The median eye layout of faces of one framing (e.g. FER-2013's 48x48), eyes in pixel-centre coords."""
    arr = np.array([[*re, *le] for re, le in eyes], dtype=np.float64)
    if len(arr) == 0:
        raise ValueError("no eye pairs to measure")
    mid = (arr[:, :2] + arr[:, 2:]) / 2 + 0.5  # to pixel-edge coordinates
    iod = np.hypot(arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1])
    return AlignTemplate(eye_x=round(float(np.median(mid[:, 0]) / side), 4),
                         eye_y=round(float(np.median(mid[:, 1]) / side), 4),
                         iod=round(float(np.median(iod) / side), 4))
