"""Choose an ensemble of trained emotion models on PublicTest (validation) and write its model card.

    python -m training.select_ensemble --weights-dir weights --candidates emotion_vgg_m emotion_resnet18s ... \
        [--labels fer2013|ferplus_majority] --name emotion_ensemble --json weights/reports/ensemble_fer2013.json

Greedy forward selection (Caruana et al. 2004), without replacement: start from the best single model,
add whichever candidate raises PublicTest accuracy most, stop when none does. Every model is scored
through the serving path with mirror TTA. PrivateTest is never read here; score the written card once
with `training.evaluate_classifier --split PrivateTest`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from core import settings
from core.emotion.classifier import EmotionClassifier
from core.emotion.card import ModelCard
from training import provenance
from core.emotion.calibration import fit_temperature
from training.data import load_faces

SPLIT = "PublicTest"


def log_probs(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def greedy_selection(scores: dict[str, np.ndarray], labels: np.ndarray, max_members: int) -> list[dict]:
    """Path of the greedy search: [{members, accuracy}], each step adding the member that helps most."""
    def accuracy(names: list[str]) -> float:
        mean = np.mean([scores[n] for n in names], axis=0)
        return float((mean.argmax(1) == labels).mean())

    first = max(scores, key=lambda n: accuracy([n]))
    path = [{"members": [first], "accuracy": accuracy([first])}]
    while len(path[-1]["members"]) < max_members:
        current = path[-1]["members"]
        options = {n: accuracy(current + [n]) for n in scores if n not in current}
        if not options:
            break
        best = max(options, key=options.get)
        if options[best] <= path[-1]["accuracy"]:
            break
        path.append({"members": current + [best], "accuracy": options[best]})
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(settings.get().data_dir / "fer2013" / "fer2013.npz"))
    ap.add_argument("--weights-dir", default=str(settings.get().weights_dir))
    ap.add_argument("--candidates", nargs="+", required=True, help="model names (cards in --weights-dir)")
    ap.add_argument("--labels", default="fer2013", choices=["fer2013", "ferplus_majority"])
    ap.add_argument("--max-members", type=int, default=4)
    ap.add_argument("--name", required=True, help="name of the ensemble card to write")
    ap.add_argument("--json", dest="json_out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    root = Path(args.weights_dir)
    faces = load_faces(args.data, SPLIT, args.labels)
    crops = list(faces.images)
    singles, scores = {}, {}
    for name in args.candidates:
        clf = EmotionClassifier.load(name, root)
        plain = clf.logits(crops, tta_flip=False)
        # mirror TTA = mean of the face's and its mirror's logits; reuse `plain` instead of recomputing it
        flipped = 0.5 * (plain + clf.logits([c[:, ::-1] for c in crops], tta_flip=False))
        scores[name] = log_probs(flipped)
        singles[name] = {"accuracy": float((plain.argmax(1) == faces.labels).mean()),
                         "accuracy_tta": float((flipped.argmax(1) == faces.labels).mean())}
        print(name, json.dumps(singles[name]), flush=True)
    path = greedy_selection(scores, faces.labels, args.max_members)
    chosen = path[-1]["members"]
    ensemble_scores = np.mean([scores[n] for n in chosen], axis=0)
    temperature = fit_temperature(torch.from_numpy(ensemble_scores), torch.from_numpy(faces.labels))
    first = ModelCard.load(root / f"{chosen[0]}.json").raw
    card = {
        "name": args.name, "task": "facial-emotion-classification", "architecture": "emolens_ensemble",
        "members": chosen, "weights": "",
        **{k: first[k] for k in ("input_size", "in_chans", "mean", "std", "classes", "crop")},
        "temperature": temperature, "inference": {"tta_flip": True},
        "parameters": int(sum(ModelCard.load(root / f"{m}.json").raw.get("parameters", 0) for m in chosen)),
        "training_data": first.get("training_data", {}),
        "selection": {"split": SPLIT, "labels": args.labels, "method": "greedy forward selection, mirror TTA",
                      "path": path, "candidates": singles},
        "metrics": {SPLIT + ("" if args.labels == "fer2013" else f"/{args.labels}") + "+tta":
                    {"accuracy": path[-1]["accuracy"], "note": "validation split, used to choose the members"}},
    }
    provenance.write_json(root / f"{args.name}.json", provenance.stamp(card, "training.select_ensemble", argv))
    report = {"split": SPLIT, "labels": args.labels, "candidates": singles, "path": path, "chosen": chosen,
              "temperature": temperature, "command": card["command"], "commit": card["commit"]}
    provenance.write_json(args.json_out, report)
    print(json.dumps({"path": path, "temperature": temperature}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
