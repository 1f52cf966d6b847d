"""Batch throughput and memory: the local engine and the Ray engine (1 and 2 workers) on one generated set.

    python -m training.benchmark_batch --n 60 --json weights/reports/batch_benchmark.json

The set: `--n` images made from scikit-image's two portrait photos (astronaut, cameraman), each flipped,
rescaled and re-lit differently, saved as JPEG/PNG in a temporary folder that is deleted afterwards.

Each configuration runs `run_batch` in its own child process (so one run's memory cannot inflate the
next), into a fresh output. Reported per configuration:
- images/s over the whole run (`wall`: starting Ray, loading models, everything) and in steady state
  (`steady`: from the first delivered result to the last, so start-up is left out);
- start-up: seconds from the start to the first delivered result;
- peak memory: sampled every 0.25 s, the sum over the child process and all its descendants (the Ray
  GCS, raylet and worker processes of a local Ray instance are descendants) of RSS and of PSS. RSS counts
  shared pages (torch, mediapipe libraries; the object store's shared memory) once per process, so its sum
  overstates; PSS splits shared pages between the processes that map them, so its sum is the better total;
- per-stage worker time per image (decode, detect, classify), summed over workers: where the CPU goes.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from training import provenance

CONFIGS = [("local", 0), ("local", 1), ("ray", 1), ("ray", 2)]  # local: torch threads (0: default)


def make_images(folder: Path, n: int, seed: int = 0) -> None:
    """`n` distinct images with findable faces: flips, scales 0.6-1.0, brightness 0.7-1.3, JPEG or PNG."""
    import cv2
    import skimage.data
    from PIL import Image

    bases = [skimage.data.astronaut(), np.stack([skimage.data.camera()] * 3, axis=-1)]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = bases[i % len(bases)]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        scale = rng.uniform(0.6, 1.0)
        img = cv2.resize(np.ascontiguousarray(img), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        img = np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
        sub = folder / f"set{i % 3}"
        sub.mkdir(exist_ok=True)
        if i % 2:
            Image.fromarray(img).save(sub / f"img{i:05d}.jpg", quality=90)
        else:
            Image.fromarray(img).save(sub / f"img{i:05d}.png")


class MemorySampler(threading.Thread):
    """Peak summed RSS and PSS of a process tree, sampled until stopped."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_rss = self.peak_pss = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = pss = 0
        for p in procs:
            try:
                info = p.memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class TimedEngine:
    """Wraps an engine and notes when each result arrives (for start-up and steady-state rates)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.arrivals = inner, []

    def run(self, job: Any, config: Any):
        for result in self.inner.run(job, config):
            self.arrivals.append(time.perf_counter())
            yield result


def child(args: argparse.Namespace) -> int:
    """One configuration, in this (child) process; prints one JSON line."""
    from core.batch.engine import make_engine, run_batch
    from core.batch.work import BatchConfig

    options = {"workers": args.workers} if args.engine == "ray" else {"threads": args.workers}
    start = time.perf_counter()
    engine = TimedEngine(make_engine(args.engine, **options))
    summary = run_batch(args.input, args.out, BatchConfig(batch_size=args.batch_size), engine=engine, progress=False)
    first, last = engine.arrivals[0], engine.arrivals[-1]
    after_first = len(engine.arrivals) - 1
    per = {k: 1000 * v / max(1, summary.processed) for k, v in summary.times.as_dict().items()}
    print(json.dumps({
        "files": summary.processed, "faces": summary.faces, "errors": summary.failed,
        "wall_s": round(time.perf_counter() - start, 2),
        "startup_s": round(first - start, 2),
        "images_per_s_wall": round(summary.processed / (last - start), 3),
        "images_per_s_steady": round(after_first / (last - first), 3) if last > first else None,
        "worker_ms_per_image": {k: round(v, 1) for k, v in per.items()},
        "worker_ms_per_image_total": round(sum(per.values()), 1),
    }))
    return 0


def measure(engine: str, workers: int, images: Path, out: Path, batch_size: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "training.benchmark_batch", "--child", "--engine", engine, "--workers",
           str(workers), "--input", str(images), "--out", str(out), "--batch-size", str(batch_size)]
    proc = subprocess.Popen(cmd, cwd=settings.PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = MemorySampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} x{workers} failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    setup = {"workers": workers, "torch_threads": settings.get().batch_torch_threads} if engine == "ray" else {
        "workers": None, "torch_threads": workers or "default"}
    return {"engine": engine, **setup, **result,
            "peak_rss_mb_sum": round(sampler.peak_rss / 2**20), "peak_pss_mb_sum": round(sampler.peak_pss / 2**20)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="emolens_bench_"))
    try:
        make_images(tmp / "images", args.n)
        before = provenance.busy_state()
        runs = []
        for engine, workers in CONFIGS:
            if engine == "ray" and workers not in args.ray_workers:
                continue
            runs.append(measure(engine, workers, tmp / "images", tmp / f"{engine}{workers}.csv", args.batch_size))
            print(json.dumps(runs[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report: dict[str, Any] = {
        "report": "batch_benchmark", "n_images": args.n, "batch_size": args.batch_size,
        "images": "generated from skimage astronaut + cameraman (flip, scale 0.6-1.0, brightness 0.7-1.3), "
                  "~300-512 px, half JPEG, half PNG",
        "detector": settings.get().detector, "model": settings.get().emotion_model,
        "memory_method": "peak over 0.25 s samples of the summed RSS / PSS of the run's process and all its "
                         "descendants (Ray GCS, raylet, workers); PSS shares shared pages fairly, RSS overcounts",
        "runs": runs,
        "machine": provenance.machine(before),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="images in the generated set")
    ap.add_argument("--json", dest="json_out", default=None, help="write the report here")
    ap.add_argument("--batch-size", type=int, default=4, help="small, so results arrive often enough to time "
                                                                "the steady state")
    ap.add_argument("--ray-workers", type=int, nargs="*", default=[1, 2], help="Ray pool sizes to run")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)  # local: torch threads
    ap.add_argument("--input", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    report = run(args)
    print(f"{'engine':<8} {'workers':>7} {'threads':>7} {'img/s wall':>10} {'img/s steady':>12} {'start s':>8} "
          f"{'PSS MB':>7} {'RSS MB':>7} {'decode':>7} {'detect':>7} {'classify':>8} (worker ms/image)")
    for r in report["runs"]:
        ms = r["worker_ms_per_image"]
        print(f"{r['engine']:<8} {r['workers'] or '-':>7} {r['torch_threads']:>7} {r['images_per_s_wall']:>10} "
              f"{r['images_per_s_steady'] or '-':>12} {r['startup_s']:>8} {r['peak_pss_mb_sum']:>7} "
              f"{r['peak_rss_mb_sum']:>7} {ms['decode']:>7} {ms['detect']:>7} {ms['classify']:>8}")
    if args.json_out:
        provenance.write_report(args.json_out, report, "training.benchmark_batch", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
