"""Fairness metrics and the labelled-set reader, on generated data where the true gap is known."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from core.emotion.preprocess import crop_face
from core.emotion.vocabulary import EMOTIONS
from core.fairness.metrics import (BootstrapConfig, FairnessAudit, audit_attribute, audit_frame, cluster_bootstrap_confusions,
                           confusion_metrics)
from core.fairness.audit import DatasetError, classify_image, open_upload, open_zip, parse_labels, predict_set
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


def test_labels_rows_get_plain_messages_naming_the_line():
    files = {"a.jpg", "b.jpg", "c.jpg", "d.jpg"}
    rows, problems, excluded = parse_labels(_csv("""
file,emotion,gender,x1,y1,x2,y2,reviewed
a.jpg,HAPPINESS,female,,,,,1
b.jpg,happpy,male,,,,,1
missing.jpg,sad,male,,,,,yes
a.jpg,sad,female,,,,,1
c.jpg,Surprised,male,10,10,5,40,1
d.jpg,neutral,,1,2,30,40,true
b.jpg,not_a_face,,1,2,30,40,1
c.jpg,,,,,,,0
d.jpg,sad,,40,2,70,40,1
"""), lambda n: n if n in files else None)
    assert rows.file.tolist() == ["a.jpg", "d.jpg", "d.jpg"]  # two faces of one image are two rows
    assert rows.emotion.tolist() == ["happy", "neutral", "sad"]
    assert rows.line.tolist() == [2, 7, 10]
    assert rows.loc[1, ["x1", "y1", "x2", "y2"]].tolist() == [1, 2, 30, 40]
    messages = [str(p) for p in problems]
    assert messages[0].startswith("labels.csv line 3 (b.jpg): emotion 'happpy' is not one of angry")
    assert "line 4 (missing.jpg)" in messages[1] and "not in the set" in messages[1]
    assert "line 5" in messages[2] and "same face is already listed on line 2" in messages[2]
    assert "line 6" in messages[3] and "face box" in messages[3]
    assert len(messages) == 4 and excluded == {"not reviewed": 1, "marked not a face": 1}


@pytest.mark.parametrize("text, words", [
    ("name,label\na.jpg,happy", "needs the columns 'file' and 'emotion'"),
    ("file,emotion,x1,y1\na.jpg,happy,1,2", "only some of the face-box columns"),
    ("", "could not be read"),
])
def test_unusable_labels_raise_a_plain_error(text, words):
    with pytest.raises(DatasetError, match=words):
        parse_labels(text.encode(), lambda n: n)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_and_loose_uploads_find_images_by_relative_or_base_name():
    img = encode(np.full((40, 40, 3), 128, np.uint8))
    labels = _csv("file,emotion,subject,lighting\nimages/a.png,happy,p1,dark\nb.png,sad,p2,bright")
    data = _zip({"set/labels.csv": labels, "set/images/a.png": img, "set/images/b.png": img,
                 "__MACOSX/set/._a.png": b"junk"})
    ds = open_zip(data, "set.zip")
    assert len(ds) == 2 and ds.subject == "subject" and ds.attribute_candidates() == ["lighting"]
    assert ds.reader(ds.rows.file[0]) == img
    loose = open_upload([("a.png", img), ("b.png", img), ("labels.csv", labels)])
    assert loose.rows.file.tolist() == ["a.png", "b.png"]
    with pytest.raises(DatasetError, match="not a readable zip"):
        open_zip(b"PK\x03\x04 broken", "x.zip")
    with pytest.raises(DatasetError, match="exactly one CSV"):
        open_zip(_zip({"a.png": img}), "x.zip")
    with pytest.raises(DatasetError, match="Add the labels CSV"):
        open_upload([("a.png", img)])
    with pytest.raises(DatasetError, match="No usable rows"):
        open_upload([("a.png", img), ("l.csv", _csv("file,emotion\nzzz.png,happy"))])


def test_numeric_measurements_are_not_offered_as_groups():
    img = encode(np.full((40, 40, 3), 128, np.uint8))
    rows = "\n".join(f"{i}.png,happy,{20 + i},{'young' if i < 6 else 'old'}" for i in range(12))
    ds = open_upload([*((f"{i}.png", img) for i in range(12)), ("l.csv", _csv("file,emotion,age,age_group\n" + rows))])
    assert ds.attribute_candidates() == ["age_group"]


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
    labels = _csv("file,emotion,x1,y1,x2,y2,g\nok.png,sad,5,5,40,40,a\nbad.png,sad,,,,,b\nplain.png,happy,,,,,b")
    ds = open_upload([("ok.png", good), ("bad.png", b"%PDF-1.4"), ("plain.png", good), ("l.csv", labels)])
    seen = []
    out, problems = predict_set(_Pipeline((10, 10, 30, 30)), ds, "auto", progress=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (3, 3)
    assert out.face.tolist() == ["given_box", "error", "whole_image"]
    assert out.predicted.tolist() == ["sad", None, "sad"]
    assert len(problems) == 1 and "line 3 (bad.png)" in str(problems[0]) and "PDF" in str(problems[0])


def test_reads_the_labelled_set_format_written_by_core_labelled():
    """A zip exported by the Annotate page / `core.datasets.labelled` audits as is: boxes, crops, review state."""
    from core.datasets.labelled import LabelledFace, LabelledSet, write_labels_zip

    photo, crop = encode(np.full((80, 120, 3), 40, np.uint8)), encode(np.full((48, 48, 3), 200, np.uint8))
    faces = [LabelledFace("group.png", (5, 5, 45, 45), "sad", extra={"group": "a"}),
             LabelledFace("group.png", (60, 5, 100, 45), "angry", extra={"group": "b"}),
             LabelledFace("crop.png", None, "happy", predicted="sad", confidence=0.5, extra={"group": "b"}),
             LabelledFace("crop.png", (1, 1, 20, 20), None, reviewed=False, extra={"group": "a"}),
             LabelledFace("group.png", (100, 50, 118, 78), "not_a_face", extra={"group": "a"})]
    data = write_labels_zip(LabelledSet({"group.png": photo, "crop.png": crop}, faces, ["group"]))
    ds = open_zip(data, "annotated.zip")
    assert ds.rows.emotion.tolist() == ["sad", "angry", "happy"] and not ds.problems
    assert ds.excluded == {"not reviewed": 1, "marked not a face": 1}
    assert ds.attribute_candidates() == ["group"]
    out, problems = predict_set(_Pipeline(None), ds, "auto")
    assert out.face.tolist() == ["given_box", "given_box", "whole_image"] and not problems
    assert out.predicted.tolist() == ["sad", "sad", "happy"]  # the audited model's own, not the file's pre-label
