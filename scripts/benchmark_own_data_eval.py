"""Peak memory of "Evaluate on your own data" on the tester's hostile zip (issue "Safe to deploy", item 4).

The zip is built in memory: one black 36-megapixel JPEG plus a labels.csv with 10 large boxes on it
(about 1.4 KB zipped). It runs what the Model Comparison page runs (`read_labelled` then
`evaluate_labelled` with a shipped classifier) and prints the peak resident memory above idle, sampled
every few milliseconds in a thread and cross-checked with `getrusage`'s max RSS.

    .venv/bin/python scripts/benchmark_own_data_eval.py [--model emotion_vgg_s] [--evaluate-from FILE]

`--evaluate-from` loads `evaluate_labelled` from another copy of core/datasets/evaluate.py, so an older
version is measured without touching the working tree, e.g.
``git show HEAD:core/datasets/evaluate.py > /tmp/evaluate_old.py`` then ``--evaluate-from /tmp/evaluate_old.py``.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import io
import resource
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 7200, 5000  # 36 megapixels
TARGET_MB = 300.0


def hostile_zip(n_boxes: int = 10) -> bytes:
    """One black 36 MP JPEG and a labels.csv with `n_boxes` large boxes, zipped in memory."""
    jpeg = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT)).save(jpeg, "JPEG", quality=50)
    emotions = ["happy", "sad", "angry", "neutral", "fear"]
    rows = ["file,x1,y1,x2,y2,emotion"]
    for i in range(n_boxes):
        x1, y1 = 100 + (150 * i) % 3000, 100 + (80 * i) % 1200  # every box inside the image
        rows.append(f"black.jpg,{x1},{y1},{x1 + 3600},{y1 + 3600},{emotions[i % len(emotions)]}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("black.jpg", jpeg.getvalue())
        zf.writestr("labels.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def rss_mb() -> float:
    """Current resident set size (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


@dataclass
class Peak:
    sampled_mb: float
    maxrss_delta_mb: float


def measure(run: Callable[[], object], every_s: float = 0.002) -> Peak:
    """Peak RSS above the RSS just before `run`, sampled in a thread."""
    gc.collect()
    idle, idle_max = rss_mb(), maxrss_mb()
    peak = [idle]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(every_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        run()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], rss_mb())
    return Peak(peak[0] - idle, max(0.0, maxrss_mb() - idle_max))


def load_evaluate(path: str | None) -> Callable:
    if path is None:
        from core.datasets.evaluate import evaluate_labelled

        return evaluate_labelled
    spec = importlib.util.spec_from_file_location("evaluate_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.evaluate_labelled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="emotion_vgg_s", help="shipped emotion model (default: emotion_vgg_s)")
    parser.add_argument("--evaluate-from", help="path of another core/datasets/evaluate.py to measure")
    parser.add_argument("--boxes", type=int, default=10)
    args = parser.parse_args(argv)

    from core.datasets.labelled import LabelledSetError, read_labelled
    from core.emotion.classifier import EmotionClassifier

    evaluate = load_evaluate(args.evaluate_from)
    classifier = EmotionClassifier.load(args.model)
    classifier.predict([np.zeros((64, 64, 3), np.uint8)])  # warm the network: its buffers are not the upload's
    data = hostile_zip(args.boxes)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            result = evaluate(classifier, read_labelled(data))
            outcome["faces"] = result.report["n"]
            outcome["gallery"] = len(result.misclassified)
        except LabelledSetError as exc:
            outcome["refused"] = exc.message

    peak = measure(run)
    labelled = read_labelled(data)
    first = next(iter(labelled.images))
    decode = measure(lambda: labelled.image(first))  # the floor: one decode through core.validation
    print(f"zip: {len(data) / 1024:.1f} KB ({WIDTH}x{HEIGHT} black JPEG, {args.boxes} boxes); model {args.model}; "
          f"evaluate from {args.evaluate_from or 'core/datasets/evaluate.py'}")
    print(f"outcome: {outcome}")
    print(f"peak RSS above idle: {peak.sampled_mb:.0f} MB (sampled), {peak.maxrss_delta_mb:.0f} MB "
          f"(getrusage max-RSS delta); target < {TARGET_MB:.0f} MB")
    print(f"of which decoding the one image alone (core.validation.validate_image_bytes): "
          f"{decode.sampled_mb:.0f} MB (sampled)")
    return 0 if peak.sampled_mb < TARGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
