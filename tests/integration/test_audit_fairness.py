"""The fairness audit on the real fairness set (`$EMOLENS_DATA_DIR/fairness`) and the shipped report."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from core import settings
from core.fairness.metrics import FairnessAudit
from core.datasets.labelled import read_labelled
from core.fairness.audit import SCOPE_COLUMN, attribute_candidates, audit_faces
from tests.conftest import ROOT, require

REPORT = ROOT / "weights" / "reports" / "fairness.json"


@pytest.fixture(scope="module")
def fairness_dir():
    path = settings.get().data_dir / "fairness"
    if not (path / "labels.csv").exists():
        require("EMOLENS_REQUIRE_DATA", f"the fairness set is not at {path}")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.audit_fairness", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


def test_reader_accepts_every_row_of_the_real_set(fairness_dir):
    ds = read_labelled(fairness_dir, strict=False)
    assert not ds.problems
    assert len(audit_faces(ds)) == len(pd.read_csv(fairness_dir / "labels.csv"))
    assert ds.subject_column == "subject" and SCOPE_COLUMN in ds.extra_columns
    assert attribute_candidates(ds) == ["gender", "age_group", "race"]  # not age in years, not provenance
    assert not isinstance(ds.images, dict)  # thousands of photos: read when analysed, not all up front


def test_cli_on_a_sample_keeps_the_contract(fairness_dir, shipped_weights, tmp_path):
    out, preds = tmp_path / "fairness.json", tmp_path / "predictions.csv"
    proc = run_cli("--data", str(fairness_dir), "--json", str(out), "--predictions", str(preds),
                   "--limit", "60", "--bootstrap", "200")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(out.read_text())
    assert report["command"].endswith("--limit 60 --bootstrap 200")
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", report["commit"])
    assert report["data"]["sha256"] == hashlib.sha256((fairness_dir / "labels.csv").read_bytes()).hexdigest()
    assert report["n_audited"] + report["n_failed_images"] == 60
    for key, groups in report["groups"].items():
        assert key.split("/")[0] in {"london", "imfdb_muxspace"}  # always within one source
        for group in groups.values():
            assert {"n", "accuracy", "accuracy_ci", "macro_f1"} <= set(group)
            assert group["accuracy_ci"][0] <= group["accuracy"] <= group["accuracy_ci"][1]
        assert {"accuracy", "macro_f1", "equal_opportunity", "prediction_rate"} <= set(report["gaps"][key])
    rows = pd.read_csv(preds)
    london, imfdb = rows[rows.source == "london"], rows[rows.source == "imfdb_muxspace"]
    assert (london.face == "detected").mean() >= 0.9   # full portraits: the detector finds the face
    assert (imfdb.face == "whole_image").mean() >= 0.8  # already face crops: classified whole
    assert set(rows.predicted.dropna()) <= set(report["overall"]["london"]["prediction_rate"])


def test_cli_bad_input_is_a_plain_message(tmp_path):
    proc = run_cli("--data", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "labels.csv").write_text("name,label\n")
    proc = run_cli("--data", str(tmp_path))
    assert proc.returncode == 2 and "needs the columns 'file' and 'emotion'" in proc.stderr


def test_shipped_report_is_reproducible_and_complete():
    report = json.loads(REPORT.read_text())
    assert report["command"].startswith("python -m training.audit_fairness --data ")
    assert re.fullmatch(r"[0-9a-f]{40}", report["commit"])
    assert {"london/gender", "london/race", "london/age_group", "imfdb_muxspace/gender"} <= set(report["groups"])
    assert report["bootstrap"]["resamples"] >= 1000
    audit = FairnessAudit.from_dict(report)
    for a in audit.attributes.values():
        assert sum(g.n for g in a.groups.values()) == a.n
        assert a.resampled_by == "subject"


def test_shipped_report_was_made_on_this_data(fairness_dir):
    report = json.loads(REPORT.read_text())
    assert report["data"]["sha256"] == hashlib.sha256((fairness_dir / "labels.csv").read_bytes()).hexdigest()
    assert report["n_rows"] == len(pd.read_csv(fairness_dir / "labels.csv"))
    assert "--limit" not in report["command"]
