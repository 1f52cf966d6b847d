"""Does landmark alignment change emotion accuracy, and how much landmark error can it take?

    python -m training.landmark_emotion_study --json weights/reports/landmarks.json \
        [--model emotion_vgg_s] [--weights-dir weights] [--fer ../shared/data/fer2013/fer2013.npz] \
        [--split PublicTest] [--fairness ../shared/data/fairness] [--fer-limit N] [--fairness-limit N] \
        [--landmark-cache /tmp/emolens_landmark_cache.npz]

For every face the classifier gets (a) the plain crop (the classifier's `crop`, what the app does by
default), (b) a crop aligned from MediaPipe Face Mesh points, (c) one aligned from dlib's points (each
landmarker with its own FER template, `core.landmarks.align.FER_TEMPLATES`, re-measured here), and
(d) crops aligned from MediaPipe's points with added error of growing size: every part of the face
(jaw, each brow, nose, each eye, mouth) is shifted as one piece by a Gaussian offset of `sigma` x the
outer-eye-corner distance per axis. The error actually added is measured as NME against MediaPipe's
points (and as eye-centre error, the only thing alignment uses), so the curve is accuracy vs landmark NME.
Crops go through `core.pipeline.face_crop`, the app's own path (aligned if points are usable, else plain).

Face sets: FER-2013 validation (PublicTest) faces (48x48 grey; the whole image is the face at FER framing, the landmarkers
upscale it), and the fairness set's real photos: London (studio portraits; the app's detector finds the
face) and IMFDB (film stills already cropped to the face; the whole image is the face). Accuracies are
compared on the faces where every landmarker returned points ("common"); `accuracy_all` also counts the
rest with the pipeline's fallback to the plain crop. The section is written under `emotion_impact` in OUT;
the accuracy part written by `training.evaluate_landmarks` is kept.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score

import core  # noqa: F401  (offline switches)
from core import settings
from core.emotion.classifier import EmotionClassifier
from core.emotion.card import weight_files
from core.detection import Box, make_detector
from core.emotion.vocabulary import EMOTIONS
from core.landmarks.metrics import eye_centre_error, interocular, nme
from core.landmarks import make_landmarker
from core.landmarks.align import eye_centres, template_for, template_from_eyes
from core.landmarks.mapping import PARTS
from core.landmarks.report import impact_summary
from core.pipeline import face_crop
from training import provenance
from training.data import load_fer2013
from training.evaluate_landmarks import merge_json, read_rgb

REFERENCE = "mediapipe_mesh"
METHODS = ("mediapipe_mesh", "dlib68")
SIGMAS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
BOOTSTRAP = 1000


@dataclass
class StudyFace:
    image: np.ndarray  # RGB uint8
    box: Box | None    # None: the whole image is already the face crop
    label: int


@dataclass
class FaceSource:
    """The faces of one set, before detection: ids (stable, for the cache), labels and a way to read each image."""

    ids: list[str]
    labels: list[int]
    read: Callable[[int], np.ndarray]
    detector: str | None  # None: FER or pre-cropped faces, no detection
    fixed_box: Callable[[np.ndarray], Box | None]


def fer_source(path: Path, split: str, limit: int | None, seed: int,
               framed_box: Callable[[int], Box]) -> FaceSource:
    faces = load_fer2013(path, split)
    idx = np.arange(len(faces))
    if limit is not None and limit < len(idx):
        idx = np.sort(np.random.default_rng(seed).choice(idx, limit, replace=False))
    return FaceSource([f"{split}:{i}" for i in idx], [int(faces.labels[i]) for i in idx],
                      lambda k: np.repeat(faces.images[idx[k]][:, :, None], 3, axis=2), None,
                      lambda img: framed_box(img.shape[0]))


def fairness_source(root: Path, source: str, limit: int | None, seed: int, detector: str | None) -> FaceSource:
    """One source of the fairness set; with a detector the best face is used, else the whole image is the face."""
    table = pd.read_csv(root / "labels.csv")
    table = table[table["source"] == source]
    if limit is not None and limit < len(table):
        table = table.sample(limit, random_state=seed)
    files = list(table["file"])

    def read(k: int) -> np.ndarray:
        path = root / files[k]
        return read_rgb(path if path.exists() else root / "images" / files[k])

    return FaceSource(files, [EMOTIONS.index(e) for e in table["emotion"]], read, detector, lambda img: None)


class LandmarkCache:
    """Boxes and landmarks per face set, so a rerun with another emotion model skips detection and landmarking.

    Kept in a `.npz` outside the repository (it is derived from the research data); reused only when the
    set's face ids and methods match exactly.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as z:
                self.data = {k: z[k] for k in z.files}

    def get(self, name: str, ids: list[str], methods: tuple[str, ...]) -> dict[str, np.ndarray] | None:
        keys = ["ids", "status", "boxes", "ms", *methods]
        if any(f"{name}/{k}" not in self.data for k in keys) or list(self.data[f"{name}/ids"]) != ids:
            return None
        return {k: self.data[f"{name}/{k}"] for k in keys}

    def put(self, name: str, entry: dict[str, np.ndarray]) -> None:
        self.data.update({f"{name}/{k}": v for k, v in entry.items()})
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(self.path, **self.data)


FACE, WHOLE_IMAGE, NO_FACE = 0, 1, 2


def locate(src: FaceSource, landmarkers: dict[str, Any]) -> dict[str, np.ndarray]:
    """Detect (when the set needs it) and landmark every face: status, boxes, (N, 68, 2) points (NaN: none)."""
    det = make_detector(src.detector) if src.detector else None
    n = len(src.ids)
    status = np.zeros(n, dtype=np.int64)
    boxes = np.full((n, 4), np.nan)
    points = {m: np.full((n, 68, 2), np.nan, dtype=np.float32) for m in landmarkers}
    spent = {m: 0.0 for m in landmarkers}
    for k in range(n):
        image = src.read(k)
        box = src.fixed_box(image)
        if det is not None:
            found = det.detect(image)
            if not found:
                status[k] = NO_FACE
                continue
            box = found[0].box
        if box is None:
            status[k] = WHOLE_IMAGE
        else:
            boxes[k] = box
        for m, lm in landmarkers.items():
            t0 = time.perf_counter()
            pts = lm.landmarks68(image, landmark_box(image, None if box is None else box))
            spent[m] += time.perf_counter() - t0
            if pts is not None:
                points[m][k] = pts
    located = max(1, int((status != NO_FACE).sum()))
    ms = np.array([spent[m] * 1000 / located for m in landmarkers])
    return {"ids": np.array(src.ids), "status": status, "boxes": boxes, "ms": ms, **points}


def landmark_box(image: np.ndarray, box: Box | None) -> Box:
    h, w = image.shape[:2]
    return box if box is not None else (0.0, 0.0, float(w), float(h))


def perturb(points: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Shift each face part as one piece by N(0, (sigma * outer-eye-corner distance)^2) per axis."""
    out = np.asarray(points, dtype=np.float64).copy()
    scale = sigma * interocular(points)
    for idx in PARTS.values():
        out[list(idx)] += rng.normal(0.0, scale, size=2)
    return out.astype(np.float32)


def classify(classifier: EmotionClassifier, faces: list[StudyFace], points: list[np.ndarray | None],
             source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes and whether each crop was aligned, through the app's crop path."""
    crops, aligned = [], []
    for face, pts in zip(faces, points):
        if face.box is None and pts is None:
            crop, was = face.image, False  # an already-cropped face, classified whole
        else:
            crop, was = face_crop(classifier, face.image, landmark_box(face.image, face.box), pts,
                                  source)
        crops.append(crop)
        aligned.append(was)
    preds = []
    for i in range(0, len(crops), 256):  # bounded memory for large real-photo crops
        preds.append(classifier.predict(crops[i:i + 256]).argmax(axis=1))
    return np.concatenate(preds) if preds else np.zeros(0, int), np.array(aligned, dtype=bool)


def paired_diff_ci(correct_a: np.ndarray, correct_b: np.ndarray, seed: int) -> list[float]:
    """95% bootstrap interval (over faces) of accuracy(a) - accuracy(b) on the same faces; per-face
    correctness may be a fraction (the mean over several noise draws)."""
    d = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(BOOTSTRAP, len(d)))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def study_set(faces: list[StudyFace], points: dict[str, list[np.ndarray | None]], classifier: EmotionClassifier,
              seed: int, sigmas: tuple[float, ...], repeats: int = 3) -> dict[str, Any]:
    """All conditions and the noise curve for one face set; `points` are 68-point sets (None: none found).

    Each noise level is drawn `repeats` times and averaged, so the curve shows the trend rather than one
    unlucky draw.
    """
    labels = np.array([f.label for f in faces])
    methods = list(points)
    common = np.array([all(points[m][i] is not None for m in methods) for i in range(len(faces))], dtype=bool)
    sub = np.flatnonzero(common)
    present = sorted(set(labels[sub].tolist()))  # London has only neutral and happy

    def scores(pred: np.ndarray, aligned: np.ndarray) -> dict[str, Any]:
        f1 = f1_score(labels[sub], pred[sub], labels=present, average="macro", zero_division=0)
        return {"accuracy": round(float((pred[sub] == labels[sub]).mean()), 4), "macro_f1": round(float(f1), 4),
                "accuracy_all": round(float((pred == labels).mean()), 4),
                "aligned_rate": round(float(aligned.mean()), 4)}

    base_pred, base_al = classify(classifier, faces, [None] * len(faces))
    correct = {"none": base_pred == labels}
    conditions = {"none": scores(base_pred, base_al)}
    for name in methods:
        pred, al = classify(classifier, faces, points[name], name)
        correct[name] = pred == labels
        conditions[name] = scores(pred, al)
        conditions[name]["diff_vs_none"] = round(float(correct[name][sub].mean() - correct["none"][sub].mean()), 4)
        conditions[name]["diff_vs_none_ci95"] = paired_diff_ci(correct[name][sub], correct["none"][sub], seed)

    ref = [points[REFERENCE][i] for i in sub]
    face_sub = [faces[i] for i in sub]
    curve: list[dict[str, Any]] = []
    clean: np.ndarray | None = None  # correctness with the unperturbed reference (sigma 0)
    rng = np.random.default_rng(seed)
    for sigma in sigmas:
        oks, nmes, eyes = [], [], []
        for _ in range(1 if sigma == 0 else repeats):
            noisy = [perturb(p, sigma, rng) for p in ref]
            pred, _ = classify(classifier, face_sub, noisy, REFERENCE)
            oks.append(pred == labels[sub])
            nmes += [nme(q, p) for q, p in zip(noisy, ref)]
            eyes += [eye_centre_error(q, p) for q, p in zip(noisy, ref)]
        ok = np.mean(oks, axis=0)  # per face: the fraction of draws classified correctly
        clean = ok if clean is None else clean
        curve.append({
            "sigma": sigma, "draws": len(oks),
            "nme": round(float(np.mean(nmes)), 4),
            "eye_centre_error": round(float(np.mean(eyes)), 4),
            "accuracy": round(float(ok.mean()), 4),
            "diff_vs_none_ci95": paired_diff_ci(ok, correct["none"][sub], seed),
            "diff_vs_clean_ci95": paired_diff_ci(ok, clean, seed),
        })
    others = {m: {"nme": round(float(np.mean([nme(points[m][i], points[REFERENCE][i]) for i in sub])), 4),
                  "eye_centre_error": round(float(np.mean([eye_centre_error(points[m][i], points[REFERENCE][i])
                                                           for i in sub])), 4)}
              for m in methods if m != REFERENCE}
    return {"n": len(faces), "n_common": int(common.sum()),
            "landmarks_missing": {m: sum(p is None for p in points[m]) for m in methods},
            "conditions": conditions, "curve": curve, "vs_reference": others}


def faces_and_points(src: FaceSource, located: dict[str, np.ndarray], methods: tuple[str, ...]
                     ) -> tuple[list[StudyFace], dict[str, list[np.ndarray | None]]]:
    """Rebuild the study's faces (images re-read) and points from `locate`'s arrays."""
    faces: list[StudyFace] = []
    points: dict[str, list[np.ndarray | None]] = {m: [] for m in methods}
    for k in range(len(src.ids)):
        if located["status"][k] == NO_FACE:
            continue
        box = None if located["status"][k] == WHOLE_IMAGE else tuple(float(v) for v in located["boxes"][k])
        faces.append(StudyFace(src.read(k), box, src.labels[k]))
        for m in methods:
            pts = located[m][k]
            points[m].append(None if np.isnan(pts).any() else pts)
    return faces, points


def weights_sha256(classifier: EmotionClassifier, weights_dir: Path) -> str:
    """One digest over every weights file the model uses (an ensemble has one per member)."""
    digest = hashlib.sha256()
    for path in weight_files(classifier.card, weights_dir):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", dest="json_out", required=True)
    ap.add_argument("--model", default=settings.get().emotion_model)
    ap.add_argument("--weights-dir", default=str(settings.get().weights_dir))
    ap.add_argument("--fer", default=str(settings.get().data_dir / "fer2013" / "fer2013.npz"))
    ap.add_argument("--split", default="PublicTest", choices=["PublicTest", "PrivateTest"],
                    help="FER-2013 faces; PublicTest (validation), since the study informs an app setting")
    ap.add_argument("--fairness", default=str(settings.get().data_dir / "fairness"))
    ap.add_argument("--detector", default=settings.get().detector, help="finds the faces in London photos")
    ap.add_argument("--fer-limit", type=int, default=None, help="random subset of N FER faces (seeded)")
    ap.add_argument("--fairness-limit", type=int, default=None, help="random subset of N images per source")
    ap.add_argument("--template-faces", type=int, default=2000, help="FER Training faces to re-measure the "
                                                                     "alignment template on (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--landmark-cache", default=None,
                    help="a .npz OUTSIDE the repository to keep boxes and landmarks in, so a rerun with another "
                         "model only re-classifies (e.g. /tmp/emolens_landmark_cache.npz)")
    ap.add_argument("--repeats", type=int, default=3, help="noise draws per level of the curve (averaged)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads; 1 measured fastest on the shared "
                                                           "2-core machine while MediaPipe runs too")
    args = ap.parse_args(argv)
    for path in (Path(args.fer), Path(args.fairness) / "labels.csv"):
        if not path.exists():
            print(f"data not found: {path}", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    t_start = time.time()
    weights_dir = Path(args.weights_dir)
    classifier = EmotionClassifier.load(args.model, weights_dir)
    landmarkers = {m: make_landmarker(m) for m in METHODS}
    cache = LandmarkCache(Path(args.landmark_cache) if args.landmark_cache else None)
    sets: dict[str, Any] = {}
    timings: dict[str, float] = {}
    fairness = Path(args.fairness)
    sources = {
        f"fer2013_{args.split}": fer_source(Path(args.fer), args.split, args.fer_limit, args.seed, classifier.framed_box),
        "fairness_london": fairness_source(fairness, "london", args.fairness_limit, args.seed, args.detector),
        "fairness_imfdb": fairness_source(fairness, "imfdb_muxspace", args.fairness_limit, args.seed, None),
    }
    for name, src in sources.items():
        t0 = time.time()
        located = cache.get(name, src.ids, METHODS)
        reused = located is not None
        if located is None:
            located = locate(src, landmarkers)
            cache.put(name, located)
        faces, points = faces_and_points(src, located, METHODS)
        sets[name] = study_set(faces, points, classifier, args.seed, SIGMAS, args.repeats)
        sets[name]["images_without_detected_face"] = int((located["status"] == NO_FACE).sum())
        sets[name]["landmark_ms_per_face"] = {m: round(float(v), 2) for m, v in zip(METHODS, located["ms"])}
        sets[name]["landmarks_from_cache"] = reused
        timings[name] = round(time.time() - t0, 1)
        print(f"{name}: n={sets[name]['n']} " + ", ".join(
            f"{c}={v['accuracy']:.3f}" for c, v in sets[name]["conditions"].items()), flush=True)
    templates = None
    if args.template_faces:
        src = fer_source(Path(args.fer), "Training", args.template_faces, args.seed, classifier.framed_box)
        located = cache.get("template", src.ids, METHODS)
        if located is None:
            located = locate(src, landmarkers)
            cache.put("template", located)
        templates = {}
        for m in METHODS:
            eyes = [eye_centres(p) for p in located[m] if not np.isnan(p).any()]
            templates[m] = {"faces": len(src.ids), "missing": len(src.ids) - len(eyes),
                            **asdict(template_from_eyes(eyes, 48))}
    section: dict[str, Any] = {
        "model": classifier.card.name, "weights_dir": str(weights_dir),
        "weights_sha256": weights_sha256(classifier, weights_dir), "model_card_metrics": classifier.card.metrics,
        "reference": REFERENCE, "methods": list(METHODS),
        "noise_model": "each part (jaw, brows, nose, eyes, mouth; 7 pieces) of the reference's 68 points is "
                       "shifted as one piece by N(0, (sigma x outer-eye-corner distance)^2) per axis; "
                       "'nme' and 'eye_centre_error' are measured against the unperturbed reference",
        "comparison": "accuracy/macro_f1 on faces where every landmarker returned points (n_common), macro_f1 "
                      "over the emotions present in the set; accuracy_all on all faces with the pipeline's "
                      "fallback to the plain crop; diff_vs_none_ci95 / diff_vs_clean_ci95: paired 95% bootstrap "
                      "intervals (over faces) against no alignment / against noise-free alignment",
        "repeats": args.repeats,
        "template_used": {m: asdict(template_for(m)) for m in METHODS}, "template_measured": templates,
        "subset": {"fer_limit": args.fer_limit, "fairness_limit": args.fairness_limit, "seed": args.seed,
                   "note": "FER faces: a seeded random subset of the split when fer_limit is set (CPU budget); "
                           "fairness: every image of each source unless fairness_limit is set"},
        "sets": sets, "set_seconds": timings,
        "env": {"EMOLENS_WEIGHTS_DIR": str(settings.get().weights_dir)},
    }
    provenance.stamp(section, "training.landmark_emotion_study", argv, created=True)
    section["wall_s"] = round(time.time() - t_start, 1)
    out = Path(args.json_out)
    existing = json.loads(out.read_text()) if out.exists() else {}
    fair = existing.get("fair_subset")
    accuracy = existing.get("by_subset", {}).get(fair, {}).get("methods") if fair else None
    section["summary"] = impact_summary(section, accuracy or existing.get("methods"),
                                        f"300-W {fair}" if accuracy else "300-W")
    print("\n".join(section["summary"]))
    existing["emotion_impact"] = section
    merge_json(out, existing, keep=())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
