"""The single crop -> tensor path shared by training, evaluation and serving.

`crop_face` frames a detector box the way the model learned (the card's margin, square, edge-replicated);

Training feeds FER-2013's 48x48 grey faces through `to_model_input` + `normalize_batch`, and the
serving pipeline feeds detector crops through the very same two functions, so a model never sees
pixels prepared differently from the ones it learned on.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

Box = tuple[float, float, float, float]


def _span(start: int, size: int, limit: int) -> tuple[int, int, int, int]:
    """Along one axis, the window [start, start + size) over an image of `limit` pixels: the part inside
    (begin, end) and the padding before and after it. A window wholly outside keeps the nearest edge pixel,
    which is what replicating the image's border would give there."""
    if start >= limit:
        return limit - 1, limit, 0, size - 1
    if start + size <= 0:
        return 0, 1, size - 1, 0
    begin, end = max(start, 0), min(start + size, limit)
    return begin, end, begin - start, start + size - end


def crop_face(image: np.ndarray, box: Sequence[float], margin: float) -> np.ndarray:
    """Square crop around `box`, grown by `margin` of its size per side; borders replicate the edge.

    FER-2013 faces are square and include some forehead and chin, so detector boxes (tight) are
    widened to match the framing the classifier learned on. Only the part of the image inside the window
    is copied and padded, never the whole photo: a face at the edge of a 36-megapixel photo costs its own
    crop of memory, not another copy of the photo.
    """
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = max(1, int(round(side)))
    h, w = image.shape[:2]
    y0, ye, pad_t, pad_b = _span(top, size, h)
    x0, xe, pad_l, pad_r = _span(left, size, w)
    inside = image[y0:ye, x0:xe]
    if pad_t or pad_b or pad_l or pad_r:
        inside = cv2.copyMakeBorder(inside, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(inside)


def to_model_input(image: np.ndarray, input_size: int, in_chans: int) -> np.ndarray:
    """Convert one face (H,W), (H,W,1) or (H,W,3) uint8 RGB to (input_size, input_size, in_chans) uint8."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if in_chans == 1 and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    elif in_chans == 3 and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[0] != input_size or img.shape[1] != input_size:
        shrinking = img.shape[0] > input_size or img.shape[1] > input_size
        img = cv2.resize(img, (input_size, input_size),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if img.ndim == 2:
        img = img[:, :, None]
    return np.ascontiguousarray(img, dtype=np.uint8)


def normalize_batch(batch: np.ndarray | Sequence[np.ndarray], mean: Sequence[float],
                    std: Sequence[float]) -> torch.Tensor:
    """(N,H,W,C) uint8 -> (N,C,H,W) float32 tensor, scaled to [0,1] then standardised per channel."""
    arr = np.asarray(batch)
    tensor = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return tensor.sub_(mean_t).div_(std_t).contiguous()
