"""Our YOLOv8n face detector (`weights/face_yolo.pt`, trained by `training.train_detector`).

The weights are ours, built from the model yaml and trained offline, so nothing downloads. The input
size comes from the model card (`face_yolo.json`, key "imgsz"), because the model was trained at that size
and scores drop when it is run at another one.

Two backends share Ultralytics' own letterbox, NMS and box rescaling, so they differ only in who runs the
network: Ultralytics' torch predictor, or ONNX Runtime on a graph exported in memory from the same loaded
weights (nothing extra is shipped or written). On this 2-core CPU a 512-px photo takes ~54 ms with torch and
~30 ms with ONNX Runtime (2 threads; `python -m training.benchmark_detector`), so "auto" picks ONNX Runtime
when `onnxruntime` and `onnx` are installed. `EMOLENS_YOLO_BACKEND=torch` forces Ultralytics' predictor.
"""
from __future__ import annotations

import copy
import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import settings
from core.detection.base import Detection, DetectorUnavailable, FaceDetector
from core.onnx_runtime import cpu_session, export_to_bytes, onnx_available

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox

DEFAULT_IMGSZ = 320
FALLBACK_THRESHOLD = 0.25  # Ultralytics' own predict default, used until the card holds a tuned one
NMS_IOU = 0.7              # Ultralytics' predict default, kept so both backends give the same boxes
MAX_DETECTIONS = 300       # Ultralytics' predict default
BACKENDS = ("auto", "onnxruntime", "torch")


def weights_path() -> Path:
    """`EMOLENS_FACE_YOLO` (e.g. a checkpoint under runs/ while training) or `weights/face_yolo.pt`."""
    return settings.get().face_yolo


def is_available() -> bool:
    return weights_path().is_file()


def install_hint() -> str | None:
    """The registry's check: None when the weights are there, else where they should be and how to make them."""
    if is_available():
        return None
    return f"its weights {weights_path()} are missing (train them with `python -m training.train_detector`)."


def model_card(path: Path | None = None) -> dict[str, Any]:
    """The JSON card beside the shipped weights ({} when absent or unreadable)."""
    card = (path or weights_path()).with_suffix(".json")
    if not card.is_file():  # a checkpoint under runs/ has no card: use the shipped one for imgsz/threshold
        card = settings.get().weights_dir / "face_yolo.json"
    try:
        return json.loads(card.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def card_threshold() -> float:
    """The threshold `training.evaluate_detector --update-card` tuned on the tune split, else a fallback."""
    return float(model_card().get("default_threshold", FALLBACK_THRESHOLD))


def input_size(path: Path | None = None) -> int:
    """`EMOLENS_YOLO_IMGSZ` (for input-size studies: `evaluate_detector --yolo-imgsz`), else the card's."""
    override = settings.get().yolo_imgsz
    return override if override else int(model_card(path).get("imgsz", DEFAULT_IMGSZ))


def resolve_backend(requested: str | None = None) -> str:
    """`requested`, else `EMOLENS_YOLO_BACKEND`, else "auto"; "auto" is ONNX Runtime where installed."""
    name = (requested or settings.get().yolo_backend).strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"Unknown YOLO backend {name!r}; choose one of {', '.join(BACKENDS)}.")
    if name == "auto":
        return "onnxruntime" if onnx_available() else "torch"
    if name == "onnxruntime" and not onnx_available():
        raise DetectorUnavailable("The YOLO ONNX Runtime backend needs `onnxruntime` and `onnx` installed.")
    return name


@lru_cache(maxsize=2)
def _load(path: str, mtime: float) -> YOLO:
    """One model per weights file (and version), shared by every YoloDetector: loading takes ~1 s."""
    from core.detection.ultralytics_env import import_ultralytics

    return import_ultralytics().YOLO(path, task="detect")  # offline switches, fonts, Pillow left alone


def export_onnx(yolo: YOLO, example_hw: tuple[int, int]) -> bytes:
    """The detection network as an ONNX graph (bytes, in memory) with dynamic height and width, so each photo
    keeps its own letterboxed shape. A fused copy is exported; the shared model is left untouched."""
    import torch

    net = copy.deepcopy(yolo.model).float().eval().fuse(verbose=False)
    head = net.model[-1]
    head.export, head.dynamic, head.format = True, True, "onnx"  # (1, 4 + classes, anchors) output only
    return export_to_bytes(net, torch.zeros(1, 3, *example_hw), ["images"], ["preds"],
                           {"images": {2: "height", 3: "width"}})


@lru_cache(maxsize=4)
def _onnx_session(path: str, mtime: float, threads: int) -> InferenceSession:
    """One ONNX Runtime session per weights file and thread count (export ~2 s, once per process)."""
    return cpu_session(export_onnx(_load(path, mtime), (320, 416)), threads)


def _letterbox(imgsz: int, stride: int) -> LetterBox:
    """Ultralytics' predictor letterbox: scale to fit imgsz, pad to the smallest multiple of the stride."""
    from ultralytics.data.augment import LetterBox

    return LetterBox((imgsz, imgsz), auto=True, stride=stride)


def _threads() -> int:
    """Torch's intra-op thread count, so `--threads` and the API's per-worker setting govern both backends."""
    import torch

    return max(1, torch.get_num_threads())


class YoloDetector(FaceDetector):
    """YOLOv8n trained on our WIDER FACE split; CPU inference at the card's image size."""

    name = "yolo"

    def __init__(self, threshold: float = FALLBACK_THRESHOLD, weights: Path | None = None,
                 imgsz: int | None = None, backend: str | None = None) -> None:
        super().__init__(threshold)
        path = Path(weights) if weights else weights_path()
        if not path.is_file():
            raise DetectorUnavailable(
                f"The YOLO face detector needs its weights at {path}, which is not there. Train it with "
                "`python -m training.train_detector` (or set EMOLENS_FACE_YOLO to a checkpoint), or pick "
                "another detector.")
        self.weights = path
        self.imgsz = int(imgsz or input_size(path))
        self.backend = resolve_backend(backend)
        key = (str(path.resolve()), path.stat().st_mtime)
        self._model = _load(*key)
        self._session = _onnx_session(*key, _threads()) if self.backend == "onnxruntime" else None
        self._letterbox = _letterbox(self.imgsz, int(max(self._model.model.stride)))
        self._lock = threading.Lock()  # Ultralytics predictors keep per-call state
        # The first call builds Ultralytics' predictor (~5 s, torch) or warms ONNX Runtime: pay that while the
        # app shows "Loading the face detector", not on the user's first photo.
        self._detect(np.zeros((self.imgsz, self.imgsz, 3), np.uint8))

    def _detect(self, image: np.ndarray) -> list[Detection]:
        if self._session is not None:
            boxes, scores = self._detect_onnx(image)
        else:
            # Ultralytics reads numpy images as BGR (OpenCV's order); ours are RGB. Its confidence filter
            # runs before NMS, which keeps a box regardless of lower-scored ones, so filtering there is exact.
            bgr = np.ascontiguousarray(image[..., ::-1])
            with self._lock:
                result = self._model.predict(bgr, imgsz=self.imgsz, conf=self.threshold, device="cpu",
                                             iou=NMS_IOU, max_det=MAX_DETECTIONS, verbose=False)[0]
            boxes = result.boxes.xyxy.cpu().numpy().astype(float)
            scores = result.boxes.conf.cpu().numpy().astype(float)
        return [Detection(box=tuple(b), score=float(s)) for b, s in zip(boxes, scores)]

    def _detect_onnx(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ultralytics' predictor steps with ONNX Runtime in the middle: its rect letterbox (on the RGB image
        the network wants, so no channel flips), RGB 0-1 CHW, the confidence cut, then class-free NMS
        (torchvision's, as Ultralytics calls it) and its box rescaling. Cutting by confidence in numpy first
        leaves NMS only the few candidates. The session is thread-safe: no lock."""
        import torch
        from torchvision.ops import nms
        from ultralytics.utils import ops

        padded = self._letterbox(image=np.ascontiguousarray(rgb))
        x = padded.transpose(2, 0, 1)[None].astype(np.float32)
        x *= 1.0 / 255.0
        preds = self._session.run(None, {"images": x})[0][0]  # (4 + 1, anchors): cx cy w h, face score
        cand = preds[:, preds[4] >= self.threshold]
        if not cand.shape[1]:
            return np.zeros((0, 4)), np.zeros(0)
        cx, cy, w, h, score = cand
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        keep = nms(torch.from_numpy(xyxy), torch.from_numpy(score), NMS_IOU).numpy()[:MAX_DETECTIONS]
        boxes = ops.scale_boxes(x.shape[2:], xyxy[keep].astype(float), rgb.shape[:2])
        return boxes, score[keep].astype(float)
