"""Real-time benchmark of the live webcam pipeline at 640×480 with one face (a stable contract).

    python -m training.benchmark --json OUT [--video PATH] [--frames 300] [--detector mediapipe]
        [--detect-every K] [--detect-max-side PX] [--classify-every N] [--backend auto|torch|onnxruntime]
        [--model NAME]

The frames are a generated 640×480 clip of one face moving and zooming over a background (scikit-image's
bundled astronaut photo, so nothing is downloaded), or `--video PATH` resized to 640×480. As in the app, the
frames travel as VP8: they are encoded once beforehand (the browser's work, not timed); then for every frame
the server's VP8 decode, the streamlit-webrtc frame callback (`LiveAnalyzer.frame_callback`: conversion,
detection or tracking, classification, smoothing, drawing, conversion back) and aiortc's VP8 encode of the
annotated frame are timed separately. Frames are fed as fast as they are processed.

`fps_640x480` is end to end through the frame callback: frames / wall time of all callbacks.
`fps_640x480_with_webrtc_codec` adds the VP8 decode and encode run one after the other (a lower bound: in
the app they run on another thread, so on two cores they overlap the callback).
`fps_640x480_from_cpu_time` divides by the CPU time the callbacks used instead of wall time: on a machine
shared with other work it estimates the rate on idle cores (report it only beside the wall-time figure).
Prints per-stage ms and the FPS figures; `--json OUT` writes them with the command, commit and machine load.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import core  # noqa: F401  (offline switches)
from core import settings
from core.emotion.classifier import EmotionClassifier
from core.detection import available_detectors, make_detector
from core.emotion.onnx import BACKENDS, fastest_classifier
from core.live.tracking import LiveAnalyzer, LiveConfig, StageTimings
from training import provenance

WIDTH, HEIGHT, FPS = 640, 480, 30
TARGET_FPS = 25.0


def generated_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` RGB 640×480 frames: one face drifting on a smooth path and slowly zooming, over a textured
    background with a little sensor noise (so the codec and optical flow see real-looking video)."""
    import skimage.data

    face = skimage.data.astronaut()[10:330, 110:370]  # head and shoulders, 320×260
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = (110 + 40 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 53.0)[..., None]
                  + np.array([10, 0, -10])).clip(0, 255).astype(np.uint8)
    frames = []
    for i in range(n):
        s = 0.9 + 0.15 * np.sin(i / 45.0)
        fh, fw = int(face.shape[0] * s), int(face.shape[1] * s)
        patch = cv2.resize(face, (fw, fh), interpolation=cv2.INTER_LINEAR)
        cx = WIDTH / 2 + 150 * np.sin(i / 40.0)
        cy = HEIGHT / 2 + 40 * np.sin(i / 23.0)
        x0 = int(np.clip(cx - fw / 2, 0, WIDTH - fw))
        y0 = int(np.clip(cy - fh / 2, 0, HEIGHT - fh))
        frame = background.copy()
        frame[y0:y0 + fh, x0:x0 + fw] = patch
        noise = rng.integers(-4, 5, frame.shape, dtype=np.int16)
        frames.append(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return frames


def file_frames(path: Path, n: int) -> list[np.ndarray]:
    """Up to `n` frames of a video file, resized to 640×480 (RGB)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise SystemExit(f"could not read any frame from {path}")
    return frames


def vp8_packets(frames: list[np.ndarray]) -> list[list[Any]]:
    """Encode the clip to VP8 like a browser would (real-time settings), untimed."""
    import av

    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.bit_rate = 1_500_000
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets: list[list[Any]] = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        packets.append(list(enc.encode(frame)))
    tail = list(enc.encode(None))
    if tail:
        packets[-1] += tail
    return packets


def summarise(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, float)
    return {"mean": round(float(arr.mean()), 3), "p50": round(float(np.percentile(arr, 50)), 3),
            "p95": round(float(np.percentile(arr, 95)), 3)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import av
    from aiortc.codecs.vpx import Vp8Encoder

    busy_before = provenance.busy_state()
    frames = file_frames(Path(args.video), args.frames) if args.video else generated_frames(args.frames)
    source = str(args.video) if args.video else "generated: scikit-image astronaut face moving over a background"
    packets = vp8_packets(frames)
    del frames

    base = EmotionClassifier.load(args.model)
    classifier, choice = fastest_classifier(base, args.backend)
    config = LiveConfig(detect_every=args.detect_every, detect_max_side=args.detect_max_side,
                        classify_every=args.classify_every)
    analyzer = LiveAnalyzer(make_detector(args.detector), classifier, config)
    decoder = av.CodecContext.create("libvpx", "r")
    encoder = Vp8Encoder()

    per_stage: dict[str, list[float]] = {s: [] for s in StageTimings.STAGES}
    totals, decode_ms, encode_ms, faces, track_ids, detected = [], [], [], [], set(), 0
    callback_wall = callback_cpu = 0.0
    for i, pkts in enumerate(packets):
        t0 = time.perf_counter()
        decoded = [f for p in pkts for f in decoder.decode(p)]
        t1 = time.perf_counter()
        for frame in decoded:
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            c0, p0 = time.perf_counter(), time.process_time()
            out = analyzer.frame_callback(frame)
            c1, p1 = time.perf_counter(), time.process_time()
            out.pts, out.time_base = i, Fraction(1, FPS)
            encoder.encode(out)
            e1 = time.perf_counter()
            if i >= args.warmup:
                callback_wall += c1 - c0
                callback_cpu += p1 - p0
                live = analyzer.last_frame
                for s in StageTimings.STAGES:
                    per_stage[s].append(getattr(live.timings, s))
                totals.append((c1 - c0) * 1000)
                decode_ms.append((t1 - t0) * 1000 / len(decoded))
                encode_ms.append((e1 - c1) * 1000)
                faces.append(len(live.faces))
                track_ids.update(f.track_id for f in live.faces)
                detected += live.detected
    n = len(totals)
    if not n:
        raise SystemExit("no frame was processed after the warm-up; use more --frames")
    fps = n / callback_wall
    codec_ms = statistics.mean(decode_ms) + statistics.mean(encode_ms)
    report = {
        "fps_640x480": round(fps, 2),
        "fps_640x480_with_webrtc_codec": round(1000 / (statistics.mean(totals) + codec_ms), 2),
        # CPU seconds the process spent in the callbacks (all its threads): what the frames cost when the
        # machine is shared; frames / CPU time estimates the rate on two otherwise idle cores.
        "fps_640x480_from_cpu_time": round(n / callback_cpu, 2) if callback_cpu else None,
        "target_fps": TARGET_FPS,
        "meets_target": fps >= TARGET_FPS,
        "stages_ms": {s: summarise(v) for s, v in per_stage.items()},
        "callback_total_ms": summarise(totals),
        "webrtc_codec_ms": {"vp8_decode": summarise(decode_ms), "vp8_encode": summarise(encode_ms)},
        "frames_timed": n, "warmup_frames": args.warmup,
        "detector_frames": detected,
        "face_found_ratio": round(float(np.mean(np.asarray(faces) > 0)), 4),
        "tracks_started": len(track_ids),
        "video": {"source": source, "width": WIDTH, "height": HEIGHT, "faces": 1},
        "config": {"detector": args.detector, "detect_every": args.detect_every,
                   "detect_max_side": args.detect_max_side, "classify_every": args.classify_every,
                   "smoothing_s": config.smoothing_s},
        "classifier": {"model": base.card.name, **choice.to_dict()},
        "machine": provenance.machine(busy_before),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", dest="json_out", default=None, help="write the full report here")
    ap.add_argument("--video", default=None, help="a video file instead of the generated clip")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20, help="first frames left out of the figures")
    ap.add_argument("--detector", default=settings.get().live_detector, choices=available_detectors())
    ap.add_argument("--detect-every", type=int, default=settings.get().live_detect_every)
    ap.add_argument("--detect-max-side", type=int, default=settings.get().live_detect_max_side)
    ap.add_argument("--classify-every", type=int, default=settings.get().live_classify_every)
    ap.add_argument("--backend", default="auto", choices=BACKENDS, help="classifier backend")
    ap.add_argument("--model", default=settings.get().live_emotion_model,
                    help="emotion model name in the weights folder (default: the live page's)")
    args = ap.parse_args(argv)
    try:
        report = run(args)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'stage':<12} {'mean ms':>8} {'p95 ms':>8}")
    for stage, s in report["stages_ms"].items():
        print(f"{stage:<12} {s['mean']:>8.2f} {s['p95']:>8.2f}")
    print(f"{'callback':<12} {report['callback_total_ms']['mean']:>8.2f} {report['callback_total_ms']['p95']:>8.2f}")
    for name, s in report["webrtc_codec_ms"].items():
        print(f"{name:<12} {s['mean']:>8.2f} {s['p95']:>8.2f}")
    print(json.dumps({k: report[k] for k in ("fps_640x480", "fps_640x480_with_webrtc_codec", "fps_640x480_from_cpu_time",
                                             "meets_target",
                                             "face_found_ratio", "tracks_started")}
                     | {"backend": report["classifier"]["backend"], "machine": report["machine"]}, indent=2))
    if args.json_out:
        provenance.write_report(args.json_out, report, "training.benchmark", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
