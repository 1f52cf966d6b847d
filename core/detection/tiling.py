"""Run a detector on overlapping tiles as well as the whole image, then merge.

Low-resolution detectors (MediaPipe works on 128-192 px inputs) miss small faces in group photos;
tiles give each face enough pixels. Partial faces cut by a tile edge are dropped when mostly inside a
better box, which plain IoU-NMS would keep.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from core.detection.base import Detection


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def merge_detections(dets: list[Detection], iou_thr: float = 0.4, contain_thr: float = 0.6) -> list[Detection]:
    """Greedy NMS by score, suppressing overlaps by IoU and by intersection over the smaller box."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        area_d = d.width * d.height
        ok = True
        for k in kept:
            ix = max(0.0, min(d.box[2], k.box[2]) - max(d.box[0], k.box[0]))
            iy = max(0.0, min(d.box[3], k.box[3]) - max(d.box[1], k.box[1]))
            inter = ix * iy
            area_k = k.width * k.height
            if inter / (area_d + area_k - inter) > iou_thr or inter / min(area_d, area_k) > contain_thr:
                ok = False
                break
        if ok:
            kept.append(d)
    return kept


def detect_tiled(detect: Callable[[np.ndarray], list[Detection]], image: np.ndarray,
                 min_tile: int = 320) -> list[Detection]:
    """Whole image plus tiles of half the shorter side (at least `min_tile`), 25% overlap."""
    h, w = image.shape[:2]
    found = list(detect(image))
    tile = max(min_tile, min(h, w) // 2)
    if max(h, w) > tile * 1.2:
        stride = tile * 3 // 4
        for y in tile_origins(h, tile, stride):
            for x in tile_origins(w, tile, stride):
                for d in detect(np.ascontiguousarray(image[y:y + tile, x:x + tile])):
                    x1, y1, x2, y2 = d.box
                    kps = None if d.keypoints is None else d.keypoints + np.array([x, y], np.float32)
                    found.append(Detection((x1 + x, y1 + y, x2 + x, y2 + y), d.score, kps))
    return merge_detections(found)
