"""FER-2013 readers: the project's `.npz`, Kaggle's original `fer2013.csv`, and class-folder layouts.

Every reader returns the same `FaceSplit` (uint8 48x48 faces + int labels in FER-2013's class order),
so training and evaluation do not care where a user's download came from. FER+ (Barsoum et al. 2016:
ten crowd votes per face) replaces the labels when asked: majority vote or the vote distribution.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.emotion.vocabulary import EMOTIONS

SPLITS = ("Training", "PublicTest", "PrivateTest")


@dataclass
class FaceSplit:
    """Faces (N,H,W) uint8 and labels (N,) int64 of one split."""

    images: np.ndarray
    labels: np.ndarray
    name: str
    soft: np.ndarray | None = None  # (N, 7) label distribution (FER+ votes), when the labels are soft

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _from_npz(path: Path, split: str) -> FaceSplit:
    with np.load(path) as data:
        usage = data["usage"]
        idx = SPLITS.index(split)
        mask = usage == idx
        return FaceSplit(data["images"][mask], data["labels"][mask].astype(np.int64), split)


def _from_csv(path: Path, split: str) -> FaceSplit:
    images, labels = [], []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Usage"].strip() != split:
                continue
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            images.append(pixels.reshape(48, 48))
            labels.append(int(row["emotion"]))
    return FaceSplit(np.stack(images), np.array(labels, dtype=np.int64), split)


# Kaggle "msambare" image-folder layout: train/<class>/*.jpg and test/<class>/*.jpg
_FOLDER_FOR_SPLIT = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}


def _from_folders(root: Path, split: str) -> FaceSplit:
    import cv2

    sub = root / _FOLDER_FOR_SPLIT[split]
    if not sub.is_dir():
        raise FileNotFoundError(f"expected a '{sub.name}' folder of class folders under {root}")
    images, labels = [], []
    for label, emotion in enumerate(EMOTIONS):
        class_dir = sub / emotion
        if not class_dir.is_dir():
            continue
        for file in sorted(class_dir.iterdir()):
            # The msambare test folder mixes both test splits, named PublicTest_*/PrivateTest_*.
            if sub.name == "test" and split in ("PublicTest", "PrivateTest") \
                    and any(s in file.name for s in ("PublicTest", "PrivateTest")) \
                    and split not in file.name:
                continue
            img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if img is None:
                continue
            if img.shape != (48, 48):
                img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA)
            images.append(img)
            labels.append(label)
    if not images:
        raise FileNotFoundError(f"no images found for {split} under {sub}")
    return FaceSplit(np.stack(images), np.array(labels, dtype=np.int64), split)


def load_fer2013(path: str | Path, split: str) -> FaceSplit:
    """Load one official split from a `.npz`, Kaggle's `fer2013.csv`, or the Kaggle folder layout."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    p = Path(path)
    if p.is_dir():
        npz = p / "fer2013.npz"
        if npz.exists():
            return _from_npz(npz, split)
        return _from_folders(p, split)
    if p.suffix == ".npz":
        return _from_npz(p, split)
    if p.suffix == ".csv":
        return _from_csv(p, split)
    raise ValueError(f"unrecognised FER-2013 source: {p} (want .npz, .csv or a folder)")


LABEL_SOURCES = ("fer2013", "ferplus_majority", "ferplus_soft")
# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
# Our 7 classes take the first 7 (re-ordered); contempt has no FER-2013 class and unknown/NF are not emotions.
_FERPLUS_TO_OURS = [EMOTIONS.index(e) for e in ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")]


def ferplus_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ votes (N, 10) -> (keep mask, distribution over our 7 classes).

    Follows Microsoft's FERPlus recipe: a single stray vote (1 of ~10) is treated as noise and removed;
    a face is kept when, after that, most votes go to one of our seven emotions (not contempt,
    unknown or not-a-face).
    """
    v = votes.astype(np.float64).copy()
    v[v <= 1] = 0  # outlier votes
    total = v.sum(1)
    top = v.argmax(1)
    keep = (total > 0) & (top < 7)
    ours = np.zeros((len(v), len(EMOTIONS)))
    ours[:, _FERPLUS_TO_OURS] = v[:, :7]
    sums = ours.sum(1, keepdims=True)
    keep &= sums[:, 0] > 0
    dist = np.divide(ours, sums, out=np.zeros_like(ours), where=sums > 0)
    return keep, dist.astype(np.float32)


def load_faces(path: str | Path, split: str, labels: str = "fer2013",
               ferplus: str | Path | None = None) -> FaceSplit:
    """One split with the chosen labels: FER-2013's own, FER+ majority, or FER+ soft votes.

    FER+ needs the project's `.npz` layout (rows aligned with `ferplus.npz`, which is looked up next to
    it unless `ferplus` says where). Faces FER+ marks as not-a-face, unknown or contempt are dropped.
    """
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {LABEL_SOURCES}, got {labels!r}")
    if labels == "fer2013":
        return load_fer2013(path, split)
    p = Path(path)
    npz = p / "fer2013.npz" if p.is_dir() else p
    if npz.suffix != ".npz":
        raise ValueError("FER+ labels need the .npz layout (rows aligned with ferplus.npz)")
    plus_path = Path(ferplus) if ferplus else npz.parent / "ferplus.npz"
    with np.load(npz) as data, np.load(plus_path) as plus:
        mask = data["usage"] == SPLITS.index(split)
        if not np.array_equal(plus["usage"], data["usage"]):
            raise ValueError(f"{plus_path} rows do not line up with {npz}")
        keep, dist = ferplus_targets(plus["votes"][mask])
        images = data["images"][mask][keep]
    dist = dist[keep]
    hard = dist.argmax(1).astype(np.int64)
    name = f"{split} (FER+ {'majority' if labels == 'ferplus_majority' else 'soft'})"
    return FaceSplit(images, hard, name, soft=dist if labels == "ferplus_soft" else None)
