"""Detector and landmarker registries: one entry shape, availability with install hints, plain refusals, and
the detector ensemble served from its own model card."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from core import settings
from core.detection import (DetectorUnavailable, available_detectors, default_threshold, is_available,
                            make_detector, registered_detectors)
from core.detection import _REGISTRY as DETECTORS
from core.detection.ensemble import CARD_NAME, EnsembleConfig, EnsembleDetector, install_hint, load_config
from core.detection.registry import Registry, RegistryEntry, UnknownComponent
from core.errors import UserFacingError
from core.landmarks import _REGISTRY as LANDMARKERS
from core.landmarks import available_landmarkers, landmarker_label, make_landmarker


@pytest.mark.parametrize("registry", [DETECTORS, LANDMARKERS], ids=["detectors", "landmarkers"])
def test_every_entry_has_factory_check_and_description(registry):
    for name, entry in registry.entries.items():
        assert isinstance(entry, RegistryEntry) and callable(entry.factory) and callable(entry.check), name
        assert entry.description.strip(), name
        hint = entry.check()
        assert hint is None or (hint.strip() and hint.endswith(".")), (name, hint)  # a plain sentence
    assert registry.available() == [n for n in registry.names() if registry.missing(n) is None]


def test_an_unavailable_entry_is_left_out_with_its_install_hint():
    class Widget:
        pass

    registry = Registry("widget", {
        "ok": RegistryEntry(factory=Widget, description="always there"),
        "absent": RegistryEntry(factory=Widget, description="needs a package",
                                check=lambda: "widgetlib is missing (`pip install widgetlib`)."),
    }, DetectorUnavailable)
    assert registry.names() == ["ok", "absent"] and registry.available() == ["ok"]
    assert isinstance(registry.require("ok").factory(), Widget)
    with pytest.raises(DetectorUnavailable, match=r"'absent' widget is not installed here: widgetlib is missing "
                                                  r"\(`pip install widgetlib`\)\. Available: ok\."):
        registry.require("absent")
    assert registry.label("ok") == "ok"  # no label: the name


def test_a_missing_package_takes_the_detector_and_the_ensembles_using_it_off_the_list(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "facenet_pytorch"
                        else real(name, *a))
    assert "mtcnn" not in available_detectors() and "mtcnn" in registered_detectors()
    with pytest.raises(DetectorUnavailable, match="pip install --no-deps facenet-pytorch") as err:
        make_detector("mtcnn")
    assert err.value.code == "detector_unavailable"
    if load_config() is not None and "mtcnn" in load_config().members:  # the shipped ensemble votes with it
        assert not is_available("ensemble") and "mtcnn are not installed" in install_hint()


@pytest.mark.parametrize("make, kind, listed", [(make_detector, "detector", available_detectors),
                                                (make_landmarker, "landmarker", available_landmarkers)])
def test_an_unknown_name_is_a_plain_refusal_listing_the_choices(make, kind, listed):
    with pytest.raises(UserFacingError) as err:
        make("nope")
    assert isinstance(err.value, ValueError) and isinstance(err.value, UnknownComponent)
    assert err.value.code == "unknown_component"
    assert err.value.message == f"Unknown {kind} 'nope'. Choose one of: {', '.join(listed())}."


def test_landmarker_labels_come_from_the_entries():
    assert [landmarker_label(n) for n in available_landmarkers()] == ["MediaPipe Face Mesh", "dlib 68-point"]


def test_the_ensemble_serves_what_its_card_says(tmp_path):
    cfg = EnsembleConfig(members=("haar", "mediapipe"), weights=(1.0, 2.0), member_thresholds=(0.61, 0.47),
                         iou_thr=0.4, threshold=0.123456)
    (tmp_path / CARD_NAME).write_text(json.dumps({"name": "face_ensemble", "task": "face-detection",
                                                  **cfg.to_json()}))
    settings.configure(weights_dir=tmp_path)
    assert load_config() == cfg and is_available("ensemble")
    assert default_threshold("ensemble") == pytest.approx(0.1235)
    detector = make_detector("ensemble")
    assert isinstance(detector, EnsembleDetector) and detector.config == cfg
    assert detector.threshold == pytest.approx(0.1235)  # the registry default, kept in the slider's range
    assert [(m.name, m.threshold) for m in detector.members] == [("haar", 0.61), ("mediapipe", 0.47)]
    assert detector.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    assert EnsembleDetector().threshold == 0.123456  # built directly: the card's exact cut


def test_without_its_card_the_ensemble_is_unlisted_and_says_how_to_write_it(tmp_path):
    settings.configure(weights_dir=tmp_path)
    assert "ensemble" not in available_detectors()
    with pytest.raises(DetectorUnavailable, match=rf"{CARD_NAME} is missing .*evaluate_detector.*--update-card"):
        make_detector("ensemble")
    (tmp_path / CARD_NAME).write_text('{"members": ["haar"]}')  # unreadable as settings: still unlisted
    assert load_config() is None and not is_available("ensemble")


def test_the_tuning_script_writes_the_card_the_detector_reads(tmp_path):
    from training.evaluate_detector import DetectorResult, write_ensemble_card

    cfg = EnsembleConfig(("yolo", "mtcnn"), (1.0, 1.0), (0.544524, 0.876433), threshold=0.356811)
    result = DetectorResult(precision=0.9, recall=0.8, f1=0.85, ap50=0.8, ap50_95=0.5, ms_per_image=180.0,
                            threshold=0.356811, pr_curve={"recall": [0.1], "precision": [1.0]},
                            counts={"tp": 8, "fp": 1, "fn": 2, "ignored_detections": 0})
    report = {"split": "val", "tune_split": "tune", "min_face": 32.0, "n_images": 3, "n_faces": 10,
              "command": "python -m training.evaluate_detector --detectors yolo,mtcnn,ensemble --update-card",
              "commit": "abc", "date": "2026-01-01T00:00:00+00:00", "ensemble": {"selection": "auto"}}
    path = tmp_path / CARD_NAME
    write_ensemble_card(path, cfg, result, report, tmp_path / "detection.json")
    card = json.loads(path.read_text())
    assert card["task"] == "face-detection" and card["name"] == "face_ensemble"
    assert card["source"]["command"] == report["command"] and card["source"]["report"].endswith("detection.json")
    assert "pr_curve" not in card["metrics"]["val"]
    assert load_config(path) == cfg  # exact: the fused cut is not rounded


def test_the_shipped_ensemble_card_matches_the_run_that_tuned_it():
    from core.reports import load_report

    card_file = settings.get().weights_dir / CARD_NAME
    card, cfg, report = json.loads(card_file.read_text()), load_config(card_file), load_report("detection")
    assert cfg is not None and card["task"] == "face-detection"
    assert set(cfg.members) <= set(registered_detectors()) and len(cfg.member_thresholds) == len(cfg.members)
    assert "training.evaluate_detector" in card["source"]["command"] and "--update-card" in card["source"]["command"]
    if report is not None and card["source"]["commit"] == report["commit"]:  # the report of the same run
        assert round(cfg.threshold, 4) == report["detectors"]["ensemble"]["threshold"]
        assert card["metrics"]["val"]["f1"] == report["detectors"]["ensemble"]["f1"]
