"""Training augmentation (albumentations), configured by the training config's `augment` section."""
from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no update check against the package index

import albumentations as A  # noqa: E402
import cv2  # noqa: E402


def build_train_augment(cfg: dict[str, Any], input_size: int) -> A.Compose:
    """Geometric jitter, flips, photometric changes and random erasing: the tricks that matter on FER."""
    return A.Compose([
        A.Affine(
            scale=tuple(cfg.get("scale", (0.85, 1.15))),
            translate_percent=tuple(cfg.get("translate", (-0.1, 0.1))),
            rotate=tuple(cfg.get("rotate", (-15, 15))),
            border_mode=cv2.BORDER_REFLECT_101,
            p=cfg.get("affine_p", 0.8),
        ),
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=cfg.get("brightness", 0.25),
                                   contrast_limit=cfg.get("contrast", 0.25), p=0.5),
        A.CoarseDropout(num_holes_range=(1, 1),
                        hole_height_range=(0.1, cfg.get("erase_max", 0.35)),
                        hole_width_range=(0.1, cfg.get("erase_max", 0.35)),
                        fill="random_uniform", p=cfg.get("erase_p", 0.5)),
        A.Resize(input_size, input_size),
    ])
