"""The detection splits: YOLO's train set, a held-out 'tune' slice of it, and val.

The tune slice picks every detector's operating threshold so that val stays untouched for reporting.
It is a fixed, seeded choice of whole images, identical for training and evaluation.
"""
from __future__ import annotations

import random
from pathlib import Path


def split_train(data_dir: Path, tune_fraction: float = 0.1, seed: int = 0) -> dict[str, list[Path]]:
    """Return {'train': [...], 'tune': [...]} image paths from `data_dir/images/train`, deterministic."""
    images = sorted((Path(data_dir) / "images" / "train").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"No images under {Path(data_dir) / 'images' / 'train'}")
    shuffled = images[:]
    random.Random(seed).shuffle(shuffled)
    n_tune = max(1, int(round(len(images) * tune_fraction)))
    tune = set(shuffled[:n_tune])
    return {"train": [p for p in images if p not in tune], "tune": sorted(tune)}


def split_images(data_dir: Path, split: str, tune_fraction: float = 0.1, seed: int = 0) -> list[Path]:
    """Images of 'train' (minus tune), 'tune' or 'val'."""
    if split in ("train", "tune"):
        return split_train(data_dir, tune_fraction, seed)[split]
    images = sorted((Path(data_dir) / "images" / split).glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"No images under {Path(data_dir) / 'images' / split}")
    return images


def label_path(image: Path) -> Path:
    """YOLO convention: .../images/<split>/x.jpg -> .../labels/<split>/x.txt."""
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")
