"""Model cards: what a shipped emotion model is, how it must be fed, and which are installed.

A card is the JSON beside a weights file; pages, CLI and API list and label models from cards alone,
without building a network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import settings


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
    crop_margin: float = field(default_factory=lambda: settings.get().face_crop_margin)
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
            crop_margin=float(raw.get("crop", {}).get("margin", settings.get().face_crop_margin)),
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
    root = weights_dir or settings.get().weights_dir
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


def model_label(name: str, weights_dir: Path | None = None) -> str:
    """A model's name with its measured test accuracy, for pickers: users choose on evidence."""
    root = weights_dir or settings.get().weights_dir
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
