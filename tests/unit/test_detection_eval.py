"""Detector evaluation on generated data: ignore regions, AP, threshold tuning, WBF ensemble, registry."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import reread_settings
from core.detection import DetectorUnavailable, available_detectors, is_available, make_detector, registered_detectors
from core.detection.dlib_hog import margin_to_score, score_to_margin
from core.detection.ensemble import EnsembleConfig, EnsembleDetector, fuse
from core.detection.metrics import (Matches, average_precision, best_f1_threshold, ground_truth, match_image,
                                    operating_point)
from tests.unit.fakes import FixedDetector

FACE = (100.0, 100.0, 160.0, 170.0)     # counted at min_face 32
SMALL = (300.0, 50.0, 320.0, 70.0)      # 20 px: an ignore region at min_face 32


def test_detection_on_ignored_face_is_neither_tp_nor_fp():
    gt = ground_truth([FACE, SMALL], min_face=32)
    assert gt.ignore.tolist() == [False, True] and gt.n_counted == 1
    m = match_image([FACE, SMALL, (10, 300, 60, 350)], [0.9, 0.8, 0.7], gt)
    assert m.tp[:, 0].tolist() == [True, False, False]
    assert m.ignored[:, 0].tolist() == [False, True, False]
    op = operating_point(m, 0.0)
    assert (op.tp, op.fp, op.fn) == (1, 1, 0)
    assert op.precision == pytest.approx(0.5) and op.recall == 1.0


def test_min_face_boundary_counts_a_face_exactly_min_face_long():
    exactly = (0.0, 0.0, 20.0, 32.0)   # longer side 32: counted
    under = (50.0, 0.0, 81.9, 10.0)    # longer side 31.9: ignored
    gt = ground_truth([exactly, under], min_face=32)
    assert gt.ignore.tolist() == [False, True]
    missed = match_image([], [], gt)
    assert operating_point(missed, 0.0).fn == 1  # only the 32-px face can be missed


def test_extra_ignore_boxes_and_duplicates():
    gt = ground_truth([FACE], min_face=32, extra_ignore=[(400, 400, 460, 470)])
    assert gt.ignore.tolist() == [False, True]
    m = match_image([FACE, FACE, (400, 400, 460, 470)], [0.9, 0.8, 0.7], gt)
    # the second box on the same face is a duplicate (FP); the invalid-face box is ignored
    assert m.tp[:, 0].tolist() == [True, False, False]
    assert m.ignored[:, 0].tolist() == [False, False, True]


def test_perfect_detector_has_ap_one_and_misses_lower_it():
    rng = np.random.default_rng(0)
    parts, gts = [], []
    for _ in range(5):
        xy = rng.uniform(0, 400, (4, 2))
        boxes = np.c_[xy, xy + rng.uniform(40, 90, (4, 2))]
        gt = ground_truth(boxes, min_face=32)
        gts.append((boxes, gt))
        parts.append(match_image(boxes, rng.uniform(0.5, 1, 4), gt))
    ap = average_precision(Matches.concat(parts))
    assert ap[0] == pytest.approx(1.0, abs=1e-6) and ap.mean() == pytest.approx(1.0, abs=1e-6)
    half = Matches.concat([match_image(b[:2], [0.9, 0.8], g) for b, g in gts])
    assert average_precision(half)[0] == pytest.approx(0.5, abs=0.02)


def test_coco_ap_agrees_with_ultralytics_on_a_noisy_curve():
    """Our pycocotools-style AP against Ultralytics' maintained compute_ap (which differs only by its
    trapezoid ending at recall 1: at most ~0.005 here)."""
    from core.detection.ultralytics_env import prepare_ultralytics

    prepare_ultralytics()
    from core.detection.ultralytics_env import import_ultralytics

    import_ultralytics()  # keeps Pillow's Image.open unpatched for the tests that follow
    from ultralytics.utils.metrics import compute_ap

    from core.detection.metrics import coco_ap

    rng = np.random.default_rng(1)
    tp = rng.random(300) < np.linspace(0.95, 0.2, 300)   # precision falls as the score drops
    tpc, fpc = np.cumsum(tp), np.cumsum(~tp)
    recall, precision = tpc / (tp.sum() + 40), tpc / (tpc + fpc)  # 40 faces never found
    assert coco_ap(recall, precision) == pytest.approx(compute_ap(recall, precision)[0], abs=0.006)
    assert coco_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == 1.0
    assert coco_ap(np.array([0.5]), np.array([1.0])) == pytest.approx(51 / 101)


def test_threshold_tuning_picks_the_best_f1_cut():
    faces = [(i * 100.0, 0.0, i * 100.0 + 50, 50.0) for i in range(4)]
    gt = ground_truth(faces, min_face=32)
    fp = [(0.0, 300.0, 50.0, 350.0), (100.0, 300.0, 150.0, 350.0)]
    # scores: faces 0.9, 0.8, 0.3, 0.2; false positives 0.6, 0.5
    m = match_image(faces + fp, [0.9, 0.8, 0.3, 0.2, 0.6, 0.5], gt)
    best = best_f1_threshold(m)
    every = {t: operating_point(m, t).f1 for t in (0.9, 0.8, 0.6, 0.5, 0.3, 0.2)}
    assert best.f1 == pytest.approx(max(every.values()))
    assert best.threshold == 0.2 and best.recall == 1.0 and best.precision == pytest.approx(4 / 6)
    # drop the low-scored true faces: the best cut becomes 0.8 (2 TP, 0 FP)
    m2 = match_image(faces[:2] + fp, [0.9, 0.8, 0.6, 0.5], gt)
    assert best_f1_threshold(m2).threshold == 0.8


def test_wbf_ensemble_merges_overlapping_boxes_from_two_detectors():
    a = FixedDetector([((100, 100, 200, 200), 0.9), ((400, 400, 450, 450), 0.8)])
    b = FixedDetector([((104, 96, 204, 204), 0.7)])
    cfg = EnsembleConfig(members=("a", "b"), weights=(1.0, 1.0), member_thresholds=(0.5, 0.5), threshold=0.1)
    found = EnsembleDetector(config=cfg, detectors=[a, b]).detect(np.zeros((512, 512, 3), np.uint8))
    assert len(found) == 2
    both, alone = found
    assert both.score == pytest.approx((0.9 + 0.7) / 2, abs=1e-4)   # agreement: mean of both votes
    assert alone.score == pytest.approx(0.8 / 2, abs=1e-4)          # one member of two: half its score
    x1 = (100 * 0.9 + 104 * 0.7) / 1.6                                # score-weighted coordinates
    assert both.box[0] == pytest.approx(x1, abs=0.05)
    assert alone.box == pytest.approx((400, 400, 450, 450), abs=0.05)
    assert fuse([[], []], (1, 1), (512, 512)) == []


def test_ensemble_config_validates():
    with pytest.raises(ValueError):
        EnsembleConfig(members=("a", "b"), weights=(1.0,))
    with pytest.raises(ValueError):
        EnsembleConfig(members=("ensemble", "haar"), weights=(1.0, 1.0))


def test_registry_lists_new_detectors_and_explains_unknown_names():
    assert {"yolo", "mtcnn", "dlib_hog", "ensemble", "mediapipe", "mediapipe_full", "haar"} <= set(
        registered_detectors())
    assert {"mtcnn", "dlib_hog", "mediapipe", "haar"} <= set(available_detectors())
    with pytest.raises(ValueError, match="Unknown detector 'nope'. Choose one of: .*mtcnn"):
        make_detector("nope")


def test_yolo_without_weights_is_unlisted_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_FACE_YOLO", str(tmp_path / "missing.pt"))
    reread_settings()
    assert not is_available("yolo") and "yolo" not in available_detectors()
    with pytest.raises(DetectorUnavailable, match="missing.pt"):
        make_detector("yolo")
    from core.detection.yolo import YoloDetector

    with pytest.raises(DetectorUnavailable, match="training.train_detector"):
        YoloDetector()


def test_dlib_margin_mapping():
    assert margin_to_score(0.0) == 0.5
    assert margin_to_score(1.0) > margin_to_score(0.2) > margin_to_score(-1.0)
    assert score_to_margin(margin_to_score(0.7)) == pytest.approx(0.7)


def test_dlib_and_mtcnn_find_nothing_in_a_flat_image():
    flat = np.full((240, 320, 3), 128, np.uint8)
    for name in ("dlib_hog", "mtcnn"):
        assert make_detector(name).detect(flat) == []


def test_split_loading_reads_yolo_labels_and_annotation_ignores(tmp_path):
    from training.evaluate_detector import annotation_ignores, load_split, subsample

    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    Image.new("RGB", (200, 100)).save(tmp_path / "images" / "val" / "a.jpg")
    # one 40x40 face centred at (100, 50), one 10x10 face
    (tmp_path / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.05 0.1\n")
    meta = {"images": [{"file": "images/val/a.jpg", "faces": [
        {"xywh": [80, 30, 40, 40], "in_yolo_label": 1}, {"xywh": [150, 10, 30, 30], "in_yolo_label": 0}]}]}
    with gzip.open(tmp_path / "annotations.json.gz", "wt") as f:
        json.dump(meta, f)
    [item] = load_split(tmp_path, "val", 32, extra=annotation_ignores(tmp_path))
    assert item.wh == (200, 100)
    np.testing.assert_allclose(item.gt.boxes[0], (80, 30, 120, 70), atol=1e-6)
    assert item.gt.ignore.tolist() == [False, True, True]
    np.testing.assert_allclose(item.gt.boxes[2], (150, 10, 180, 40))
    paths = [tmp_path / f"{i}.jpg" for i in range(10)]
    assert subsample(paths, 3) == [paths[0], paths[4], paths[9]] and subsample(paths, None) == paths


def test_ensemble_search_prefers_the_cheapest_on_a_tie():
    from training.evaluate_detector import ImageItem, fuse_raw, search_ensemble

    faces = np.array([(10.0, 10.0, 60.0, 60.0), (100.0, 100.0, 160.0, 160.0)])
    items = [ImageItem(path=__import__("pathlib").Path(f"{i}.jpg"), wh=(200, 200),
                       gt=ground_truth(faces, min_face=32)) for i in range(3)]
    good = {it.name: np.c_[faces, [0.9, 0.8]] for it in items}
    noise = {it.name: np.array([[150.0, 10.0, 190.0, 50.0, 0.9]]) for it in items}  # one FP per image
    raw = {"a": good, "b": good, "c": noise}
    thresholds = {"a": 0.5, "b": 0.5, "c": 0.5}
    cfg, tried = search_ensemble(["a", "b", "c"], raw, thresholds, items, 0.5, {"a": 10, "b": 20, "c": 1},
                                 log=lambda _: None)
    assert len(tried) == 4 and tried[0]["tune_f1"] == 1.0
    assert cfg.members == ("a", "b")  # a+b and a+b+c (the noise falls under the fused cut) tie: a+b is cheaper
    cfg, _ = search_ensemble(["a", "b", "c"], raw, thresholds, items, 0.5, {"a": 10, "b": 20, "c": -25},
                             log=lambda _: None)
    assert cfg.members == ("a", "b", "c")  # ... unless the third member made it cheaper
    fused = fuse_raw([good, noise], EnsembleConfig(("a", "c"), (1.0, 1.0), (0.5, 0.5)), items)
    assert all(len(v) == 3 for v in fused.values())
