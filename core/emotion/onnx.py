"""Optional ONNX Runtime backend for the emotion classifier, used only where it measures faster.

The graph is exported from the loaded torch model at first use, into memory (no extra file is shipped or
written), so both backends always carry the same weights. `fastest_classifier` checks that the two agree
and times both on this machine; the faster one serves the live pipeline. Without `onnxruntime` (and `onnx`,
which torch's exporter needs) the torch model is used unchanged.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.emotion.classifier import EmotionClassifier
from core.onnx_runtime import cpu_session, export_to_bytes, onnx_available

__all__ = ["BACKENDS", "BackendChoice", "OnnxEmotionClassifier", "export_onnx", "fastest_classifier",
           "onnx_available"]

BACKENDS = ("auto", "torch", "onnxruntime")


@dataclass
class BackendChoice:
    """Which backend serves the classifier, and the measurement that chose it (ms per one-face batch)."""

    backend: str
    torch_ms: float | None = None
    onnx_ms: float | None = None
    max_abs_diff: float | None = None  # largest logit difference between the two on the timing batch
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(classifier: EmotionClassifier) -> bytes:
    """The classifier's network as an ONNX graph (bytes, in memory), batch size left dynamic."""
    import torch

    card = classifier.card
    example = torch.zeros(1, card.in_chans, card.input_size, card.input_size)
    return export_to_bytes(classifier.model.eval(), example, ["faces"], ["logits"],
                           {"faces": {0: "n"}, "logits": {0: "n"}})


class OnnxEmotionClassifier(EmotionClassifier):
    """`EmotionClassifier` whose logits come from ONNX Runtime; preprocessing, flip-TTA and calibration
    are inherited, so outputs match the torch model to float precision."""

    backend = "onnxruntime"

    def __init__(self, base: EmotionClassifier, threads: int = 1) -> None:
        super().__init__(base.model, base.card, base.batch_size)
        # threads=1 by default: the other core decodes/encodes video and runs the detector
        self._session = cpu_session(export_onnx(base), threads)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"faces": x})[0]


def _times_ms(fn: Any, crops: list[np.ndarray], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(crops)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def fastest_classifier(base: EmotionClassifier, backend: str = "auto", threads: int = 1,
                       repeats: int = 30, budget_s: float = 3.0) -> tuple[EmotionClassifier, BackendChoice]:
    """Pick the classifier backend for real-time use.

    "auto" exports to ONNX, checks the logits agree (1e-3), then times both backends interleaved on a
    one-face batch (the live case; `repeats` runs each, at least 5, within about `budget_s`) and keeps
    the faster by median. "torch"/"onnxruntime" force one.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown classifier backend {backend!r}. Choose one of: {', '.join(BACKENDS)}.")
    if backend == "torch":
        return base, BackendChoice("torch", note="forced")
    if not onnx_available():
        if backend == "onnxruntime":
            raise RuntimeError("onnxruntime and onnx are not installed (pip install -r requirements.txt).")
        return base, BackendChoice("torch", note="onnxruntime or onnx not installed")
    try:
        onnx_clf = OnnxEmotionClassifier(base, threads=threads)
    except Exception as exc:  # an architecture the exporter cannot handle: keep torch, say why
        if backend == "onnxruntime":
            raise
        return base, BackendChoice("torch", note=f"ONNX export failed: {type(exc).__name__}: {exc}")
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)]
    diff = float(np.abs(onnx_clf.logits(crops) - base.logits(crops)).max())
    if diff > 1e-3:
        if backend == "onnxruntime":
            raise RuntimeError(f"ONNX Runtime logits differ from torch by {diff:.2g}")
        return base, BackendChoice("torch", max_abs_diff=diff, note="ONNX output differs; torch kept")
    torch_t: list[float] = []
    onnx_t: list[float] = []
    for _ in range(3):  # warm-up both, then interleave so a busy machine slows both alike
        base.predict(crops), onnx_clf.predict(crops)
    deadline = time.perf_counter() + budget_s  # a slow backend on a busy machine must not stall start-up
    while len(torch_t) < repeats and (len(torch_t) < 5 or time.perf_counter() < deadline):
        torch_t += _times_ms(base.predict, crops, 1)
        onnx_t += _times_ms(onnx_clf.predict, crops, 1)
    torch_ms, onnx_ms = statistics.median(torch_t), statistics.median(onnx_t)
    choice = BackendChoice("onnxruntime" if backend == "onnxruntime" or onnx_ms < torch_ms else "torch",
                           round(torch_ms, 3), round(onnx_ms, 3), diff,
                           "forced" if backend == "onnxruntime" else "faster by median of interleaved runs")
    return (onnx_clf if choice.backend == "onnxruntime" else base), choice
