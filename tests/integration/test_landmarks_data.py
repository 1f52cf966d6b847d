"""Both landmarkers on real faces: 300-W ground truth from the data directory, and scikit-image's astronaut."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core import settings
from core.landmarks.metrics import disagreement, nme
from core.landmarks import make_landmarker, to_68
from core.landmarks.align import align_face
from tests.conftest import require

ASTRONAUT_FACE = (170, 60, 280, 185)  # measured by hand, as in test_real_faces.py


@pytest.fixture(scope="module")
def landmark_dir():
    root = settings.get().data_dir / "landmarks"
    if not (root / "landmarks.json").exists():
        require("EMOLENS_REQUIRE_DATA", f"landmark ground truth not found at {root}")
    return root


@pytest.fixture(scope="module")
def landmarkers():
    return {name: make_landmarker(name) for name in ("mediapipe_mesh", "dlib68")}


def test_both_landmarkers_on_the_astronaut(astronaut, landmarkers):
    mesh = landmarkers["mediapipe_mesh"].landmarks(astronaut, ASTRONAUT_FACE)
    dlib = landmarkers["dlib68"].landmarks(astronaut, ASTRONAUT_FACE)
    assert mesh.shape == (478, 2) and dlib.shape == (68, 2)
    for pts in (to_68(mesh), dlib):  # anatomy: chin lowest, subject's right eye on the image's left, brows above eyes
        assert pts[8, 1] == pts[:17, 1].max() or pts[8, 1] > pts[36:48, 1].max() + 40
        assert pts[36:42, 0].mean() < pts[42:48, 0].mean()
        assert pts[17:27, 1].mean() < pts[36:48, 1].mean() < pts[30, 1] < pts[48:68, 1].mean()
        x1, y1, x2, y2 = ASTRONAUT_FACE
        assert x1 - 30 < pts[30, 0] < x2 + 30 and y1 < pts[30, 1] < y2
    d = disagreement(to_68(mesh), dlib)
    assert d["eyes"] < 0.08 and d["mouth"] < 0.1  # two independent models agree on the clear parts
    assert align_face(astronaut, dlib).shape[0] > 48


def test_landmarkers_match_300w_ground_truth(landmark_dir, landmarkers):
    from training.evaluate_landmarks import load_ground_truth, read_rgb, points_box

    faces = load_ground_truth(landmark_dir, ["helen_test"], limit=8)
    assert len(faces) == 8
    for name, lm in landmarkers.items():
        errs = []
        for f in faces:
            pts = lm.landmarks68(read_rgb(f.path), points_box(f.points))
            errs.append(np.inf if pts is None else nme(pts, f.points))
        assert np.median(errs) < 0.08, (name, errs)  # the 300-W failure threshold


def test_evaluation_cli_contract(landmark_dir, tmp_path):
    from training.evaluate_landmarks import main

    out = tmp_path / "landmarks.json"
    out.write_text(json.dumps({"emotion_impact": {"kept": True}, "methods": {"stale": {}}}))
    assert main(["--data", str(landmark_dir), "--json", str(out), "--limit", "3"]) == 0
    rep = json.loads(out.read_text())
    assert set(rep["methods"]) == {"mediapipe_mesh", "dlib68"}
    for m in rep["methods"].values():
        assert {"nme", "nme_by_region", "failure_rate", "ms_per_face"} <= set(m)
        assert set(m["nme_by_region"]) == {"jaw", "brows", "nose", "eyes", "mouth"}
        assert 0 < m["nme"] < 0.2 and 0 <= m["failure_rate"] <= 1 and m["ms_per_face"] > 0
    assert rep["by_subset"]["helen_test"]["n"] + rep["by_subset"]["afw"]["n"] + len(rep["detector_missed"]) == 6
    assert rep["emotion_impact"] == {"kept": True}  # the study's section survives a re-evaluation
    assert rep["command"].startswith("python -m training.evaluate_landmarks")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--data", str(empty), "--json", str(out)]) == 2  # no data: a message, not a traceback


def test_emotion_study_runs_end_to_end(fer_npz, shipped_weights, tmp_path):
    from training.landmark_emotion_study import main

    fairness = settings.get().data_dir / "fairness"
    if not (fairness / "labels.csv").exists():
        require("EMOLENS_REQUIRE_DATA", f"fairness set not found at {fairness}")
    out = tmp_path / "landmarks.json"
    assert main(["--json", str(out), "--weights-dir", str(shipped_weights.parent), "--fer", str(fer_npz),
                 "--fer-limit", "24", "--fairness-limit", "4", "--template-faces", "8"]) == 0
    section = json.loads(out.read_text())["emotion_impact"]
    fer = section["sets"]["fer2013_PublicTest"]
    assert fer["n"] == 24 and fer["n_common"] >= 20
    assert set(fer["conditions"]) == {"none", "mediapipe_mesh", "dlib68"}
    nmes = [p["nme"] for p in fer["curve"]]
    assert nmes[0] == 0 and nmes == sorted(nmes)  # more noise, more landmark error
    assert fer["conditions"]["mediapipe_mesh"]["aligned_rate"] > 0.8
    assert 2 <= len(section["summary"]) <= 4 and section["command"].startswith("python -m training.")
