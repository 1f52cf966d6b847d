"""Fine-tune the shipped emotion model on a labelled set (transfer learning), and say what it changed.

    python -m training.finetune --data ZIP_OR_DIR [--classes a,b,c] [--epochs N] --out DIR --json OUT
        [--base-model NAME] [--name NAME] [--holdout 0.25] [--validation 0.2] [--group-column subject]
        [--full-head] [--last-block] [--augment]

The labelled set is anything `core.datasets.labelled.read_labelled` reads (the Annotate page's export, class
folders, a folder with labels.csv). The method lives in `core.emotion.finetune` (the Annotate page runs the
same code): the shipped model's features are kept and a new final layer is trained for the set's classes,
`--full-head` trains the whole head, `--last-block` also the last convolutional block, `--augment` jitters
every face each step (albumentations; slower). A held-out part is split off by file (by subject when a
column names one) before training; `before` and `after` are scored on it only. Writes
`<out>/<name>.safetensors` + model card `<out>/<name>.json` (with this command and the commit) and the
report `--json`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import core  # noqa: F401  (offline switches)
from core.datasets.labelled import normalize_emotion, read_labelled
from core.emotion.classifier import EmotionClassifier
from core.emotion.finetune import Augment, FinetuneConfig, finetune
from core.emotion.vocabulary import EMOTIONS
from core.errors import UserFacingError
from training import provenance


def augmenter(input_size: int) -> Augment:
    """The training recipe's jitter (milder rotation, less erasing) for one prepared face."""
    from training.augment import build_train_augment

    aug = build_train_augment({"erase_p": 0.25, "rotate": (-10, 10)}, input_size)

    def apply(face: np.ndarray) -> np.ndarray:
        out = aug(image=face)["image"]
        return out[..., None] if out.ndim == 2 else out
    return apply


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.finetune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="labelled set: a zip, a folder, or a labels.csv")
    ap.add_argument("--classes", default=None, help="comma-separated classes (default: all labelled ones)")
    ap.add_argument("--epochs", type=int, default=FinetuneConfig.epochs)
    ap.add_argument("--out", required=True, help="folder for <name>.safetensors + <name>.json")
    ap.add_argument("--json", required=True, help="where to write the before/after report")
    ap.add_argument("--name", default=FinetuneConfig.name, help="name of the new model (file stem)")
    ap.add_argument("--base-model", default=None, help="model to start from (default: the shipped one)")
    ap.add_argument("--weights-dir", default=None, help="where the base model lives (default: EMOLENS_WEIGHTS_DIR)")
    ap.add_argument("--holdout", type=float, default=FinetuneConfig.holdout, help="held-out share (0-0.5)")
    ap.add_argument("--group-column", default=None, help="split by this column (default: subject if present)")
    ap.add_argument("--full-head", action="store_true",
                    help="train the whole head (default: only its final layer, on the kept embedding)")
    ap.add_argument("--last-block", action="store_true", help="also train the last convolutional block")
    ap.add_argument("--augment", action="store_true",
                    help="jitter every face each step (default: mirror images only, features computed once)")
    ap.add_argument("--lr", type=float, default=FinetuneConfig.lr)
    ap.add_argument("--validation", type=float, default=FinetuneConfig.validation,
                    help="share of the training part that picks the epoch (0: keep the last)")
    ap.add_argument("--seed", type=int, default=FinetuneConfig.seed)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if not 0.05 <= args.holdout <= 0.5:
        print("error: --holdout must be between 0.05 and 0.5", file=sys.stderr)
        return 2
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    cfg = FinetuneConfig(classes=classes, epochs=args.epochs, holdout=args.holdout, group_column=args.group_column,
                         full_head=args.full_head, last_block=args.last_block, lr=args.lr,
                         validation=args.validation, seed=args.seed, name=args.name)
    try:
        vocabulary = list(dict.fromkeys([*EMOTIONS, *(normalize_emotion(c) for c in classes or [])]))
        labelled = read_labelled(Path(args.data), vocabulary)
        base = EmotionClassifier.load(args.base_model, Path(args.weights_dir) if args.weights_dir else None)
        result = finetune(labelled, cfg, base, data_label=str(args.data),
                          command=provenance.command_line("training.finetune", argv), commit=provenance.git_commit(),
                          augment=augmenter(base.card.input_size) if args.augment else None)
    except UserFacingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    weights, card = result.save(Path(args.out))
    result.report.update({"weights": str(weights), "card": str(card)})
    provenance.write_json(args.json, result.report)
    b, a = result.report["before"], result.report["after"]
    print(f"held-out ({a['n']} faces, split by {result.report['split']['group_by']}): "
          f"accuracy {b['accuracy']:.1%} -> {a['accuracy']:.1%}, macro-F1 {b['macro_f1']:.3f} -> {a['macro_f1']:.3f}")
    print(f"saved {weights} and {card}; report {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
