"""The Landmark Analysis page with Streamlit's AppTest: uploads, toggles, and the two report sections."""
from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.landmarks.metrics import CED_THRESHOLDS, score
from core.landmarks.report import impact_summary
from tests.conftest import ROOT, encode, reread_settings

PAGE = "pages/4_Landmark_Analysis.py"
TIMEOUT = 180


def synthetic_report() -> dict:
    """A small report built by the real scoring code on generated points (the page only reads it)."""
    rng = np.random.default_rng(0)
    gts = [rng.uniform(0, 200, (68, 2)) for _ in range(6)]
    methods = {"mediapipe_mesh": score([g + rng.normal(0, 3, g.shape) for g in gts], gts, [20.0] * 6).to_dict(),
               "dlib68": score([g + rng.normal(0, 1, g.shape) for g in gts[:5]] + [None], gts, [5.0] * 6).to_dict()}
    curve = [{"sigma": s, "nme": 1.25 * s, "eye_centre_error": 1.25 * s, "accuracy": 0.6 - s,
              "diff_vs_none_ci95": [0.02 - s - 0.02, 0.02 - s + 0.02], "diff_vs_clean_ci95": [-s - 0.02, -s + 0.02]}
             for s in (0.0, 0.05, 0.1, 0.2)]
    cond = {"none": {"accuracy": 0.58, "macro_f1": 0.5, "accuracy_all": 0.58, "aligned_rate": 0.0},
            "mediapipe_mesh": {"accuracy": 0.6, "macro_f1": 0.52, "accuracy_all": 0.6, "aligned_rate": 0.98,
                               "diff_vs_none": 0.02, "diff_vs_none_ci95": [0.0, 0.04]},
            "dlib68": {"accuracy": 0.59, "macro_f1": 0.51, "accuracy_all": 0.59, "aligned_rate": 1.0,
                       "diff_vs_none": 0.01, "diff_vs_none_ci95": [-0.01, 0.03]}}
    impact = {"model": "synthetic", "weights_sha256": "0" * 64, "reference": "mediapipe_mesh",
              "methods": ["mediapipe_mesh", "dlib68"], "command": "python -m training.landmark_emotion_study",
              "sets": {"fer2013_PublicTest": {"n": 100, "n_common": 98, "conditions": cond, "curve": curve,
                                               "vs_reference": {"dlib68": {"nme": 0.04, "eye_centre_error": 0.02}}}}}
    impact["summary"] = impact_summary(impact, methods, "synthetic faces")
    return {"methods": methods, "by_subset": {"helen_test": {"n": 6, "methods": methods}},
            "ced_thresholds": [float(t) for t in CED_THRESHOLDS], "fair_subset": "helen_test",
            "fair_subset_note": "fair subset note", "boxes": "detector:mediapipe_full", "detector_missed": [],
            "command": "python -m training.evaluate_landmarks --data x --json y", "commit": "abc",
            "emotion_impact": impact}


@pytest.fixture()
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_REPORTS_DIR", str(tmp_path))
    reread_settings()
    return tmp_path


def run_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


def test_without_reports_the_page_says_how_to_make_them(reports):
    at = run_page()
    assert "Landmark Analysis" in at.title[0].value
    info = texts(at)
    assert "python -m training.evaluate_landmarks" in info and "python -m training.landmark_emotion_study" in info
    assert "Upload a photo" in info
    assert len(at.toggle) == 3


def test_report_sections_show_table_curves_and_summary(reports):
    rep = synthetic_report()
    (reports / "landmarks.json").write_text(json.dumps(rep))
    at = run_page()
    assert at.radio[0].value == "helen_test"  # the fair subset first
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # CED + accuracy-vs-error
    table = at.dataframe[0].value
    assert list(table["method"]) == ["MediaPipe Face Mesh", "dlib 68-point"]
    assert table["NME"].iloc[1] == pytest.approx(rep["methods"]["dlib68"]["nme"])
    body = texts(at)
    for sentence in rep["emotion_impact"]["summary"]:
        assert sentence in body
    at.radio[0].set_value("all faces").run()
    assert not at.exception


def test_upload_draws_both_landmark_sets(reports, astronaut):
    at = run_page()
    at.file_uploader[0].set_value(("astronaut.png", encode(astronaut), "image/png")).run()
    assert not at.exception
    assert len(at.get("image")) == 1
    dis = at.dataframe[0].value
    assert list(dis["face"]) == ["#1"]
    assert set(dis.columns) >= {"all", "jaw", "brows", "nose", "eyes", "mouth"}
    assert 0 < dis["eyes"].iloc[0] < 0.1
    at.toggle[0].set_value(True).run()  # all 478 mesh points on top
    assert not at.exception and len(at.get("image")) == 1


def test_bad_and_faceless_uploads_get_plain_messages(reports):
    import skimage.data

    at = run_page()
    at.file_uploader[0].set_value(("notes.pdf", b"%PDF-1.4 not an image", "application/pdf")).run()
    assert not at.exception
    assert at.error and "PDF" in at.error[0].value and "Traceback" not in at.error[0].value
    at.file_uploader[0].set_value(("coffee.png", encode(skimage.data.coffee()), "image/png")).run()
    assert not at.exception
    assert "No face was found" in at.warning[0].value
