"""Pipeline pieces on generated data: crop geometry, batching, result shapes, rendering."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import core.emotion.architectures  # noqa: F401
from core.emotion.classifier import EmotionClassifier
from core.emotion.card import list_models
from core.detection import available_detectors, make_detector
from core.emotion.vocabulary import EMOTIONS
from core.emotion.preprocess import crop_face
from core.pipeline import EmotionPipeline
from core.emotion.preprocess import normalize_batch, to_model_input
from core.render import render
from tests.unit.fakes import FixedDetector, write_tiny_model


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A randomly initialised model with a real card: exercises loading without shipped weights."""
    return write_tiny_model(tmp_path_factory.mktemp("weights"), temperature=1.5)


def test_crop_is_square_with_margin():
    img = np.zeros((200, 300, 3), np.uint8)
    crop = crop_face(img, (100, 50, 140, 110), margin=0.25)  # 40 x 60 box
    assert crop.shape == (90, 90, 3)  # longer side 60 * 1.5


def test_crop_at_border_is_padded_not_shrunk():
    img = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    crop = crop_face(img, (-10, -10, 30, 30), margin=0.2)
    assert crop.shape == (56, 56, 3)


def test_to_model_input_shapes():
    assert to_model_input(np.zeros((120, 90, 3), np.uint8), 48, 1).shape == (48, 48, 1)
    assert to_model_input(np.zeros((48, 48), np.uint8), 64, 3).shape == (64, 64, 3)


def test_normalize_batch():
    x = normalize_batch(np.full((2, 4, 4, 1), 255, np.uint8), [0.5], [0.25])
    assert x.shape == (2, 1, 4, 4) and torch.allclose(x, torch.full_like(x, 2.0))


def test_classifier_batches_and_probabilities(tiny_weights):
    clf = EmotionClassifier.load("tiny", tiny_weights)
    clf.batch_size = 3
    crops = [np.random.default_rng(i).integers(0, 255, (50 + i, 60, 3), dtype=np.uint8) for i in range(7)]
    probs = clf.predict(crops)
    assert probs.shape == (7, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # batching must not change results: one at a time gives the same numbers
    one_by_one = np.concatenate([clf.predict([c]) for c in crops])
    np.testing.assert_allclose(probs, one_by_one, atol=1e-5)
    assert clf.predict([]).shape == (0, 7)


def test_temperature_softens(tiny_weights):
    clf = EmotionClassifier.load("tiny", tiny_weights)
    crop = [np.random.default_rng(1).integers(0, 255, (48, 48, 3), dtype=np.uint8)]
    hot = clf.predict(crop)
    clf.card.temperature = 1.0
    assert clf.predict(crop).max() >= hot.max()


def test_list_models(tiny_weights):
    assert list_models(tiny_weights) == ["tiny"]


def test_pipeline_zero_and_many_faces(tiny_weights):
    clf = EmotionClassifier.load("tiny", tiny_weights)
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    assert EmotionPipeline(FixedDetector([]), clf).analyze(img) == []
    boxes = [((10 + 30 * i, 20, 40 + 30 * i, 60), 0.9 - 0.01 * i) for i in range(9)]
    boxes.append(((5, 5, 30, 30), 0.2))  # below threshold: dropped
    faces = EmotionPipeline(FixedDetector(boxes), clf).analyze(img)
    assert len(faces) == 9
    for f in faces:
        assert f.label in EMOTIONS and 0 < f.confidence <= 1
        d = f.to_dict()
        assert set(d) == {"box", "score", "emotion", "confidence", "probs"}
        assert list(d["probs"]) == list(EMOTIONS)


def test_boxes_are_clipped_to_the_image(tiny_weights):
    clf = EmotionClassifier.load("tiny", tiny_weights)
    img = np.zeros((100, 100, 3), np.uint8)
    faces = EmotionPipeline(FixedDetector([((-20, -5, 50, 130), 0.9)]), clf).analyze(img)
    assert faces[0].box == (0.0, 0.0, 50.0, 100.0)


def test_render_draws_and_keeps_input(tiny_weights):
    clf = EmotionClassifier.load("tiny", tiny_weights)
    img = np.zeros((200, 200, 3), np.uint8)
    faces = EmotionPipeline(FixedDetector([((50, 50, 150, 150), 0.9)]), clf).analyze(img)
    out = render(img, faces)
    assert out.shape == img.shape and out.any() and not img.any()


def test_detector_registry():
    assert {"mediapipe", "mediapipe_full", "haar"} <= set(available_detectors())
    with pytest.raises(ValueError, match="Choose one of"):
        make_detector("nope")


@pytest.mark.parametrize("name", ["mediapipe", "mediapipe_full", "haar"])
def test_real_detectors_find_nothing_in_flat_or_noisy_images(name):
    detector = make_detector(name)
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert detector.detect(np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)) == []


def _crop_by_padding_the_whole_image(image, box, margin):
    """The crop as it was first written (pad the whole photo, then cut): the reference for `crop_face`."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = max(1, int(round(side)))
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -left), max(0, -top)
    pad_r, pad_b = max(0, left + size - w), max(0, top + size - h)
    if pad_l or pad_t or pad_r or pad_b:
        image = cv2.copyMakeBorder(image, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
        left, top = left + pad_l, top + pad_t
    return np.ascontiguousarray(image[top:top + size, left:left + size])


@pytest.mark.parametrize("shape", [(120, 160, 3), (120, 160)])
def test_crop_pads_only_the_window_and_gives_the_same_pixels(shape):
    """Inside, across an edge, or wholly outside the photo: the same crop as padding the whole photo."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, shape, dtype=np.uint8)
    for _ in range(1500):
        x1, y1, s = rng.uniform(-300, 400), rng.uniform(-300, 350), rng.uniform(0.5, 250)
        box = (x1, y1, x1 + s * rng.uniform(0.5, 1.5), y1 + s)
        margin = float(rng.choice([0.0, 0.2, 0.25]))
        assert np.array_equal(crop_face(image, box, margin), _crop_by_padding_the_whole_image(image, box, margin))
