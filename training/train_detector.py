"""Train our YOLO face detector from its model yaml, offline, and ship it as weights/face_yolo.pt.

    python -m training.train_detector --config training/configs/face_yolo.yaml \
        [--data ../shared/data/faces] [--hours H] [--epochs N] [--device cpu|0]

The train split minus a seeded 'tune' slice (training/detector_splits.py) trains; val picks the best epoch.
The model card records the recipe; `training.evaluate_detector` adds the measured figures.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import yaml

from core import settings
from core.detection.ultralytics_env import import_ultralytics
from training import provenance
from training.detector_splits import split_train
from training.recipe import load_recipe


def write_dataset_yaml(data_dir: Path, work: Path, tune_fraction: float, seed: int) -> Path:
    """A data yaml whose train list leaves out the tune slice (absolute paths, as Ultralytics wants)."""
    work.mkdir(parents=True, exist_ok=True)
    splits = split_train(data_dir, tune_fraction, seed)
    train_list = work / "train.txt"
    train_list.write_text("".join(f"{p.resolve()}\n" for p in splits["train"]))
    cfg = {"path": str(Path(data_dir).resolve()), "train": str(train_list.resolve()),
           "val": "images/val", "names": {0: "face"}}
    out = work / "data.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def ultralytics_history(results_csv: Path) -> list[dict[str, float]]:
    """Per-epoch val figures Ultralytics logged (all val faces, tiny ones included), for the model card."""
    import csv

    if not results_csv.exists():
        return []
    rows = []
    with open(results_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            row = {k.strip(): v for k, v in row.items()}
            rows.append({"epoch": int(float(row["epoch"])), "precision": float(row["metrics/precision(B)"]),
                         "recall": float(row["metrics/recall(B)"]), "map50": float(row["metrics/mAP50(B)"]),
                         "map50_95": float(row["metrics/mAP50-95(B)"])})
    return rows


def read_results_csv_without_polars(trainer) -> dict[str, list[float]]:
    """Ultralytics reads its own results.csv with polars; where polars is absent (a bare GPU machine) the
    standard library does the same job."""
    import csv

    try:
        with open(trainer.csv, newline="") as fh:
            rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    except (OSError, ValueError):
        return {}
    return {k: [r[k] for r in rows] for k in (rows[0] if rows else {})}


def ensure_results_reader() -> None:
    try:
        import polars  # noqa: F401
    except ImportError:
        from ultralytics.engine.trainer import BaseTrainer

        BaseTrainer.read_results_csv = read_results_csv_without_polars


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="training/configs/face_yolo.yaml")
    ap.add_argument("--data", default=str(settings.get().data_dir / "faces"))
    ap.add_argument("--hours", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="runs/detector")
    ap.add_argument("--weights-out", default=str(settings.get().weights_dir / "face_yolo.pt"))
    args = ap.parse_args(argv)
    cfg = load_recipe(args.config, hours=args.hours, epochs=args.epochs)
    YOLO = import_ultralytics().YOLO
    ensure_results_reader()

    out = Path(args.out).resolve()
    data_yaml = write_dataset_yaml(Path(args.data), out / "dataset", cfg["tune_fraction"], cfg["seed"])
    model = YOLO(cfg["model"])
    t0 = time.time()
    train_args = dict(data=str(data_yaml), imgsz=cfg["imgsz"], epochs=cfg["epochs"], batch=cfg["batch"],
                      workers=cfg["workers"], seed=cfg["seed"], optimizer=cfg["optimizer"], lr0=cfg["lr0"],
                      close_mosaic=cfg["close_mosaic"], patience=cfg["patience"], device=args.device,
                      pretrained=False, amp=cfg.get("amp", False), plots=False, project=str(out),
                      name=cfg["name"], exist_ok=True, deterministic=cfg.get("deterministic", True),
                      cache=cfg.get("cache", False), verbose=True)
    if cfg.get("hours"):
        train_args["time"] = cfg["hours"]
    model.train(**train_args)
    best = out / cfg["name"] / "weights" / "best.pt"
    target = Path(args.weights_out)
    shutil.copyfile(best, target)
    history = ultralytics_history(out / cfg["name"] / "results.csv")
    card = {
        "name": target.stem, "task": "face detection", "architecture": cfg["model"].removesuffix(".yaml"),
        "weights": target.name, "imgsz": cfg["imgsz"], "classes": ["face"],
        "trained_on": "shared/data/faces train split minus the seeded tune slice (WIDER FACE val images)",
        "selected_on": "faces val split (Ultralytics best.pt, fitness = 0.1 mAP50 + 0.9 mAP50-95)",
        "recipe": cfg, "device": args.device, "epochs_completed": len(history),
        "history_val_all_faces": history, "train_minutes": round((time.time() - t0) / 60, 1),
    }
    provenance.stamp(card, "training.train_detector", argv)
    card_path = target.with_suffix(".json")
    if card_path.exists():  # keep measured figures written by evaluate_detector
        old = json.loads(card_path.read_text())
        card = {**{k: v for k, v in old.items() if k in ("metrics", "default_threshold", "default_detector_reason")}, **card}
    provenance.write_json(card_path, card)
    print(f"Saved {target} ({target.stat().st_size / 1e6:.1f} MB) and {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
