"""Stand-ins shared by unit tests: a detector without a model, and a tiny emotion model with a real card."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.detection import Box, Detection, FaceDetector
from core.emotion.vocabulary import EMOTIONS


class FixedDetector(FaceDetector):
    """Finds the same (box, score) faces in every image; `detect` still thresholds and clips them."""

    name = "fixed"

    def __init__(self, dets: Sequence[tuple[Box, float]], threshold: float = 0.5) -> None:
        super().__init__(threshold)
        self.dets = list(dets)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(box=tuple(map(float, b)), score=s) for b, s in self.dets]


def write_tiny_model(root: Path, name: str = "tiny", **card: Any) -> Path:
    """A randomly initialised (seed 0) emolens_vgg_s and its card in `root`: loading without shipped weights.
    `card` adds or overrides card keys (a temperature, a crop)."""
    import timm
    import torch
    from safetensors.torch import save_file

    import core.emotion.architectures  # noqa: F401  (registers emolens_vgg_s with timm)

    torch.manual_seed(0)
    model = timm.create_model("emolens_vgg_s", num_classes=7, in_chans=1).eval()
    save_file(model.state_dict(), str(root / f"{name}.safetensors"))
    raw = {"name": name, "task": "facial-emotion-classification", "architecture": "emolens_vgg_s",
           "weights": f"{name}.safetensors", "input_size": 48, "in_chans": 1, "mean": [0.5], "std": [0.25],
           "classes": list(EMOTIONS), **card}
    (root / f"{name}.json").write_text(json.dumps(raw))
    return root
