"""The shipped model and detectors on real photos (scikit-image's samples may be shipped)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.analysis import analyze_bytes, results_table
from core.emotion.vocabulary import EMOTIONS
from tests.conftest import ROOT, encode

# The astronaut's face, measured by hand on skimage.data.astronaut() (512x512).
ASTRONAUT_FACE = (170, 60, 280, 185)


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("detector", ["mediapipe", "mediapipe_full", "haar"])
def test_each_detector_finds_the_astronaut(detector, astronaut):
    from core.detection import make_detector

    found = make_detector(detector).detect(astronaut)
    assert len(found) == 1
    assert iou(found[0].box, ASTRONAUT_FACE) > 0.4


def test_pipeline_on_astronaut(pipeline, astronaut):
    faces = pipeline.analyze(astronaut)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].probs.sum(), 1.0, atol=1e-4)
    assert faces[0].label in EMOTIONS


def test_many_faces_in_one_image(pipeline, astronaut):
    import cv2

    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    grid = np.vstack([np.hstack([small] * 3)] * 2)  # six astronauts
    faces = pipeline.analyze(grid)
    assert len(faces) == 6
    centres = sorted((round((f.box[0] + f.box[2]) / 2 / 256 - 0.5), round((f.box[1] + f.box[3]) / 2 / 256 - 0.5))
                     for f in faces)
    assert centres == [(c, r) for c in range(3) for r in range(2)]


def test_no_face_photo(pipeline):
    import skimage.data

    assert pipeline.analyze(skimage.data.coffee()) == []


def test_analyze_bytes_reports_bad_input_as_error(pipeline):
    result = analyze_bytes(pipeline, "notes.txt", b"not an image at all")
    assert not result.ok and result.error_code == "unsupported_format"
    table = results_table([result])
    assert table.loc[0, "error"] == result.error


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "predict", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)


def test_cli_json_contract(tmp_path, astronaut, shipped_weights):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode(astronaut, "JPEG", quality=95))
    bad = tmp_path / "broken.png"
    bad.write_bytes(encode(astronaut, "PNG")[:5000])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    proc = run_cli(str(photo), str(bad), str(empty), str(tmp_path / "missing.jpg"), "--json")
    assert proc.returncode == 1, proc.stderr  # some inputs failed
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert [o["file"] for o in out] == [str(photo), str(bad), str(empty), str(tmp_path / "missing.jpg")]
    face = out[0]["faces"][0]
    assert set(face) >= {"box", "score", "emotion", "confidence", "probs"}
    assert list(face["probs"]) == list(EMOTIONS)
    assert abs(sum(face["probs"].values()) - 1) < 1e-3
    assert iou(face["box"], ASTRONAUT_FACE) > 0.4
    assert face["emotion"] == max(face["probs"], key=face["probs"].get)
    for o, word in zip(out[1:], ["damaged", "empty", "not found"]):
        assert "faces" not in o and word in o["error"]


def test_cli_human_output_and_detector_choice(tmp_path, astronaut, shipped_weights):
    photo = tmp_path / "a.png"
    photo.write_bytes(encode(astronaut))
    proc = run_cli(str(photo), "--detector", "haar")
    assert proc.returncode == 0, proc.stderr
    assert "face 1" in proc.stdout
    proc = run_cli(str(photo), "--detector", "nonexistent")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_cli_reads_regular_files_only_and_writes_valid_json_for_any_file_name(tmp_path, astronaut, shipped_weights):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # nobody writes to it: reading would block forever
    odd = os.fsencode(str(tmp_path)) + b"/caf\xe9.png"  # Latin-1 bytes: not a UTF-8 name
    with open(odd, "wb") as fh:
        fh.write(encode(astronaut, "PNG"))
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(11 * 2**20))
    proc = subprocess.run([sys.executable, "-m", "core", "predict", str(fifo), "/dev/zero", os.fsdecode(odd),
                           str(big), "--json"], cwd=ROOT, capture_output=True, timeout=180)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    text = proc.stdout.decode("utf-8")  # strict: no lone surrogates reach the output
    out = json.loads(text)
    assert [o.get("error_code") for o in out] == ["unreadable_file", "unreadable_file", None, "file_too_large"]
    assert "not a regular file" in out[0]["error"] and "not a regular file" in out[1]["error"]
    assert out[2]["file"].endswith("caf\\xe9.png") and out[2]["faces"]
    assert "\\udc" not in text
