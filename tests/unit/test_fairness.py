"""Fairness metrics and the labelled-set reader, on generated data where the true gap is known."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from core.emotion.preprocess import crop_face
from core.emotion.vocabulary import EMOTIONS
from core.fairness.metrics import (BootstrapConfig, FairnessAudit, audit_attribute, audit_frame, cluster_bootstrap_confusions,
                           confusion_metrics)
from core import settings
from core.datasets.labelled import LabelledFace, LabelledSet, LabelledSetError, read_uploads, write_labels_zip
from core.fairness.audit import (attribute_candidates, audit_dataset, audit_faces, classify_image, predict_set,
                                 sample_set)
from tests.conftest import encode

K = len(EMOTIONS)


def simulate(accuracy: dict[str, float], subjects_per_group: int, photos_per_subject: int, seed: int,
             subject_spread: float = 0.0) -> pd.DataFrame:
    """Faces whose prediction is right with the group's accuracy (optionally varying by person).

    A wrong prediction is always another emotion, so a group's true accuracy is exactly `accuracy[g]`
    (or the mean of its people's when `subject_spread` > 0).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for group, acc in accuracy.items():
        for s in range(subjects_per_group):
            p = acc
            if subject_spread:
                a = acc * (1 / subject_spread - 1)
                p = rng.beta(a, (1 - acc) * (1 / subject_spread - 1))
            truth = rng.integers(0, K, photos_per_subject)
            right = rng.random(photos_per_subject) < p
            wrong = (truth + rng.integers(1, K, photos_per_subject)) % K
            pred = np.where(right, truth, wrong)
            rows += [{"emotion": EMOTIONS[t], "predicted": EMOTIONS[q], "group": group, "subject": f"{group}{s}"}
                     for t, q in zip(truth, pred)]
    return pd.DataFrame(rows)


def audit(frame: pd.DataFrame, subjects: bool = True, **config) -> "object":
    return audit_attribute(frame.emotion, frame.predicted, frame.group, frame.subject if subjects else None,
                           attribute="group", config=BootstrapConfig(**config))


# ------------------------------------------------------------------------------------------------ metrics

def test_group_metrics_match_scikit_learn_and_the_bootstrap_formulas():
    rng = np.random.default_rng(0)
    yt = rng.choice([0, 1, 3, 4], 300)  # classes 2, 5, 6 absent from the truth
    yp = np.where(rng.random(300) < 0.6, yt, rng.integers(0, K, 300))
    conf = np.zeros((K, K), int)
    np.add.at(conf, (yt, yp), 1)
    labels = [0, 1, 3, 4]
    m = confusion_metrics(conf, labels)
    assert m["accuracy"] == pytest.approx(accuracy_score(yt, yp))
    assert m["macro_f1"] == pytest.approx(f1_score(yt, yp, labels=labels, average="macro", zero_division=np.nan))
    np.testing.assert_allclose(m["recall"], recall_score(yt, yp, labels=range(K), average=None,
                                                         zero_division=np.nan), equal_nan=True)
    np.testing.assert_allclose(m["prediction_rate"], np.bincount(yp, minlength=K) / 300)
    frame = pd.DataFrame({"emotion": [EMOTIONS[i] for i in yt], "predicted": [EMOTIONS[i] for i in yp],
                          "group": "g", "subject": None})
    g = audit_attribute(frame.emotion, frame.predicted, frame.group, attribute="x").groups["g"]
    assert g.macro_f1 == pytest.approx(m["macro_f1"]) and g.accuracy == pytest.approx(m["accuracy"])
    assert g.recall == pytest.approx({EMOTIONS[i]: m["recall"][i] for i in labels})
    assert g.accuracy_ci[0] < g.accuracy < g.accuracy_ci[1]


def test_bootstrap_resamples_whole_subjects():
    yt = np.array([0, 0, 0, 1, 1, 1])
    yp = np.array([0, 0, 0, 0, 0, 0])  # subject "a" all right, subject "b" all wrong
    conf = cluster_bootstrap_confusions(yt, yp, np.array(list("aaabbb")), K, 500, np.random.default_rng(0))
    acc = confusion_metrics(conf, [0, 1])["accuracy"]
    assert set(np.round(acc, 3)) <= {0.0, 0.5, 1.0}  # only whole people move, never single photos
    assert conf.sum(axis=(1, 2)).tolist() == [6] * 500


def test_real_gap_is_flagged_and_interval_covers_it():
    frame = simulate({"a": 0.85, "b": 0.65}, subjects_per_group=60, photos_per_subject=8, seed=1)
    gap = audit(frame).gaps["accuracy"]
    assert gap.flagged
    assert (gap.high, gap.low) == ("a", "b")
    assert gap.ci[0] <= 0.20 <= gap.ci[1]
    assert gap.ratio == pytest.approx(frame[frame.group == "b"].eval("emotion == predicted").mean()
                                      / frame[frame.group == "a"].eval("emotion == predicted").mean())
    assert audit(frame).gaps["macro_f1"].flagged


def test_no_gap_is_not_flagged():
    frame = simulate({"a": 0.7, "b": 0.7}, subjects_per_group=60, photos_per_subject=8, seed=2)
    result = audit(frame)
    assert not result.gaps["accuracy"].flagged
    assert result.gaps["accuracy"].ci[0] < 0 < result.gaps["accuracy"].ci[1]
    assert not result.gaps["macro_f1"].flagged


def test_subject_resampling_keeps_false_alarms_rare_where_photo_resampling_does_not():
    """People differ (some are hard to read) and each has many photos: resampling photos as if they were
    independent would flag gaps that are not there; resampling people keeps the 5% promise."""
    by_subject = by_photo = 0
    for seed in range(60):  # about 5% and 35% false alarms expected
        frame = simulate({"a": 0.7, "b": 0.7}, subjects_per_group=30, photos_per_subject=20, seed=seed,
                         subject_spread=0.2)
        by_subject += audit(frame, resamples=200).gaps["accuracy"].flagged
        by_photo += audit(frame, subjects=False, resamples=200).gaps["accuracy"].flagged
    assert by_subject <= 6
    assert by_photo >= 12


def test_equal_opportunity_gap_is_per_emotion():
    rng = np.random.default_rng(3)
    n = 1400
    frame = pd.DataFrame({"group": np.repeat(["a", "b"], n // 2), "emotion": rng.choice(["happy", "sad"], n)})
    # group b's sad faces are often called neutral; happy is equally well read in both groups
    miss = (frame.group == "b") & (frame.emotion == "sad") & (rng.random(n) < 0.4)
    frame["predicted"] = np.where(miss, "neutral", frame.emotion)
    frame["subject"] = [f"p{i}" for i in range(n)]
    result = audit(frame)
    assert result.emotions == ["happy", "sad"]
    assert result.gaps["recall:sad"].flagged and result.gaps["recall:sad"].low == "b"
    assert result.gaps["recall:sad"].ci[0] <= 0.4 <= result.gaps["recall:sad"].ci[1]
    assert not result.gaps["recall:happy"].flagged
    assert result.gaps["prediction_rate:neutral"].flagged
    assert "recall:angry" not in result.gaps  # no angry faces: no recall to compare


def test_small_groups_are_marked_not_hidden():
    frame = simulate({"big1": 0.8, "big2": 0.5, "tiny": 0.1}, subjects_per_group=40, photos_per_subject=1, seed=4)
    frame = frame[(frame.group != "tiny") | (frame.subject.isin([f"tiny{i}" for i in range(10)]))]
    result = audit(frame)
    assert set(result.groups) == {"big1", "big2", "tiny"}
    assert result.groups["tiny"].too_few and result.groups["tiny"].n == 10
    assert not result.groups["big1"].too_few
    gap = result.gaps["accuracy"]
    assert set(gap.compared) == {"big1", "big2"} and "tiny" in gap.note


def test_few_people_are_never_flagged():
    frame = simulate({"a": 0.9, "b": 0.3}, subjects_per_group=4, photos_per_subject=50, seed=5)
    gap = audit(frame).gaps["accuracy"]
    assert gap.gap > 0.4 and not gap.flagged
    assert "too few people" in gap.note


def test_missing_groups_are_counted_and_left_out():
    frame = simulate({"a": 0.8, "b": 0.8}, subjects_per_group=20, photos_per_subject=2, seed=6)
    frame.loc[:9, "group"] = ["unknown", "", None, np.nan, "NA"] * 2
    result = audit(frame)
    assert result.n_missing == 10 and set(result.groups) == {"a", "b"}


def test_audit_frame_compares_within_scope_and_round_trips():
    one = simulate({"female": 0.8, "male": 0.6}, 40, 2, seed=7).assign(source="studio", race="x")
    two = simulate({"female": 0.5, "male": 0.5}, 40, 2, seed=8).assign(source="film", race="y")
    frame = pd.concat([one, two]).rename(columns={"group": "gender"})
    result = audit_frame(frame, ["gender", "race"], within="source", subject="subject", meta={"command": "x"})
    assert set(result.attributes) == {"studio/gender", "film/gender"}
    assert "race in film: only one known group (y), nothing to compare." in result.skipped
    assert result.attributes["studio/gender"].gaps["accuracy"].flagged
    assert set(result.overall) == {"film", "studio"}
    report = json.loads(json.dumps(result.to_dict()))
    group = report["groups"]["studio/gender"]["female"]
    assert {"n", "accuracy", "accuracy_ci", "macro_f1"} <= set(group) and group["n"] == 80
    assert set(report["gaps"]["studio/gender"]) == {"accuracy", "macro_f1", "equal_opportunity", "prediction_rate"}
    assert report["command"] == "x" and report["bootstrap"]["resamples"] == 1000
    again = FairnessAudit.from_dict(report)
    assert again.to_dict() == report
    table = again.groups_table(["studio/gender"], "accuracy")
    assert list(table.group) == ["female", "male"] and table["too few"].tolist() == [False, False]
    assert again.gaps_table(["studio/gender"], ["accuracy"])["flagged"].tolist() == [True]


def test_same_seed_same_numbers_whatever_else_is_audited():
    frame = simulate({"a": 0.8, "b": 0.7}, 30, 3, seed=9).assign(other=lambda f: f.subject.str[-1])
    alone = audit_frame(frame, ["group"], subject="subject").to_dict()["gaps"]["group"]
    both = audit_frame(frame, ["other", "group"], subject="subject").to_dict()["gaps"]["group"]
    assert alone == both
    assert audit_frame(frame, ["group"], subject="subject", config=BootstrapConfig(seed=1)).to_dict()[
        "gaps"]["group"] != alone


# ---------------------------------------------------------------------------------------- labelled sets

def _csv(text: str) -> bytes:
    return text.strip().encode() + b"\n"


IMG = encode(np.full((40, 40, 3), 128, np.uint8))


def test_the_audit_reads_through_the_one_reader_and_keeps_going_past_bad_rows():
    labels = _csv("""
file,emotion,gender,reviewed
a.png,HAPPINESS,female,1
b.png,happpy,male,1
missing.png,sad,male,1
c.png,not a face,male,1
d.png,,female,0
b.png,Afraid,male,1
""")
    ds = read_uploads([("a.png", IMG), ("b.png", IMG), ("c.png", IMG), ("d.png", IMG), ("labels.csv", labels)],
                      strict=False)
    assert [(f.file, f.emotion, f.line) for f in audit_faces(ds)] == [("a.png", "happy", 2), ("b.png", "fear", 7)]
    assert [str(p) for p in ds.problems] == [
        ("labels.csv line 3 (b.png): emotion 'happpy' is not one of angry, disgust, fear, happy, sad, surprise, "
         "neutral (or not_a_face)."),
        "labels.csv line 4 (missing.png): this image is not in the set (check the name and folder)."]
    assert ds.left_out() == {"not reviewed": 1, "marked not a face": 1}
    assert attribute_candidates(ds) == ["gender"]


def test_a_set_with_nothing_to_audit_or_too_much_is_refused():
    with pytest.raises(LabelledSetError, match="No usable rows in l.csv. First problems: l.csv line 2"):
        audit_faces(read_uploads([("a.png", IMG), ("l.csv", _csv("file,emotion\nzzz.png,happy"))], strict=False))
    settings.configure(fairness_max_images=2)
    rows = "".join(f"{i}.png,happy\n" for i in range(3))
    ds = read_uploads([*((f"{i}.png", IMG) for i in range(3)), ("l.csv", _csv("file,emotion\n" + rows))],
                      strict=False)
    with pytest.raises(LabelledSetError, match="lists 3 usable images; the limit is 2"):
        audit_faces(ds)


def test_numeric_measurements_and_reserved_columns_are_not_offered_as_groups():
    rows = "\n".join(f"{i}.png,happy,{20 + i},{'young' if i < 6 else 'old'},s{i},studio,train"
                     for i in range(12))
    ds = read_uploads([*((f"{i}.png", IMG) for i in range(12)),
                       ("l.csv", _csv("file,emotion,age,age_group,person_id,source,split\n" + rows))], strict=False)
    assert attribute_candidates(ds) == ["age_group"]
    assert ds.subject_column == "person_id"


def test_a_sample_keeps_the_rows_left_out_and_the_problems():
    rows = "".join(f"{i}.png,happy,1\n" for i in range(10)) + "0.png,not_a_face,1\nzz.png,sad,1\n"
    ds = read_uploads([*((f"{i}.png", IMG) for i in range(10)), ("l.csv", _csv("file,emotion,reviewed\n" + rows))],
                      strict=False)
    small = sample_set(ds, 4, seed=3)
    assert len(audit_faces(small)) == 4 and small.left_out() == ds.left_out() and small.problems == ds.problems
    assert [f.line for f in audit_faces(small)] == sorted(f.line for f in audit_faces(small))
    assert [f.file for f in audit_faces(sample_set(ds, 4, seed=3))] == [f.file for f in audit_faces(small)]
    assert sample_set(ds, 100) is ds


class _Classifier:
    """Stands in for the model: 'happy' for bright crops, 'sad' for dark ones; records crop sizes."""

    classes = EMOTIONS

    def crop(self, image, box):
        return crop_face(image, box, 0.2)

    def __init__(self) -> None:
        self.crops: list[tuple[int, int]] = []

    def predict(self, crops):
        out = []
        for c in crops:
            self.crops.append(c.shape[:2])
            p = np.full(K, 0.01)
            p[EMOTIONS.index("happy" if c.mean() > 100 else "sad")] = 1
            out.append(p / p.sum())
        return np.array(out)


class _Face:
    def __init__(self, box, probs):
        self.box, self.probs = box, probs


class _Pipeline:
    """A detector that finds the box it is given (or nothing), then the fake classifier."""

    def __init__(self, box):
        self.box = box
        self.classifier = _Classifier()

    def analyze(self, image):
        if self.box is None:
            return []
        return [_Face(self.box, self.classifier.predict([image[:10, :10]])[0])]


@pytest.mark.parametrize("box, mode, how", [
    ((10, 10, 30, 30), "auto", "detected"),        # a small face in a portrait: the detector's crop
    ((0, 0, 95, 120), "auto", "whole_image"),      # the face fills the image: it is a face crop
    (None, "auto", "whole_image"),                  # nothing detected in a tight crop
    (None, "detect", "no face found"),
    ((10, 10, 30, 30), "whole", "whole_image"),
])
def test_face_modes(box, mode, how):
    image = np.full((120, 100, 3), 200, np.uint8)
    pipe = _Pipeline(box)
    probs, path = classify_image(pipe, image, mode)
    assert path == how
    if how == "whole_image":
        assert pipe.classifier.crops[-1] == (120, 120)  # squared by the pipeline's crop, not stretched
    assert (probs is None) == (how == "no face found")


def test_predict_set_reports_bad_images_and_uses_given_boxes():
    """With box columns, a row with a box is cropped there and a blank box means the image is the face."""
    good = encode(np.full((60, 60, 3), 30, np.uint8))
    noisy = encode(np.random.default_rng(0).integers(0, 255, (60, 60, 3), dtype=np.uint8), "JPEG")
    truncated = noisy[:len(noisy) // 2]  # the header reads, the pixels do not: fails only when analysed
    labels = _csv("file,emotion,x1,y1,x2,y2,g\nok.png,sad,5,5,40,40,a\nbad.jpg,sad,,,,,b\nplain.png,happy,,,,,b")
    ds = read_uploads([("ok.png", good), ("bad.jpg", truncated), ("plain.png", good), ("l.csv", labels)],
                      strict=False)
    assert not ds.problems
    seen = []
    out, problems = predict_set(_Pipeline((10, 10, 30, 30)), ds, "auto", progress=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (3, 3)
    assert out.face.tolist() == ["given_box", "error", "whole_image"]
    assert out.predicted.tolist() == ["sad", None, "sad"]
    assert out.line.tolist() == [2, 3, 4] and out.g.tolist() == ["a", "b", "b"]
    assert len(problems) == 1 and str(problems[0]).startswith("l.csv line 3 (bad.jpg): The JPEG file is damaged")


def test_reads_the_labelled_set_format_written_by_core_labelled():
    """A zip exported by the Annotate page / `core.datasets.labelled` audits as is: boxes, crops, review state."""
    photo, crop = encode(np.full((80, 120, 3), 40, np.uint8)), encode(np.full((48, 48, 3), 200, np.uint8))
    faces = [LabelledFace("group.png", (5, 5, 45, 45), "sad", extra={"group": "a"}),
             LabelledFace("group.png", (60, 5, 100, 45), "angry", extra={"group": "b"}),
             LabelledFace("crop.png", None, "happy", predicted="sad", confidence=0.5, extra={"group": "b"}),
             LabelledFace("crop.png", (1, 1, 20, 20), None, reviewed=False, extra={"group": "a"}),
             LabelledFace("group.png", (100, 50, 118, 78), "not_a_face", extra={"group": "a"})]
    data = write_labels_zip(LabelledSet({"group.png": photo, "crop.png": crop}, faces, ["group"]))
    ds = read_uploads([("annotated.zip", data)], strict=False)
    assert [f.emotion for f in audit_faces(ds)] == ["sad", "angry", "happy"] and not ds.problems
    assert ds.left_out() == {"not reviewed": 1, "marked not a face": 1}
    assert attribute_candidates(ds) == ["group"]
    out, problems = predict_set(_Pipeline(None), ds, "auto")
    assert out.face.tolist() == ["given_box", "given_box", "whole_image"] and not problems
    assert out.predicted.tolist() == ["sad", "sad", "happy"]  # the audited model's own, not the file's pre-label


def test_audit_counts_every_row_of_the_file():
    labels = _csv("file,emotion,g,subject,source,reviewed\n" + "".join(
        f"{i}.png,{'happy' if i % 2 else 'sad'},{'x' if i < 4 else 'y'},s{i},studio,1\n" for i in range(8))
        + "8.png,,x,s8,studio,0\nmissing.png,sad,x,s9,studio,1\n")
    bright, dark = encode(np.full((40, 40, 3), 200, np.uint8)), encode(np.full((40, 40, 3), 30, np.uint8))
    files = [(f"{i}.png", bright if i % 2 else dark) for i in range(9)]
    ds = read_uploads([*files, ("labels.csv", labels)], strict=False)
    run = audit_dataset(_Pipeline(None), ds, face_mode="whole", config=BootstrapConfig(resamples=100, min_group_size=1))
    meta = run.audit.to_dict()
    assert (meta["n_rows"], meta["n_audited"], meta["n_skipped_rows"]) == (10, 8, 1)
    assert meta["rows_left_out"] == {"not reviewed": 1} and meta["within"] == "source"
    assert meta["subject_column"] == "subject" and meta["attributes_requested"] == ["g"]
    assert set(run.audit.attributes) == {"studio/g"} and len(run.problems) == 1
    with pytest.raises(LabelledSetError, match="No column 'nope'"):
        audit_dataset(_Pipeline(None), ds, ["nope"])
