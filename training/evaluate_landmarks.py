"""Landmark accuracy of every landmarker on 68-point ground truth (300-W markup), the way the app runs them.

    python -m training.evaluate_landmarks --data ../shared/data/landmarks --json weights/reports/landmarks.json \
        [--methods mediapipe_mesh,dlib68] [--detector mediapipe_full] [--boxes detector|gt] [--limit N]

Each face is found by the app's detector (the detection matching the annotated face by IoU), then every
landmarker gets that same box. Faces the detector misses are listed and left out for every method alike.
NME is normalised by the outer-eye-corner distance (300-W); MediaPipe's 478 points are compared through
the approximate 478->68 mapping in `core.landmarks.mapping`. The JSON contract: `methods` -> {name:
{nme, nme_by_region, failure_rate, ms_per_face, ...}} over all faces, plus `by_subset`. dlib was trained
on AFW (and HELEN's train part), so only `helen_test` is a fair subset for dlib.
When OUT already holds the emotion-impact study (`emotion_impact`), that section is kept.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import core  # noqa: F401  (offline switches)
from core import settings
from core.detection import Box, make_detector
from core.landmarks.metrics import CED_THRESHOLDS, FAILURE_THRESHOLD, score
from core.landmarks import available_landmarkers, make_landmarker
from training import provenance

FAIR_SUBSET = "helen_test"
MIN_IOU = 0.3


@dataclass
class GroundTruthFace:
    id: str
    path: Path
    subset: str
    points: np.ndarray  # (68, 2) 0-based pixel centres in the image


def load_ground_truth(root: Path, subsets: list[str] | None = None, limit: int | None = None
                      ) -> list[GroundTruthFace]:
    """Read `landmarks.json`; `limit` keeps the first N faces of each subset (quick runs, tests)."""
    meta = json.loads((root / "landmarks.json").read_text())
    faces: list[GroundTruthFace] = []
    counts: dict[str, int] = {}
    for e in meta["images"]:
        if subsets and e["subset"] not in subsets:
            continue
        if limit is not None and counts.get(e["subset"], 0) >= limit:
            continue
        counts[e["subset"]] = counts.get(e["subset"], 0) + 1
        faces.append(GroundTruthFace(e["id"], root / e["file"], e["subset"],
                                     np.asarray(e["points"], dtype=np.float32)))
    return faces


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def points_box(points: np.ndarray) -> Box:
    x1, y1 = points.min(axis=0)
    x2, y2 = points.max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def match_box(boxes: list[Box], gt: np.ndarray, min_iou: float = MIN_IOU) -> Box | None:
    """The detection that is the annotated face (crops can hold other people), or None."""
    target = points_box(gt)
    best = max(boxes, key=lambda b: iou(b, target), default=None)
    return best if best is not None and iou(best, target) >= min_iou else None


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def evaluate(root: Path, methods: list[str], detector: str, boxes: str = "detector",
             subsets: list[str] | None = None, limit: int | None = None) -> dict[str, Any]:
    faces = load_ground_truth(root, subsets, limit)
    det = make_detector(detector) if boxes == "detector" else None
    landmarkers = {m: make_landmarker(m) for m in methods}
    kept: list[GroundTruthFace] = []
    preds: dict[str, list[np.ndarray | None]] = {m: [] for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    missed: list[str] = []
    for face in faces:
        image = read_rgb(face.path)
        box = points_box(face.points) if det is None else match_box([d.box for d in det.detect(image)], face.points)
        if box is None:
            missed.append(face.id)
            continue
        kept.append(face)
        for m, lm in landmarkers.items():
            t0 = time.perf_counter()
            preds[m].append(lm.landmarks68(image, box))
            times[m].append((time.perf_counter() - t0) * 1000)

    def table(mask: np.ndarray) -> dict[str, Any]:
        gts = [f.points for f, k in zip(kept, mask) if k]
        return {m: score([p for p, k in zip(preds[m], mask) if k], gts,
                         [t for t, k in zip(times[m], mask) if k]).to_dict() for m in methods}

    all_mask = np.ones(len(kept), dtype=bool)
    by_subset = {}
    for s in sorted({f.subset for f in faces}):
        mask = np.array([f.subset == s for f in kept], dtype=bool)
        by_subset[s] = {"n": int(mask.sum()), "n_detector_missed": sum(i.startswith(s + "_") for i in missed),
                        "methods": table(mask)}
    return {
        "task": "landmark-accuracy",
        "data": str(root), "subsets": sorted({f.subset for f in faces}), "n_faces": len(faces),
        "n_evaluated": len(kept), "detector_missed": missed,
        "boxes": f"detector:{detector}" if det is not None else "ground-truth points' bounding box",
        "normaliser": "outer eye corners |p36 - p45| of the ground truth (300-W)",
        "failure_threshold": FAILURE_THRESHOLD,
        "failure_definition": f"NME > {FAILURE_THRESHOLD} or no points returned",
        "ced_thresholds": [float(t) for t in CED_THRESHOLDS],
        "ms_per_face_definition": "median wall time of landmarks68(image, box) per face, 1 process, CPU "
                                  "(2 shared cores), detector time excluded",
        "fair_subset": FAIR_SUBSET,
        "fair_subset_note": "dlib's 68-point model was trained on 300-W's training list (AFW, HELEN train), "
                            "so its afw scores are optimistic; compare methods on helen_test.",
        "mapping_note": "MediaPipe is scored through the approximate 478->68 mapping in core/landmarks/mapping.py "
                        "(source: github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks @ db9e81e); its jaw error "
                        "is partly the mapping's, not the mesh's.",
        "methods": table(all_mask),
        "by_subset": by_subset,
    }


def merge_json(path: Path, section: dict[str, Any], keep: tuple[str, ...] = ()) -> None:
    """Write `section` into the JSON at `path`, keeping only the listed keys of what was there."""
    old: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
    provenance.write_json(path, {k: old[k] for k in keep if k in old} | section, indent=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(settings.get().data_dir / "landmarks"))
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--methods", default=",".join(available_landmarkers()))
    ap.add_argument("--detector", default=settings.get().detector)
    ap.add_argument("--boxes", choices=["detector", "gt"], default="detector",
                    help="face boxes from the app's detector (default) or from the ground-truth points")
    ap.add_argument("--subsets", default=None, help="comma-separated, e.g. helen_test")
    ap.add_argument("--limit", type=int, default=None, help="first N faces per subset")
    args = ap.parse_args(argv)
    root = Path(args.data)
    if not (root / "landmarks.json").exists():
        print(f"no landmarks.json in {root}", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in available_landmarkers()]
    if unknown:
        print(f"unknown method(s) {unknown}; choose from {available_landmarkers()}", file=sys.stderr)
        return 2
    t0 = time.time()
    report = evaluate(root, methods, args.detector, args.boxes,
                      args.subsets.split(",") if args.subsets else None, args.limit)
    provenance.stamp(report, "training.evaluate_landmarks", argv, created=True)
    report["wall_s"] = round(time.time() - t0, 1)
    summary = {m: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                   if k in ("nme", "failure_rate", "ms_per_face", "n", "n_missing")}
               for m, r in report["methods"].items()}
    print(json.dumps({"n_evaluated": report["n_evaluated"], "detector_missed": len(report["detector_missed"]),
                      "methods": summary}, indent=2))
    if args.json_out:
        merge_json(Path(args.json_out), report, keep=("emotion_impact",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
