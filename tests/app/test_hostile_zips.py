"""Hostile zips uploaded to every page that takes one get a plain refusal: no exception, no traceback.

A zip bomb (a small file that claims hundreds of MB, as an image member and as the labels table) and a
member named `../evil.png` must be refused by `core.archive.SafeZip` before anything is decompressed, with
a message a person can act on, on Annotate, Model Comparison ("evaluate on your own data") and Fairness
Audit ("audit your own data"). Upload and Predict takes images only: a zip there is a plain "not an image".
"""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, encode, reread_settings

TIMEOUT = 180
BOMB_BYTES = 200 * 2**20


def _bomb(member: str) -> bytes:
    """One member of 200 MB of zeros, deflated to a few hundred KB (written in chunks: never 200 MB in memory)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(member, "w") as fh:
            chunk = bytes(2**20)
            for _ in range(BOMB_BYTES // len(chunk)):
                fh.write(chunk)
    return buf.getvalue()


def _traversal() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("happy/ok.png", encode(np.full((48, 48, 3), 120, np.uint8)))
        zf.writestr("../evil.png", encode(np.zeros((48, 48, 3), np.uint8)))
    return buf.getvalue()


@pytest.fixture(scope="module")
def hostile() -> dict[str, tuple[bytes, str]]:
    """name -> (zip bytes, words the refusal must contain)."""
    image_bomb, table_bomb = _bomb("happy/bomb.png"), _bomb("labels.csv")
    assert len(image_bomb) < BOMB_BYTES / 100 and len(table_bomb) < BOMB_BYTES / 100
    return {"image_bomb.zip": (image_bomb, "zip bomb"),
            "labels_bomb.zip": (table_bomb, "the limit is"),
            "traversal.zip": (_traversal(), "outside the archive")}


def _refused(at: AppTest, name: str, words: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert errors, f"{name}: no refusal shown"
    text = " ".join(errors)
    assert words in text, (name, text)
    assert "Traceback" not in text and "Error:" not in text, text


def test_annotate_refuses_hostile_zips(shipped_weights, hostile):
    at = AppTest.from_file(str(ROOT / "pages/2_Annotate.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    for name, (data, words) in hostile.items():
        at.file_uploader[0].set_value((name, data, "application/zip")).run()
        _refused(at, name, words)
        assert name in " ".join(e.value for e in at.error)  # the page names the upload it refused


def test_model_comparison_refuses_hostile_zips(shipped_weights, hostile):
    at = AppTest.from_file(str(ROOT / "pages/3_Model_Comparison.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    for name, (data, words) in hostile.items():
        at.file_uploader(key="own_zip").set_value((name, data, "application/zip")).run()
        _refused(at, name, words)
        assert not [m for m in at.metric if m.label == "Accuracy"]


def test_fairness_audit_refuses_hostile_zips(shipped_weights, hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_REPORTS_DIR", str(tmp_path))  # no saved report: only the upload is judged
    reread_settings()
    at = AppTest.from_file(str(ROOT / "pages/5_Fairness_Audit.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    for name, (data, words) in hostile.items():
        at.file_uploader(key="fairness_upload").set_value([(name, data, "application/zip")]).run()
        _refused(at, name, words)
        assert not at.button or "Run the audit" not in [b.label for b in at.button]


def test_upload_and_predict_says_a_zip_is_not_an_image(shipped_weights, hostile):
    at = AppTest.from_file(str(ROOT / "pages/1_Upload_and_Predict.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    for name, (data, _) in hostile.items():
        at.file_uploader[0].set_value([(name, data, "application/zip")]).run()
        _refused(at, name, "not an image")
