"""FER+ labels: vote cleaning, class mapping, and training on soft votes (generated data, seconds)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.emotion.vocabulary import EMOTIONS
from training.data import ferplus_targets, load_faces
from training.evaluate_classifier import main as evaluate_main
from training.train_classifier import main as train_main
from tests.unit.test_training import make_fake_fer

# FER+ columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
NEUTRAL, HAPPY, SURPRISE, SAD, ANGER, DISGUST, FEAR, CONTEMPT, UNKNOWN, NF = range(10)


def votes(**counts: int) -> np.ndarray:
    row = np.zeros(10, np.int8)
    for name, n in counts.items():
        row[globals()[name.upper()]] = n
    return row


def test_votes_map_to_our_class_order_and_drop_noise():
    v = np.stack([votes(happy=8, sad=1, neutral=1),       # stray single votes are noise
                  votes(anger=6, disgust=4),               # a real split vote stays soft
                  votes(nf=10),                            # not a face: dropped
                  votes(contempt=6, neutral=3),            # contempt has no FER-2013 class: dropped
                  votes(unknown=5, fear=3),                # unknown wins: dropped
                  votes(surprise=1, fear=1, sad=1)])       # only stray votes: dropped
    keep, dist = ferplus_targets(v)
    assert keep.tolist() == [True, True, False, False, False, False]
    assert dist[0, EMOTIONS.index("happy")] == pytest.approx(1.0)
    assert dist[1, EMOTIONS.index("angry")] == pytest.approx(0.6)
    assert dist[1, EMOTIONS.index("disgust")] == pytest.approx(0.4)
    assert np.allclose(dist[keep].sum(1), 1.0)


def make_fake_ferplus(fer_npz, path):
    """Votes that agree with the fake faces' brightness-coded labels, with some dissent and some non-faces."""
    data = np.load(fer_npz)
    ours_to_plus = {EMOTIONS.index(e): c for e, c in (("neutral", NEUTRAL), ("happy", HAPPY),
                    ("surprise", SURPRISE), ("sad", SAD), ("angry", ANGER), ("disgust", DISGUST), ("fear", FEAR))}
    rows = []
    for i, label in enumerate(data["labels"]):
        row = np.zeros(10, np.int8)
        if i % 10 == 9:
            row[NF] = 10
        else:
            row[ours_to_plus[int(label)]] = 7
            row[ours_to_plus[(int(label) + 1) % 7]] = 3
        rows.append(row)
    np.savez_compressed(path, votes=np.stack(rows), usage=data["usage"])
    return path


def test_load_faces_with_ferplus_labels(tmp_path):
    npz = make_fake_fer(tmp_path / "fer2013.npz")
    make_fake_ferplus(npz, tmp_path / "ferplus.npz")
    orig = load_faces(npz, "PublicTest", "fer2013")
    major = load_faces(npz, "PublicTest", "ferplus_majority")
    soft = load_faces(npz, "PublicTest", "ferplus_soft")
    assert len(orig) == 70 and len(major) == 63  # every 10th face is "not a face"
    assert major.soft is None and soft.soft.shape == (63, 7)
    assert np.array_equal(major.labels, soft.labels)
    assert np.array_equal(major.labels, orig.labels[np.arange(70) % 10 != 9])
    with pytest.raises(ValueError, match="labels must be one of"):
        load_faces(npz, "PublicTest", "votes")


def test_train_on_soft_votes_and_evaluate_on_majority(tmp_path, monkeypatch):
    npz = make_fake_fer(tmp_path / "fer2013.npz")
    make_fake_ferplus(npz, tmp_path / "ferplus.npz")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("""
name: toyplus
architecture: emolens_vgg_s
labels: ferplus_soft
input_size: 48
in_chans: 1
mean: [0.5]
std: [0.25]
epochs: 3
batch_size: 32
lr: 0.05
weight_decay: 0.0001
seed: 0
augment: {affine_p: 0.0, erase_p: 0.0}
""")
    monkeypatch.chdir(tmp_path)
    assert train_main(["--config", str(cfg), "--data", str(npz), "--out", str(tmp_path / "w")]) == 0
    card = json.loads((tmp_path / "w" / "toyplus.json").read_text())
    assert "FER+" in card["training_data"]["name"]
    assert card["metrics"]["PublicTest"]["accuracy"] > 0.5
    out = tmp_path / "r.json"
    assert evaluate_main(["--data", str(npz), "--split", "PrivateTest", "--labels", "ferplus_majority",
                          "--weights", str(tmp_path / "w" / "toyplus.json"), "--json", str(out),
                          "--update-card"]) == 0
    report = json.loads(out.read_text())
    assert report["labels"] == "ferplus_majority" and report["n"] == 63
    assert "PrivateTest/ferplus_majority" in json.loads((tmp_path / "w" / "toyplus.json").read_text())["metrics"]
