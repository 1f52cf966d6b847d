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
import time
from pathlib import Path

import numpy as np
import torch

from core.emotion.classifier import EmotionClassifier
from core.emotion.onnx import OnnxEmotionClassifier, onnx_available
from training import provenance


def time_ms(fn, crops, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(crops)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def update_experiments(report_path: Path, weights_dir: Path, repeats: int) -> int:
    """Training-time latency figures are taken while the machine is busy; this re-times all models together,
    interleaved, so the comparison between architectures is fair even on a shared machine."""
    report = json.loads(report_path.read_text())
    torch.set_num_threads(1)
    crops = [np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)]
    models = {}
    for run in report["runs"]:
        name = run.get("name") or f"exp_{run['architecture']}"
        models[name] = EmotionClassifier.load(name, weights_dir)
    times: dict[str, list[float]] = {k: [] for k in models}
    for clf in models.values():
        time_ms(clf.predict, crops, 10)
    load_before = provenance.load_average()
    for _ in range(max(1, repeats // 10)):
        for name, clf in models.items():
            times[name] += time_ms(clf.predict, crops, 10)
    for run in report["runs"]:
        name = run.get("name") or f"exp_{run['architecture']}"
        run["ms_per_face"] = round(float(np.median(times[name])), 3)
        run["ms_per_face_p10"] = round(float(np.percentile(times[name], 10)), 3)
        print(f"{run['architecture']:<26} median {run['ms_per_face']:8.3f} ms   p10 {run['ms_per_face_p10']:8.3f} ms")
    report["ms_per_face_method"] = (
        "torch, 1 thread, batch 1, one face crop through preprocessing, network and softmax; median of "
        f"{len(next(iter(times.values())))} runs per model, models interleaved; load average "
        f"{load_before} -> {provenance.load_average()}")
    report["ms_per_face_command"] = provenance.command_line("training.benchmark_classifier", [
        "--update-experiments", str(report_path), "--experiments-dir", str(weights_dir), "--repeats", str(repeats)])
    provenance.write_json(report_path, report)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model card name in the weights folder (default: shipped)")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--update-experiments", default=None, metavar="REPORT",
                    help="re-time every model of an experiments report (weights in --experiments-dir) and "
                         "write its ms_per_face: torch, 1 thread, batch 1, median of interleaved runs")
    ap.add_argument("--experiments-dir", default="runs/experiments")
    args = ap.parse_args(argv)
    if args.update_experiments:
        return update_experiments(Path(args.update_experiments), Path(args.experiments_dir), args.repeats)
    base = EmotionClassifier.load(args.model)
    crops = [np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)]
    candidates = {}
    for threads in (1, 2):
        candidates[f"torch_{threads}t"] = (threads, base.predict)
        if onnx_available():
            candidates[f"onnxruntime_{threads}t"] = (threads, OnnxEmotionClassifier(base, threads=threads).predict)
    load_before = provenance.load_average()
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
              "load_avg_before": load_before, "load_avg_after": provenance.load_average(), "cpus": os.cpu_count()}
    for name, r in results.items():
        print(f"{name:<18} median {r['median_ms']:7.3f} ms   p10 {r['p10_ms']:7.3f} ms")
    print(f"fastest: {best}; load average {report['load_avg_before']} -> {report['load_avg_after']}")
    if args.json_out:
        provenance.write_report(args.json_out, report, "training.benchmark_classifier", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
