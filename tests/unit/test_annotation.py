"""The review session on generated images with a fixed detector and a tiny random classifier."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import timm
import torch

import core.emotion.architectures  # noqa: F401
from core.datasets.annotation import AnnotationError, AnnotationSession, label_studio_config, safe_file_name
from core.emotion.classifier import EmotionClassifier
from core.emotion.card import ModelCard
from core.detection import Detection, FaceDetector
from core.emotion.vocabulary import EMOTIONS
from core.datasets.labelled import NOT_A_FACE, read_labelled, write_labels_zip
from core.pipeline import EmotionPipeline
from tests.conftest import encode


class FixedDetector(FaceDetector):
    def __init__(self, boxes):
        super().__init__(0.5)
        self.boxes = boxes

    def _detect(self, image):
        return [Detection(box=b, score=0.9) for b in self.boxes]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models on a shared 2-core machine: one thread avoids oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    torch.manual_seed(0)
    model = timm.create_model("emolens_vgg_s", num_classes=7, in_chans=1)
    card = ModelCard(name="tiny", architecture="emolens_vgg_s", weights="tiny.safetensors", input_size=48,
                     in_chans=1, mean=[0.5], std=[0.25], classes=list(EMOTIONS))
    return EmotionClassifier(model, card)


@pytest.fixture()
def pipeline(classifier) -> EmotionPipeline:
    return EmotionPipeline(FixedDetector([(10.0, 10.0, 60.0, 60.0), (70.0, 20.0, 110.0, 70.0)]), classifier)


def photo(seed: int) -> bytes:
    return encode(np.random.default_rng(seed).integers(0, 255, (90, 120, 3), dtype=np.uint8))


@pytest.fixture()
def session(pipeline) -> AnnotationSession:
    s = AnnotationSession()
    assert s.add_image("dir/photo one.png", photo(1), pipeline).faces == 2
    assert s.add_image("photo two.png", photo(2), pipeline).faces == 2
    return s


def test_add_image_prelabels_every_face(session):
    assert list(session.images) == ["photo one.png", "photo two.png"]  # folders dropped from names
    assert session.progress() == (0, 4)
    for f in session.faces:
        assert f.predicted in EMOTIONS and 0 < f.confidence <= 1 and not f.reviewed and f.thumb
        assert f.current == f.predicted


def test_same_upload_twice_is_skipped_and_same_name_is_renamed(session, pipeline):
    assert "already in this session" in session.add_image("again.png", photo(1), pipeline).skipped
    assert session.add_image("photo two.png", photo(3), pipeline).file == "photo two_2.png"


def test_bad_upload_is_refused_and_nothing_changes(session, pipeline):
    before = (dict(session.images), len(session.faces))
    result = session.add_image("notes.pdf", b"%PDF-1.4", pipeline)
    assert "PDF" in result.error
    assert (dict(session.images), len(session.faces)) == before


def test_review_order_is_least_confident_first(session):
    confidences = [f.confidence for f in session.queue()]
    assert confidences == sorted(confidences)
    first = session.queue()[0]
    session.set_emotion(first.id, "sad")
    assert first.id not in [f.id for f in session.queue(unreviewed_only=True)]
    assert session.queue()[0].id == first.id  # the full list keeps its order: rows do not jump


def test_labelling_confirming_and_not_a_face(session):
    a, b, c, _ = session.faces
    session.set_emotion(a.id, "angry")
    session.confirm(b.id)
    session.set_emotion(c.id, NOT_A_FACE)
    assert (a.emotion, a.reviewed, a.status) == ("angry", True, "labelled")
    assert (b.emotion, b.reviewed) == (b.predicted, True)
    assert c.status == "not a face"
    assert session.progress() == (3, 4)
    assert [f.id for f in session.labelled_faces()] == [a.id, b.id]
    with pytest.raises(AnnotationError):
        session.set_emotion(a.id, "bored")


def test_unsaved_changes_until_exported(session):
    assert session.unsaved()
    session.mark_exported()
    assert not session.unsaved()
    session.set_emotion(session.faces[0].id, "happy")
    assert session.unsaved()


def test_add_missed_face(session, classifier):
    face = session.add_face("photo one.png", (5, 5, 40, 45), classifier)
    assert face.added and face.predicted in EMOTIONS and face.box == (5.0, 5.0, 40.0, 45.0)
    with pytest.raises(AnnotationError, match="outside the 120×90 image"):
        session.add_face("photo one.png", (5, 5, 200, 45), classifier)
    with pytest.raises(AnnotationError, match="x2 > x1"):
        session.add_face("photo one.png", (50, 5, 40, 45), classifier)
    with pytest.raises(AnnotationError, match="not in this session"):
        session.add_face("nope.png", (5, 5, 40, 45), classifier)


def test_extra_columns(session):
    assert session.add_column("Age group", "adult") == "age_group"
    session.set_extra(session.faces[0].id, "age_group", "child")
    assert [f.extra["age_group"] for f in session.faces] == ["child", "adult", "adult", "adult"]
    for bad in ("emotion", "age_group", "1st", "a/b"):
        with pytest.raises(AnnotationError):
            session.add_column(bad)


def test_export_and_reupload_restores_the_review(session, classifier):
    session.add_column("group", "g")
    session.set_emotion(session.faces[0].id, "fear")
    session.set_emotion(session.faces[3].id, NOT_A_FACE)
    exported = read_labelled(session.export_labels_zip())
    restored = AnnotationSession()
    assert restored.add_labelled(exported, classifier).faces == 4
    assert restored.extra_columns == ["group"]
    key = lambda f: (f.file, f.box, f.emotion, f.reviewed, f.predicted, round(f.confidence, 4), f.extra)  # noqa: E731
    assert [key(f) for f in restored.faces] == [key(f) for f in session.faces]
    assert restored.progress() == session.progress() == (2, 4)
    # uploading the same export again adds nothing twice
    again = restored.add_labelled(exported, classifier)
    assert again.faces == 0 and len(again.notes) == 2


def test_hand_made_set_gets_predictions(classifier):
    data = write_labels_zip(read_labelled(_class_folder_zip()))
    s = AnnotationSession()
    s.add_labelled(read_labelled(data), classifier)
    assert all(f.predicted in EMOTIONS and f.reviewed for f in s.faces)


def _class_folder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("happy/1.png", photo(5))
        zf.writestr("sad/2.png", photo(6))
    return buf.getvalue()


def test_crops_zip_is_a_class_folder_set(session, classifier):
    session.set_emotion(session.faces[0].id, "happy")
    session.set_emotion(session.faces[1].id, "sad")
    session.set_emotion(session.faces[2].id, NOT_A_FACE)
    crops = read_labelled(session.export_crops_zip(classifier))
    assert sorted(f.emotion for f in crops.faces) == ["happy", "sad"]
    assert all(f.file.split("/")[0] == f.emotion for f in crops.faces)


def test_coco_export(session):
    session.set_emotion(session.faces[0].id, "happy")
    session.set_emotion(session.faces[1].id, NOT_A_FACE)
    coco = session.export_coco()
    assert [c["name"] for c in coco["categories"]] == list(EMOTIONS)
    assert [(i["file_name"], i["width"], i["height"]) for i in coco["images"]] == \
        [("photo one.png", 120, 90), ("photo two.png", 120, 90)]
    (ann,) = coco["annotations"]  # only reviewed real faces
    assert ann["bbox"] == [10.0, 10.0, 50.0, 50.0] and ann["area"] == 2500.0
    assert coco["categories"][ann["category_id"] - 1]["name"] == "happy"


def test_label_studio_export(session):
    session.set_emotion(session.faces[0].id, "happy")
    tasks = session.export_label_studio("/data/local-files/?d=")
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=photo one.png",
                                                   "/data/local-files/?d=photo two.png"]
    pred = tasks[0]["predictions"][0]["result"]
    assert len(pred) == 2 and pred[0]["value"]["x"] == pytest.approx(100 * 10 / 120)
    assert pred[0]["value"]["height"] == pytest.approx(100 * 50 / 90)
    assert pred[0]["value"]["rectanglelabels"] == [session.faces[0].predicted]
    assert tasks[0]["annotations"][0]["result"][0]["value"]["rectanglelabels"] == ["happy"]
    assert "annotations" not in tasks[1]
    config = label_studio_config(EMOTIONS)
    assert 'name="emotion"' in config and 'toName="image"' in config and '<Label value="happy"/>' in config


def test_safe_file_name():
    assert safe_file_name("../../etc/passwd", {}) == "passwd"
    assert safe_file_name("C:\\Users\\me\\a.jpg", {"a.jpg": 1}) == "a_2.jpg"
    assert safe_file_name("labels.csv", {}) == "labels_2.csv"
    assert safe_file_name(".hidden", {}) == "hidden"


def test_drawn_preview_has_the_image_size(session):
    assert session.draw("photo one.png").shape == (90, 120, 3)
