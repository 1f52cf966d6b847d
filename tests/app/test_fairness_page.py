"""The Fairness Audit page: a saved report, no report, a broken one, and the user's own upload."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from core.emotion.vocabulary import EMOTIONS
from core.fairness.metrics import audit_frame
from tests.app.test_pages import all_text
from tests.conftest import ROOT, encode, reread_settings

PAGE = "pages/5_Fairness_Audit.py"


def make_report(path) -> dict:
    """A report in the CLI's format from generated data: a real accuracy gap in 'studio', none in 'film'."""
    rng = np.random.default_rng(0)
    rows = []
    for source, acc in (("studio", {"female": 0.9, "male": 0.6}), ("film", {"female": 0.7, "male": 0.7})):
        for gender, p in acc.items():
            for s in range(40):
                for _ in range(3):
                    t = rng.integers(0, 7)
                    q = t if rng.random() < p else (t + 1) % 7
                    rows.append({"source": source, "gender": gender, "subject": f"{source}{gender}{s}",
                                 "emotion": EMOTIONS[t], "predicted": EMOTIONS[q]})
    meta = {"command": "python -m training.audit_fairness --data X --json Y", "commit": "a" * 40,
            "data": {"path": "X", "sha256": "b" * 64}, "model": {"name": "m"}, "detector": {"name": "d"},
            "n_audited": len(rows), "n_rows": len(rows), "face_paths": {"studio": {"detected": 240}}}
    report = audit_frame(pd.DataFrame(rows), ["gender"], within="source", subject="subject", meta=meta).to_dict()
    path.write_text(json.dumps(report))
    return report


def page(monkeypatch, reports) -> AppTest:
    monkeypatch.setenv("EMOLENS_REPORTS_DIR", str(reports))
    reread_settings()
    return AppTest.from_file(str(ROOT / PAGE), default_timeout=180)


def test_saved_report_charts_tables_and_explanations(monkeypatch, tmp_path):
    make_report(tmp_path / "fairness.json")
    at = page(monkeypatch, tmp_path).run()
    assert not at.exception
    text = all_text(at)
    assert "compared within a source" in text
    assert "studio**: 240 faces of 80 people" in text
    assert "Reproduce: `python -m training.audit_fairness" in text
    assert len(at.get("plotly_chart")) == 3  # film/gender, studio/gender, gap chart
    assert any("studio" in w.value and "female" in w.value for w in at.warning)  # the real gap is flagged
    groups = at.dataframe[0].value
    assert set(groups.group) == {"female", "male"} and len(groups) == 4
    assert not groups["too few"].any() and not groups["few people"].any()
    gaps = at.dataframe[1].value
    flagged = gaps[(gaps.metric == "accuracy")].set_index("scope")["flagged"]
    assert bool(flagged["studio"]) and not bool(flagged["film"])
    for words in ("equal-opportunity", "no demographic", "consented", "surveillance", "decisions about individuals"):
        assert words in text

    at.multiselect[0].set_value(["film/gender"]).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    assert not any("accuracy:" in w.value for w in at.warning)  # film has no accuracy gap
    at.selectbox[0].set_value("recall:happy").run()
    assert not at.exception
    assert "recall of happy (equal opportunity)" in at.dataframe[0].value.columns


def test_missing_report_says_how_to_make_it(monkeypatch, tmp_path):
    at = page(monkeypatch, tmp_path).run()
    assert not at.exception
    assert any("python -m training.audit_fairness --data ../shared/data/fairness" in i.value for i in at.info)


def test_broken_report_is_a_plain_error(monkeypatch, tmp_path):
    (tmp_path / "fairness.json").write_text("{not json")
    at = page(monkeypatch, tmp_path).run()
    assert not at.exception
    assert "could not be read" in at.error[0].value


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_bad_labels_get_messages_naming_the_row(monkeypatch, tmp_path, astronaut):
    at = page(monkeypatch, tmp_path).run()
    labels = b"file,emotion,group\na.jpg,happy,x\nb.jpg,joyful,y\nc.jpg,sad,y\n"
    at.file_uploader[0].set_value([("a.jpg", encode(astronaut, "JPEG"), "image/jpeg"),
                                   ("labels.csv", labels, "text/csv")]).run()
    assert not at.exception
    text = all_text(at)
    assert "1 labelled image(s) ready; 2 row(s) skipped" in text
    assert "line 3 (b.jpg): emotion 'joyful' is not one of" in text
    assert "line 4 (c.jpg): this image is not in the set" in text
    at.file_uploader[0].set_value([("set.zip", b"PK\x03\x04broken", "application/zip")]).run()
    assert "set.zip: The zip file is damaged" in at.error[0].value


def test_audit_your_own_zip(monkeypatch, tmp_path, astronaut, shipped_weights):
    import cv2

    images, lines = {}, ["file,emotion,subject,lighting"]
    for i in range(6):
        img = astronaut if i % 2 == 0 else cv2.convertScaleAbs(astronaut, alpha=0.5)
        images[f"photos/p{i}.jpg"] = encode(img, "JPEG")
        lines.append(f"p{i}.jpg,{'happy' if i < 3 else 'neutral'},s{i},{'bright' if i % 2 == 0 else 'dark'}")
    noise = encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "JPEG")
    images["photos/broken.jpg"] = noise[:len(noise) // 2]  # reads as a JPEG, fails when decoded
    lines.append("broken.jpg,sad,s9,dark")
    images["photos/garbage.jpg"] = b"\xff\xd8\xff garbage"  # not even a JPEG header: skipped when read
    lines.append("garbage.jpg,sad,s10,dark")
    data = _zip({**images, "photos/labels.csv": "\n".join(lines).encode()})
    at = page(monkeypatch, tmp_path).run()
    at.file_uploader[0].set_value([("set.zip", data, "application/zip")]).run()
    assert not at.exception
    assert "7 labelled image(s) ready; 1 row(s) skipped" in all_text(at)
    assert "labels.csv line 9 (garbage.jpg)" in all_text(at)
    assert at.multiselect[-1].value == ["lighting"]
    at.button[0].click().run()
    assert not at.exception
    assert {b.label for b in at.get("download_button")} == {
        "Download the report (JSON)", "Download per-image predictions (CSV)"}
    text = all_text(at)
    assert "broken.jpg" in text and "damaged" in text  # the failed image is named
    groups = at.dataframe[0].value
    assert set(groups.group) == {"bright", "dark"} and groups["too few"].all()
    assert any("No gap" in s.value for s in at.success)  # groups this small are never compared
    assert groups.set_index("group").loc["dark", "n"] == 3  # the broken image is not counted
