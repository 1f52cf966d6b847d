"""Each page rendered headlessly with Streamlit's AppTest: valid and invalid uploads, no exceptions."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, encode

TIMEOUT = 120


def page(path: str) -> AppTest:
    return AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)


def all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [e.value for e in at.error] + [w.value for w in at.warning] + [s.value for s in at.success]
    parts += [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_home_renders_model_card(shipped_weights):
    at = page("Home.py").run()
    assert not at.exception
    assert "EmoLens" in at.title[0].value
    labels = {m.label: m.value for m in at.metric}
    card = json.loads(shipped_weights.read_text())
    expected = f"ensemble of {len(card['members'])}" if card.get("members") else card["architecture"]
    assert labels["Architecture"] == expected
    assert labels["FER-2013 test accuracy"].endswith("%")
    assert "consent" in all_text(at)


@pytest.fixture()
def predict_page(shipped_weights) -> AppTest:
    at = page("pages/1_Upload_and_Predict.py").run()
    assert not at.exception
    return at


def test_predict_waits_for_upload(predict_page):
    assert "Waiting for images" in all_text(predict_page)
    assert predict_page.selectbox[0].value == "mediapipe_full"


def test_predict_valid_image(predict_page, astronaut):
    at = predict_page
    at.file_uploader[0].set_value(("astronaut.jpg", encode(astronaut, "JPEG"), "image/jpeg")).run()
    assert not at.exception
    assert "1 image(s) analysed, 1 face(s) found" in at.success[0].value
    assert any("Face #1" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 1
    assert {b.label for b in at.get("download_button")} >= {
        "Download results (CSV)", "Download results (JSON)", "Download annotated image (PNG)"}


def test_predict_invalid_files_get_plain_messages(predict_page, astronaut):
    at = predict_page
    at.file_uploader[0].set_value([
        ("report.pdf", b"%PDF-1.4 fake", "application/pdf"),
        ("empty.png", b"", "image/png"),
        ("cut.png", encode(astronaut)[:3000], "image/png"),
        ("ok.png", encode(astronaut), "image/png"),
    ]).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 3
    assert "PDF" in errors[0] and "empty" in errors[1] and "damaged" in errors[2]
    assert "3 file(s) could not be used" in at.success[0].value
    assert all("Traceback" not in e for e in errors)


def test_predict_detector_choice_is_used(predict_page, astronaut):
    at = predict_page
    at.selectbox[0].set_value("haar").run()
    at.file_uploader[0].set_value(("a.png", encode(astronaut), "image/png")).run()
    assert not at.exception
    assert "1 face(s) found" in at.success[0].value
