"""Annotate page with AppTest: upload, relabel, export, re-upload the export, and bad labelled zips."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core.datasets.labelled import read_labelled
from tests.conftest import ROOT, encode

PAGE = str(ROOT / "pages/2_Annotate.py")
TIMEOUT = 180


@pytest.fixture()
def downloads(monkeypatch) -> dict[str, bytes]:
    """What each download button would send, by file name (AppTest cannot click downloads)."""
    got: dict[str, bytes] = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def record(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        if file_name:
            got[file_name] = data if isinstance(data, bytes) else str(data).encode()
        return add(self, data, mimetype, coordinates, file_name, is_for_static_download)

    def record_deferred(self, data_callable, mimetype, coordinates, file_name=None):
        if file_name:
            data = data_callable()
            got[file_name] = data if isinstance(data, bytes) else str(data).encode()
        return add_deferred(self, data_callable, mimetype, coordinates, file_name)

    monkeypatch.setattr(MediaFileManager, "add", record)
    monkeypatch.setattr(MediaFileManager, "add_deferred", record_deferred)
    return got


def progress_text(at: AppTest) -> str:
    return " | ".join(str(p.proto.text) for p in at.get("progress"))


def upload(at: AppTest, *files) -> AppTest:
    return at.file_uploader[0].set_value(list(files) if len(files) > 1 else files[0]).run()


@pytest.fixture()
def annotated(shipped_weights, astronaut, downloads):
    """The page after uploading the astronaut photo and relabelling its face."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("nothing is written to disk" in i.value for i in at.info)
    upload(at, ("astronaut.jpg", encode(astronaut, "JPEG"), "image/jpeg"))
    assert not at.exception
    assert "Reviewed 0 of 1 faces" in progress_text(at)
    box = at.selectbox(key="emotion_1")
    predicted = box.value
    new = "surprise" if predicted != "surprise" else "sad"
    box.set_value(new).run()
    assert not at.exception
    return at, new


def test_relabel_then_export_holds_the_change(annotated, downloads):
    at, new = annotated
    assert "Reviewed 1 of 1 faces" in progress_text(at)
    assert "Every face is reviewed." in [s.value for s in at.success]
    labelled = read_labelled(downloads["emolens_labelled.zip"])
    assert [(f.file, f.emotion, f.reviewed) for f in labelled.faces] == [("astronaut.jpg", new, True)]
    assert labelled.faces[0].predicted and labelled.faces[0].confidence is not None
    # every export is offered, and the crop export puts the face in the new class folder
    assert {"emolens_crops.zip", "emolens_coco.json", "emolens_label_studio.json"} <= set(downloads)
    names = zipfile.ZipFile(io.BytesIO(downloads["emolens_crops.zip"])).namelist()
    assert len(names) == 1 and names[0].startswith(f"{new}/")


def test_reuploading_the_export_restores_the_review(annotated, downloads):
    at, new = annotated
    exported = downloads["emolens_labelled.zip"]
    again = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    upload(again, ("emolens_labelled.zip", exported, "application/zip"))
    assert not again.exception
    assert "Reviewed 1 of 1 faces" in progress_text(again)
    again.toggle[0].set_value(False).run()  # show reviewed faces too
    assert again.selectbox(key="emotion_1").value == new


def test_bad_labelled_zip_is_named_and_work_is_kept(annotated, astronaut):
    at, new = annotated
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("labels.csv", "file,x1,y1,x2,y2,emotion\nmissing.png,1,1,20,20,happy\n"
                                  "a.png,1,1,20,20,joyous\n")
        zf.writestr("a.png", encode(astronaut[:64, :64]))
    upload(at, ("astronaut.jpg", encode(astronaut, "JPEG"), "image/jpeg"),
           ("bad.zip", buf.getvalue(), "application/zip"), ("notes.zip", b"PK\x03\x04 broken", "application/zip"))
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "bad.zip" in errors and "line 2" in errors and "missing.png" in errors and "joyous" in errors
    assert "notes.zip" in errors
    assert "Reviewed 1 of 1 faces" in progress_text(at)  # the earlier work is still there
    assert "Traceback" not in errors


def test_add_missed_face_and_column(annotated, downloads):
    at, new = annotated
    inputs = {n.label: n for n in at.number_input}
    inputs["x1"].set_value(10); inputs["y1"].set_value(10); inputs["x2"].set_value(90); inputs["y2"].set_value(90)
    at.button(key="FormSubmitter:add_face-Add face").click().run()
    assert not at.exception
    assert "Reviewed 1 of 2 faces" in progress_text(at)
    texts = {t.label: t for t in at.text_input}
    texts["New column"].set_value("group")
    texts["Value for every face"].set_value("A")
    at.button(key="FormSubmitter:add_column-Add column").click().run()
    assert not at.exception
    labelled = read_labelled(downloads["emolens_labelled.zip"])
    assert labelled.extra_columns == ["group"]
    assert {f.extra["group"] for f in labelled.faces} == {"A"}
    added = [f for f in labelled.faces if f.box == (10.0, 10.0, 90.0, 90.0)]
    assert len(added) == 1 and not added[0].reviewed and added[0].predicted


def test_export_then_evaluate_on_your_own_data_sees_the_same_labels(annotated, downloads):
    """Annotate's export goes straight into Model Comparison's "evaluate on your own data"."""
    at, new = annotated
    exported = read_labelled(downloads["emolens_labelled.zip"])
    predicted = exported.faces[0].predicted
    comparison = AppTest.from_file(str(ROOT / "pages/3_Model_Comparison.py"), default_timeout=TIMEOUT).run()
    comparison.file_uploader(key="own_zip").set_value(
        ("emolens_labelled.zip", downloads["emolens_labelled.zip"], "application/zip")).run()
    assert not comparison.exception
    assert not comparison.error, [e.value for e in comparison.error]
    metrics = {m.label: m.value for m in comparison.metric}
    assert metrics["Faces"] == "1"
    # same crop, same model: the evaluation predicts what Annotate showed, and scores it against the new label
    assert metrics["Accuracy"] == ("100.0%" if predicted == new else "0.0%")
    per_class = [d.value for d in comparison.dataframe if "support" in d.value.columns][-1]  # "your data"
    support = dict(zip(per_class["emotion"], per_class["support"]))
    assert support[new] == 1 and sum(support.values()) == 1  # the person's label is the truth scored


def test_finetune_button_trains_and_offers_the_model(shipped_weights, downloads):
    """A class-folder set carried into the page, then 'Fine-tune on this set' with its progress bar."""
    from tests.unit.test_finetune import pattern
    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c, name in enumerate(("happy", "sad", "surprise")):
            for i in range(8):
                zf.writestr(f"{name}/{i}.png", encode(pattern(c, rng)))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    upload(at, ("stripes.zip", buf.getvalue(), "application/zip"))
    assert not at.exception
    assert "Reviewed 24 of 24 faces" in progress_text(at)
    assert at.multiselect[0].value == ["happy", "sad", "surprise"]
    next(s for s in at.slider if s.label == "Epochs").set_value(5)
    next(b for b in at.button if b.label == "Fine-tune on this set").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert list(table["measure"][:2]) == ["accuracy", "macro-F1"]
    model_zip = zipfile.ZipFile(io.BytesIO(downloads["emotion_finetuned.zip"]))
    assert {"emotion_finetuned.safetensors", "emotion_finetuned.json",
            "finetune_report.json"} <= set(model_zip.namelist())
    card = json.loads(model_zip.read("emotion_finetuned.json"))
    assert (card["command"], card["commit"]) == ("Annotate page fine-tune", "not recorded")
