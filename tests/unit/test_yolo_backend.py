"""YOLO backend choice: "auto" prefers ONNX Runtime where installed; bad names get a clear message."""
import pytest

from tests.conftest import reread_settings
from core.detection import yolo
from core.detection.base import DetectorUnavailable


def test_auto_picks_onnxruntime_when_installed(monkeypatch):
    monkeypatch.delenv("EMOLENS_YOLO_BACKEND", raising=False)
    reread_settings()
    monkeypatch.setattr(yolo, "onnx_available", lambda: True)
    assert yolo.resolve_backend() == "onnxruntime"
    monkeypatch.setattr(yolo, "onnx_available", lambda: False)
    assert yolo.resolve_backend() == "torch" and yolo.resolve_backend("auto") == "torch"


def test_environment_and_argument_choose_the_backend(monkeypatch):
    monkeypatch.setattr(yolo, "onnx_available", lambda: True)
    monkeypatch.setenv("EMOLENS_YOLO_BACKEND", "Torch")
    reread_settings()
    assert yolo.resolve_backend() == "torch"
    assert yolo.resolve_backend("onnxruntime") == "onnxruntime"


def test_unknown_or_missing_backend_is_explained(monkeypatch):
    with pytest.raises(ValueError, match="Unknown YOLO backend 'tensorrt'.*auto, onnxruntime, torch"):
        yolo.resolve_backend("tensorrt")
    monkeypatch.setattr(yolo, "onnx_available", lambda: False)
    with pytest.raises(DetectorUnavailable, match="needs `onnxruntime` and `onnx`"):
        yolo.resolve_backend("onnxruntime")


def test_input_size_comes_from_the_card_unless_a_study_overrides_it(monkeypatch, tmp_path):
    (tmp_path / "face_yolo.json").write_text('{"imgsz": 416}')
    weights = tmp_path / "face_yolo.pt"
    monkeypatch.delenv("EMOLENS_YOLO_IMGSZ", raising=False)
    reread_settings()
    assert yolo.input_size(weights) == 416
    monkeypatch.setenv("EMOLENS_YOLO_IMGSZ", "320")
    reread_settings()
    assert yolo.input_size(weights) == 320


def test_an_input_size_study_cannot_rewrite_the_shipped_card(capsys):
    from training.evaluate_detector import main

    assert main(["--detectors", "yolo", "--yolo-imgsz", "320", "--update-card"]) == 2
    assert "cannot be combined with --yolo-imgsz" in capsys.readouterr().out
