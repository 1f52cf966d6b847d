"""Classifier speed at batch 1 on this CPU: torch vs ONNX Runtime, 1 and 2 threads.

    python -m training.benchmark_classifier [--model emotion_vgg_s] [--repeats 300] --json OUT

Times `predict` on one face crop (preprocessing, network and calibrated softmax: what the app pays per
face), interleaving backends so a shared machine slows them alike. Reports median and the fastest decile
(p10), and the load average, because on 2 shared cores the median moves with other work.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core.classifier import EmotionClassifier
from core.onnx_classifier import OnnxEmotionClassifier, onnx_available


def time_ms(fn, crops, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(crops)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model card name in the weights folder (default: shipped)")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)
    base = EmotionClassifier.load(args.model)
    crops = [np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)]
    candidates = {}
    for threads in (1, 2):
        candidates[f"torch_{threads}t"] = (threads, base.predict)
        if onnx_available():
            candidates[f"onnxruntime_{threads}t"] = (threads, OnnxEmotionClassifier(base, threads=threads).predict)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for name, (threads, fn) in candidates.items():  # warm-up
        torch.set_num_threads(threads)
        time_ms(fn, crops, 10)
    for _ in range(args.repeats // 10):
        for name, (threads, fn) in candidates.items():
            torch.set_num_threads(threads)
            times[name] += time_ms(fn, crops, 10)
    results = {name: {"median_ms": round(float(np.median(t)), 3), "p10_ms": round(float(np.percentile(t, 10)), 3),
                      "n": len(t)} for name, t in times.items()}
    best = min(results, key=lambda k: results[k]["median_ms"])
    report = {"model": base.card.name, "batch": 1, "backends": results, "fastest": best,
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
              "command": "python -m training.benchmark_classifier " + " ".join(sys.argv[1:] if argv is None else argv)}
    for name, r in results.items():
        print(f"{name:<18} median {r['median_ms']:7.3f} ms   p10 {r['p10_ms']:7.3f} ms")
    print(f"fastest: {best}; load average {report['load_avg_before']} -> {report['load_avg_after']}")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
