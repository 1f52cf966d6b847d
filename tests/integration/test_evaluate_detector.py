"""The detector-evaluation CLI on the real faces data, and the shipped YOLO detector on a real photo."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core import settings
from tests.conftest import ROOT, require

METRICS = {"precision", "recall", "f1", "ap50", "ap50_95", "ms_per_image", "threshold", "pr_curve"}


@pytest.fixture(scope="module")
def faces_dir():
    path = settings.get().data_dir / "faces"
    if not (path / "images" / "val").is_dir():
        require("EMOLENS_REQUIRE_DATA", f"the face-detection data is not at {path}")
    return path


def test_cli_writes_the_report_contract(faces_dir, tmp_path):
    out = tmp_path / "detection.json"
    cmd = [sys.executable, "-m", "training.evaluate_detector", "--data", str(faces_dir), "--split", "val",
           "--min-face", "32", "--limit", "3", "--detectors", "haar,mediapipe", "--json", str(out),
           "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "AP50" in proc.stdout  # the readable table
    report = json.loads(out.read_text())
    assert set(report["detectors"]) == {"haar", "mediapipe"}
    for m in report["detectors"].values():
        assert METRICS <= set(m)
        assert all(0.0 <= m[k] <= 1.0 for k in ("precision", "recall", "f1", "ap50", "ap50_95", "threshold"))
        assert m["ap50_95"] <= m["ap50"] and m["ms_per_image"] > 0
        assert len(m["pr_curve"]["recall"]) == len(m["pr_curve"]["precision"])
    assert report["split"] == "val" and report["tune_split"] == "tune" and report["min_face"] == 32
    assert report["n_images"] == 3 and report["n_faces"] >= 0
    assert "--limit 3" in report["command"] and report["commit"]
    # a second run reuses the cached detections and reproduces the figures
    proc2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc2.returncode == 0 and "images (" not in proc2.stdout
    again = json.loads(out.read_text())
    for name in ("haar", "mediapipe"):
        assert again["detectors"][name]["f1"] == report["detectors"][name]["f1"]


def test_update_card_writes_the_ensemble_card_the_app_serves(faces_dir, tmp_path):
    import os

    from core.detection import make_detector
    from core.detection.ensemble import CARD_NAME, load_config

    weights = tmp_path / "w"
    cmd = [sys.executable, "-m", "training.evaluate_detector", "--data", str(faces_dir), "--limit", "2",
           "--detectors", "haar,mediapipe,ensemble", "--ensemble-members", "haar,mediapipe", "--update-card",
           "--json", str(tmp_path / "detection.json"), "--cache-dir", str(tmp_path / "cache"),
           "--timing-images", "1", "--threads", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EMOLENS_WEIGHTS_DIR": str(weights)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "detection.json").read_text())
    card = json.loads((weights / CARD_NAME).read_text())
    assert not (weights / "face_yolo.json").exists()  # yolo was not evaluated: its card is not touched
    assert card["task"] == "face-detection" and card["members"] == ["haar", "mediapipe"]
    assert card["source"]["command"] == report["command"] and card["source"]["commit"] == report["commit"]
    assert card["default_threshold"] == report["ensemble"]["default_threshold"]
    settings.configure(weights_dir=weights)
    detector = make_detector("ensemble")
    assert detector.config == load_config() and detector.config.threshold == card["default_threshold"]
    assert [m.threshold for m in detector.members] == card["member_thresholds"]


def test_cli_rejects_unknown_detectors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "training.evaluate_detector", "--detectors", "haar,nope",
                           "--json", str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Unknown detector(s) nope" in proc.stdout


def test_shipped_yolo_finds_the_astronaut(astronaut):
    from core.detection import make_detector
    from core.detection.yolo import weights_path
    from tests.integration.test_real_faces import ASTRONAUT_FACE, iou

    if not weights_path().is_file():
        pytest.skip(f"{weights_path()} is not trained yet (python -m training.train_detector)")
    detector = make_detector("yolo")
    assert detector.imgsz == json.loads(weights_path().with_suffix(".json").read_text()).get("imgsz", 320)
    found = detector.detect(astronaut)
    assert found and iou(found[0].box, ASTRONAUT_FACE) > 0.4
    import numpy as np

    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("detector", ["mtcnn", "dlib_hog"])
def test_new_detectors_find_the_astronaut(detector, astronaut):
    from core.detection import make_detector
    from tests.integration.test_real_faces import ASTRONAUT_FACE, iou

    found = make_detector(detector).detect(astronaut)
    assert found and iou(found[0].box, ASTRONAUT_FACE) > 0.4  # the best-scored box is the face
    assert all(0.0 <= d.score <= 1.0 for d in found)
    if detector == "mtcnn":
        assert len(found) == 1  # dlib's HOG also fires elsewhere in this photo at its default threshold


def test_yolo_backends_agree_on_real_photos(astronaut):
    """ONNX Runtime (the default where installed) must give Ultralytics' own boxes and scores: same letterbox,
    same NMS, same weights; only the engine differs."""
    import numpy as np

    from core.detection.yolo import YoloDetector, onnx_available, weights_path

    if not weights_path().is_file():
        pytest.skip(f"{weights_path()} is not trained yet (python -m training.train_detector)")
    if not onnx_available():
        pytest.skip("onnxruntime/onnx are not installed, so only the torch backend exists")
    torch_det, onnx_det = YoloDetector(0.1, backend="torch"), YoloDetector(0.1, backend="onnxruntime")
    assert onnx_det.backend == "onnxruntime" and torch_det.backend == "torch"
    rng = np.random.default_rng(0)
    wide = np.clip(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1).astype(int)
                   + rng.integers(-8, 9, (astronaut.shape[0], 2 * astronaut.shape[1], 3)), 0, 255).astype(np.uint8)
    for image in (astronaut, wide, astronaut[40:300, 60:420]):  # square, wide, odd-sized crop
        a, b = torch_det.detect(image), onnx_det.detect(image)
        assert a and len(a) == len(b)
        for x, y in zip(a, b):
            assert np.allclose(x.box, y.box, atol=0.05) and abs(x.score - y.score) < 1e-3
