"""YOLO face-detector speed on this CPU: Ultralytics' torch predictor vs ONNX Runtime, 1 and 2 threads.

    python -m training.benchmark_detector [--data ../shared/data/faces] [--images 50] [--rounds 5] --json OUT

Times `detect()` (letterbox, network, NMS, rescale: what a photo costs) at the card's input size and tuned
threshold on evenly spaced photos of the faces val split (512 px long side). The backends run interleaved,
round by round, so a shared machine slows them alike; it reports the median and the fastest decile (p10)
of per-round means, and the load average, because on 2 shared cores the median moves with other work.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from core import settings
from core.detection.yolo import YoloDetector, card_threshold, is_available, onnx_available, weights_path
from training import provenance
from training.detector_splits import split_images
from training.evaluate_detector import read_image, subsample


def round_ms(detector: YoloDetector, images: list[np.ndarray]) -> float:
    t0 = time.perf_counter()
    for image in images:
        detector.detect(image)
    return (time.perf_counter() - t0) * 1000 / len(images)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=settings.get().data_dir / "faces")
    ap.add_argument("--split", default="val")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not is_available():
        print(f"No YOLO weights at {weights_path()}; train them with `python -m training.train_detector`.")
        return 2
    paths = subsample(split_images(args.data, args.split), args.images)
    if not paths:
        print(f"No images in the {args.split!r} split of {args.data}.")
        return 2
    images = [read_image(p) for p in paths]
    threshold = card_threshold()
    backends = ["torch"] + (["onnxruntime"] if onnx_available() else [])
    candidates: dict[str, tuple[int, YoloDetector]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)  # the ONNX session takes its thread count from torch's at build
        for backend in backends:
            candidates[f"{backend}_{threads}t"] = (threads, YoloDetector(threshold, backend=backend))
    load_before = provenance.load_average()
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for threads, detector in candidates.values():  # warm-up
        torch.set_num_threads(threads)
        round_ms(detector, images[:3])
    for _ in range(args.rounds):
        for name, (threads, detector) in candidates.items():
            torch.set_num_threads(threads)
            times[name].append(round_ms(detector, images))
    results = {name: {"median_ms": round(float(np.median(t)), 2), "p10_ms": round(float(np.percentile(t, 10)), 2),
                      "rounds": len(t)} for name, t in times.items()}
    best = min(results, key=lambda k: results[k]["median_ms"])
    imgsz = next(iter(candidates.values()))[1].imgsz
    report = {"detector": "yolo", "weights": str(weights_path()), "imgsz": imgsz, "threshold": threshold,
              "images": len(images), "split": args.split, "backends": results, "fastest": best,
              "image_sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images}),
              "load_avg_before": load_before, "load_avg_after": provenance.load_average(), "cpus": os.cpu_count()}
    for name, r in results.items():
        print(f"{name:<16} median {r['median_ms']:7.2f} ms/image   p10 {r['p10_ms']:7.2f} ms")
    print(f"fastest: {best} (input {imgsz}, {len(images)} photos); load average {report['load_avg_before']} -> "
          f"{report['load_avg_after']}")
    if args.json_out:
        provenance.write_report(args.json_out, report, "training.benchmark_detector", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
