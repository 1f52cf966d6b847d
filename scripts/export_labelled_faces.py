"""Write FER-format faces as a labelled set (class folders of PNG crops) that `training.finetune`, Model
Comparison and the Fairness page read, e.g. to fine-tune towards another labelling convention (FER+).

    python scripts/export_labelled_faces.py --data ../shared/data/fer2013/fer2013.npz --split PublicTest \
        --labels ferplus_majority --n 700 --out /tmp/ferplus_publictest

The output is research data: keep it outside the repository. PrivateTest is refused (it is the test set).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.emotion.vocabulary import EMOTIONS  # noqa: E402
from training.data import LABEL_SOURCES, load_faces  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="PublicTest", choices=["Training", "PublicTest"])
    ap.add_argument("--labels", default="fer2013", choices=[x for x in LABEL_SOURCES if x != "ferplus_soft"])
    ap.add_argument("--n", type=int, default=700, help="faces, drawn at random (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    faces = load_faces(args.data, args.split, args.labels)
    pick = np.random.default_rng(args.seed).permutation(len(faces))[:args.n]
    out = Path(args.out)
    for i in pick:
        folder = out / EMOTIONS[int(faces.labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{args.split}_{i:05d}.png"), faces.images[i])
    counts = {e: len(list((out / e).glob("*.png"))) for e in EMOTIONS if (out / e).is_dir()}
    print(f"wrote {len(pick)} faces to {out}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
