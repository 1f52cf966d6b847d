"""The GPU recipe's pieces on CPU: batched tensor augmentation, the time-budgeted schedule, fp16 weights,
and ensembles of shipped models (loading, maths, ONNX export, greedy selection)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.emotion.classifier import EmotionClassifier
from core.emotion.card import list_models
from core.emotion.architectures import LogitEnsemble
from tests.unit.test_training import make_fake_fer
from training.select_ensemble import greedy_selection, log_probs
from training.tensor_augment import TensorAugment
from training.train_classifier import main as train_main

OFF = {"affine_p": 0.0, "flip_p": 0.0, "photometric_p": 0.0, "erase_p": 0.0}


def faces(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8))


def test_tensor_augment_with_everything_off_only_normalises():
    x = faces()
    out = TensorAugment(OFF, 48, [0.5], [0.25])(x)
    expected = (x.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    assert out.shape == (6, 1, 48, 48)
    assert torch.allclose(out, expected, atol=1e-4)


def test_tensor_augment_flip_mirrors_each_face():
    x = faces()
    out = TensorAugment({**OFF, "flip_p": 1.0}, 48, [0.0], [1.0])(x)
    assert torch.allclose(out, x.permute(0, 3, 1, 2).float().flip(-1) / 255, atol=1e-4)


def test_tensor_augment_erases_one_rectangle_per_face():
    x = torch.full((8, 48, 48, 1), 128, dtype=torch.uint8)
    torch.manual_seed(0)
    out = TensorAugment({**OFF, "erase_p": 1.0, "erase_max": 0.3}, 48, [0.5], [0.25])(x)
    base = (128 / 255 - 0.5) / 0.25
    for face in out[:, 0]:
        changed = (face - base).abs() > 1e-4
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        assert 0 < changed.sum() <= (0.3 * 48 + 1) ** 2
        # the erased pixels fill a rectangle (noise may equal the base value only by chance)
        box = changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.float().mean() > 0.95


def test_tensor_augment_draws_per_face_and_keeps_finite_values():
    torch.manual_seed(0)
    x = faces(1).repeat(16, 1, 1, 1)
    out = TensorAugment({}, 48, [0.5], [0.25])(x)
    assert torch.isfinite(out).all()
    assert len({round(float(o.sum()), 2) for o in out}) > 8  # same face, different draws


def _train(tmp_path, extra: list[str], name="toy"):
    npz = make_fake_fer(tmp_path / "fer.npz", per_split=(420, 70, 70))
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"""
name: {name}
architecture: emolens_vgg_s
input_size: 48
in_chans: 1
mean: [0.5]
std: [0.25]
epochs: 40
batch_size: 32
lr: 0.05
weight_decay: 0.0001
schedule: cosine
warmup_epochs: 1
label_smoothing: 0.1
seed: 0
augment_on: tensor
augment: {{affine_p: 0.0, erase_p: 0.0}}
""")
    assert train_main(["--config", str(cfg), "--data", str(npz), "--out", str(tmp_path / "w")] + extra) == 0
    return json.loads((tmp_path / "w" / f"{name}.json").read_text())


def test_time_budget_fixes_the_epoch_count_after_epoch_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    card = _train(tmp_path, ["--time-budget-min", "0.0001", "--half-weights"])
    recipe = card["training"]["recipe"]
    assert recipe["epochs"] == 2  # a tiny budget still trains the minimum of two epochs
    assert len(card["training"]["history"]) == 2
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "w" / "toy.safetensors"))
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    clf = EmotionClassifier.load("toy", tmp_path / "w")  # fp16 file, fp32 model
    assert next(clf.model.parameters()).dtype == torch.float32
    assert card["metrics"]["PublicTest"]["accuracy"] > 0.3


def _ensemble_dir(tmp_path):
    root = tmp_path / "w"
    root.mkdir()
    from safetensors.torch import save_file
    import timm

    base = {"task": "facial-emotion-classification", "architecture": "emolens_vgg_s", "input_size": 48,
            "in_chans": 1, "mean": [0.5], "std": [0.25], "classes": list(__import__("core.emotion.vocabulary").emotion.vocabulary.EMOTIONS)}
    for i in range(2):
        torch.manual_seed(i)
        net = timm.create_model("emolens_vgg_s", num_classes=7, in_chans=1).eval()
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / f"m{i}.safetensors"))
        (root / f"m{i}.json").write_text(json.dumps({**base, "name": f"m{i}", "weights": f"m{i}.safetensors"}))
    (root / "ens.json").write_text(json.dumps({**base, "name": "ens", "architecture": "emolens_ensemble",
                                               "members": ["m0", "m1"], "weights": "", "temperature": 1.5}))
    return root


def test_ensemble_card_averages_member_log_probabilities(tmp_path):
    root = _ensemble_dir(tmp_path)
    assert set(list_models(root)) == {"m0", "m1", "ens"}
    ens = EmotionClassifier.load("ens", root)
    assert isinstance(ens.model, LogitEnsemble)
    crops = [np.random.default_rng(i).integers(0, 256, (60, 60, 3), dtype=np.uint8) for i in range(3)]
    members = [EmotionClassifier.load(m, root).logits(crops) for m in ("m0", "m1")]
    expected = np.mean([log_probs(z) for z in members], axis=0)
    assert np.allclose(ens.logits(crops), expected, atol=1e-5)
    p = ens.predict(crops)
    assert np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.allclose(p, torch.softmax(torch.from_numpy(expected) / 1.5, 1).numpy(), atol=1e-5)


def test_ensemble_is_not_listed_without_its_members(tmp_path):
    root = _ensemble_dir(tmp_path)
    (root / "m1.json").unlink()
    assert "ens" not in list_models(root)


def test_ensemble_exports_to_onnx_with_equal_outputs(tmp_path):
    pytest.importorskip("onnxruntime")
    from core.emotion.onnx import OnnxEmotionClassifier

    ens = EmotionClassifier.load("ens", _ensemble_dir(tmp_path))
    crops = [np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)]
    assert np.allclose(OnnxEmotionClassifier(ens).logits(crops), ens.logits(crops), atol=1e-4)


def test_greedy_selection_adds_only_members_that_help():
    labels = np.array([0, 1, 2, 3] * 25)
    onehot = np.eye(7)[labels]
    rng = np.random.default_rng(0)
    good = onehot + rng.normal(0, 0.6, onehot.shape)  # mostly right
    other = onehot + rng.normal(0, 0.6, onehot.shape)  # right, with independent errors
    useless = rng.normal(0, 1, onehot.shape)
    path = greedy_selection({"good": good, "other": other, "useless": useless}, labels, max_members=3)
    accs = [step["accuracy"] for step in path]
    assert accs == sorted(accs) and len(set(accs)) == len(accs)  # each step strictly better
    assert "useless" not in path[-1]["members"]
    assert path[0]["members"][0] in ("good", "other")


def test_weight_files_lists_each_members_file(tmp_path):
    from core.emotion.card import ModelCard, weight_files

    root = _ensemble_dir(tmp_path)
    assert weight_files(ModelCard.load(root / "ens.json"), root) == [root / "m0.safetensors", root / "m1.safetensors"]
    assert weight_files(ModelCard.load(root / "m1.json"), root) == [root / "m1.safetensors"]


def test_ensemble_is_not_listed_when_a_members_weights_are_missing(tmp_path):
    root = _ensemble_dir(tmp_path)
    (root / "m0.safetensors").unlink()
    assert list_models(root) == ["m1"]
