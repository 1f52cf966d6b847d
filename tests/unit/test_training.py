"""Training, calibration and evaluation plumbing on a generated FER-format dataset (seconds, CPU)."""
from __future__ import annotations

import csv
import json

import numpy as np
import torch

from core.emotion.classifier import EmotionClassifier
from core.emotion.vocabulary import EMOTIONS
from core.emotion.calibration import fit_temperature
from training.data import load_fer2013
from training.evaluate_classifier import main as evaluate_main
from training.train_classifier import main as train_main


def make_fake_fer(path, per_split=(700, 70, 70)):
    """Faces whose class is written in their brightness: learnable in one epoch."""
    rng = np.random.default_rng(0)
    images, labels, usage = [], [], []
    for split, n in enumerate(per_split):
        for i in range(n):
            label = i % 7
            img = rng.normal(30 + 30 * label, 8, (48, 48)).clip(0, 255).astype(np.uint8)
            images.append(img); labels.append(label); usage.append(split)
    np.savez_compressed(path, images=np.stack(images), labels=np.array(labels, np.int8),
                        usage=np.array(usage, np.int8))
    return path


def test_readers_agree_between_npz_and_csv(tmp_path):
    npz = make_fake_fer(tmp_path / "fer.npz")
    data = np.load(npz)
    with open(tmp_path / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for img, lab, use in zip(data["images"], data["labels"], data["usage"]):
            w.writerow([int(lab), " ".join(map(str, img.ravel())), ["Training", "PublicTest", "PrivateTest"][use]])
    a = load_fer2013(npz, "PublicTest")
    b = load_fer2013(tmp_path / "fer2013.csv", "PublicTest")
    assert len(a) == 70 and np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def test_readers_class_folder_layout(tmp_path):
    import cv2

    for split, folder in (("train", "train"), ("test", "test")):
        for emotion in ("happy", "sad"):
            d = tmp_path / folder / emotion
            d.mkdir(parents=True)
            for i in range(3):
                name = f"PublicTest_{i}.jpg" if split == "test" and i < 2 else f"PrivateTest_{i}.jpg" \
                    if split == "test" else f"{i}.jpg"
                cv2.imwrite(str(d / name), np.full((48, 48), 100, np.uint8))
    assert len(load_fer2013(tmp_path, "Training")) == 6
    assert len(load_fer2013(tmp_path, "PublicTest")) == 4
    assert len(load_fer2013(tmp_path, "PrivateTest")) == 2
    assert set(load_fer2013(tmp_path, "Training").labels) == {EMOTIONS.index("happy"), EMOTIONS.index("sad")}


def test_temperature_recovers_known_scale():
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 7) * 2
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    # an overconfident model: logits three times too sharp
    assert abs(fit_temperature(true_logits * 3, labels) - 3) < 0.3


def test_train_then_evaluate_end_to_end(tmp_path, monkeypatch):
    npz = make_fake_fer(tmp_path / "fer.npz")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("""
name: toy
architecture: emolens_vgg_s
input_size: 48
in_chans: 1
mean: [0.5]
std: [0.25]
epochs: 3
batch_size: 32
lr: 0.05
weight_decay: 0.0001
label_smoothing: 0.1
seed: 0
augment: {affine_p: 0.0, erase_p: 0.0}
""")
    monkeypatch.chdir(tmp_path)
    assert train_main(["--config", str(cfg), "--data", str(npz), "--out", str(tmp_path / "w")]) == 0
    card = json.loads((tmp_path / "w" / "toy.json").read_text())
    assert card["classes"] == list(EMOTIONS) and card["temperature"] > 0
    assert card["metrics"]["PublicTest"]["accuracy"] > 0.5  # brightness-coded classes are easy
    assert (tmp_path / "runs" / "toy" / "best.pt").exists()
    out = tmp_path / "report.json"
    assert evaluate_main(["--data", str(npz), "--split", "PrivateTest", "--weights",
                          str(tmp_path / "w" / "toy.json"), "--json", str(out), "--update-card"]) == 0
    report = json.loads(out.read_text())
    assert set(report) >= {"accuracy", "macro_f1", "per_class", "confusion", "ece", "ms_per_face"}
    assert np.asarray(report["confusion"]).sum() == 70
    assert json.loads((tmp_path / "w" / "toy.json").read_text())["metrics"]["PrivateTest"]["accuracy"] \
        == report["accuracy"]
    clf = EmotionClassifier.load("toy", tmp_path / "w")
    assert clf.predict([np.full((48, 48), 40, np.uint8)]).shape == (1, 7)
