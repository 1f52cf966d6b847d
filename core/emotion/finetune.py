"""Fine-tune an emotion model on a labelled set (transfer learning), and say what it changed.

The labelled set is anything `core.datasets.labelled` reads (the Annotate page's export, class folders, a
folder with labels.csv). The base model's features are kept; a new final layer is trained for the set's
classes (the 7 emotions or any other set, e.g. 5 of them), warm-started from the base layer's rows for
classes it already knows. `full_head` trains the whole head, `last_block` also the last convolutional
block. A held-out part is split off by file (by subject when a column names one, `SUBJECT_COLUMNS`)
before training; a validation part of the rest picks the epoch (epoch 0 = the base rows, so a set that
does not help keeps them). `before` (the base model restricted to the same classes) and `after` are
scored on the held-out part only. Crops go through the classifier's own `crop` and preprocessing, the one
path serving uses. Nothing is written unless asked (`FinetuneResult.save`): the Annotate page offers
`to_zip()` as a download, `python -m training.finetune` saves the files. Where the model came from (the
command, the commit) is the caller's to say: the card records "not recorded" when it is not given.
"""
from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import core  # noqa: F401  (offline switches)
from core import settings
from core.archive import write_zip
from core.datasets.labelled import LabelledFace, LabelledSet, normalize_emotion
from core.emotion.calibration import fit_temperature
from core.emotion.classifier import EmotionClassifier
from core.emotion.metrics import classification_report
from core.emotion.preprocess import normalize_batch
from core.errors import UserFacingError

Progress = Callable[[float, str], None]
MIN_PER_CLASS = 4
NOT_RECORDED = "not recorded"  # provenance the caller did not give (a fine-tune in the app has no commit)
Augment = Callable[[np.ndarray], np.ndarray]  # one prepared face -> a jittered copy of the same shape


class FinetuneError(UserFacingError):
    """A set that cannot be fine-tuned on (too few faces, one class); `message` is for people."""

    code = "cannot_finetune"


@dataclass
class FinetuneConfig:
    """Everything that shapes a run; recorded in the model card so the run can be repeated."""

    classes: list[str] | None = None  # default: every class with labelled faces
    epochs: int = 30
    holdout: float = 0.25
    group_column: str | None = None  # default: the set's subject column (SUBJECT_COLUMNS), else by file
    full_head: bool = False  # False: only the final layer (a linear probe on the kept embedding)
    last_block: bool = False
    lr: float = 3e-3
    last_block_lr: float = 3e-4
    batch_size: int = 32
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    seed: int = 0
    name: str = "emotion_finetuned"
    validation: float = 0.2  # share of the training part used to pick the epoch (0 = keep the last epoch)


@dataclass
class FinetuneResult:
    """The new model (weights + card) and the before/after report on the held-out part."""

    card: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    report: dict[str, Any]

    def save(self, out_dir: Path) -> tuple[Path, Path]:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        weights = out_dir / self.card["weights"]
        save_file(self.state_dict, str(weights))
        card = out_dir / f"{self.card['name']}.json"
        card.write_text(json.dumps(self.card, indent=2) + "\n")
        return weights, card

    def to_zip(self) -> bytes:
        """Weights + card as one zip, for a download (nothing touches disk)."""
        from safetensors.torch import save

        return write_zip([(self.card["weights"], save(self.state_dict)),
                          (f"{self.card['name']}.json", json.dumps(self.card, indent=2) + "\n"),
                          ("finetune_report.json", json.dumps(self.report, indent=2) + "\n")])


# ------------------------------------------------------------------------------------------ data

def select_faces(labelled: LabelledSet, classes: Sequence[str] | None) -> tuple[list[LabelledFace], list[str]]:
    """Labelled faces of the chosen classes; refuses sets too small to split and train on."""
    chosen = [normalize_emotion(c) for c in classes] if classes else labelled.classes()
    faces = labelled.labelled_faces(chosen)
    counts = {c: sum(f.emotion == c for f in faces) for c in chosen}
    if len(chosen) < 2:
        raise FinetuneError("Fine-tuning needs at least two classes with labelled faces.")
    few = [f"{c} ({n})" for c, n in counts.items() if n < MIN_PER_CLASS]
    if few:
        raise FinetuneError(f"Each class needs at least {MIN_PER_CLASS} reviewed faces to split off a held-out "
                            f"part; too few: {', '.join(few)}. Label more faces or leave those classes out.")
    return faces, chosen


def split_groups(labelled: LabelledSet, faces: list[LabelledFace], cfg: FinetuneConfig) -> tuple[np.ndarray, str]:
    """Group id per face: the subject column when there is one, else the file (faces of one photo stay together)."""
    column = cfg.group_column or labelled.subject_column
    if column is not None:
        if column not in labelled.extra_columns:
            raise FinetuneError(f"There is no column '{column}' to group by; columns: "
                                f"{', '.join(labelled.extra_columns) or 'none'}.")
        keys = [f.extra.get(column) or f"file:{f.file}" for f in faces]
    else:
        column, keys = "file", [f.file for f in faces]
    _, ids = np.unique(np.array(keys, dtype=object).astype(str), return_inverse=True)
    return ids, column


def holdout_split(labels: np.ndarray, groups: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / held-out indices: groups never straddle the two, classes stay as balanced as groups allow."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, int(round(1 / holdout)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only N members"
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train_idx, test_idx = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return train_idx, test_idx


# ------------------------------------------------------------------------------------------ model

def _head_layer(model: nn.Module) -> tuple[nn.Linear, Callable[[nn.Linear], None], nn.Module]:
    """(final linear layer, a setter that swaps it, the part whose parameters train as the head)."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):  # EmoLens FerVGG
        def set_vgg(layer: nn.Linear) -> None:
            head[-1] = layer
        return head[-1], set_vgg, head
    if hasattr(model, "get_classifier") and isinstance(model.get_classifier(), nn.Linear):  # stock timm models
        name = getattr(model, "default_cfg", {}).get("classifier", "fc")
        owner, attr = model, name
        while "." in attr:
            first, attr = attr.split(".", 1)
            owner = getattr(owner, first)

        def set_timm(layer: nn.Linear) -> None:
            setattr(owner, attr, layer)
        return model.get_classifier(), set_timm, model.get_classifier()
    raise FinetuneError(f"Do not know where the classifier head of {type(model).__name__} is.")


def _last_block(model: nn.Module) -> nn.Module:
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):  # FerVGG: conv-bn-relu, conv-bn-relu, pool per block
        return nn.Sequential(*list(features)[-7:])
    if isinstance(getattr(model, "layer4", None), nn.Module):  # ResNets
        return model.layer4
    raise FinetuneError(f"--last-block is not supported for {type(model).__name__}.")


def build_model(base: EmotionClassifier, classes: list[str]) -> tuple[nn.Module, nn.Module, nn.Linear]:
    """A copy of the base model with a final layer for `classes` (known classes start from the base rows).

    Returns (model, its whole head, the new final layer)."""
    model = copy.deepcopy(base.model).float()
    old, set_layer, head = _head_layer(model)
    new = nn.Linear(old.in_features, len(classes))
    with torch.no_grad():
        nn.init.normal_(new.weight, std=0.01)
        new.bias.fill_(float(old.bias.mean()) if old.bias is not None else 0.0)
        for i, c in enumerate(classes):
            if c in base.classes:
                j = list(base.classes).index(c)
                new.weight[i] = old.weight[j]
                if old.bias is not None:
                    new.bias[i] = old.bias[j]
    set_layer(new)
    if head is old:
        head = new
    return model, head, new


@torch.no_grad()
def restricted_probs(logits: np.ndarray, base_classes: Sequence[str], classes: Sequence[str],
                     temperature: float) -> np.ndarray:
    """The base model's answer when only `classes` are allowed (a class it does not know gets 0)."""
    cols = [list(base_classes).index(c) if c in base_classes else None for c in classes]
    z = np.full((logits.shape[0], len(classes)), -np.inf, dtype=np.float64)
    for i, j in enumerate(cols):
        if j is not None:
            z[:, i] = logits[:, j] / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _report(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    rep = classification_report(probs, labels, classes).to_dict()
    return {k: rep[k] for k in ("accuracy", "macro_f1", "per_class", "confusion", "n")}


def _split_forward(model: nn.Module, final: nn.Linear, full_head: bool
                   ) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """(frozen part, trained part) as two calls, so the frozen part runs once per face."""
    head = getattr(model, "head", None)
    if isinstance(getattr(model, "features", None), nn.Sequential) and isinstance(head, nn.Sequential):
        if full_head:
            return model.features, head
        return (lambda x: head[:-1](model.features(x))), final
    return (lambda x: model.forward_head(model.forward_features(x), pre_logits=True)), final


@torch.no_grad()
def _cached_features(body: Callable[[torch.Tensor], torch.Tensor], prepared: np.ndarray, mean: Sequence[float],
                     std: Sequence[float], batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen features of every face and of its mirror image (the flip augmentation, precomputed)."""
    plain, flipped = [], []
    for i in range(0, len(prepared), batch_size):
        x = normalize_batch(prepared[i:i + batch_size], mean, std)
        plain.append(body(x))
        flipped.append(body(torch.flip(x, dims=[3])))
    return torch.cat(plain), torch.cat(flipped)


# ------------------------------------------------------------------------------------------ run

def finetune(labelled: LabelledSet, cfg: FinetuneConfig, base: EmotionClassifier | None = None,
             progress: Progress | None = None, data_label: str = "labelled set", *,
             command: str | None = None, commit: str | None = None, augment: Augment | None = None) -> FinetuneResult:
    """Train a new head on `labelled` and score before/after on a held-out part. Nothing is written.

    `command` and `commit` say how the run can be repeated (the CLI gives both; the app a short command
    and no commit). `augment` jitters each prepared face every step (slower: features are recomputed);
    without it the only augmentation is a mirror image, on features computed once."""
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    base = base or EmotionClassifier.load()
    if base.card.members:  # an ensemble has no single head: start from its first (best validated) member
        base = EmotionClassifier.load(base.card.members[0])
    report_progress = progress or (lambda f, t: None)
    faces, classes = select_faces(labelled, cfg.classes)
    labels = np.array([classes.index(f.emotion) for f in faces], dtype=np.int64)
    groups, group_by = split_groups(labelled, faces, cfg)
    train_idx, test_idx = holdout_split(labels, groups, cfg.holdout, cfg.seed)
    val_idx = np.zeros(0, dtype=np.int64)
    if cfg.validation > 0 and len(train_idx) >= 20:  # pick the epoch on training data, never on held-out
        fit, val = holdout_split(labels[train_idx], groups[train_idx], cfg.validation, cfg.seed + 1)
        if len(np.unique(labels[train_idx][fit])) == len(classes):
            train_idx, val_idx = train_idx[fit], train_idx[val]
    report_progress(0.0, f"Cropping {len(faces)} faces…")
    crops = labelled.crops(faces, base.crop)  # the serving crop
    prepared = base.prepare(crops)  # the serving resize / colour conversion
    test_crops = [crops[i] for i in test_idx]
    before = restricted_probs(base.logits(test_crops), base.classes, classes, base.card.temperature)

    model, full, final = build_model(base, classes)
    head = full if cfg.full_head else final
    for p in model.parameters():
        p.requires_grad_(False)
    groups_opt = [{"params": list(head.parameters()), "lr": cfg.lr}]
    block = _last_block(model) if cfg.last_block else None
    if block is not None:
        groups_opt.append({"params": list(block.parameters()), "lr": cfg.last_block_lr})
    for g in groups_opt:
        for p in g["params"]:
            p.requires_grad_(True)
    opt = torch.optim.AdamW(groups_opt, weight_decay=cfg.weight_decay)
    bs = max(2, min(cfg.batch_size, len(train_idx) // 8))  # small sets: smaller batches, enough steps
    steps_per_epoch = max(1, len(train_idx) // bs)
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    counts = np.bincount(labels[train_idx], minlength=len(classes)).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1))
    weights = torch.tensor(weights / weights[labels[train_idx]].mean(), dtype=torch.float32)
    mean, std = base.card.mean, base.card.std
    body, head_fn = _split_forward(model, final, cfg.full_head)
    model.eval()
    cached = None
    if block is None and augment is None:
        report_progress(0.0, "Computing the kept features once…")
        cached = _cached_features(body, prepared, mean, std)
    @torch.no_grad()
    def validation_accuracy() -> float | None:
        if not len(val_idx):
            return None
        model.eval()
        z = head_fn(cached[0][val_idx]) if cached is not None else model(normalize_batch(prepared[val_idx], mean, std))
        return float((z.argmax(1).numpy() == labels[val_idx]).mean())

    best_acc = validation_accuracy()  # epoch 0: the base model's own rows for these classes
    best_epoch, best_state = 0, copy.deepcopy(model.state_dict())
    history: list[dict[str, Any]] = [{"epoch": 0, "val_acc": best_acc}]
    epochs: Any = range(cfg.epochs)
    if progress is None:
        from tqdm import tqdm
        epochs = tqdm(epochs, desc="fine-tuning", unit="epoch", file=sys.stderr)
    for epoch in epochs:
        model.eval()  # BatchNorm statistics stay frozen in the kept features (and in the last block)
        head.train()
        order = rng.permutation(train_idx)
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * bs:(step + 1) * bs]
            flip = rng.random(len(idx)) < 0.5
            if cached is not None:
                feats = torch.where(torch.from_numpy(flip).view(-1, *[1] * (cached[0].dim() - 1)),
                                    cached[1][idx], cached[0][idx])
                logits = head_fn(feats)
            else:
                batch = prepared[idx] if augment is None else np.stack([augment(prepared[i]) for i in idx])
                x = normalize_batch(batch, mean, std)
                if augment is None:
                    x = torch.where(torch.from_numpy(flip).view(-1, 1, 1, 1), torch.flip(x, dims=[3]), x)
                logits = model(x)
            y = torch.from_numpy(labels[idx])
            loss = F.cross_entropy(logits, y, weight=weights, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
        acc = validation_accuracy()
        history.append({"epoch": epoch + 1, "train_loss": round(loss_sum / steps_per_epoch, 4), "val_acc": acc})
        if acc is None or acc > best_acc:
            best_acc, best_epoch, best_state = acc, epoch + 1, copy.deepcopy(model.state_dict())
        report_progress((epoch + 1) / cfg.epochs, f"Epoch {epoch + 1} of {cfg.epochs}, "
                                                  f"loss {loss_sum / steps_per_epoch:.3f}"
                                                  + (f", validation accuracy {acc:.0%}" if acc is not None else ""))
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(loss=f"{loss_sum / steps_per_epoch:.3f}")
    model.load_state_dict(best_state)  # the epoch that did best on the validation part (0: the base rows)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    card = _card(base, model, classes, cfg, labelled, faces, data_label, history,
                 command or NOT_RECORDED, commit or NOT_RECORDED)
    card["training"]["augment"] = "flips only" if augment is None else "per-face augmentation given by the caller"
    card["training"]["selected_epoch"] = best_epoch
    tuned_card = copy.deepcopy(base.card)  # same input size, channels, mean/std, crop and TTA as the base
    tuned_card.name, tuned_card.weights, tuned_card.classes, tuned_card.raw = cfg.name, card["weights"], classes, card
    tuned = EmotionClassifier(model, tuned_card)
    test_logits = tuned.logits(test_crops)
    temperature = _fit_temperature(test_logits, labels[test_idx])
    card["temperature"] = temperature
    tuned.card.temperature = temperature
    after = tuned.predict(test_crops)
    y_test = labels[test_idx]
    report = {
        "command": card["command"],
        "commit": card["commit"],
        "data": data_label,
        "base_model": base.card.name,
        "name": cfg.name,
        "classes": classes,
        "faces": len(faces),
        "split": {"train": int(len(train_idx)), "validation": int(len(val_idx)), "held_out": int(len(test_idx)),
                  "group_by": group_by, "selected_epoch": best_epoch,
                  "holdout": cfg.holdout, "seed": cfg.seed},
        "config": asdict(cfg),
        "before": _report(before, y_test, classes),
        "after": _report(after, y_test, classes),
        "seconds": round(time.time() - t0, 1),
    }
    card["metrics"] = {"held_out": {"accuracy": report["after"]["accuracy"], "macro_f1": report["after"]["macro_f1"],
                                    "n": report["after"]["n"],
                                    "base_model_accuracy": report["before"]["accuracy"],
                                    "base_model_macro_f1": report["before"]["macro_f1"],
                                    "note": f"held-out part of {data_label}, split by {group_by} before training"}}
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    return FinetuneResult(card=card, state_dict=state, report=report)


def _fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) < 2:
        return 1.0
    return round(fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels)), 4)


def _card(base: EmotionClassifier, model: nn.Module, classes: list[str], cfg: FinetuneConfig,
          labelled: LabelledSet, faces: list[LabelledFace], data_label: str,
          history: list[dict[str, Any]], command: str, commit: str) -> dict[str, Any]:
    """Same card format as training.train_classifier.save, plus where the model came from."""
    raw = base.card.raw
    return {
        "name": cfg.name,
        "task": "facial-emotion-classification",
        "architecture": base.card.architecture,
        "model_kwargs": dict(base.card.model_kwargs),
        "weights": f"{cfg.name}.safetensors",
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "input_size": base.card.input_size,
        "in_chans": base.card.in_chans,
        "mean": list(base.card.mean),
        "std": list(base.card.std),
        "classes": list(classes),
        "temperature": 1.0,
        "crop": dict(raw.get("crop", {"margin": settings.get().face_crop_margin, "square": True})),
        "inference": dict(raw.get("inference", {})),
        "training_data": {
            "name": f"{data_label} ({len(faces)} labelled faces, {len(labelled.images)} images)",
            "source": "a labelled set read by core.datasets.labelled (for example an Annotate page export)",
            "terms": "As set by the owner of the labelled set; check them before sharing this model.",
            "base_model_training_data": raw.get("training_data", {}),
        },
        "training": {"base_model": base.card.name, "method": "transfer learning: features kept, new "
                     + ("head" if cfg.full_head else "final layer") + (" + last block" if cfg.last_block else ""),
                     "recipe": asdict(cfg), "history": history,
                     "temperature_note": "temperature fitted on the held-out part (changes confidence, "
                                         "not which class wins)"},
        "metrics": {},
        "command": command,
        "commit": commit,
    }


def summary_table(report: dict[str, Any]) -> Any:
    """Before / after on the held-out part, one row per measure (what the Annotate page shows): a DataFrame."""
    import pandas as pd

    b, a = report["before"], report["after"]
    rows = [{"measure": "accuracy", "before": b["accuracy"], "after": a["accuracy"]},
            {"measure": "macro-F1", "before": b["macro_f1"], "after": a["macro_f1"]}]
    rows += [{"measure": f"F1 {c} ({a['per_class'][c]['support']} faces)", "before": b["per_class"][c]["f1"],
              "after": a["per_class"][c]["f1"]} for c in report["classes"]]
    return pd.DataFrame(rows)
