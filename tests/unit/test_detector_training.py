"""Detector training plumbing: the seeded train/tune split and the offline Ultralytics setup."""
from __future__ import annotations

import os

import pytest
import yaml

from core.detection.ultralytics_env import prepare_ultralytics
from training.detector_splits import label_path, split_images, split_train
from training.train_detector import write_dataset_yaml


@pytest.fixture
def faces_dir(tmp_path):
    for split, n in (("train", 20), ("val", 4)):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "images" / split / f"img_{i:02d}.jpg").write_bytes(b"x")
            (tmp_path / "labels" / split / f"img_{i:02d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return tmp_path


def test_tune_slice_is_disjoint_seeded_and_complete(faces_dir):
    a = split_train(faces_dir, 0.2, seed=0)
    b = split_train(faces_dir, 0.2, seed=0)
    assert a == b and len(a["tune"]) == 4 and len(a["train"]) == 16
    assert not set(a["tune"]) & set(a["train"])
    assert split_train(faces_dir, 0.2, seed=1)["tune"] != a["tune"]
    assert len(split_images(faces_dir, "val")) == 4
    assert label_path(a["tune"][0]).exists()
    with pytest.raises(FileNotFoundError):
        split_images(faces_dir, "test")


def test_dataset_yaml_trains_without_the_tune_slice(faces_dir, tmp_path):
    cfg = yaml.safe_load(write_dataset_yaml(faces_dir, tmp_path / "work", 0.2, 0).read_text())
    listed = open(cfg["train"]).read().split()
    tune = {str(p.resolve()) for p in split_train(faces_dir, 0.2, 0)["tune"]}
    assert len(listed) == 16 and not tune & set(listed)
    assert cfg["val"] == "images/val" and cfg["names"] == {0: "face"}


def test_ultralytics_gets_fonts_and_config_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    config = prepare_ultralytics()
    assert os.environ["YOLO_OFFLINE"] == "1"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        assert (config / "Ultralytics" / name).stat().st_size > 10_000


def test_model_card_history_reads_ultralytics_results(tmp_path):
    from training.train_detector import ultralytics_history

    csv = tmp_path / "results.csv"
    csv.write_text("                  epoch,  metrics/precision(B),metrics/recall(B),metrics/mAP50(B),"
                   "metrics/mAP50-95(B)\n1,0.1,0.2,0.05,0.01\n2,0.3,0.4,0.2,0.08\n")
    h = ultralytics_history(csv)
    assert [r["epoch"] for r in h] == [1, 2] and h[-1]["map50"] == 0.2
    assert ultralytics_history(tmp_path / "missing.csv") == []


def test_importing_ultralytics_leaves_pillow_alone():
    """Ultralytics patches Image.open to pip-install pi-heif on unknown files; bad uploads must still get
    Pillow's own error (and no network reach-out) once YOLO is loaded."""
    import io

    from PIL import Image, UnidentifiedImageError

    from core.detection.ultralytics_env import import_ultralytics

    import ultralytics.utils.patches  # a bare import patches Image.open ...

    import_ultralytics()  # ... and this undoes it
    assert Image.open is not ultralytics.utils.patches.image_open
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"not an image at all"))
