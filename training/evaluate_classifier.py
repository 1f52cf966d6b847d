"""Score an emotion model on a FER-2013 split through the serving code path.

    python -m training.evaluate_classifier --data ../shared/data/fer2013/fer2013.npz \
        --split PrivateTest [--weights weights/emotion_vgg_s.json] [--tta] --json OUT [--update-card]

Prints and writes accuracy, macro_f1, per_class, confusion (rows true, columns predicted, in the model
card's class order), ece and ms_per_face (batch 1, CPU). `--update-card` records the figures in the model
card under `metrics[split]`: that is how shipped numbers get there, never by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core import settings
from core.emotion.classifier import EmotionClassifier
from core.emotion.metrics import classification_report
from training import provenance
from training.data import LABEL_SOURCES, load_faces


def ms_per_face(classifier: EmotionClassifier, faces: np.ndarray, tta: bool, n: int = 200) -> float:
    """Median wall time of one face at batch 1 (what the live demo pays), after a warm-up."""
    times = []
    for i in range(n + 10):
        face = faces[i % len(faces)]
        t0 = time.perf_counter()
        classifier.predict([face], tta_flip=tta)
        if i >= 10:
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def evaluate(weights: Path, data: Path, split: str, tta: bool, labels: str = "fer2013") -> dict:
    """The figures of one model on one split; the CLI adds the command, commit and data before writing."""
    card_path = weights if weights.suffix == ".json" else weights.with_suffix(".json")
    classifier = EmotionClassifier.load(card_path.stem, card_path.parent)
    faces = load_faces(data, split, labels)
    probs = classifier.predict(list(faces.images), tta_flip=tta)
    report = classification_report(probs, faces.labels, classifier.classes).to_dict()
    torch.set_num_threads(2)
    report["ms_per_face"] = round(ms_per_face(classifier, faces.images, tta), 3)
    report.update({
        "model": classifier.card.name, "split": split, "labels": labels, "tta": tta, "classes": list(classifier.classes),
    })
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(settings.get().data_dir / "fer2013" / "fer2013.npz"))
    ap.add_argument("--split", default="PrivateTest", choices=["Training", "PublicTest", "PrivateTest"])
    ap.add_argument("--weights", default=str(settings.get().weights_dir / f"{settings.get().emotion_model}.json"))
    ap.add_argument("--tta", action="store_true", help="average with the mirrored face")
    ap.add_argument("--labels", default="fer2013", choices=[x for x in LABEL_SOURCES if x != "ferplus_soft"],
                    help="score against FER-2013's labels or FER+ majority votes (faces FER+ drops are left out)")
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args(argv)
    if not Path(args.data).exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    report = evaluate(Path(args.weights), Path(args.data), args.split, args.tta, args.labels)
    provenance.stamp(report, "training.evaluate_classifier", argv, data=str(args.data))
    summary = {k: report[k] for k in ("model", "split", "tta", "accuracy", "macro_f1", "ece", "ms_per_face", "n")}
    print(json.dumps(summary, indent=2))
    if args.json_out:
        provenance.write_json(args.json_out, report)
    if args.update_card:
        card_path = Path(args.weights).with_suffix(".json")
        card = json.loads(card_path.read_text())
        key = args.split + ("" if args.labels == "fer2013" else f"/{args.labels}") + ("+tta" if args.tta else "")
        card.setdefault("metrics", {})[key] = {
            k: report[k] for k in ("accuracy", "macro_f1", "ece", "ms_per_face", "n")} | {
            "command": report["command"]}
        provenance.write_json(card_path, card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
