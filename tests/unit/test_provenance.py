"""training.provenance: the command, commit and machine every report records, and how reports are written."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.conftest import ROOT
from training import provenance
from training.recipe import load_recipe


def test_command_line_quotes_each_argument_so_it_can_be_pasted():
    assert provenance.command_line("training.evaluate_classifier", ["--model", "x"]) == \
        "python -m training.evaluate_classifier --model x"
    cmd = provenance.command_line("training.audit_fairness", ["--data", "my photos/set 1", "--limit", 60])
    assert cmd == "python -m training.audit_fairness --data 'my photos/set 1' --limit 60"
    assert provenance.command_line("training.x", []) == "python -m training.x"
    assert provenance.command_line("scripts/load_test_api.py", ["--json", Path("out.json")]) == \
        "python scripts/load_test_api.py --json out.json"


def test_command_line_defaults_to_this_process_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--json", "a b.json"])
    assert provenance.command_line("training.benchmark") == "python -m training.benchmark --json 'a b.json'"


def test_git_commit_is_the_code_commit_or_unknown():
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", provenance.git_commit())


def test_git_commit_is_unknown_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "CODE_DIR", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.git_commit() == "unknown"


def test_git_commit_is_unknown_without_git(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no git to run
    assert provenance.git_commit() == "unknown"


def test_write_report_stamps_and_writes_indented_json(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "git_commit", lambda: "c" * 40)
    path = tmp_path / "new" / "folder" / "report.json"
    report = provenance.write_report(path, {"accuracy": 0.5}, "training.evaluate_classifier",
                                     ["--split", "PrivateTest"], data="fer2013.npz", created=True)
    text = path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "accuracy": 0.5,')
    assert json.loads(text) == report
    assert report["command"] == "python -m training.evaluate_classifier --split PrivateTest"
    assert report["commit"] == "c" * 40 and report["data"] == "fer2013.npz"
    assert datetime.fromisoformat(report["created"]).utcoffset().total_seconds() == 0


def test_stamp_adds_only_what_is_asked(monkeypatch):
    monkeypatch.setattr(provenance, "git_commit", lambda: "unknown")
    report = provenance.stamp({"n": 1}, "training.run_experiments", ["--epochs", "3"])
    assert report == {"n": 1, "command": "python -m training.run_experiments --epochs 3", "commit": "unknown"}


def test_write_json_keeps_the_indent_it_is_given(tmp_path):
    path = provenance.write_json(tmp_path / "landmarks.json", {"a": [1]}, indent=1)
    assert path.read_text() == '{\n "a": [\n  1\n ]\n}\n'
    assert provenance.json_text({"a": 1}) == '{\n  "a": 1\n}\n'


def test_machine_state_has_the_fields_benchmarks_record():
    before = provenance.busy_state()
    assert len(before["load_avg_1_5_15"]) == 3 and isinstance(before["train_classifier_running"], bool)
    machine = provenance.machine(before)
    assert machine["cpus"] >= 1 and machine["before"] is before and set(machine["after"]) == set(before)


def test_importing_provenance_leaves_torch_and_timm_unloaded():
    code = "import sys, training.provenance; print(sorted({'torch', 'timm'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recipe_overrides_replace_only_what_was_given(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("epochs: 30\nlimit: null\nlr: 0.1\n")
    assert load_recipe(path, epochs=3, limit=None, half_weights=None) == {"epochs": 3, "limit": None, "lr": 0.1}
