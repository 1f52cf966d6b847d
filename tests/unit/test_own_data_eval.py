"""Own-data evaluation streams: bounded gallery, limits refused up front, and the same numbers as before."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from core import settings
from core.datasets import evaluate as ev
from core.datasets.labelled import LabelledFace, LabelledSet, LabelledSetError
from core.emotion.metrics import classification_report
from core.emotion.preprocess import crop_face
from core.emotion.vocabulary import EMOTIONS
from core.errors import UserFacingError
from tests.conftest import encode

W = np.random.default_rng(7).normal(0, 4, (3, len(EMOTIONS)))


class ColourModel:
    """A deterministic stand-in for the classifier: probabilities from each crop's mean colour, computed one
    crop at a time, so batching cannot change a number."""

    classes = tuple(EMOTIONS)
    card = SimpleNamespace(name="colour", crop_margin=0.2)

    def __init__(self) -> None:
        self.batches: list[int] = []

    def crop(self, image: np.ndarray, box) -> np.ndarray:
        return crop_face(image, box, self.card.crop_margin)

    def predict(self, crops) -> np.ndarray:
        self.batches.append(len(crops))
        out = []
        for c in crops:
            z = (c.reshape(-1, 3).mean(axis=0) / 255.0) @ W
            p = np.exp(z - z.max())
            out.append(p / p.sum())
        return np.array(out, np.float32)


def generated_set(n_images: int = 12, seed: int = 0) -> LabelledSet:
    """Images of random colours and sizes, 1 to 3 boxed faces each, plus box-less crops."""
    rng = np.random.default_rng(seed)
    images, faces = {}, []
    for i in range(n_images):
        h, w = int(rng.integers(60, 200)), int(rng.integers(60, 200))
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        name = f"img_{i}.png"
        images[name] = encode(img)
        if i % 4 == 3:
            faces.append(LabelledFace(name, None, EMOTIONS[int(rng.integers(7))]))
            continue
        for _ in range(int(rng.integers(1, 4))):
            x1, y1 = float(rng.integers(0, w - 30)), float(rng.integers(0, h - 30))
            side = float(rng.integers(16, 30))
            faces.append(LabelledFace(name, (x1, y1, x1 + side, y1 + side), EMOTIONS[int(rng.integers(7))]))
    rng.shuffle(faces)  # one image's faces scattered through the CSV, as in a hand-made table
    return LabelledSet(images=images, faces=faces)


def reference(classifier, labelled: LabelledSet):
    """The implementation before streaming: every crop held, one sort of every mistake."""
    classes = list(classifier.classes)
    usable = [f for f in labelled.labelled_faces() if f.emotion in classes]
    crops = labelled.crops(usable, classifier.crop)
    p = np.concatenate([classifier.predict(crops[s:s + 64]) for s in range(0, len(crops), 64)])
    y = np.array([classes.index(f.emotion) for f in usable])
    report = classification_report(p, y, classes).to_dict()
    report.update({"classes": classes, "model": classifier.card.name, "split": "your data", "tta": False})
    pred = p.argmax(axis=1)
    wrong = [(usable[i].file, classes[y[i]], classes[pred[i]], float(p[i].max())) for i in np.flatnonzero(pred != y)]
    wrong.sort(key=lambda m: -m[3])
    return report, wrong


def _summary(result: ev.SetEvaluation):
    return [(m.file, m.true, m.predicted, m.confidence) for m in result.misclassified]


def test_report_and_gallery_match_the_previous_implementation():
    labelled = generated_set(40)
    report, wrong = reference(ColourModel(), labelled)
    assert len(wrong) > ev.MISTAKES_KEPT  # the gallery bound is exercised
    result = ev.evaluate_labelled(ColourModel(), labelled)
    assert json.dumps(result.report, sort_keys=True) == json.dumps(report, sort_keys=True)
    assert _summary(result) == wrong[:ev.MISTAKES_KEPT]
    assert result.mistakes == len(wrong)


def test_shipped_model_gives_the_same_numbers(shipped_weights):
    from core.emotion.classifier import EmotionClassifier

    classifier = EmotionClassifier.load("emotion_vgg_s")
    labelled = generated_set(10, seed=3)
    report, wrong = reference(classifier, labelled)
    result = ev.evaluate_labelled(classifier, labelled)
    assert result.report["n"] == report["n"] and result.report["confusion"] == report["confusion"]
    assert result.report["accuracy"] == report["accuracy"] and result.report["macro_f1"] == pytest.approx(report["macro_f1"])
    assert result.report["ece"] == pytest.approx(report["ece"], abs=1e-6)
    assert [m[:3] for m in _summary(result)] == [m[:3] for m in wrong[:ev.MISTAKES_KEPT]]


def test_gallery_never_holds_more_than_its_bound():
    rng = np.random.default_rng(1)
    gallery = ev.MistakeGallery(limit=5)
    face = LabelledFace("a.png", None, "happy")
    confidences = rng.random(1000)
    for i, c in enumerate(confidences):
        gallery.offer(i, face, np.zeros((400, 300, 3), np.uint8), "happy", "sad", float(c))
        assert len(gallery) <= 5
    kept = gallery.most_confident_first()
    assert [m.confidence for m in kept] == sorted(confidences, reverse=True)[:5]
    assert gallery.seen == 1000
    assert all(max(m.crop.shape[:2]) <= ev.THUMBNAIL_PX for m in kept)


def test_many_mistakes_keep_a_bounded_set_of_small_thumbnails(monkeypatch):
    monkeypatch.setattr(ev, "MISTAKES_KEPT", 7)
    big = encode(np.full((400, 500, 3), 200, np.uint8))
    images = {f"{i}.png": big for i in range(30)}
    faces = [LabelledFace(f"{i}.png", (10.0 + j, 10.0, 300.0, 300.0 + j), "angry")
             for i in range(30) for j in range(3)]

    class AlwaysWrong(ColourModel):
        def predict(self, crops):
            self.batches.append(len(crops))
            p = np.full((len(crops), 7), 0.01, np.float32)
            p[:, 3] = 1 - 0.06
            return p

    result = ev.evaluate_labelled(AlwaysWrong(), LabelledSet(images=images, faces=faces))
    assert result.mistakes == 90 and result.report["n"] == 90
    assert len(result.misclassified) == 7
    assert all(max(m.crop.shape[:2]) <= ev.THUMBNAIL_PX for m in result.misclassified)


def test_each_image_is_decoded_once_and_batches_stay_bounded(monkeypatch):
    labelled = generated_set(20, seed=5)
    decoded: list[str] = []
    original = LabelledSet.image
    monkeypatch.setattr(LabelledSet, "image", lambda self, f: decoded.append(f) or original(self, f))
    monkeypatch.setattr(ev, "CROP_BATCH_PIXELS", 2000)  # crops here are ~25-60 px: a few per call
    model = ColourModel()
    progress: list[float] = []
    ev.evaluate_labelled(model, labelled, progress=progress.append)
    assert sorted(decoded) == sorted(set(decoded)) == sorted({f.file for f in labelled.faces})
    assert max(model.batches) <= ev.CROP_BATCH and len(model.batches) > 1
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_row_limit_refuses_up_front_with_a_plain_message(monkeypatch):
    labelled = generated_set(12)
    settings.configure(own_eval_max_faces=3)
    monkeypatch.setattr(LabelledSet, "image", lambda self, f: pytest.fail("decoded before the limit check"))
    with pytest.raises(LabelledSetError) as info:
        ev.evaluate_labelled(ColourModel(), labelled)
    assert isinstance(info.value, UserFacingError) and info.value.code == "invalid_labelled_set"
    message = info.value.message
    assert f"{len(labelled.faces)} labelled faces" in message and "at most 3" in message
    assert "Split it into" in message and "Traceback" not in message


def test_pixel_budget_refuses_up_front_from_headers(monkeypatch):
    images = {f"{i}.png": encode(np.zeros((1000, 1000, 3), np.uint8)) for i in range(3)}  # 3 MP in all
    faces = [LabelledFace(f"{i}.png", (10.0, 10.0, 200.0, 200.0), "happy") for i in range(3)]
    settings.configure(own_eval_max_megapixels=2.5)
    monkeypatch.setattr(LabelledSet, "image", lambda self, f: pytest.fail("decoded before the limit check"))
    with pytest.raises(LabelledSetError) as info:
        ev.evaluate_labelled(ColourModel(), LabelledSet(images=images, faces=faces))
    message = info.value.message
    assert "3 images add up to 3.0 megapixels" in message and "at most 2.5 megapixels" in message
    assert "Split it into 2 or more zips" in message


def test_sets_within_the_limits_are_evaluated(monkeypatch):
    settings.configure(own_eval_max_faces=1000)
    settings.configure(own_eval_max_megapixels=10.0)
    result = ev.evaluate_labelled(ColourModel(), generated_set(6))
    assert result.report["n"] > 0
