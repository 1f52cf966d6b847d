"""The single crop -> tensor path shared by training, evaluation and serving.

Training feeds FER-2013's 48x48 grey faces through `to_model_input` + `normalize_batch`, and the
serving pipeline feeds detector crops through the very same two functions, so a model never sees
pixels prepared differently from the ones it learned on.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch


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
