"""The emotion classifier: a timm model plus its model card, served exactly as it was trained."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import core.models  # noqa: F401  (registers EmoLens architectures with timm)
from core.models import LogitEnsemble
from core import settings
from core.emotions import EMOTIONS
from core.preprocess import normalize_batch, to_model_input


@dataclass
class ModelCard:
    """What a shipped model is and how it must be fed; read from the JSON beside its weights."""

    name: str
    architecture: str
    weights: str
    input_size: int
    in_chans: int
    mean: list[float]
    std: list[float]
    classes: list[str]
    temperature: float = 1.0
    tta_flip: bool = False
    crop_margin: float = settings.FACE_CROP_MARGIN
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)  # an ensemble: names of the member models' cards
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        raw = json.loads(Path(path).read_text())
        return cls(
            name=raw["name"], architecture=raw["architecture"], weights=raw.get("weights", ""),
            input_size=int(raw["input_size"]), in_chans=int(raw["in_chans"]),
            mean=list(raw["mean"]), std=list(raw["std"]), classes=list(raw["classes"]),
            temperature=float(raw.get("temperature", 1.0)),
            tta_flip=bool(raw.get("inference", {}).get("tta_flip", False)),
            crop_margin=float(raw.get("crop", {}).get("margin", settings.FACE_CROP_MARGIN)),
            model_kwargs=dict(raw.get("model_kwargs", {})), metrics=dict(raw.get("metrics", {})),
            members=list(raw.get("members", [])), raw=raw,
        )


def weight_files(card: ModelCard, root: Path) -> list[Path]:
    """Every weights file a card needs: its own, or (for an ensemble) each member's, in member order."""
    if not card.members:
        return [root / card.weights]
    return [f for m in card.members for f in weight_files(ModelCard.load(root / f"{m}.json"), root)]


def list_models(weights_dir: Path | None = None) -> list[str]:
    """Names of the emotion models shipped in the weights folder (those with a card and weights)."""
    root = weights_dir or settings.weights_dir()
    names = []
    for card_path in sorted(root.glob("*.json")):
        try:
            raw = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if raw.get("task") != "facial-emotion-classification":
            continue
        try:  # an ensemble is listed only when every member's card and weights file are there
            files = weight_files(ModelCard.load(card_path), root)
        except (OSError, KeyError, ValueError):
            continue
        if all(f.is_file() for f in files):
            names.append(raw["name"])
    return names


def build_network(card: ModelCard, root: Path) -> torch.nn.Module:
    """The card's network with its weights; an ensemble card loads each member from its own card and file,
    so a member shipped on its own is stored once."""
    import timm
    from safetensors.torch import load_file

    if card.members:
        members = []
        for member in card.members:
            member_card = ModelCard.load(root / f"{member}.json")
            if (member_card.input_size, member_card.in_chans, member_card.mean, member_card.std) != \
                    (card.input_size, card.in_chans, card.mean, card.std):
                raise ValueError(f"ensemble member {member} is fed differently from {card.name}")
            members.append(build_network(member_card, root))
        return LogitEnsemble(members).eval()
    model = timm.create_model(card.architecture, pretrained=False, num_classes=len(card.classes),
                              in_chans=card.in_chans, **card.model_kwargs)
    model.load_state_dict(load_file(str(root / card.weights)))  # fp16 files are cast to fp32 here
    return model.float().eval()


def model_label(name: str, weights_dir: Path | None = None) -> str:
    """A model's name with its measured test accuracy, for pickers: users choose on evidence."""
    root = weights_dir or settings.weights_dir()
    try:
        card = ModelCard.load(root / f"{name}.json")
    except (OSError, KeyError, ValueError):
        return name
    for key, labels in (("PrivateTest", "FER-2013"), ("PrivateTest/ferplus_majority", "FER+")):
        acc = card.metrics.get(key, {}).get("accuracy")
        if acc is not None:
            kind = f"ensemble of {len(card.members)}" if card.members else card.architecture
            return f"{name} ({kind}, {labels} test {acc:.1%})"
    return name


class EmotionClassifier:
    """Face crops in, calibrated probabilities over the card's classes out (batched)."""

    def __init__(self, model: torch.nn.Module, card: ModelCard, batch_size: int = 64) -> None:
        self.model = model.eval()
        self.card = card
        self.batch_size = batch_size
        if list(card.classes) != list(EMOTIONS):
            self.classes = tuple(card.classes)
        else:
            self.classes = EMOTIONS

    @classmethod
    def load(cls, name: str | None = None, weights_dir: Path | None = None) -> "EmotionClassifier":
        """Load a shipped model by name (default: the app's default model) from `weights/`."""
        root = weights_dir or settings.weights_dir()
        name = name or settings.DEFAULT_EMOTION_MODEL
        card_path = root / f"{name}.json"
        if not card_path.exists():
            raise FileNotFoundError(f"No model card {card_path}; shipped models: {list_models(root)}")
        card = ModelCard.load(card_path)
        return cls(build_network(card, root), card)

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([to_model_input(c, self.card.input_size, self.card.in_chans) for c in crops])

    @torch.inference_mode()
    def _forward(self, x: np.ndarray) -> np.ndarray:
        """Network logits for a normalised batch (N, C, H, W); the one place a backend differs."""
        return self.model(torch.from_numpy(x)).float().numpy()

    def logits(self, crops: Sequence[np.ndarray], tta_flip: bool | None = None) -> np.ndarray:
        """Raw (uncalibrated) logits, (N, classes). Flip-TTA averages logits of the face and its mirror."""
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        flip = self.card.tta_flip if tta_flip is None else tta_flip
        faces = self.prepare(crops)
        out = []
        for i in range(0, len(faces), self.batch_size):
            x = np.ascontiguousarray(normalize_batch(faces[i:i + self.batch_size], self.card.mean,
                                                     self.card.std).numpy())
            z = self._forward(x)
            if flip:
                z = 0.5 * (z + self._forward(np.ascontiguousarray(x[:, :, :, ::-1])))
            out.append(z.astype(np.float32))
        return np.concatenate(out)

    def predict(self, crops: Sequence[np.ndarray], tta_flip: bool | None = None) -> np.ndarray:
        """Calibrated probabilities (N, classes); rows sum to 1."""
        z = self.logits(crops, tta_flip) / self.card.temperature
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
