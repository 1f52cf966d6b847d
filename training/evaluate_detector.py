"""Face-detector accuracy and speed on the faces dataset, each detector at a threshold tuned on held-out data.

    python -m training.evaluate_detector --data ../shared/data/faces --split val --min-face 32 \
        --detectors yolo,mediapipe,haar,mtcnn,ensemble --json weights/reports/detection.json \
        [--tune-split tune] [--limit N] [--ensemble-members auto|a,b,c] [--ensemble-weights 1,1,1] [--update-card]
        [--yolo-weights CKPT] [--yolo-imgsz N]   # studies: a checkpoint, or another input size, in runs/

Protocol:
- Faces whose longer side is under --min-face px (in the stored image), and faces the YOLO labels drop as
  invalid (annotations.json.gz, `in_yolo_label` 0), are ignore regions: a detection on one (IoU >= 0.5) is
  neither a TP nor an FP (`core.detection.metrics`).
- Each detector's operating threshold is its best F1 (IoU 0.5) on --tune-split (10% of train, held out of
  YOLO training, `training.detector_splits`); --split (val) is only measured, at those thresholds.
- Detectors run once per image at a low threshold; their raw boxes are cached in --cache-dir, keyed by
  detector version and weights, and everything else (tuning, AP, curves, the ensemble) is computed from
  the cache. The ensemble fuses cached member boxes (each member at its tuned threshold) with WBF; with
  `--ensemble-members auto` every 2- and 3-member combination is tried on the tune split and the best F1 wins
  (F1 within --ensemble-tolerance of the best is a tie, won by the lowest summed member ms: each adds its cost).
- ms_per_image: a separate timing pass on the same --timing-images images of --split for every detector,
  in turn, after one warm-up image, at its operating threshold, with --threads torch threads (CPU).
  The ensemble's time is its members' sum plus the measured fusion. The 1-minute load average at the start
  of timing is recorded, since other jobs on the machine slow everything.
- AP50 and AP50-95: COCO 101-point AP (pycocotools' definition) on the ignore-aware TP/FP lists.
--update-card writes yolo's figures and tuned threshold into weights/face_yolo.json, and the ensemble's serving
settings (members, weights, thresholds, fusion) into its card weights/face_ensemble.json, which the app reads.
--limit N takes N evenly spaced images (over all events) of each split, for quick runs.
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import core  # noqa: F401  (offline switches)
from core import settings
from core.detection import DetectorUnavailable, is_available, make_detector, registered_detectors
from core.detection.base import Detection
from core.detection.ensemble import DEFAULT_IOU, EnsembleConfig, card_path, fuse
from core.detection.metrics import (GroundTruth, Matches, OperatingPoint, average_precision, best_f1_threshold,
                                    ground_truth, match_image, operating_point, pr_curve)
from core.validation import validate_image_bytes
from training import provenance
from training.detector_splits import label_path, split_images

CACHE_VERSION = 2
LOW_THRESHOLD = 0.02   # raw detections are cached down to this score; every cut above it is exact
ENSEMBLE = "ensemble"
Raw = dict[str, np.ndarray]  # image name -> (K, 5) x1 y1 x2 y2 score


@dataclass(frozen=True)
class ImageItem:
    path: Path
    wh: tuple[int, int]
    gt: GroundTruth

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class DetectorResult:
    """One detector's figures on the reported split, at the threshold tuned on the tune split."""

    precision: float
    recall: float
    f1: float
    ap50: float
    ap50_95: float
    ms_per_image: float | None
    threshold: float
    pr_curve: dict[str, list[float]]
    counts: dict[str, int]
    tune: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("precision", "recall", "f1", "ap50", "ap50_95", "threshold"):
            out[k] = round(float(out[k]), 4)
        if self.ms_per_image is not None:
            out["ms_per_image"] = round(self.ms_per_image, 1)
        return out


# ---------------------------------------------------------------- data

def annotation_ignores(data_dir: Path) -> dict[str, np.ndarray]:
    """Faces annotated in WIDER but left out of the YOLO labels (invalid or < 2 px), per image file name.
    They are still faces, so they become ignore regions instead of making detections on them FPs."""
    path = Path(data_dir) / "annotations.json.gz"
    if not path.is_file():
        return {}
    meta = json.load(gzip.open(path, "rt"))
    out: dict[str, np.ndarray] = {}
    for img in meta["images"]:
        dropped = [f["xywh"] for f in img["faces"] if not f.get("in_yolo_label", 1)]
        if dropped:
            xywh = np.asarray(dropped, float)
            out[Path(img["file"]).name] = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]
    return out


def yolo_boxes(label_file: Path, wh: tuple[int, int]) -> np.ndarray:
    """YOLO 'cls cx cy w h' (normalized) lines -> (N, 4) x1 y1 x2 y2 pixels."""
    text = label_file.read_text() if label_file.is_file() else ""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        return np.zeros((0, 4))
    cxcywh = np.asarray([r[1:5] for r in rows], float) * np.array([wh[0], wh[1], wh[0], wh[1]], float)
    return np.c_[cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2]


def subsample(paths: Sequence[Path], limit: int | None) -> list[Path]:
    """N evenly spaced paths: file names start with the event, so this spans events, unlike the first N."""
    if limit is None or limit >= len(paths):
        return list(paths)
    idx = np.unique(np.linspace(0, len(paths) - 1, limit).round().astype(int))
    return [paths[i] for i in idx]


def load_split(data_dir: Path, split: str, min_face: float, limit: int | None = None,
               extra: dict[str, np.ndarray] | None = None) -> list[ImageItem]:
    from PIL import Image

    items = []
    for path in subsample(split_images(data_dir, split), limit):
        with Image.open(path) as im:
            wh = im.size
        gt = ground_truth(yolo_boxes(label_path(path), wh), min_face, (extra or {}).get(path.name, ()))
        items.append(ImageItem(path, wh, gt))
    return items


def read_image(path: Path) -> np.ndarray:
    """The serving path's decoder (EXIF orientation, RGB), so detectors see what the app gives them."""
    return validate_image_bytes(path.read_bytes(), max_bytes=1 << 40, max_megapixels=1e6).image


# ---------------------------------------------------------------- running detectors (cached)

def fingerprint(name: str, data_dir: Path) -> dict[str, Any]:
    """What the cached boxes depend on; a different fingerprint means the cache is recomputed."""
    fp: dict[str, Any] = {"detector": name, "version": CACHE_VERSION, "low_threshold": LOW_THRESHOLD,
                          "data": str(Path(data_dir).resolve())}
    if name == "yolo":
        from core.detection.yolo import input_size, resolve_backend, weights_path

        w = weights_path().resolve()
        st = w.stat()
        fp.update(weights=str(w), size=st.st_size, mtime=st.st_mtime,
                  imgsz=input_size(w), backend=resolve_backend())
    elif name == "mtcnn":
        from core.detection.mtcnn import MIN_FACE_SIZE

        fp["min_face_size"] = MIN_FACE_SIZE
    elif name == "dlib_hog":
        from core.detection.dlib_hog import MIN_MARGIN, SCALE, UPSAMPLE

        fp.update(upsample=UPSAMPLE, scale=SCALE, min_margin=MIN_MARGIN)
    return fp


def _cache_file(cache_dir: Path, split: str, name: str) -> Path:
    return Path(cache_dir) / f"{split}_{name}.json"


def load_cache(path: Path, fp: dict[str, Any]) -> Raw:
    try:
        blob = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if blob.get("fingerprint") != fp:
        return {}
    return {k: np.asarray(v, float).reshape(-1, 5) for k, v in blob["images"].items()}


def save_cache(path: Path, fp: dict[str, Any], raw: Raw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": fp, "images": {k: v.tolist() for k, v in raw.items()}}))
    tmp.replace(path)


def to_array(dets: Sequence[Detection]) -> np.ndarray:
    return np.asarray([[*d.box, d.score] for d in dets], float).reshape(-1, 5)


def quantize(raw: np.ndarray) -> np.ndarray:
    """Boxes to 0.01 px, scores to 1e-6: what the cache stores, applied to fresh runs too so that a cached
    rerun reproduces the first run's figures exactly."""
    return np.c_[np.round(raw[:, :4], 2), np.round(raw[:, 4], 6)].reshape(-1, 5)


def run_detector(name: str, items: Sequence[ImageItem], split: str, data_dir: Path, cache_dir: Path | None,
                 log=print) -> Raw:
    """Raw detections (score >= LOW_THRESHOLD) of `name` on every item, computing only what the cache lacks."""
    fp = fingerprint(name, data_dir)
    path = _cache_file(cache_dir, split, name) if cache_dir else None
    raw = load_cache(path, fp) if path else {}
    todo = [it for it in items if it.name not in raw]
    if todo:
        detector = make_detector(name, LOW_THRESHOLD)
        t0 = time.perf_counter()
        for i, it in enumerate(todo, 1):
            raw[it.name] = quantize(to_array(detector.detect(read_image(it.path))))
            if path and (i % 25 == 0 or i == len(todo)):
                save_cache(path, fp, raw)
            if i % 50 == 0 or i == len(todo):
                log(f"  {name} {split}: {i}/{len(todo)} images ({time.perf_counter() - t0:.0f} s)")
    return {it.name: raw[it.name] for it in items}


def matches(raw: Raw, items: Sequence[ImageItem], threshold: float = 0.0) -> Matches:
    parts = []
    for it in items:
        d = raw[it.name]
        d = d[d[:, 4] >= threshold]
        parts.append(match_image(d[:, :4], d[:, 4], it.gt))
    return Matches.concat(parts)


def fuse_raw(members: Sequence[Raw], config: EnsembleConfig, items: Sequence[ImageItem]) -> Raw:
    """WBF of cached member detections, each member cut at its threshold first."""
    out: Raw = {}
    for it in items:
        per_member = []
        for raw, thr in zip(members, config.member_thresholds):
            d = raw[it.name]
            d = d[d[:, 4] >= thr]
            per_member.append([Detection(tuple(r[:4]), float(r[4])) for r in d])
        out[it.name] = to_array(fuse(per_member, config.weights, it.wh, config.iou_thr))
    return out


# ---------------------------------------------------------------- timing

def time_detector(name: str, threshold: float, images: Sequence[np.ndarray]) -> float:
    """Mean ms per image of `detect()` (model loaded, one warm-up image not counted)."""
    detector = make_detector(name, threshold)
    detector.detect(images[0])
    t0 = time.perf_counter()
    for img in images:
        detector.detect(img)
    return (time.perf_counter() - t0) * 1000 / len(images)


def time_fusion(members: Sequence[Raw], config: EnsembleConfig, items: Sequence[ImageItem]) -> float:
    t0 = time.perf_counter()
    fuse_raw(members, config, items)
    return (time.perf_counter() - t0) * 1000 / max(1, len(items))


# ---------------------------------------------------------------- evaluation

def summarize(raw_val: Raw, val: Sequence[ImageItem], tuned: OperatingPoint, ms: float | None) -> DetectorResult:
    m = matches(raw_val, val)
    op = operating_point(m, tuned.threshold)
    ap = average_precision(m)
    n_ignored = int(m.ignored[:, 0][m.scores >= tuned.threshold].sum())
    return DetectorResult(
        precision=op.precision, recall=op.recall, f1=op.f1, ap50=float(ap[0]), ap50_95=float(ap.mean()),
        ms_per_image=ms, threshold=tuned.threshold, pr_curve=pr_curve(m),
        counts={"tp": op.tp, "fp": op.fp, "fn": op.fn, "ignored_detections": n_ignored},
        tune={"precision": round(tuned.precision, 4), "recall": round(tuned.recall, 4), "f1": round(tuned.f1, 4)})


def search_ensemble(candidates: Sequence[str], raw_tune: dict[str, Raw], thresholds: dict[str, float],
                    tune: Sequence[ImageItem], iou_thr: float, cost_ms: dict[str, float], tolerance: float = 0.005,
                    log=print) -> tuple[EnsembleConfig, list[dict]]:
    """Every 2- and 3-member equal-weight combination, scored by F1 on the tune split at its own best cut.
    Combinations within `tolerance` of the best F1 count as equal (that is tune-split noise); among them the
    cheapest wins (the sum of its members' measured ms per image), since every member adds its full cost."""
    tried, configs = [], []
    for k in (2, 3):
        for combo in itertools.combinations(candidates, k):
            cfg = EnsembleConfig(members=combo, weights=(1.0,) * k,
                                 member_thresholds=tuple(thresholds[c] for c in combo), iou_thr=iou_thr)
            op = best_f1_threshold(matches(fuse_raw([raw_tune[c] for c in combo], cfg, tune), tune))
            cost = sum(cost_ms[c] for c in combo)
            tried.append({"members": list(combo), "tune_f1": round(op.f1, 4), "threshold": round(op.threshold, 4),
                          "members_ms": round(cost, 1)})
            configs.append((op.f1, cost, cfg))
            log(f"  ensemble {'+'.join(combo)}: tune F1 {op.f1:.3f}, {cost:.0f} ms")
    if not configs:
        raise SystemExit("--ensemble-members auto needs at least two other detectors in --detectors.")
    top = max(f1 for f1, _, _ in configs)
    best = min((c for c in configs if c[0] >= top - tolerance), key=lambda c: (c[1], -c[0]))[2]
    return best, sorted(tried, key=lambda t: -t["tune_f1"])


def table(results: dict[str, DetectorResult]) -> str:
    head = f"{'detector':<16}{'thr':>7}{'P':>7}{'R':>7}{'F1':>7}{'AP50':>7}{'AP50-95':>9}{'ms/img':>9}"
    rows = [head, "-" * len(head)]
    for name, r in results.items():
        ms = "-" if r.ms_per_image is None else f"{r.ms_per_image:.0f}"
        rows.append(f"{name:<16}{r.threshold:>7.3f}{r.precision:>7.3f}{r.recall:>7.3f}{r.f1:>7.3f}"
                    f"{r.ap50:>7.3f}{r.ap50_95:>9.3f}{ms:>9}")
    return "\n".join(rows)


def card_metrics(result: DetectorResult, report: dict[str, Any], report_path: Path) -> dict[str, Any]:
    """A detector's figures on the reported split as a model card keeps them (without the PR curve)."""
    return {**{k: v for k, v in result.to_json().items() if k != "pr_curve"},
            "min_face": report["min_face"], "n_images": report["n_images"], "n_faces": report["n_faces"],
            "threshold_tuned_on": report["tune_split"], "report": str(report_path), "commit": report["commit"]}


def update_card(card_path: Path, result: DetectorResult, report: dict[str, Any], report_path: Path) -> None:
    """Write the YOLO figures into its model card, keeping every other key."""
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card.setdefault("metrics", {})
    card["metrics"][report["split"]] = card_metrics(result, report, report_path)
    card["default_threshold"] = round(result.threshold, 4)
    provenance.write_json(card_path, card)


def write_ensemble_card(path: Path, config: EnsembleConfig, result: DetectorResult, report: dict[str, Any],
                        report_path: Path) -> None:
    """The ensemble's card, written whole: the serving settings tuned here (what the app's ensemble reads),
    its figures, and where they were measured. The fused cut is kept unrounded so serving reproduces it."""
    card = {"name": path.stem, "task": "face-detection", "architecture": "weighted-box fusion (ensemble-boxes)",
            "description": "Runs every member detector at its own tuned threshold and fuses their boxes; a face "
                           "scores the weighted mean of the members' votes, so agreement outranks a lone box.",
            **config.to_json(), "selection": report["ensemble"]["selection"],
            "metrics": {report["split"]: card_metrics(result, report, report_path)},
            "source": {"report": str(report_path), "command": report["command"], "commit": report["commit"],
                       "date": report["date"]}}
    provenance.write_json(path, card)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=settings.get().data_dir / "faces")
    ap.add_argument("--split", default="val", help="split reported (val)")
    ap.add_argument("--tune-split", default="tune", help="split that picks each detector's threshold")
    ap.add_argument("--min-face", type=float, default=32.0, help="faces with a shorter longer side are ignored")
    ap.add_argument("--detectors", default="yolo,mediapipe,mediapipe_full,haar,mtcnn,dlib_hog,ensemble")
    ap.add_argument("--ensemble-members", default="auto", help="'auto' (best tune F1) or comma-separated names")
    ap.add_argument("--ensemble-weights", default=None, help="comma-separated, one per member (default equal)")
    ap.add_argument("--ensemble-iou", type=float, default=DEFAULT_IOU)
    ap.add_argument("--ensemble-tolerance", type=float, default=0.005,
                    help="auto: tune F1 within this of the best counts as a tie, won by the cheapest")
    ap.add_argument("--json", type=Path, default=settings.get().reports_dir / "detection.json")
    ap.add_argument("--limit", type=int, default=None, help="N evenly spaced images per split (quick runs)")
    ap.add_argument("--timing-images", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (MTCNN, YOLO)")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/detector_eval/cache"))
    ap.add_argument("--no-cache", action="store_true", help="recompute every detection")
    ap.add_argument("--yolo-weights", type=Path, default=None,
                    help="evaluate this checkpoint instead of weights/face_yolo.pt (like EMOLENS_FACE_YOLO)")
    ap.add_argument("--yolo-imgsz", type=int, default=None,
                    help="run yolo at this input size instead of its card's (like EMOLENS_YOLO_IMGSZ)")
    ap.add_argument("--update-card", action="store_true",
                    help="write yolo's figures and tuned threshold into weights/face_yolo.json and the ensemble's "
                         "serving settings into weights/face_ensemble.json")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.yolo_weights is not None:
        if args.update_card:
            print("--update-card writes the shipped card, so it cannot be combined with --yolo-weights.")
            return 2
        settings.configure(face_yolo=args.yolo_weights.resolve())
    if args.yolo_imgsz is not None:
        if args.update_card:
            print("--update-card writes the shipped card, so it cannot be combined with --yolo-imgsz.")
            return 2
        settings.configure(yolo_imgsz=args.yolo_imgsz)
    import torch

    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    unknown = [n for n in names if n not in registered_detectors()]
    if unknown:
        print(f"Unknown detector(s) {', '.join(unknown)}. Choose from: {', '.join(registered_detectors())}.")
        return 2
    members: list[str] = []
    if ENSEMBLE in names and args.ensemble_members != "auto":
        members = [m.strip() for m in args.ensemble_members.split(",") if m.strip()]
    base = [n for n in names if n != ENSEMBLE]
    run_names = base + [m for m in members if m not in base]
    missing = [n for n in run_names if not is_available(n)]
    if missing:
        for n in missing:
            try:
                make_detector(n)
            except DetectorUnavailable as exc:
                print(exc)
        return 2
    cache_dir = None if args.no_cache else args.cache_dir

    extra = annotation_ignores(args.data)
    tune = load_split(args.data, args.tune_split, args.min_face, args.limit, extra)
    val = load_split(args.data, args.split, args.min_face, args.limit, extra)
    print(f"{args.tune_split}: {len(tune)} images, {sum(i.gt.n_counted for i in tune)} faces >= {args.min_face:g} px; "
          f"{args.split}: {len(val)} images, {sum(i.gt.n_counted for i in val)} faces")

    raw_tune: dict[str, Raw] = {}
    raw_val: dict[str, Raw] = {}
    tuned: dict[str, OperatingPoint] = {}
    for n in run_names:
        raw_tune[n] = run_detector(n, tune, args.tune_split, args.data, cache_dir)
        tuned[n] = best_f1_threshold(matches(raw_tune[n], tune))
        raw_val[n] = run_detector(n, val, args.split, args.data, cache_dir)
        print(f"{n}: threshold {tuned[n].threshold:.4f} (tune F1 {tuned[n].f1:.3f})")

    # Timing: every detector on the same images, one after another, nothing else of ours running.
    timing_items = subsample([it.path for it in val], args.timing_images)
    images = [read_image(p) for p in timing_items]
    load = os.getloadavg()[0]
    ms: dict[str, float] = {}
    for n in run_names:
        ms[n] = time_detector(n, tuned[n].threshold, images)
        print(f"{n}: {ms[n]:.0f} ms per image")

    ensemble_cfg, tried = None, []
    if ENSEMBLE in names:
        thresholds = {n: op.threshold for n, op in tuned.items()}
        if not members:
            cfg, tried = search_ensemble(base, raw_tune, thresholds, tune, args.ensemble_iou, ms,
                                         args.ensemble_tolerance)
            members = list(cfg.members)
        weights = (tuple(float(w) for w in args.ensemble_weights.split(",")) if args.ensemble_weights
                   else (1.0,) * len(members))
        try:
            cfg = EnsembleConfig(members=tuple(members), weights=weights,
                                 member_thresholds=tuple(thresholds[m] for m in members), iou_thr=args.ensemble_iou)
        except ValueError as exc:
            print(f"Bad ensemble: {exc}.")
            return 2
        raw_tune[ENSEMBLE] = fuse_raw([raw_tune[m] for m in members], cfg, tune)
        tuned[ENSEMBLE] = best_f1_threshold(matches(raw_tune[ENSEMBLE], tune))
        # floor to 1e-6 so the fused box scoring exactly the chosen cut stays in when the report is reused
        tuned[ENSEMBLE] = replace(tuned[ENSEMBLE], threshold=float(np.floor(tuned[ENSEMBLE].threshold * 1e6) / 1e6))
        ensemble_cfg = replace(cfg, threshold=tuned[ENSEMBLE].threshold)
        raw_val[ENSEMBLE] = fuse_raw([raw_val[m] for m in members], ensemble_cfg, val)
        timing_set = {p.name for p in timing_items}
        items_t = [it for it in val if it.name in timing_set]
        ms[ENSEMBLE] = sum(ms[m] for m in members) + time_fusion([raw_val[m] for m in members], ensemble_cfg,
                                                                  items_t)

    results = {n: summarize(raw_val[n], val, tuned[n], ms.get(n)) for n in names}
    report: dict[str, Any] = {
        "task": "face detection", "split": args.split, "tune_split": args.tune_split,
        "n_images": len(val), "n_faces": sum(i.gt.n_counted for i in val),
        "n_ignored_faces": sum(int(i.gt.ignore.sum()) for i in val),
        "n_tune_images": len(tune), "n_tune_faces": sum(i.gt.n_counted for i in tune),
        "min_face": args.min_face, "iou": 0.5, "limit": args.limit,
        "protocol": ("Faces with longer side < min_face px, and WIDER faces dropped from the YOLO labels, are "
                     "ignore regions (a detection with IoU >= 0.5 on one is neither TP nor FP). Threshold per "
                     "detector: best F1 at IoU 0.5 on the tune split; precision/recall/F1 on the reported split "
                     "at that threshold. AP: COCO 101-point as pycocotools computes it, AP50-95 = mean over "
                     "IoU 0.50:0.95."),
        "timing": {"images": len(images), "torch_threads": args.threads, "device": "cpu",
                   "load_avg_1min_at_start": round(load, 2), "cpu_count": os.cpu_count(),
                   "note": "mean wall time of detect() per image after one warm-up image; ensemble = sum of "
                           "members + fusion"},
        "date": provenance.utc_now(),
        "detectors": {n: r.to_json() for n, r in results.items()},
    }
    if ensemble_cfg is not None:
        auto = (f"auto: best tune-split F1 over equal-weight 2- and 3-member combinations (within "
                f"{args.ensemble_tolerance} of the best: the cheapest by measured ms)")
        report["ensemble"] = {**ensemble_cfg.to_json(),
                              "selection": "given" if args.ensemble_members != "auto" else auto, "tried": tried}
    provenance.write_report(args.json, report, "training.evaluate_detector", argv, data=str(args.data))
    print(table(results))
    print(f"Wrote {args.json}")
    if args.update_card:
        if "yolo" not in results and ensemble_cfg is None:
            print("--update-card needs yolo or ensemble in --detectors; no card changed.")
            return 2
        if "yolo" in results:
            card = settings.get().weights_dir / "face_yolo.json"
            update_card(card, results["yolo"], report, args.json)
            print(f"Updated {card}")
        if ensemble_cfg is not None:
            write_ensemble_card(card_path(), ensemble_cfg, results[ENSEMBLE], report, args.json)
            print(f"Wrote {card_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
