"""The zip pieces the labelled-set reader relies on: a capped read of one non-image member, the one zip
writer, and the reader on damaged zips (only ever a plain `LabelledSetError`, never a crash)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from core.archive import ArchiveError, SafeZip, UnsafePath, write_zip
from core.datasets.labelled import LabelledFace, LabelledSet, LabelledSetError, read_labelled, write_labels_zip
from tests.conftest import encode

IMG = encode(np.full((60, 80, 3), 90, np.uint8))


def test_read_member_caps_a_non_image_member_before_inflating_it():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("labels.csv", "file,emotion\n" + "a.png,happy\n" * 1000)
        zf.writestr("a.png", IMG)
    with SafeZip(buf.getvalue()) as archive:
        assert archive.names == ["a.png"] and archive.other_names == ["labels.csv"]
        assert archive.read_member("labels.csv", 20_000).startswith(b"file,emotion\n")
        with pytest.raises(ArchiveError, match="the limit is") as info:
            archive.read_member("labels.csv", 1000)
        assert info.value.code == "member_too_large"


def test_write_zip_refuses_names_that_escape_and_stores_images_as_they_are():
    data = write_zip([("happy/a.png", IMG), ("labels.csv", b"file,emotion\n" * 100)])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds == {"happy/a.png": zipfile.ZIP_STORED, "labels.csv": zipfile.ZIP_DEFLATED}
    for bad in ("../a.png", "/etc/a.png", "a\\b.png", "C:a.png", "", "dir/"):
        with pytest.raises(UnsafePath):
            write_zip([(bad, IMG)])


def test_the_reader_on_damaged_zips_only_ever_refuses_plainly():
    """Random byte damage to an Annotate export: read it, and use every image, strictly and tolerantly."""
    faces = [LabelledFace("a.png", (5, 5, 40, 40), "happy"), LabelledFace("b.png", None, "sad", extra={"g": "x"})]
    good = write_labels_zip(LabelledSet({"a.png": IMG, "b.png": IMG}, faces, ["g"]))
    rng = np.random.default_rng(0)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(300):
        data = bytearray(good)
        for pos in rng.integers(0, len(data), rng.integers(1, 6)):
            data[pos] = rng.integers(0, 256)
        for strict in (True, False):
            try:
                labelled = read_labelled(bytes(data), strict=strict)
                for name in labelled.images:
                    labelled.images[name]
                outcomes["read"] += 1
            except LabelledSetError as exc:
                assert exc.message and "Traceback" not in exc.message
                outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]
