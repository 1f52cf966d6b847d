"""The emotion classifier: a timm model plus its model card, served exactly as it was trained."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

import core.emotion.architectures  # noqa: F401  (registers EmoLens architectures with timm)
from core.emotion.architectures import LogitEnsemble
from core import settings
from core.emotion.vocabulary import EMOTIONS
from core.emotion.card import ModelCard, list_models
from core.emotion.preprocess import crop_face, normalize_batch, to_model_input


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
        root = weights_dir or settings.get().weights_dir
        name = name or settings.get().emotion_model
        card_path = root / f"{name}.json"
        if not card_path.exists():
            raise FileNotFoundError(f"No model card {card_path}; shipped models: {list_models(root)}")
        card = ModelCard.load(card_path)
        return cls(build_network(card, root), card)

    def crop(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The face in `box` framed the way this model learned (its card's margin): every caller crops here."""
        return crop_face(image, box, self.card.crop_margin)

    def framed_box(self, side: int) -> tuple[float, float, float, float]:
        """The box whose `crop` is the whole `side`-pixel square: for faces that already have this model's
        framing (FER-2013's own images), so they go through the same crop as detected faces."""
        inner = side / (1 + 2 * self.card.crop_margin)
        lo = (side - inner) / 2
        return lo, lo, lo + inner, lo + inner

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
