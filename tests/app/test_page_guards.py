"""The checks every page shares (`ui.guards`, `ui.pickers`): a malformed setting or a missing model is one
plain message and a stopped page, never a traceback; the pickers preselect each page's defaults."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import settings
from tests.conftest import ROOT, encode

PAGES = ["Home.py", "pages/1_Upload_and_Predict.py", "pages/2_Annotate.py", "pages/3_Model_Comparison.py",
         "pages/4_Landmark_Analysis.py", "pages/5_Fairness_Audit.py", "pages/6_Live_Webcam.py",
         "pages/7_Batch_Results.py"]
NO_MODEL = "No emotion model is installed in the weights folder"


def run(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=180).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("path", PAGES)
def test_malformed_setting_is_a_plain_message(monkeypatch, path):
    monkeypatch.setenv("EMOLENS_MAX_UPLOAD_MB", "ten")  # conftest resets settings: the page reads it afresh
    with pytest.raises(settings.SettingsError) as raised:
        settings.Settings.from_env()
    at = run(path)
    assert [e.value for e in at.error] == [raised.value.message]
    assert "EMOLENS_MAX_UPLOAD_MB='ten'" in at.error[0].value
    assert not at.file_uploader and not at.selectbox  # stopped before any widget


@pytest.fixture()
def no_models(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLENS_WEIGHTS_DIR", str(tmp_path))


@pytest.mark.parametrize("path, consequence", [("pages/2_Annotate.py", "nothing can be pre-labelled"),
                                               ("pages/3_Model_Comparison.py", "your data cannot be evaluated"),
                                               ("pages/6_Live_Webcam.py", "nothing can be analysed")])
def test_no_model_installed_is_a_plain_message(no_models, path, consequence):
    at = run(path)
    assert f"{NO_MODEL}, so {consequence}." in [e.value for e in at.error]


def test_predict_without_a_model_says_so_after_an_upload(no_models, astronaut):
    at = run("pages/1_Upload_and_Predict.py")
    assert not at.error  # it first waits for images, as with a model
    at.file_uploader[0].set_value(("a.png", encode(astronaut), "image/png")).run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"{NO_MODEL}, so nothing can be analysed."]


def test_live_page_preselects_the_live_defaults(shipped_weights):
    at = run("pages/6_Live_Webcam.py")
    sidebar = {s.label: s.value for s in at.sidebar.selectbox}
    assert sidebar["Face detector"] == settings.get().live_detector
    if "Emotion model" in sidebar:  # a picker only when several models are installed
        assert sidebar["Emotion model"] == settings.get().live_emotion_model
    assert at.sidebar.slider[0].label == "Detection threshold"
