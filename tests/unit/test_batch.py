"""Safe zip reading (core.archive) and the resumable batch engine and CLI (core.batch, `python -m core batch`)."""
from __future__ import annotations

import csv
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core import settings
from core.analysis import results_table
from core.archive import (ArchiveLimits, CorruptArchive, MemberUnreadable, NotAZip, SafeZip, TooManyFiles,
                          UnsafePath, ZipBomb, is_image_name)
from core.batch.engine import LocalEngine, run_batch
from core.batch.inputs import BatchError, BatchItem, open_input
from core.batch.schema import BATCH_COLUMNS, FACE_COLUMNS
from core.batch.work import process_batch
from core.detection import Detection, FaceDetector
from core.validation import FileTooLarge
from tests.conftest import encode, reread_settings
from tests.unit.test_api import make_tiny_weights


def zip_members(source, limits=None):
    """Every image member of an archive as (name, bytes or per-file rejection), through the safe reader."""
    with SafeZip(source, limits) as archive:
        return list(archive)

RNG = np.random.default_rng(0)


def img_bytes(seed: int, fmt: str = "PNG", size: int = 64) -> bytes:
    return encode(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8), fmt)


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


# ---- core.archive ----------------------------------------------------------------------------------

def test_zip_yields_image_members_in_order_and_skips_clutter():
    a, b = img_bytes(1), img_bytes(2, "JPEG")
    data = make_zip({"x/": b"", "x/a.png": a, "x/.hidden.png": a, "__MACOSX/x/._a.png": b"junk", "notes.txt": b"hi",
                     "x/y/b.JPG": b, "x/c.heic": b"ftypheic"})
    got = list(zip_members(data))
    assert [n for n, _ in got] == ["x/a.png", "x/y/b.JPG", "x/c.heic"]
    assert got[0][1] == a and got[1][1] == b


def test_zip_from_path_and_file_object(tmp_path):
    data = make_zip({"a.png": img_bytes(1)})
    (tmp_path / "s.zip").write_bytes(data)
    assert SafeZip(tmp_path / "s.zip").names == ["a.png"]
    assert SafeZip(io.BytesIO(data)).names == ["a.png"]


@pytest.mark.parametrize("data, error", [
    (b"", NotAZip),
    (b"just some text", NotAZip),
    (img_bytes(3), NotAZip),
    (make_zip({"a.png": b"x" * 100})[:40], CorruptArchive),
    (b"PK\x03\x04" + bytes(RNG.integers(0, 255, 300, dtype=np.uint8)), CorruptArchive),
])
def test_not_a_zip_or_damaged(data, error):
    with pytest.raises(error) as e:
        list(zip_members(data))
    assert e.value.message[0].isupper() and e.value.message.endswith(".")


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:\\evil.png",
                                  "a\\..\\..\\evil.png", "ok/../../notes.txt"])
def test_path_traversal_is_refused(name):
    with pytest.raises(UnsafePath):
        SafeZip(make_zip({"fine.png": img_bytes(1), name: b"x"}))


def test_too_many_files():
    data = make_zip({f"{i}.png": b"x" for i in range(5)})
    assert len(SafeZip(data, ArchiveLimits(max_members=5))) == 5
    with pytest.raises(TooManyFiles):
        SafeZip(data, ArchiveLimits(max_members=4))
    junk = make_zip({f"{i}.txt": b"" for i in range(50)})
    with pytest.raises(TooManyFiles):
        SafeZip(junk, ArchiveLimits(max_entries=49))


def test_zip_bomb_by_ratio_is_refused_before_decompressing():
    data = make_zip({"fine.png": img_bytes(1), "bomb.png": b"\0" * 5_000_000})
    assert len(data) < 20_000
    with pytest.raises(ZipBomb, match="zip bomb"):
        SafeZip(data, ArchiveLimits(max_member_bytes=1_000_000))


def test_zip_bomb_by_total_size():
    data = make_zip({f"{i}.png": b"\0" * 400_000 for i in range(10)})
    with pytest.raises(ZipBomb, match="unpack to"):
        SafeZip(data, ArchiveLimits(max_member_bytes=500_000, max_total_bytes=3_000_000))
    assert len(SafeZip(data, ArchiveLimits(max_member_bytes=500_000, max_total_bytes=4_000_000))) == 10


def test_large_incompressible_member_is_a_per_file_error():
    big = bytes(RNG.integers(0, 255, 300_000, dtype=np.uint8))
    got = dict(zip_members(make_zip({"a.png": img_bytes(1), "big.png": big}),
                               ArchiveLimits(max_member_bytes=200_000)))
    assert isinstance(got["a.png"], bytes)
    assert isinstance(got["big.png"], FileTooLarge) and "0.3 MB" in got["big.png"].message


def test_damaged_and_encrypted_members_are_per_file_errors():
    a = img_bytes(1)
    data = bytearray(make_zip({"bad.png": a, "ok.png": a, "locked.png": a}, zipfile.ZIP_STORED))
    data[data.index(a) + 100] ^= 0xFF  # flip a byte inside the first member: CRC mismatch
    cd = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1)  # central record of the 2nd member
    cd = data.index(b"PK\x01\x02", cd + 1)  # ... of the 3rd
    flags = struct.unpack_from("<H", data, cd + 8)[0]
    struct.pack_into("<H", data, cd + 8, flags | 0x1)  # mark it encrypted
    got = dict(zip_members(bytes(data)))
    assert isinstance(got["bad.png"], MemberUnreadable) and "damaged" in got["bad.png"].message
    assert got["ok.png"] == a
    assert isinstance(got["locked.png"], MemberUnreadable) and "encrypted" in got["locked.png"].message


def test_is_image_name():
    assert is_image_name("a/B.JPEG") and is_image_name("x.tif") and is_image_name("x.heic")
    assert not is_image_name("a/.b.png") and not is_image_name("__MACOSX/a.png") and not is_image_name("a.csv")


# ---- core.batch --------------------------------------------------------------------------------------------

class FixedDetector(FaceDetector):
    """Two faces in every image of at least 64 px (so results are known without a real detector)."""

    name = "fixed"

    def _detect(self, image):
        if min(image.shape[:2]) < 64:
            return []
        return [Detection(box=(2, 2, 30, 30), score=0.9), Detection(box=(32, 32, 60, 60), score=0.8)]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from core.emotion.classifier import EmotionClassifier
    from core.pipeline import EmotionPipeline

    root = make_tiny_weights(tmp_path_factory.mktemp("weights"), "tiny")
    return EmotionPipeline(FixedDetector(), EmotionClassifier.load("tiny", root))


@pytest.fixture()
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.png").write_bytes(img_bytes(1))
    (root / "sub" / "b.jpg").write_bytes(img_bytes(2, "JPEG"))
    (root / "sub" / "deeper" / "c.webp").write_bytes(img_bytes(3, "WEBP", 32))  # too small for FixedDetector
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (root / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(img_bytes(4))
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_columns_are_results_table_plus_frame_time_and_error_code():
    table = tuple(results_table([]).columns)
    assert table == FACE_COLUMNS
    assert BATCH_COLUMNS == (table[0], "frame", "t_s", *table[1:], "error_code")


def test_folder_discovery_is_recursive_sorted_and_image_only(photos):
    with open_input(photos) as inputs:
        assert inputs.kind == "folder"
        assert inputs.names == ["a.png", "sub/b.jpg", "sub/broken.png", "sub/deeper/c.webp"]


def test_batch_rows_faces_no_face_and_errors(photos, tmp_path, pipeline):
    out = tmp_path / "results.csv"
    summary = run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    assert (summary.total, summary.processed, summary.skipped, summary.failed, summary.faces) == (4, 4, 0, 1, 4)
    rows = read_csv(out)
    assert tuple(rows[0]) == BATCH_COLUMNS
    assert [(r["file"], r["face"], r["error_code"]) for r in rows] == [
        ("a.png", "1", ""), ("a.png", "2", ""), ("sub/b.jpg", "1", ""), ("sub/b.jpg", "2", ""),
        ("sub/broken.png", "", "corrupt_image"), ("sub/deeper/c.webp", "", "no_face")]
    face = rows[0]
    assert face["emotion"] and abs(sum(float(face[f"p_{c}"]) for c in
                                       ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")) - 1) < 1e-3
    assert face["x1"] == "2.0" and face["score"] == "0.9"
    assert "damaged" in rows[4]["error"] and rows[5]["error"] == "no face found"


def test_resume_skips_done_files_and_appends_new_ones(photos, tmp_path, pipeline):
    out = tmp_path / "results.csv"
    run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    first = out.read_text()
    again = run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    assert (again.processed, again.skipped) == (0, 4) and out.read_text() == first
    (photos / "sub" / "new.png").write_bytes(img_bytes(9))
    more = run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    assert (more.processed, more.skipped) == (1, 4)
    rows = read_csv(out)
    assert [r["file"] for r in rows].count("sub/new.png") == 2 and [r["file"] for r in rows].count("a.png") == 2
    assert out.read_text().count("file,frame,t_s,face,") == 1  # one header


def test_resume_after_a_crash_mid_file(photos, tmp_path, pipeline):
    out = tmp_path / "results.csv"

    class CrashAfterTwo(LocalEngine):
        def run(self, items, config):
            for n, result in enumerate(super().run(items, config)):
                if n == 2:
                    raise KeyboardInterrupt
                yield result

    with pytest.raises(KeyboardInterrupt):
        run_batch(photos, out, engine=CrashAfterTwo(pipeline), progress=False)
    assert {r["file"] for r in read_csv(out)} == {"a.png", "sub/b.jpg"}
    with open(out, "a") as fh:
        fh.write("sub/broken.png,,,,")  # a half-written line, as a kill mid-write leaves it
    summary = run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    assert (summary.processed, summary.skipped) == (2, 2)
    rows = read_csv(out)
    assert [r["file"] for r in rows] == ["a.png", "a.png", "sub/b.jpg", "sub/b.jpg", "sub/broken.png",
                                         "sub/deeper/c.webp"]
    assert all(len(r) == len(BATCH_COLUMNS) and None not in r for r in rows)


def test_refuses_to_append_to_a_foreign_csv(photos, tmp_path, pipeline):
    out = tmp_path / "other.csv"
    out.write_text("name,score\nx,1\n")
    with pytest.raises(BatchError, match="not an EmoLens batch results file"):
        run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    assert out.read_text() == "name,score\nx,1\n"


def test_a_results_csv_without_its_journal_is_refused_untouched(photos, tmp_path, pipeline):
    out = tmp_path / "results.csv"
    run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    out.with_name("results.csv.progress.jsonl").unlink()
    before = out.read_bytes()
    with pytest.raises(BatchError, match="no progress journal results.csv.progress.jsonl") as err:
        run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    assert "choose another --out" in err.value.message and out.read_bytes() == before
    assert not out.with_name("results.csv.progress.jsonl").exists()


@pytest.mark.parametrize("content", ["", ",".join(BATCH_COLUMNS) + "\n"])
def test_an_empty_or_header_only_csv_without_journal_starts_a_new_run(photos, tmp_path, pipeline, content):
    out = tmp_path / "results.csv"  # e.g. a run killed between writing the header and its first journal line
    out.write_text(content)
    summary = run_batch(photos, out, engine=LocalEngine(pipeline), progress=False)
    assert (summary.processed, summary.skipped) == (4, 0)
    assert out.read_text().count("file,frame,t_s,") == 1 and len(read_csv(out)) == 6


def test_zip_input_gives_the_same_rows_as_the_folder(photos, tmp_path, pipeline):
    entries = {n: (photos / n).read_bytes() for n in open_input(photos).names}
    (tmp_path / "photos.zip").write_bytes(make_zip({**entries, "readme.txt": b"x", "__MACOSX/._a.png": b"j"}))
    run_batch(photos, tmp_path / "dir.csv", engine=LocalEngine(pipeline), progress=False)
    run_batch(tmp_path / "photos.zip", tmp_path / "zip.csv", engine=LocalEngine(pipeline), progress=False)
    assert (tmp_path / "dir.csv").read_text() == (tmp_path / "zip.csv").read_text()


def test_hostile_zip_stops_the_batch_with_a_typed_error(tmp_path, pipeline):
    (tmp_path / "evil.zip").write_bytes(make_zip({"../x.png": img_bytes(1)}))
    with pytest.raises(UnsafePath):
        run_batch(tmp_path / "evil.zip", tmp_path / "out.csv", engine=LocalEngine(pipeline), progress=False)
    assert not (tmp_path / "out.csv").exists()


def test_list_file_input(photos, tmp_path, pipeline):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# my selection\nphotos/a.png\n\n{photos / 'sub' / 'b.jpg'}\nphotos/missing.png\nphotos/a.png\n"
                   "photos/sub\n")
    out = tmp_path / "r.csv"
    summary = run_batch(lst, out, engine=LocalEngine(pipeline), progress=False)
    assert summary.total == 4  # duplicates and comments dropped
    rows = read_csv(out)
    codes = {r["file"]: r["error_code"] for r in rows}
    assert codes["photos/a.png"] == "" and codes[str(photos / "sub" / "b.jpg")] == ""
    assert codes["photos/missing.png"] == "unreadable_file" and codes["photos/sub"] == "unreadable_file"
    assert "not found" in next(r["error"] for r in rows if r["file"] == "photos/missing.png")


def test_bad_sources(tmp_path):
    with pytest.raises(BatchError, match="does not exist"):
        open_input(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(BatchError, match="not a folder, a .zip"):
        open_input(tmp_path / "x.csv")


def test_oversized_file_is_a_row_not_a_stop(photos, tmp_path, pipeline, monkeypatch):
    settings.configure(max_upload_bytes=5000)
    run_batch(photos, tmp_path / "r.csv", engine=LocalEngine(pipeline), progress=False)
    codes = {r["file"]: r["error_code"] for r in read_csv(tmp_path / "r.csv")}
    assert codes["a.png"] == "file_too_large"


def test_unexpected_failure_on_one_file_is_recorded_and_the_batch_goes_on(photos, tmp_path, pipeline):
    from core.pipeline import EmotionPipeline

    class FlakyDetector(FixedDetector):
        calls = 0

        def _detect(self, image):
            FlakyDetector.calls += 1
            if FlakyDetector.calls == 1:
                raise RuntimeError("native crash")
            return super()._detect(image)

    flaky = EmotionPipeline(FlakyDetector(), pipeline.classifier)
    summary = run_batch(photos, tmp_path / "r.csv", engine=LocalEngine(flaky), progress=False)
    codes = [r["error_code"] for r in read_csv(tmp_path / "r.csv")]
    assert codes[0] == "analysis_failed" and summary.processed == 4 and summary.failed == 2


def test_process_batch_never_raises(pipeline, tmp_path):
    items = [BatchItem("a", path=tmp_path / "nope.png"), BatchItem("b", data=b"junk"), BatchItem("c"),
             BatchItem("d", error=FileTooLarge("The file is too large."))]
    for result in process_batch(pipeline, items):
        assert not result.ok and len(result.rows) == 1 and result.rows[0]["error_code"]


# ---- the CLI ---------------------------------------------------------------------------------------

@pytest.fixture()
def tiny_default_model(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_WEIGHTS_DIR", str(make_tiny_weights(tmp_path / "w")))
    reread_settings()


def test_cli_batch_end_to_end_with_progress_and_resume(photos, tmp_path, tiny_default_model, capsys):
    from core.cli import main

    out = tmp_path / "res.csv"
    assert main(["batch", str(photos), "--out", str(out), "--detector", "haar"]) == 0
    captured = capsys.readouterr()
    assert "4/4" in captured.err and "file" in captured.err  # the tqdm bar
    assert "4 analysed now" in captured.out and "1 file(s) with errors" in captured.out
    assert {r["file"] for r in read_csv(out)} == {"a.png", "sub/b.jpg", "sub/broken.png", "sub/deeper/c.webp"}
    assert main(["batch", str(photos), "--out", str(out), "--no-progress"]) == 0
    assert "0 analysed now, 4 already in" in capsys.readouterr().out


def test_cli_batch_refusals_are_plain_messages(tmp_path, tiny_default_model, capsys):
    from core.cli import main

    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(make_zip({"b.png": b"\0" * 30_000_000}))
    assert main(["batch", str(bomb), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "zip bomb" in err and "Traceback" not in err
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o.csv"), "--engine", "warp"]) == 2
    assert "Unknown engine" in capsys.readouterr().err


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_zip_inside_the_input_is_a_row_with_its_own_code_never_opened(tmp_path, pipeline, as_zip):
    inner = make_zip({"hidden.png": img_bytes(5)})
    entries = {"a.png": img_bytes(1), "more/inner.zip": inner, "__MACOSX/._inner.zip": b"clutter"}
    if as_zip:
        source = tmp_path / "in.zip"
        source.write_bytes(make_zip(entries))
    else:
        source = tmp_path / "in"
        for name, data in entries.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(data)
    run_batch(source, tmp_path / "r.csv", engine=LocalEngine(pipeline), progress=False)
    rows = {r["file"]: r for r in read_csv(tmp_path / "r.csv")}
    assert set(rows) == {"a.png", "more/inner.zip"}  # the member of the inner zip is not read
    assert rows["more/inner.zip"]["error_code"] == "nested_archive"
    assert "not opened" in rows["more/inner.zip"]["error"]
