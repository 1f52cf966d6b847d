"""The public contracts survive refactoring: `python -m core predict --json` and `python -m core batch` give
the output stored in tests/golden/ (made with the CLI before `core/` moved into packages).

Numbers are compared to one unit of their printed rounding (4 decimals; boxes 1 decimal), since a CPU with
other vector instructions may round the last digit differently; every key, label, file and code must match.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.golden.make_inputs import astronaut_png, write_batch_folder

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _same(actual, expected, path: str = "$") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), f"{path}: keys differ"
        for k in expected:
            _same(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: length differs"
        for i, (a, e) in enumerate(zip(actual, expected)):
            _same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        tol = 0.11 if ".box" in path else 2e-4
        assert actual == pytest.approx(expected, abs=tol), f"{path}: {actual} != {expected}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def test_predict_json_matches_the_stored_contract(tmp_path, shipped_weights):
    (tmp_path / "astronaut.png").write_bytes(astronaut_png())
    run = _cli("predict", "astronaut.png", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    expected = json.loads((GOLDEN / "expected_predict_astronaut.json").read_text())
    _same(json.loads(run.stdout), expected)


def test_batch_csv_of_a_fixed_folder_matches_the_stored_output(tmp_path, shipped_weights):
    write_batch_folder(tmp_path / "folder")
    run = _cli("batch", "folder", "--out", "out.csv", "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    actual = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    expected = pd.read_csv(GOLDEN / "expected_batch_folder.csv", keep_default_na=False)
    assert list(actual.columns) == list(expected.columns)
    _same(actual.to_dict("records"), expected.to_dict("records"))
