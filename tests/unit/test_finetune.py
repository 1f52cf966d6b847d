"""Fine-tuning on a generated labelled set whose classes are learnable: after beats before, held out."""
from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

import core.emotion.architectures  # noqa: F401
from core.analysis import ImageAnalysis, results_table
from core.emotion.classifier import EmotionClassifier
from core.emotion.card import list_models
from core.detection import Detection, FaceDetector
from core.emotion.vocabulary import EMOTIONS
from core.datasets.labelled import LabelledFace, LabelledSet, write_labels_zip
from core.pipeline import EmotionPipeline
from core.render import render
from tests.conftest import encode
from core.emotion.finetune import (NOT_RECORDED, FinetuneConfig, FinetuneError, finetune, holdout_split,
                                   restricted_probs, split_groups, summary_table)
from tests.conftest import ROOT
from training.finetune import main


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models on a shared 2-core machine: one thread avoids oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A randomly initialised 7-emotion model with a real card: the 'shipped' model to start from."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = timm.create_model("emolens_vgg_s", num_classes=7, in_chans=1).eval()
    save_file(model.state_dict(), str(root / "base.safetensors"))
    card = {"name": "base", "task": "facial-emotion-classification", "architecture": "emolens_vgg_s",
            "weights": "base.safetensors", "input_size": 48, "in_chans": 1, "mean": [0.5], "std": [0.25],
            "classes": list(EMOTIONS), "temperature": 1.0, "crop": {"margin": 0.2}}
    (root / "base.json").write_text(json.dumps(card))
    return root


def pattern(cls: int, rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """Stripes at one orientation per class, random phase and frequency, plus noise: learnable, not trivial."""
    yy, xx = np.mgrid[0:side, 0:side]
    phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 0.5)
    z = np.sin(freq * (yy, xx, (xx + yy) / 1.4)[cls] + phase)
    grey = (127 + 90 * z + rng.normal(0, 20, z.shape)).clip(0, 255).astype(np.uint8)
    return np.stack([grey] * 3, -1)


def make_set(classes=("happy", "sad", "surprise"), per_class=24, seed=0) -> LabelledSet:
    """Each face sits in a larger photo at a known box; 8 subjects, each with faces of every class."""
    rng = np.random.default_rng(seed)
    images, faces = {}, []
    for c, name in enumerate(classes):
        for i in range(per_class):
            canvas = np.full((96, 120, 3), 100, np.uint8)
            canvas[16:80, 30:94] = pattern(c, rng)
            file = f"{name}_{i}.png"
            images[file] = encode(canvas)
            faces.append(LabelledFace(file, (38.0, 24.0, 86.0, 72.0), name, True, None, None,
                                      {"subject": f"s{i % 8}"}))
    return LabelledSet(images, faces, ["subject"])


class FixedDetector(FaceDetector):
    def _detect(self, image):
        return [Detection(box=(38.0, 24.0, 86.0, 72.0), score=0.9)]


def test_cli_finetune_beats_before_and_the_model_serves(base_dir, tmp_path, capsys):
    data = tmp_path / "set.zip"
    data.write_bytes(write_labels_zip(make_set()))
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    rc = main(["--data", str(data), "--epochs", "10", "--full-head", "--out", str(out), "--json", str(report_path),
               "--weights-dir", str(base_dir), "--base-model", "base", "--name", "stripes"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(report_path.read_text())
    assert report["classes"] == ["happy", "sad", "surprise"]
    assert report["split"]["group_by"] == "subject"  # the subject column is found by name
    split = report["split"]
    assert split["train"] + split["validation"] + split["held_out"] == 72 and split["validation"] > 0
    assert 0 <= split["selected_epoch"] <= 10
    assert report["before"]["n"] == report["after"]["n"] == report["split"]["held_out"]
    assert report["after"]["accuracy"] > report["before"]["accuracy"] + 0.2
    assert report["after"]["accuracy"] >= 0.8
    assert set(report["after"]["per_class"]) == {"happy", "sad", "surprise"}
    assert "python -m training.finetune --data" in report["command"]
    assert report["commit"] != NOT_RECORDED  # the CLI records the commit (or "unknown" outside git)

    # the new card + weights load like any shipped model, and serve 3 classes through the pipeline
    assert list_models(out) == ["stripes"]
    tuned = EmotionClassifier.load("stripes", out)
    card = json.loads((out / "stripes.json").read_text())
    assert card["classes"] == ["happy", "sad", "surprise"] and card["training"]["base_model"] == "base"
    assert card["metrics"]["held_out"]["accuracy"] == report["after"]["accuracy"]
    pipe = EmotionPipeline(FixedDetector(0.5), tuned)
    image = np.full((96, 120, 3), 100, np.uint8)
    image[16:80, 30:94] = pattern(1, np.random.default_rng(99))
    (face,) = pipe.analyze(image)
    assert face.classes == ("happy", "sad", "surprise") and set(face.to_dict()["probs"]) == set(face.classes)
    assert face.label == "sad"
    table = results_table([ImageAnalysis(file="x.png", faces=[face], image=image)])
    assert table.loc[0, "emotion"] == "sad"
    assert render(image, [face]).shape == image.shape


def test_new_class_and_restricted_before(base_dir):
    """A class the base model never knew ('contempt') gets 0 before and is learnt after."""
    labelled = make_set(classes=("happy", "sad", "contempt"), per_class=20)
    base = EmotionClassifier.load("base", base_dir)
    result = finetune(labelled, FinetuneConfig(epochs=8, full_head=True, name="with_contempt"), base)
    rep = result.report
    assert rep["before"]["per_class"]["contempt"]["recall"] == 0.0
    assert rep["after"]["per_class"]["contempt"]["recall"] > 0.5
    assert rep["after"]["accuracy"] > rep["before"]["accuracy"]
    table = summary_table(rep)
    assert list(table["measure"][:2]) == ["accuracy", "macro-F1"] and len(table) == 5
    assert result.to_zip()[:2] == b"PK"
    # provenance is the caller's: none given here, so the card says so instead of guessing
    assert result.card["commit"] == result.report["commit"] == NOT_RECORDED
    app = finetune(labelled, FinetuneConfig(epochs=1, name="from_app"), base, command="Annotate page fine-tune")
    assert (app.card["command"], app.card["commit"]) == ("Annotate page fine-tune", NOT_RECORDED)
    # the served base model was not changed by fine-tuning a copy of it
    assert base.model.head[-1].out_features == 7


def test_default_retrains_the_final_layer_and_picks_the_epoch_on_validation(base_dir):
    base = EmotionClassifier.load("base", base_dir)
    result = finetune(make_set(), FinetuneConfig(epochs=15), base)
    rep, history = result.report, result.card["training"]["history"]
    assert rep["after"]["accuracy"] > rep["before"]["accuracy"] + 0.15
    assert history[0]["epoch"] == 0 and len(history) == 16 and all(h["val_acc"] is not None for h in history)
    chosen = result.card["training"]["selected_epoch"]
    assert history[chosen]["val_acc"] == max(h["val_acc"] for h in history)
    # only the final layer moved: the hidden head layer is the base model's
    tuned = result.state_dict
    assert torch.equal(tuned["head.2.weight"], base.model.state_dict()["head.2.weight"])
    assert "final layer" in result.card["training"]["method"]


def test_restricted_probs_picks_only_allowed_columns():
    logits = np.log(np.array([[0.1, 0.2, 0.05, 0.5, 0.15, 0.0001, 0.0]]) + 1e-9)
    p = restricted_probs(logits, EMOTIONS, ["sad", "angry", "contempt"], temperature=1.0)
    assert p.shape == (1, 3) and p[0, 2] == 0.0
    assert p[0] == pytest.approx([0.6, 0.4, 0.0], abs=1e-4)


def test_core_never_imports_training():
    """The app runs fine-tuning from core; training/ is the CLI side and is not shipped with the pages."""
    offenders = [str(f.relative_to(ROOT)) for f in (ROOT / "core").rglob("*.py")
                 if any(line.lstrip().startswith(("from training", "import training"))
                        for line in f.read_text().splitlines())]
    assert not offenders


def test_the_subject_column_is_the_readers_rule():
    labelled = make_set(per_class=8)
    labelled.extra_columns = ["participant"]
    for f in labelled.faces:
        f.extra = {"participant": f.extra["subject"]}
    assert split_groups(labelled, labelled.labelled_faces(), FinetuneConfig())[1] == "participant"


def test_split_never_puts_a_subject_on_both_sides():
    labelled = make_set(per_class=16)
    faces = labelled.labelled_faces()
    groups, by = split_groups(labelled, faces, FinetuneConfig())
    labels = np.array([["happy", "sad", "surprise"].index(f.emotion) for f in faces])
    train, test = holdout_split(labels, groups, 0.25, seed=0)
    assert by == "subject" and len(test) > 0
    assert not {faces[i].extra["subject"] for i in train} & {faces[i].extra["subject"] for i in test}


def test_by_file_when_no_subject_column():
    labelled = make_set(per_class=8)
    labelled.extra_columns = []
    groups, by = split_groups(labelled, labelled.labelled_faces(), FinetuneConfig())
    assert by == "file" and len(set(groups)) == 24


def test_too_small_sets_get_a_plain_message(base_dir):
    base = EmotionClassifier.load("base", base_dir)
    with pytest.raises(FinetuneError, match="at least 4 reviewed faces"):
        finetune(make_set(per_class=3), FinetuneConfig(epochs=1), base)
    with pytest.raises(FinetuneError, match="two classes"):
        finetune(make_set(classes=("happy",), per_class=8), FinetuneConfig(epochs=1), base)
    with pytest.raises(FinetuneError, match="no column 'site'"):
        finetune(make_set(per_class=8), FinetuneConfig(epochs=1, group_column="site"), base)


def test_cli_bad_data_is_a_message_not_a_traceback(tmp_path, capsys, base_dir):
    bad = tmp_path / "notes.zip"
    bad.write_bytes(b"not a zip at all")
    rc = main(["--data", str(bad), "--out", str(tmp_path / "o"), "--json", str(tmp_path / "r.json"),
               "--weights-dir", str(base_dir), "--base-model", "base"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "notes.zip is not a zip archive" in err and "Traceback" not in err
