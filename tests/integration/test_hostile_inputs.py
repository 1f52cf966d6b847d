"""Hostile and odd inputs, generated here, each with the code it must get: the same refusal gets the same
code from `python -m core predict` and from `python -m core batch`, never a traceback, and the run finishes
with every file once (the issue "Safe to deploy", and the cases found before it)."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, encode


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width x height over a few bytes of pixel data: a
    decompression bomb's header, tiny on disk."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(1024)))
            + _chunk(b"IEND", b""))


# name -> (bytes or None for a FIFO, expected code; None: analysed)
IMAGE_CASES: dict[str, tuple[bytes | None, str | None]] = {
    "empty.png": (b"", "empty_file"),
    "truncated.png": (None, "corrupt_image"),  # filled in by the fixture from a real photo
    "text.jpg": (b"these are notes, not a photo\n" * 10, "unsupported_format"),
    "bomb_header.png": (_png_claiming(30000, 30000), "too_many_pixels"),
    "over_limit.png": (_png_claiming(8000, 6000), "too_many_pixels"),  # 48 MP: over the 40 MP limit, no bomb
    "tiny.png": (encode(np.zeros((4, 4, 3), np.uint8)), "image_too_small"),
    "big.png": (b"\x89PNG\r\n\x1a\n" + bytes(11 * 2**20), "file_too_large"),
    "fifo.png": (None, "unreadable_file"),
    "photo.png": (None, None),
}


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory, astronaut_png) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name, (data, _) in IMAGE_CASES.items():
        if name == "fifo.png":
            os.mkfifo(root / name)  # nobody ever writes: a reader that opened it would hang
        elif name == "truncated.png":
            (root / name).write_bytes(astronaut_png[: len(astronaut_png) // 3])
        elif name == "photo.png":
            (root / name).write_bytes(astronaut_png)
        else:
            (root / name).write_bytes(data)
    with open(os.fsencode(str(root)) + b"/caf\xe9.png", "wb") as fh:  # not a UTF-8 name
        fh.write(astronaut_png)
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))  # a damaged video
    (root / "nothing.mp4").write_bytes(b"")
    return root


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, capture_output=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_predict_and_batch_give_each_refusal_the_same_code(hostile_folder, tmp_path, shipped_weights):
    names = sorted(IMAGE_CASES)
    predict = _run("predict", *names, "--json", cwd=hostile_folder)
    assert predict.returncode == 1 and b"Traceback" not in predict.stderr
    out = json.loads(predict.stdout.decode("utf-8"))  # strict UTF-8: no lone surrogates
    predict_codes = {o["file"]: o.get("error_code") for o in out}
    assert predict_codes == {n: IMAGE_CASES[n][1] for n in names}

    batch = _run("batch", str(hostile_folder), "--out", str(tmp_path / "r.csv"), "--no-progress", cwd=tmp_path)
    assert batch.returncode == 0 and b"Traceback" not in batch.stderr, batch.stderr[-2000:]
    table = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    per_file = table.groupby("file")["error_code"].agg(lambda s: sorted(set(s)))
    expected = {n: [c or ""] for n, (_, c) in IMAGE_CASES.items()}
    expected.update({"caf\\xe9.png": [""], "clip.mp4": ["corrupt_video"], "nothing.mp4": ["empty_file"]})
    assert per_file.to_dict() == expected  # every file exactly once (a face row or one error row)
    assert (table["error"].str.contains("Traceback") == False).all()  # noqa: E712
