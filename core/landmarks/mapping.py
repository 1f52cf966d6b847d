"""The iBUG 68-point scheme, its regions, and an approximate MediaPipe Face Mesh (478) -> 68 mapping.

Source of the correspondences: Peizhi Yan, "Mediapipe_2_Dlib_Landmarks" (2024),
https://github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks, file `mediapipe2dlib/mp2dlib.py` at commit
db9e81e2bd432eaee4de90135cc1ad77d19c7db4. Each 68-point index takes one mesh vertex, or the mean of two
where the mesh has no vertex at that spot. Re-typed here as data, not copied code.

The mesh has no exact 68-point subset, so the mapping is approximate. Eyes, brows, nose and mouth sit
on matching anatomy. The jaw (0-16) is the weak part: the 300-W contour follows the visible face
boundary, and the mesh's face oval is a fixed set of vertices. `weights/reports/landmarks.json` has
the measured error per point (`per_point_nme`) so you can see where the mapping costs accuracy.
"Right"/"left" are the subject's, as in 300-W and MediaPipe (MediaPipe's LEFT_EYE is the 68-scheme's 42-47).
"""
from __future__ import annotations

import numpy as np

# 68-point index -> MediaPipe Face Mesh vertex(es); two vertices are averaged.
MP478_TO_68: tuple[tuple[int, ...], ...] = (
    # jaw 0-16, subject's right ear -> chin (8) -> left ear
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),
    # right brow 17-21 (outer -> inner), left brow 22-26 (inner -> outer)
    (70,), (63,), (105,), (66,), (107,),
    (336,), (296,), (334,), (293,), (300,),
    # nose bridge 27-30 (30 = tip), nostrils 31-35
    (168, 6), (197, 195), (5,), (4,),
    (75,), (97,), (2,), (326,), (305,),
    # right eye 36-41 (36 outer corner), left eye 42-47 (45 outer corner)
    (33,), (160,), (158,), (133,), (153,), (144,),
    (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lip 48-59 (48, 54 mouth corners), inner lip 60-67
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)

# The five regions the study reports, as 68-point indices.
REGIONS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "mouth": tuple(range(48, 68)),
}

# Finer parts: each moves as one piece in the study's landmark-noise model.
PARTS: dict[str, tuple[int, ...]] = {
    "jaw": REGIONS["jaw"], "right_brow": tuple(range(17, 22)), "left_brow": tuple(range(22, 27)),
    "nose": REGIONS["nose"], "right_eye": tuple(range(36, 42)), "left_eye": tuple(range(42, 48)),
    "mouth": REGIONS["mouth"],
}

RIGHT_EYE = PARTS["right_eye"]
LEFT_EYE = PARTS["left_eye"]
OUTER_EYE_CORNERS = (36, 45)  # the 300-W normaliser


def _mapping_matrix() -> np.ndarray:
    """(68, 478) averaging weights, so the mapping is one matrix product."""
    w = np.zeros((68, 478), dtype=np.float64)
    for i, src in enumerate(MP478_TO_68):
        w[i, list(src)] = 1.0 / len(src)
    return w


_W = _mapping_matrix()


def mesh_to_68(points: np.ndarray) -> np.ndarray:
    """(478|468, D) MediaPipe mesh points -> (68, D) iBUG points (iris points are not used)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478):
        raise ValueError(f"expected (468|478, D) mesh points, got {pts.shape}")
    return (_W[:, :pts.shape[0]] @ pts).astype(np.float32)


def to_68(points: np.ndarray | None) -> np.ndarray | None:
    """Any supported point set in the iBUG 68 scheme: 68 points pass through, mesh points are mapped."""
    if points is None:
        return None
    pts = np.asarray(points)
    if pts.shape[0] == 68:
        return pts.astype(np.float32)
    return mesh_to_68(pts)
