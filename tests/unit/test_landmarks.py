"""Landmark metrics, the 478->68 mapping, alignment geometry and the study's helpers, on generated data."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import core.emotion.architectures  # noqa: F401
from core.emotion.classifier import EmotionClassifier
from core.detection import Detection, FaceDetector
from core.errors import UserFacingError
from core.landmarks.metrics import (ced, ced_auc, disagreement, eye_centre_error, failure_rate, interocular, nme,
                                   nme_by_region, point_errors, score)
from core.landmarks import available_landmarkers, make_landmarker
from core.landmarks.align import FER_TEMPLATE, FER_TEMPLATES, AlignTemplate, align_face, alignment_matrix, \
    eye_centres, template_for, template_from_eyes
from core.landmarks.base import Landmarker, context_crop, to_image_coords
from core.landmarks.mapping import MP478_TO_68, PARTS, REGIONS, mesh_to_68, to_68
from core.landmarks.report import impact_summary, nme_table
from core.emotion.preprocess import crop_face
from core.pipeline import EmotionPipeline, face_crop
from tests.unit.fakes import write_tiny_model


def face68(iod: float = 100.0, angle_deg: float = 0.0, centre=(200.0, 200.0), seed: int = 0) -> np.ndarray:
    """A plausible 68-point face: random points, then eyes placed so the outer corners are `iod` apart."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-0.6, 0.6, size=(68, 2)) * iod
    pts[36:42] = np.array([[-0.5, 0], [-0.4, -0.05], [-0.3, -0.05], [-0.2, 0], [-0.3, 0.05], [-0.4, 0.05]])
    pts[42:48] = pts[36:42][[3, 2, 1, 0, 5, 4]] * [-1, 1]
    pts[36:48] *= iod
    t = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (pts @ rot.T + centre).astype(np.float64)


# ---------- metrics ----------

def test_nme_of_a_known_shift():
    gt = face68(iod=100)
    assert interocular(gt) == pytest.approx(100.0)
    pred = gt + [3.0, 4.0]  # every point 5 px off
    assert nme(pred, gt) == pytest.approx(0.05)
    assert all(v == pytest.approx(0.05) for v in nme_by_region(pred, gt).values())
    assert nme(pred, gt, norm=50.0) == pytest.approx(0.1)


def test_nme_by_region_isolates_the_moved_region():
    gt = face68(iod=80)
    pred = gt.copy()
    pred[list(REGIONS["mouth"])] += [8.0, 0.0]  # mouth 0.1 IOD off, the rest exact
    regions = nme_by_region(pred, gt)
    assert regions["mouth"] == pytest.approx(0.1)
    assert all(regions[r] == 0 for r in ("jaw", "brows", "nose", "eyes"))
    assert nme(pred, gt) == pytest.approx(0.1 * 20 / 68)
    assert eye_centre_error(pred, gt) == 0.0


def test_regions_partition_the_68_points():
    assert sorted(i for idx in REGIONS.values() for i in idx) == list(range(68))
    assert sorted(i for idx in PARTS.values() for i in idx) == list(range(68))


def test_ced_failure_rate_and_auc():
    nmes = [0.01, 0.05, 0.09, None]
    assert failure_rate(nmes) == 0.5  # 0.09 and the missing face
    assert ced(nmes, [0.0, 0.01, 0.05, 0.2]) == [0.0, 0.25, 0.5, 0.75]
    assert ced_auc([0.0, 0.0]) == pytest.approx(1.0)
    assert ced_auc([None, 0.5]) == 0.0
    assert 0.0 < ced_auc(nmes) < 0.5


def test_score_keeps_missing_out_of_the_mean():
    gts = [face68(seed=s) for s in range(3)]
    preds = [gts[0] + [1.0, 0.0], gts[1] + [0.0, 2.0], None]
    s = score(preds, gts, [2.0, 4.0, 6.0])
    assert s.n == 3 and s.n_missing == 1
    assert s.nme == pytest.approx((0.01 + 0.02) / 2)
    assert s.failure_rate == pytest.approx(1 / 3)
    assert s.ms_per_face == 4.0
    assert len(s.per_point_nme) == 68 and len(s.ced) > 10
    assert s.eye_centre_error == pytest.approx(0.015)
    with pytest.raises(ValueError):
        point_errors(np.zeros((68, 2)), np.zeros((5, 2)))


def test_disagreement_is_symmetric_and_zero_for_identical_sets():
    a, b = face68(seed=1), face68(seed=1) + [2.0, 0.0]
    assert disagreement(a, a)["all"] == 0.0
    assert disagreement(a, b) == pytest.approx(disagreement(b, a))
    assert disagreement(a, b)["eyes"] == pytest.approx(0.02)


# ---------- mapping ----------

def test_mapping_shape_and_indices():
    assert len(MP478_TO_68) == 68
    assert all(1 <= len(src) <= 2 and all(0 <= i < 468 for i in src) for src in MP478_TO_68)


def test_mapping_regions_land_on_mediapipe_own_feature_sets():
    """Checked against MediaPipe's own connection sets (its LEFT is the subject's left, 68-scheme 42-47)."""
    from mediapipe.python.solutions import face_mesh_connections as fc

    def members(conn):
        return {i for edge in conn for i in edge}

    def mapped(idx):
        return {i for k in idx for i in MP478_TO_68[k]}

    assert mapped(range(36, 42)) <= members(fc.FACEMESH_RIGHT_EYE)
    assert mapped(range(42, 48)) <= members(fc.FACEMESH_LEFT_EYE)
    assert mapped(range(17, 22)) <= members(fc.FACEMESH_RIGHT_EYEBROW)
    assert mapped(range(22, 27)) <= members(fc.FACEMESH_LEFT_EYEBROW)
    assert mapped(range(48, 68)) <= members(fc.FACEMESH_LIPS)
    assert mapped(range(0, 17)) <= members(fc.FACEMESH_FACE_OVAL)


def test_mesh_to_68_averages_pairs():
    mesh = np.stack([np.arange(478, dtype=float), np.zeros(478)], axis=1)
    out = mesh_to_68(mesh)
    assert out.shape == (68, 2)
    assert out[8, 0] == 152  # chin, one vertex
    assert out[3, 0] == pytest.approx((132 + 58) / 2)  # two vertices averaged
    assert mesh_to_68(mesh[:468]).shape == (68, 2)  # without irises
    assert to_68(out) is not None and to_68(None) is None
    with pytest.raises(ValueError):
        mesh_to_68(np.zeros((100, 2)))


def test_registry():
    assert available_landmarkers() == ["mediapipe_mesh", "dlib68"]
    with pytest.raises(UserFacingError, match="Unknown landmarker 'nope'. Choose one of: mediapipe_mesh, dlib68"):
        make_landmarker("nope")


# ---------- crops and alignment geometry ----------

def test_context_crop_round_trip():
    image = np.zeros((100, 120, 3), np.uint8)
    crop, x0, y0, s = context_crop(image, (10, 20, 40, 50), context=0.5, min_side=256, max_side=512)
    assert crop.shape == (256, 256, 3) and s == pytest.approx(256 / 60)
    inside = np.array([[30.0, 35.0]])
    in_crop = (inside - [x0, y0] + 0.5) * s - 0.5
    np.testing.assert_allclose(to_image_coords(in_crop, x0, y0, s), inside, atol=1e-4)


@pytest.mark.parametrize("angle", [-35.0, 0.0, 20.0])
@pytest.mark.parametrize("iod", [30.0, 120.0])
def test_alignment_puts_the_eyes_on_the_template(angle, iod):
    pts = face68(iod=iod, angle_deg=angle)
    re, le = eye_centres(pts)
    m = alignment_matrix(re, le, 100)
    out_re, out_le = m @ [*re, 1.0], m @ [*le, 1.0]
    assert out_re[1] == pytest.approx(out_le[1])  # eyes level
    assert out_le[0] - out_re[0] == pytest.approx(FER_TEMPLATE.iod * 100)  # fixed distance, right eye on the left
    np.testing.assert_allclose((out_re + out_le) / 2 + 0.5, [FER_TEMPLATE.eye_x * 100, FER_TEMPLATE.eye_y * 100])
    lin = m[:, :2]
    np.testing.assert_allclose(lin @ lin.T, np.eye(2) * (lin[0, 0] ** 2 + lin[0, 1] ** 2), atol=1e-9)  # similarity


def test_align_face_moves_image_content_to_the_template():
    image = np.zeros((300, 300, 3), np.uint8)
    pts = face68(iod=90, angle_deg=25, centre=(150, 160))
    re, le = eye_centres(pts)
    for (x, y), colour in ((re, (255, 0, 0)), (le, (0, 255, 0))):
        cv2.circle(image, (int(round(x)), int(round(y))), 3, colour, -1)
    out = align_face(image, pts, size=96)
    assert out.shape == (96, 96, 3)
    half = FER_TEMPLATE.iod / 2
    for channel, want_x in ((0, FER_TEMPLATE.eye_x - half), (1, FER_TEMPLATE.eye_x + half)):
        ys, xs = np.nonzero(out[:, :, channel] > 128)
        assert abs(xs.mean() + 0.5 - want_x * 96) < 1.5 and abs(ys.mean() + 0.5 - FER_TEMPLATE.eye_y * 96) < 1.5


def test_align_face_default_size_keeps_resolution_and_rejects_bad_points():
    image = np.zeros((400, 400, 3), np.uint8)
    pts = face68(iod=100)
    re, le = eye_centres(pts)
    side = align_face(image, pts).shape[0]
    assert side == round(np.linalg.norm(le - re) / FER_TEMPLATE.iod)
    assert align_face(image, None) is None
    assert align_face(image, np.zeros((68, 2))) is None  # eyes coincide
    assert align_face(image, np.zeros((12, 2))) is None  # unknown scheme


def test_eye_centres_for_every_scheme():
    pts = face68(iod=100)
    re, le = eye_centres(pts)
    assert re[0] < le[0]
    blaze = np.array([[10, 20], [50, 22], [30, 40], [30, 60], [0, 30], [60, 30]], float)
    np.testing.assert_allclose(eye_centres(blaze)[0], [10, 20])
    mesh = np.zeros((478, 2))
    for k in range(68):
        for i in MP478_TO_68[k]:
            mesh[i] = pts[k]
    np.testing.assert_allclose(eye_centres(mesh)[1], le, atol=1e-4)


def test_each_landmarker_aligns_with_its_own_template():
    assert set(FER_TEMPLATES) == {"mediapipe_mesh", "dlib68"}
    assert template_for("dlib68") == FER_TEMPLATES["dlib68"] and template_for(None) == FER_TEMPLATE
    image = np.zeros((300, 300, 3), np.uint8)
    pts = face68(iod=100, centre=(150, 150))
    re, le = eye_centres(pts)
    dist = np.linalg.norm(le - re)
    for name, t in FER_TEMPLATES.items():
        crop, aligned = face_crop(_Cropper(0.2), image, (100, 100, 200, 200), pts, source=name)
        assert aligned and crop.shape[0] == round(dist / t.iod)


def test_template_from_eyes():
    eyes = [(np.array([14.5, 18.0]), np.array([32.5, 18.0]))] * 3
    t = template_from_eyes(eyes, 48)
    assert t == AlignTemplate(eye_x=24.0 / 48, eye_y=round(18.5 / 48, 4), iod=round(18 / 48, 4))


class _Cropper:
    """The classifier's crop alone (a card's margin), for the alignment fallbacks."""

    def __init__(self, margin: float) -> None:
        self.margin = margin

    def crop(self, image, box):
        return crop_face(image, box, self.margin)


def test_face_crop_falls_back_to_the_plain_crop():
    image = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    box = (60.0, 60.0, 140.0, 140.0)
    plain, aligned = face_crop(_Cropper(0.2), image, box)
    assert not aligned and np.array_equal(plain, crop_face(image, box, 0.2))
    assert face_crop(_Cropper(0.2), image, box, np.zeros((68, 2)))[1] is False
    crop, aligned = face_crop(_Cropper(0.2), image, box, face68(iod=40, centre=(100, 95)))
    assert aligned and crop.shape[0] == crop.shape[1]


class _Fixed(FaceDetector):
    def __init__(self, box, keypoints):
        super().__init__(0.5)
        self.box, self.keypoints = box, keypoints

    def _detect(self, image):
        return [Detection(box=self.box, score=0.9, keypoints=self.keypoints)]


class _Landmarker(Landmarker):
    def __init__(self, points):
        self.points, self.calls = points, 0

    def landmarks(self, image, box):
        self.calls += 1
        return self.points


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    return EmotionClassifier.load("tiny", write_tiny_model(tmp_path_factory.mktemp("weights")))


def test_pipeline_align_option(tiny_classifier):
    image = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    box = (60.0, 60.0, 140.0, 140.0)
    blaze = np.array([[85, 90], [115, 92], [100, 110], [100, 125], [65, 95], [135, 95]], float)
    plain = EmotionPipeline(_Fixed(box, blaze), tiny_classifier).analyze(image)
    assert not plain[0].aligned and plain[0].landmarks is None  # default unchanged
    via_keypoints = EmotionPipeline(_Fixed(box, blaze), tiny_classifier).analyze(image, align=True)
    assert via_keypoints[0].aligned and via_keypoints[0].landmarks is None
    lm = _Landmarker(face68(iod=40, angle_deg=30, centre=(100, 100)))
    faces = EmotionPipeline(_Fixed(box, None), tiny_classifier, landmarker=lm).analyze(image, landmarks=True,
                                                                                       align=True)
    assert faces[0].aligned and lm.calls == 1 and faces[0].landmarks.shape == (68, 2)
    assert not np.allclose(faces[0].probs, plain[0].probs)  # the classifier saw a different crop
    none = EmotionPipeline(_Fixed(box, None), tiny_classifier, landmarker=_Landmarker(None)).analyze(image, align=True)
    assert not none[0].aligned
    np.testing.assert_allclose(none[0].probs, plain[0].probs, atol=1e-6)  # fallback = the plain crop


# ---------- study helpers ----------

def test_perturbation_size_matches_its_sigma():
    from training.landmark_emotion_study import perturb

    rng = np.random.default_rng(0)
    ref = face68(iod=100)
    np.testing.assert_allclose(perturb(ref, 0.0, rng), ref, atol=1e-4)
    errs = [nme(perturb(ref, 0.05, rng), ref) for _ in range(400)]
    assert np.mean(errs) == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.1)  # mean of a 2-D Gaussian's length
    moved = perturb(ref, 0.05, rng) - ref
    for idx in PARTS.values():  # each part moves as one piece
        np.testing.assert_allclose(moved[list(idx)], moved[list(idx)][0:1].repeat(len(idx), 0), atol=1e-3)


def _section(diff_ci, curve_acc, none_acc=0.6):
    curve = [{"sigma": s, "nme": round(1.25 * s, 4), "eye_centre_error": 1.25 * s, "accuracy": a,
              "diff_vs_none_ci95": [a - none_acc - 0.02, a - none_acc + 0.02],
              "diff_vs_clean_ci95": [a - curve_acc[0] - 0.02, a - curve_acc[0] + 0.02]}
             for s, a in zip([0, 0.02, 0.05, 0.1, 0.2], curve_acc)]
    cond = {"none": {"accuracy": none_acc}, "mediapipe_mesh": {"accuracy": 0.65, "diff_vs_none": 0.05,
                                                          "diff_vs_none_ci95": diff_ci},
            "dlib68": {"accuracy": 0.64, "diff_vs_none": 0.04, "diff_vs_none_ci95": diff_ci}}
    return {"model": "m", "methods": ["mediapipe_mesh", "dlib68"], "reference": "mediapipe_mesh",
            "sets": {"fer": {"n_common": 100, "conditions": cond, "curve": curve,
                             "vs_reference": {"dlib68": {"nme": 0.15, "eye_centre_error": 0.1}}}}}


def test_impact_summary_follows_the_numbers():
    helps = impact_summary(_section([0.02, 0.08], [0.65, 0.65, 0.645, 0.62, 0.5]),
                           {"mediapipe_mesh": {"nme": 0.05, "eye_centre_error": 0.013},
                            "dlib68": {"nme": 0.03, "eye_centre_error": 0.012}}, "300-W helen_test")
    assert 2 <= len(helps) <= 3
    assert "outside its 95% interval" in helps[0] and "switch it on" in helps[2]
    assert "up to NME 0.062 (fer)" in helps[1] and "below no alignment from NME 0.250 (fer)" in helps[1]
    assert "0.013 (mediapipe_mesh), 0.012 (dlib68)" in helps[2] and "within the 0.062" in helps[2]
    assert "on fer dlib68 and mediapipe_mesh put the eye centres 0.100 apart" in helps[2]
    assert not any("near chance" in s for s in helps)
    flat = impact_summary(_section([-0.01, 0.02], [0.3, 0.3, 0.3, 0.3, 0.3], none_acc=0.3))
    assert "within its 95% interval of zero" in flat[0] and "can stay off" in flat[2]
    assert "up to NME ≥0.250 (fer)" in flat[1] and "nowhere in the tested range (up to NME 0.250)" in flat[1]
    assert any("near chance" in s for s in flat)


def test_nme_table_columns():
    s = score([face68() + 1.0], [face68()], [3.0]).to_dict()
    table = nme_table({"dlib68": s}, {"dlib68": "dlib"})
    assert table.loc[0, "method"] == "dlib" and table.loc[0, "NME"] == pytest.approx(s["nme"])
    assert {f"NME {r}" for r in REGIONS} <= set(table.columns)
