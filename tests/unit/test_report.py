"""docs/REPORT.md and docs/slides.pptx are generated from weights/reports: stale docs fail here."""
from __future__ import annotations

import json
import shutil

from tests.conftest import reread_settings
from core import settings
from training.make_report import main as make_report, render_blocks
from training.report_tables import ReportInputs, confusion_table, table


def test_committed_report_and_slides_match_the_reports():
    assert make_report(["--check"]) == 0, "run `python -m training.make_report` and commit docs/"


def test_check_fails_when_a_report_changes(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    shutil.copytree(settings.get().weights_dir, weights, ignore=shutil.ignore_patterns("*.safetensors", "*.pt"))
    docs = tmp_path / "docs"
    shutil.copytree(settings.PROJECT_ROOT / "docs", docs)
    monkeypatch.setenv("EMOLENS_WEIGHTS_DIR", str(weights))
    reread_settings()
    args = ["--report", str(docs / "REPORT.md"), "--slides", str(docs / "slides.pptx")]
    assert make_report(args + ["--check"]) == 0
    path = weights / "reports" / "classifier_emotion_vgg_s_PrivateTest.json"
    rep = json.loads(path.read_text())
    rep["accuracy"] = 0.1234
    path.write_text(json.dumps(rep))
    assert make_report(args + ["--check"]) == 1
    assert make_report(args) == 0 and make_report(args + ["--check"]) == 0
    assert "12.34%" in (docs / "REPORT.md").read_text()


def test_blocks_are_filled_and_unknown_blocks_are_refused():
    inp = ReportInputs(cards={}, reports={"classifier_x": {
        "model": "x", "split": "PrivateTest", "n": 2, "accuracy": 0.5, "macro_f1": 0.4, "ece": 0.1,
        "classes": ["a", "b"], "confusion": [[1, 1], [0, 2]]}})
    text = "intro\n<!-- BEGIN:classifier -->\nold\n<!-- END:classifier -->\nend"
    out = render_blocks(text, inp)
    assert "old" not in out and "50.00%" in out and out.startswith("intro") and out.endswith("end")
    assert "| **a** | 50 | 50 |" in confusion_table(inp, "classifier_x")
    assert "not been measured" in render_blocks("<!-- BEGIN:detection -->\n\n<!-- END:detection -->", inp)
    try:
        render_blocks("<!-- BEGIN:nope -->\n\n<!-- END:nope -->", inp)
    except KeyError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("an unknown block must be refused")
    assert table(["a"], [["1"]]) == "| a |\n|---|\n| 1 |"


def test_ensemble_selection_block_says_what_was_chosen_and_whether_it_ships():
    from training.report_tables import ensemble_selection_table

    rep = {"split": "PublicTest", "chosen": ["a", "b"], "command": "python -m training.select_ensemble --name ens",
           "candidates": {"a": {"accuracy": 0.70, "accuracy_tta": 0.71}, "b": {"accuracy": 0.69, "accuracy_tta": 0.70},
                          "c": {"accuracy": 0.60, "accuracy_tta": 0.61}},
           "path": [{"members": ["a"], "accuracy": 0.71}, {"members": ["a", "b"], "accuracy": 0.72}]}
    shipped = ensemble_selection_table(ReportInputs(cards={"ens": {}, "a": {"architecture": "vgg"}},
                                                    reports={"ensemble_selection_fer2013": rep}))
    assert "shipped as `ens`" in shipped and "a + b: 72.00%" in shipped
    assert "| `a` | vgg | 70.00% | 71.00% | yes |" in shipped and "| `c` | not shipped | 60.00% | 61.00% |  |" in shipped
    unshipped = ensemble_selection_table(ReportInputs(cards={}, reports={"ensemble_selection_ferplus": rep}))
    assert "`ens` is not shipped" in unshipped


def test_detector_speed_block_lists_every_backend_and_the_photo_size():
    from training.report_tables import detector_speed_table

    rep = {"imgsz": 416, "threshold": 0.5445, "images": 2, "split": "val", "fastest": "onnxruntime_2t",
           "image_sizes": ["512x384", "341x512"], "load_avg_before": [0.5, 0.4, 0.3], "command": "python -m x",
           "backends": {"torch_2t": {"median_ms": 54.29, "p10_ms": 45.08, "rounds": 5},
                        "onnxruntime_2t": {"median_ms": 30.32, "p10_ms": 28.97, "rounds": 5}}}
    out = detector_speed_table(ReportInputs(cards={}, reports={"speed_detector": rep}))
    assert "| torch_2t | 54.3 | 45.1 | 5 |" in out and "| onnxruntime_2t | 30.3 | 29.0 | 5 |" in out
    assert "input 416" in out and "long side 512 px" in out and "`onnxruntime_2t`" in out
    assert "not been measured" in detector_speed_table(ReportInputs(cards={}, reports={}))
