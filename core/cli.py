"""`python -m core predict IMAGE [IMAGE ...] [--detector NAME] [--threshold T] [--json]`
and `python -m core batch DIR_OR_ZIP_OR_LIST --out results.csv|results.parquet [--engine local|ray]
[--address HOST:6379] [--workers N] [--fps F]`.

A thin shell over `core.analysis` / `core.batch.engine`: the same validation messages and JSON keys as the app and API.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import settings
from core.detection import available_detectors


def cmd_predict(args: argparse.Namespace) -> int:
    from core.batch.engine import analyze_payload
    from core.pipeline import EmotionPipeline
    from core.validation import printable_name, read_local_file

    pipeline = EmotionPipeline.create(args.detector, args.threshold, args.model)
    results = []
    for raw in args.images:  # regular files only, read within the upload limit; the same codes as the API
        path = printable_name(raw)
        result = analyze_payload(pipeline, path, read_local_file(Path(raw), settings.get().max_upload_bytes))
        results.append(result)
        if not args.json:
            if not result.ok:
                print(f"{path}: error: {result.error}")
            elif not result.faces:
                print(f"{path}: no face found")
            for i, f in enumerate(result.faces, start=1):
                box = ", ".join(f"{v:.0f}" for v in f.box)
                print(f"{path}: face {i} [{box}] {f.label} {f.confidence:.0%} (detector {f.score:.2f})")
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    return 0 if all(r.ok for r in results) else 1


def cmd_batch(args: argparse.Namespace) -> int:
    from core.batch.engine import make_engine, run_batch
    from core.batch.work import BatchConfig

    config = BatchConfig(args.detector, args.threshold, args.model, fps=args.fps, batch_size=args.batch_size)
    options = ({"address": args.address, "workers": args.workers} if args.engine == "ray"
               else {"threads": args.threads})
    try:
        engine = make_engine(args.engine, **options)
        summary = run_batch(args.source, args.out, config, engine=engine, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\nInterrupted. {args.out} keeps every committed batch; rerun the same command to resume.",
              file=sys.stderr)
        return 130
    t = summary.times
    print(f"{summary.total} file(s) in {args.source}: {summary.processed} analysed now, "
          f"{summary.skipped} already in {args.out}; {summary.faces} face(s) found, "
          f"{summary.failed} file(s) with errors (see the error column). "
          f"Wall time {summary.wall_s:.1f} s ({summary.files_per_s:.2f} files/s; worker time: decode "
          f"{t.decode:.1f} s, detect {t.detect:.1f} s, classify {t.classify:.1f} s).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="EmoLens command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="detect faces and classify their emotion")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, WebP, BMP, TIFF)")
    p.add_argument("--detector", default=settings.get().detector, choices=available_detectors())
    p.add_argument("--threshold", type=float, default=None, help="detector score threshold (0-1)")
    p.add_argument("--model", default=None, help="emotion model name in weights/ (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON list (a stable contract)")
    p.set_defaults(func=cmd_predict)
    b = sub.add_parser("batch", help="analyse a folder, zip or list of images and videos (resumable)")
    b.add_argument("source", help="a folder (searched recursively), a .zip of images, or a .txt list of "
                                   "image/video paths (mp4, webm, avi)")
    b.add_argument("--out", required=True, help="results.csv, or results.parquet (a folder of shards); "
                                                "files already done are skipped (resume)")
    b.add_argument("--detector", default=settings.get().detector, choices=available_detectors())
    b.add_argument("--threshold", type=float, default=None, help="detector score threshold (0-1)")
    b.add_argument("--model", default=None, help="emotion model name in weights/ (default: the shipped one)")
    b.add_argument("--engine", default="local", help="local (this process) or ray (a Ray actor pool)")
    b.add_argument("--address", default=None, help="Ray cluster to join (HOST:6379 or auto); default: "
                                                   "start a private local Ray instance")
    b.add_argument("--workers", type=int, default=1, help="Ray actors, one pipeline each (--engine ray)")
    b.add_argument("--threads", type=int, default=settings.get().batch_torch_threads,
                   help="torch threads for --engine local (0: one per core; default 1: measured 3x faster on a "
                        "busy 2-core machine); Ray actors use EMOLENS_BATCH_TORCH_THREADS")
    b.add_argument("--fps", type=float, default=settings.get().batch_video_fps,
                   help="video frames analysed per second of video (0: every frame)")
    b.add_argument("--batch-size", type=int, default=settings.get().batch_size,
                   help="files per batch (one classifier pass, one committed flush)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    b.set_defaults(func=cmd_batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        settings.get()  # a malformed EMOLENS_* variable stops here, in words, before any work
    except settings.SettingsError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:  # e.g. missing weights, bad option value
        print(f"error: {exc}", file=sys.stderr)
        return 2
