"""Settings: read once into one frozen object; malformed variables stop with a message naming each."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import settings
from core.errors import UserFacingError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_units():
    s = settings.Settings.from_env({})
    assert s.max_upload_bytes == 10 * 2**20 and s.api_max_request_bytes == 32 * 2**20
    assert s.weights_dir == settings.PROJECT_ROOT / "weights" and s.reports_dir == s.weights_dir / "reports"
    assert s.batch_results_root is None and s.ice_servers == () and s.yolo_imgsz is None


def test_values_are_parsed_by_type():
    s = settings.Settings.from_env({"EMOLENS_MAX_UPLOAD_MB": "2.5", "EMOLENS_BATCH_SIZE": " 4 ",
                                    "EMOLENS_BATCH_RESULTS_ROOT": "/srv/results", "EMOLENS_WEIGHTS_DIR": "/w",
                                    "EMOLENS_YOLO_BACKEND": "Torch"})
    assert s.max_upload_bytes == int(2.5 * 2**20) and s.batch_size == 4
    assert s.batch_results_root == Path("/srv/results") and s.yolo_backend == "torch"
    assert s.reports_dir == Path("/w/reports")  # follows the weights folder unless set itself


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.get().max_upload_bytes = 1  # type: ignore[misc]


def test_every_malformed_variable_is_named_with_what_it_accepts():
    bad = {"EMOLENS_MAX_UPLOAD_MB": "ten", "EMOLENS_BATCH_SIZE": "0", "EMOLENS_API_MAX_BATCH_FILES": "3.5",
           "EMOLENS_LIVE_SMOOTHING_S": "-1", "EMOLENS_YOLO_BACKEND": "cuda",
           "EMOLENS_ICE_SERVERS": "{not json"}
    with pytest.raises(settings.SettingsError) as err:
        settings.Settings.from_env(bad)
    assert isinstance(err.value, UserFacingError) and err.value.code == "invalid_setting"
    text = err.value.message
    assert "6 settings are malformed" in text
    for var in bad:
        assert var in text
    assert "megabytes greater than 0" in text and "whole number of at least 1" in text and "number of at least 0" in text
    assert "one of auto, onnxruntime, torch" in text and "JSON list" in text


def test_configure_installs_a_changed_copy_and_refuses_unknown_names():
    before = settings.get()
    after = settings.configure(batch_size=3)
    assert after.batch_size == 3 and settings.get() is after and after is not before
    assert dataclasses.replace(after, batch_size=before.batch_size) == before  # nothing else changed
    with pytest.raises(TypeError):
        settings.configure(no_such_setting=1)


def test_cli_stops_with_a_plain_message_on_a_malformed_variable(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMOLENS_MAX_UPLOAD_MB": "lots"}
    run = subprocess.run([sys.executable, "-m", "core", "predict", "x.png"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "EMOLENS_MAX_UPLOAD_MB='lots' is not valid" in run.stderr and "Traceback" not in run.stderr
