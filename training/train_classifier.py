"""Train an emotion classifier from a YAML config; keep the checkpoint that is best on PublicTest.

    python -m training.train_classifier --config training/configs/foundation_vgg_s.yaml \
        [--data ../shared/data/fer2013/fer2013.npz] [--out weights/] [--device cpu|cuda]

Writes `<out>/<name>.safetensors` plus its model card `<out>/<name>.json`. PrivateTest is never read
here: it is scored once, afterwards, by `training.evaluate_classifier`.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import core.emotion.architectures  # noqa: F401  (registers EmoLens architectures with timm)
from core.emotion.vocabulary import EMOTIONS
from core.emotion.preprocess import normalize_batch, to_model_input
from core import settings
from training import provenance
from training.data import FaceSplit, load_faces
from training.recipe import load_recipe
from training.tensor_augment import TensorAugment

import timm
from timm.utils import ModelEmaV3


def prepare(split: FaceSplit, cfg: dict[str, Any]) -> np.ndarray:
    """All faces of a split through the shared serving path, as (N,H,W,C) uint8."""
    return np.stack([to_model_input(img, cfg["input_size"], cfg["in_chans"]) for img in split.images])


@torch.no_grad()
def predict_logits(model: torch.nn.Module, faces: np.ndarray, cfg: dict[str, Any],
                   device: str, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(faces), batch_size):
        x = normalize_batch(faces[i:i + batch_size], cfg["mean"], cfg["std"]).to(device)
        out.append(model(x).float().cpu())
    return torch.cat(out)


def build_optimizer(model: torch.nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.get("optimizer", "sgd") == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg.get("momentum", 0.9), nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg["lr"])


def build_scheduler(opt: torch.optim.Optimizer, cfg: dict[str, Any], steps_per_epoch: int):
    total = cfg["epochs"] * steps_per_epoch
    if cfg.get("schedule", "onecycle") == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=total,
                                                   pct_start=cfg.get("warmup_pct", 0.2))
    # Warm-up counted in epochs keeps the first epochs' learning rate independent of the total, so a
    # run whose length a time budget fixed after epoch 1 is reproduced exactly with `--epochs N`.
    warm = (int(cfg["warmup_epochs"] * steps_per_epoch) if "warmup_epochs" in cfg
            else int(cfg.get("warmup_pct", 0.05) * total))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warm) if s < warm
        else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))


def class_balance_weights(labels: np.ndarray, mode: str) -> torch.Tensor:
    """Per-class loss weights: "none" (plain accuracy), "sqrt" (1/sqrt(freq)) or "inverse" (1/freq),
    normalised so the average training face keeps weight 1. Disgust is 1.5% of FER-2013."""
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    if mode == "none":
        w = np.ones(len(EMOTIONS))
    elif mode in ("sqrt", "inverse"):
        w = 1.0 / np.maximum(counts, 1) ** (0.5 if mode == "sqrt" else 1.0)
        w = w / (w[labels].mean())
    else:
        raise ValueError(f"class_balance must be none, sqrt or inverse, not {mode!r}")
    return torch.tensor(w, dtype=torch.float32)


def soft_targets(labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    n = len(EMOTIONS)
    t = torch.full((labels.shape[0], n), smoothing / n)
    t.scatter_(1, labels[:, None], 1.0 - smoothing + smoothing / n)
    return t


def train(cfg: dict[str, Any], data: Path, out_dir: Path, device: str, config_path: str) -> dict[str, Any]:
    torch.manual_seed(cfg["seed"]); np.random.seed(cfg["seed"]); random.seed(cfg["seed"])
    if device == "cpu":
        torch.set_num_threads(cfg.get("threads", 2))
    else:
        torch.backends.cudnn.benchmark = True  # fixed 48x48 batches: let cuDNN pick its fastest kernels
    label_source = cfg.get("labels", "fer2013")
    train_split = load_faces(data, "Training", label_source)
    # Selection uses hard labels of the same source: FER+ majority when training on FER+ votes.
    val_split = load_faces(data, "PublicTest", "fer2013" if label_source == "fer2013" else "ferplus_majority")
    if cfg.get("limit"):  # smoke runs and tests: a small slice of each split
        n = int(cfg["limit"])
        train_split = FaceSplit(train_split.images[:n], train_split.labels[:n], "Training",
                                None if train_split.soft is None else train_split.soft[:n])
        if cfg.get("limit_val"):
            val_split = FaceSplit(val_split.images[:n], val_split.labels[:n], "PublicTest")
    train_faces, val_faces = prepare(train_split, cfg), prepare(val_split, cfg)
    train_labels = torch.from_numpy(train_split.labels)
    train_soft = None if train_split.soft is None else torch.from_numpy(train_split.soft)
    val_labels = val_split.labels
    augment_on = cfg.get("augment_on", "auto")
    if augment_on == "auto":
        augment_on = "tensor" if device != "cpu" else "albumentations"
    if augment_on == "tensor":  # batched on the training device; no albumentations needed there
        augment = TensorAugment(cfg.get("augment", {}), cfg["input_size"], cfg["mean"], cfg["std"])
        train_faces_dev = torch.from_numpy(train_faces).to(device)
    else:
        from training.augment import build_train_augment

        augment = build_train_augment(cfg.get("augment", {}), cfg["input_size"])
    class_weights = class_balance_weights(train_split.labels, cfg.get("class_balance", "none")).to(device)
    train_labels_dev = train_labels.to(device)
    train_soft_dev = None if train_soft is None else train_soft.to(device)

    model = timm.create_model(cfg["architecture"], pretrained=False, num_classes=len(EMOTIONS),
                              in_chans=cfg["in_chans"], **cfg.get("model_kwargs", {})).to(device)
    if cfg.get("init_from"):  # continue from earlier weights (e.g. a second, low-lr phase)
        from safetensors.torch import load_file

        model.load_state_dict(load_file(cfg["init_from"]))
    model = model.to(memory_format=torch.channels_last)
    ema = ModelEmaV3(model, decay=cfg["ema"]) if cfg.get("ema") else None
    opt = build_optimizer(model, cfg)
    bs = cfg["batch_size"]
    steps = len(train_faces) // bs
    sched = build_scheduler(opt, cfg, steps)
    use_amp = device == "cuda"
    writer = None
    try:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(Path("runs") / cfg["name"] / "tb"))
    except ImportError:
        pass

    rng = np.random.default_rng(cfg["seed"])
    best = {"acc": -1.0, "epoch": -1, "state": None}
    history = []
    budget_s = 60.0 * float(cfg.get("time_budget_min") or 0)
    train_start = time.time()
    epoch = 0
    while epoch < cfg["epochs"]:
        model.train()
        t0 = time.time()
        order = rng.permutation(len(train_faces))
        loss_sum = torch.zeros((), device=device)
        for step in range(steps):
            idx = order[step * bs:(step + 1) * bs]
            idx_t = torch.from_numpy(idx).to(device)
            if augment_on == "tensor":
                x = augment(train_faces_dev[idx_t])
            else:
                batch = np.stack([augment(image=train_faces[i])["image"] for i in idx])
                if batch.ndim == 3:
                    batch = batch[..., None]
                x = normalize_batch(batch, cfg["mean"], cfg["std"]).to(device)
            x = x.contiguous(memory_format=torch.channels_last)
            if train_soft_dev is not None:  # FER+ vote distribution, smoothed like the one-hot targets
                ls = cfg.get("label_smoothing", 0.0)
                y = (1 - ls) * train_soft_dev[idx_t] + ls / len(EMOTIONS)
            else:
                y = soft_targets(train_labels[idx], cfg.get("label_smoothing", 0.0)).to(device)
            if cfg.get("mixup", 0) > 0:
                lam = float(rng.beta(cfg["mixup"], cfg["mixup"]))
                perm = torch.randperm(x.shape[0], device=device)
                x = lam * x + (1 - lam) * x[perm]
                y = lam * y + (1 - lam) * y[perm]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                logits = model(x)
            per_face = torch.sum(-y * F.log_softmax(logits.float(), dim=1), dim=1)
            loss = (per_face * class_weights[train_labels_dev[idx_t]]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(model)
            loss_sum += loss.detach()
        eval_model = ema.module if ema is not None else model
        val_pred = predict_logits(eval_model, val_faces, cfg, device).argmax(1).numpy()
        val_acc = float((val_pred == val_labels).mean())
        rec = {"epoch": epoch + 1, "train_loss": float(loss_sum) / steps, "val_acc": val_acc,
               "seconds": round(time.time() - t0, 1)}
        history.append(rec)
        print(json.dumps(rec), flush=True)
        if writer is not None:
            writer.add_scalar("train/loss", rec["train_loss"], epoch + 1)
            writer.add_scalar("val/accuracy", val_acc, epoch + 1)
        if val_acc > best["acc"]:
            best = {"acc": val_acc, "epoch": epoch + 1, "state": copy.deepcopy(eval_model.state_dict())}
            ckpt_dir = Path("runs") / cfg["name"]
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"state": best["state"], "epoch": epoch + 1, "acc": val_acc}, ckpt_dir / "best.pt")
        epoch += 1
        if budget_s and epoch == 1:
            # Fit the schedule to the time budget once epoch 1's speed is known, then keep it fixed:
            # the card records the resulting epoch count, and `--epochs N` reproduces the run.
            fit = int(budget_s // max(time.time() - train_start, 1e-6))
            cfg["epochs"] = max(2, min(cfg["epochs"], fit))
            sched = build_scheduler(opt, cfg, steps)
            for _ in range(steps):
                sched.step()
            print(json.dumps({"epochs_fitted_to_budget": cfg["epochs"]}), flush=True)
        elif budget_s and epoch < cfg["epochs"] and time.time() - train_start > 1.1 * budget_s:
            print(json.dumps({"stopped": "time budget exceeded", "epoch": epoch}), flush=True)
            cfg["stopped_at_epoch"] = epoch
            break

    eval_model = ema.module if ema is not None else model
    eval_model.load_state_dict(best["state"])
    eval_model = eval_model.to("cpu").float().eval()
    return save(eval_model, cfg, out_dir, history, best, data, config_path, val_faces, val_labels,
                half=bool(cfg.get("half_weights")))


def save(model: torch.nn.Module, cfg: dict[str, Any], out_dir: Path, history: list, best: dict,
         data: Path, config_path: str, val_faces: np.ndarray, val_labels: np.ndarray,
         half: bool = False) -> dict[str, Any]:
    from safetensors.torch import save_file

    from core.emotion.calibration import fit_temperature

    out_dir.mkdir(parents=True, exist_ok=True)
    logits = predict_logits(model, val_faces, cfg, "cpu")
    temperature = fit_temperature(logits, torch.from_numpy(val_labels))
    weights_path = out_dir / f"{cfg['name']}.safetensors"
    # fp16 halves the shipped file; serving loads it into fp32 parameters (load_state_dict casts).
    save_file({k: (v.half() if half and v.is_floating_point() else v).contiguous()
               for k, v in model.state_dict().items()}, str(weights_path))
    card = {
        "name": cfg["name"],
        "task": "facial-emotion-classification",
        "architecture": cfg["architecture"],
        "model_kwargs": cfg.get("model_kwargs", {}),
        "weights": weights_path.name,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "input_size": cfg["input_size"],
        "in_chans": cfg["in_chans"],
        "mean": cfg["mean"],
        "std": cfg["std"],
        "classes": list(EMOTIONS),
        "temperature": temperature,
        "crop": {"margin": 0.2, "square": True,
                 "note": "face box expanded by 20% per side to a square, like FER-2013's framing"},
        "training_data": {
            "name": ("FER-2013 (Training split, 28,709 faces)" if cfg.get("labels", "fer2013") == "fer2013"
                     else f"FER-2013 Training faces with FER+ labels ({cfg['labels']})"),
            "source": "Kaggle ICML 2013 Challenges in Representation Learning (Goodfellow et al., arXiv:1307.0414)",
            "terms": "Research use only (Kaggle competition terms); the images are not redistributed.",
        },
        "training": {"config": config_path, "recipe": {k: v for k, v in cfg.items() if k != "name"},
                     "best_epoch": best["epoch"], "history": history},
        "metrics": {"PublicTest": {"accuracy": best["acc"],
                                   "note": "validation split, used to pick the checkpoint"}},
    }
    # `train` is also called by run_experiments, so the card names the config, not this process's argv.
    provenance.stamp(card, "training.train_classifier", ["--config", config_path])
    provenance.write_json(out_dir / f"{cfg['name']}.json", card)
    print(f"saved {weights_path} (best PublicTest {best['acc']:.4f} at epoch {best['epoch']}, "
          f"T={temperature:.3f})")
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--data", default=None, help="fer2013.npz / fer2013.csv / Kaggle folder")
    ap.add_argument("--out", default="weights")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--epochs", type=int, default=None, help="override the config (smoke runs)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N faces per split")
    ap.add_argument("--time-budget-min", type=float, default=None,
                    help="fit the epoch count to this many minutes after epoch 1 (the card records it)")
    ap.add_argument("--half-weights", action="store_true", help="save fp16 weights (half the file size)")
    args = ap.parse_args(argv)
    cfg = load_recipe(args.config, epochs=args.epochs, limit=args.limit, time_budget_min=args.time_budget_min,
                      half_weights=args.half_weights or None)
    data = Path(args.data) if args.data else settings.get().data_dir / "fer2013" / "fer2013.npz"
    if not data.exists():
        print(f"FER-2013 not found at {data}; pass --data or set EMOLENS_DATA_DIR", file=sys.stderr)
        return 2
    train(cfg, data, Path(args.out), args.device, args.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
