"""Batch at scale, without Ray: input listing (videos too), output format choice, row flattening, error rows,
video sampling, the journal that makes reruns resume (CSV and Parquet), and Ray being optional."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from core.analysis import ImageAnalysis
from core.batch.engine import LocalEngine, run_batch
from core.batch.inputs import BatchError, BatchItem, open_input
from core.batch.output import Journal, open_sink, output_format
from core.batch.schema import BATCH_COLUMNS
from core.batch.work import BatchConfig, analysis_rows, process_batch
from core.live.video_io import FrameSampler
from core.pipeline import FaceResult
from tests.conftest import ROOT
from tests.unit.test_api import make_tiny_weights
from tests.unit.test_batch import FixedDetector, img_bytes, make_zip


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from core.emotion.classifier import EmotionClassifier
    from core.pipeline import EmotionPipeline

    root = make_tiny_weights(tmp_path_factory.mktemp("weights"), "tiny")
    return EmotionPipeline(FixedDetector(), EmotionClassifier.load("tiny", root))


def write_video(path: Path, frames: int = 20, fps: float = 10, size: int = 96) -> Path:
    """A tiny generated clip written with OpenCV (MJPG in .avi, mp4v in .mp4)."""
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (size, size))
    rng = np.random.default_rng(1)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture()
def media(tmp_path) -> Path:
    root = tmp_path / "media"
    (root / "day1" / "cam").mkdir(parents=True)
    (root / "a.png").write_bytes(img_bytes(1))
    (root / "day1" / "b.jpg").write_bytes(img_bytes(2, "JPEG"))
    write_video(root / "day1" / "cam" / "clip.avi")
    write_video(root / "day1" / "clip.mp4", frames=10)
    (root / "day1" / ".hidden.mp4").write_bytes(b"x")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (root / "notes.txt").write_text("not media")
    return root


# ---- inputs ----------------------------------------------------------------------------------------

def test_folder_listing_is_recursive_with_videos_and_skips_clutter(media):
    with open_input(media) as inputs:
        assert inputs.names == ["a.png", "broken.png", "day1/b.jpg", "day1/clip.mp4", "day1/cam/clip.avi"]
        assert Path(inputs.spec.root).is_absolute()
        assert [inputs.reader.read(n).is_video for n in inputs.names] == [False, False, False, True, True]


def test_list_file_and_zip_listing(media, tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text(f"media/day1/clip.mp4\n# skip\n{media / 'a.png'}\n\nmedia/day1/clip.mp4\n")
    with open_input(lst) as inputs:
        assert inputs.kind == "list" and inputs.names == ["media/day1/clip.mp4", str(media / "a.png")]
        assert inputs.reader.read("media/day1/clip.mp4").path == media / "day1" / "clip.mp4"
    (tmp_path / "z.zip").write_bytes(make_zip({"x/a.png": img_bytes(1), "x/readme.txt": b"hi"}))
    with open_input(tmp_path / "z.zip") as inputs:
        assert inputs.kind == "zip" and inputs.names == ["x/a.png"]
        assert inputs.reader.read("x/a.png").data == img_bytes(1)


@pytest.mark.parametrize("out, fmt", [("r.csv", "csv"), ("R.CSV", "csv"), ("r.parquet", "parquet")])
def test_output_format_from_the_name(out, fmt):
    assert output_format(out) == fmt


def test_other_output_names_are_refused_before_any_work(media, tmp_path, pipeline):
    with pytest.raises(BatchError, match="must end in .csv or .parquet"):
        run_batch(media, tmp_path / "r.json", engine=LocalEngine(pipeline), progress=False)
    assert not list(tmp_path.glob("r.json*"))


# ---- rows ------------------------------------------------------------------------------------------

def test_face_rows_are_the_cli_contract_flattened():
    probs = np.array([0.1, 0, 0, 0.7, 0.1, 0, 0.1], np.float32)
    face = FaceResult(box=(1.04, 2.0, 30.0, 40.0), score=0.91234, probs=probs)
    [row] = analysis_rows(ImageAnalysis(file="v.mp4", faces=[face]), frame=12, t_s=0.4)
    assert tuple(row) == BATCH_COLUMNS
    assert row["file"] == "v.mp4" and row["frame"] == 12 and row["t_s"] == 0.4 and row["face"] == 1
    assert (row["x1"], row["y2"], row["score"], row["emotion"], row["confidence"]) == (1.0, 40.0, 0.9123, "happy", 0.7)
    assert row["p_happy"] == 0.7 and row["error"] is None and row["error_code"] is None
    [image_row] = analysis_rows(ImageAnalysis(file="a.png", faces=[face]))
    assert image_row["frame"] is None and image_row["t_s"] is None


def test_error_and_no_face_rows_have_blank_numbers():
    [err] = analysis_rows(ImageAnalysis(file="x", error_code="corrupt_image", error="Damaged."))
    [none] = analysis_rows(ImageAnalysis(file="y"))
    assert (err["error_code"], err["error"], none["error_code"], none["error"]) == (
        "corrupt_image", "Damaged.", "no_face", "no face found")
    for row in (err, none):
        assert all(row[c] is None for c in BATCH_COLUMNS if c not in ("file", "error", "error_code"))


def test_every_bad_input_is_one_error_row(pipeline, tmp_path):
    (tmp_path / "fake.mp4").write_bytes(b"%PDF-1.4 not a video" * 50)
    items = [BatchItem("missing.png", path=tmp_path / "missing.png"), BatchItem("junk.png", data=b"junk"),
             BatchItem("fake.mp4", path=tmp_path / "fake.mp4"), BatchItem("ok.png", data=img_bytes(3))]
    results = process_batch(pipeline, items)
    codes = [[r["error_code"] for r in res.rows] for res in results]
    assert codes == [["unreadable_file"], ["unsupported_format"], ["corrupt_video"], [None, None]]
    assert [res.ok for res in results] == [False, False, False, True]
    assert "mp4, webm or avi" in results[2].rows[0]["error"]


# ---- videos ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps, frames", [(2, [0, 5, 10, 15]), (0, list(range(20))), (3, [0, 3, 7, 10, 13, 17])])
def test_video_frames_sampled_at_the_requested_rate(media, fps, frames):
    data = (media / "day1" / "cam" / "clip.avi").read_bytes()
    got = [(f.index, f.t_s) for f in FrameSampler(data, fps=fps)]
    assert [i for i, _ in got] == frames
    assert [t for _, t in got] == pytest.approx([i / 10 for i in frames])


def test_video_rows_carry_frame_and_time(media, pipeline):
    [result] = process_batch(pipeline, [BatchItem("clip.avi", path=media / "day1" / "cam" / "clip.avi")],
                             BatchConfig(fps=5))
    assert result.ok and result.faces == 2 * 10  # FixedDetector: two faces on each of 10 sampled frames
    assert [(r["frame"], r["t_s"], r["face"]) for r in result.rows[:4]] == [(0, 0.0, 1), (0, 0.0, 2),
                                                                             (2, 0.2, 1), (2, 0.2, 2)]
    assert result.times.decode > 0 and result.times.detect > 0 and result.times.classify > 0


def test_a_video_without_faces_is_one_no_face_row(tmp_path, pipeline):
    write_video(tmp_path / "small.avi", size=48)  # FixedDetector finds nothing under 64 px
    [result] = process_batch(pipeline, [BatchItem("small.avi", path=tmp_path / "small.avi")])
    assert result.ok and [r["error_code"] for r in result.rows] == ["no_face"]


# ---- outputs and resume ----------------------------------------------------------------------------

class StopAfter(LocalEngine):
    """Ctrl-C after `k` files have been delivered."""

    def __init__(self, pipeline, k: int) -> None:
        super().__init__(pipeline)
        self.k = k

    def run(self, job, config):
        for n, result in enumerate(super().run(job, config)):
            if n == self.k:
                raise KeyboardInterrupt
            yield result


def files_once(table: pd.DataFrame, names: list[str]) -> None:
    per_file = table.groupby("file").size()
    assert sorted(per_file.index) == sorted(names)
    errors_or_faces = table.groupby("file")["face"].apply(lambda s: s.isna().sum() <= 1)
    assert errors_or_faces.all()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_interrupted_run_resumes_and_every_file_appears_once(media, tmp_path, pipeline, suffix):
    out = tmp_path / f"results{suffix}"
    config = BatchConfig(batch_size=2, fps=5)
    with pytest.raises(KeyboardInterrupt):
        run_batch(media, out, config, engine=StopAfter(pipeline, 3), progress=False)
    names = open_input(media).names
    sink = open_sink(out)
    assert len(sink.done) == 3  # 2 committed by the batch size, 1 more when the run stopped
    sink.close()
    summary = run_batch(media, out, config, engine=LocalEngine(pipeline), progress=False)
    assert (summary.skipped, summary.processed) == (3, 2)
    table = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert tuple(table.columns) == BATCH_COLUMNS
    files_once(table, names)
    assert table.loc[table.file == "day1/cam/clip.avi", "frame"].dropna().astype(int).tolist()[:4] == [0, 0, 2, 2]


def test_csv_rows_and_journal_lines_torn_by_a_kill_are_dropped(media, tmp_path, pipeline):
    out = tmp_path / "r.csv"
    config = BatchConfig(batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_batch(media, out, config, engine=StopAfter(pipeline, 2), progress=False)
    committed = out.read_text()
    with open(out, "a") as fh:  # a batch written but never committed, then a torn row
        fh.write("day1/clip.mp4,0,0.0,1,2.0,2.0,30.0,30.0,0.9,happy,0.5" + ",0.1" * 7 + ",,\nday1/b.jp")
    journal = out.with_name("r.csv.progress.jsonl")
    with open(journal, "a") as fh:
        fh.write('{"files": ["day1/clip.mp4"], "csv_by')  # the kill hit the journal line too
    run_batch(media, out, config, engine=LocalEngine(pipeline), progress=False)
    assert out.read_text().startswith(committed)
    files_once(pd.read_csv(out), open_input(media).names)
    assert len(Journal(journal).load()) >= 3 and journal.read_text().endswith("}\n")


def test_parquet_shards_no_journal_line_names_are_removed(media, tmp_path, pipeline):
    out = tmp_path / "r.parquet"
    config = BatchConfig(batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_batch(media, out, config, engine=StopAfter(pipeline, 2), progress=False)
    shards = sorted(p.name for p in out.glob("*.parquet"))
    (out / "part-000099.parquet").write_bytes((out / shards[0]).read_bytes())  # written, never committed
    (out / "part-000100.parquet.tmp").write_bytes(b"half")
    run_batch(media, out, config, engine=LocalEngine(pipeline), progress=False)
    assert not (out / "part-000099.parquet").exists() and not list(out.glob("*.tmp"))
    files_once(pd.read_parquet(out), open_input(media).names)


def test_foreign_outputs_are_refused(media, tmp_path, pipeline):
    folder = tmp_path / "x.parquet"
    folder.mkdir()
    pd.DataFrame({"a": [1]}).to_parquet(folder / "data.parquet")
    with pytest.raises(BatchError, match="not from an EmoLens batch run"):
        run_batch(media, folder, engine=LocalEngine(pipeline), progress=False)
    out = tmp_path / "r.csv"
    run_batch(media, out, BatchConfig(batch_size=2), engine=LocalEngine(pipeline), progress=False)
    out.write_text(out.read_text()[:40])
    with pytest.raises(BatchError, match="shorter than its progress journal"):
        run_batch(media, out, engine=LocalEngine(pipeline), progress=False)


def test_duplicate_deliveries_are_written_once(media, tmp_path, pipeline):
    class Twice(LocalEngine):
        def run(self, job, config):
            for result in super().run(job, config):
                yield result
                yield result  # e.g. a retried batch

    summary = run_batch(media, tmp_path / "r.csv", engine=Twice(pipeline), progress=False)
    assert summary.processed == 5
    files_once(pd.read_csv(tmp_path / "r.csv"), open_input(media).names)


# ---- Ray is optional -------------------------------------------------------------------------------

def test_local_engine_and_results_loading_never_import_ray():
    code = ("import sys, core.batch.engine, core.cli, core.batch.results, core.batch.output; "
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_ray_engine_without_ray_is_a_plain_message(monkeypatch, tmp_path, media, capsys):
    from core.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["batch", str(media), "--out", str(tmp_path / "r.csv"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert "requirements-scale.txt" in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_second_run_on_the_same_output_stops_and_changes_nothing(media, tmp_path, pipeline, suffix):
    out = tmp_path / f"results{suffix}"
    run_batch(media, out, BatchConfig(batch_size=2), engine=LocalEngine(pipeline), progress=False)
    first = open_sink(out)  # a run in progress holds the output
    before = sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*") if p.is_file())
    with pytest.raises(BatchError, match=f"Another batch run \\(process {os.getpid()}\\) is writing") as err:
        run_batch(media, out, engine=LocalEngine(pipeline), progress=False)
    assert "choose another --out" in err.value.message
    assert sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*") if p.is_file()) == before
    first.close()
    summary = run_batch(media, out, engine=LocalEngine(pipeline), progress=False)  # free again
    assert summary.processed == 0
    table = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    files_once(table, open_input(media).names)


def test_the_lock_of_a_killed_run_is_released(tmp_path):
    out = tmp_path / "results.csv"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from core.batch.output import open_sink; "
         "s = open_sink(sys.argv[1]); print('locked', flush=True); time.sleep(120)", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BatchError, match=f"process {holder.pid}"):
            open_sink(out)
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the OS drops the lock
        holder.wait(timeout=60)
    open_sink(out).close()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_names_that_are_not_utf8_are_kept_escaped_and_resume(tmp_path, pipeline, suffix):
    src = tmp_path / "in"
    src.mkdir()
    (src / "ok.png").write_bytes(img_bytes(1))
    with open(os.fsencode(str(src)) + b"/caf\xe9.png", "wb") as fh:  # Latin-1 bytes, as old cameras write
        fh.write(img_bytes(2))
    with open(os.fsencode(str(src)) + b"/a\\x41.png", "wb") as fh:  # a real name that looks like an escape
        fh.write(img_bytes(3))
    out = tmp_path / f"results{suffix}"
    first = run_batch(src, out, engine=LocalEngine(pipeline), progress=False)
    again = run_batch(src, out, engine=LocalEngine(pipeline), progress=False)
    assert (first.processed, first.failed, again.processed, again.skipped) == (3, 0, 0, 3)
    table = pd.read_csv(out, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(out)
    assert sorted(set(table["file"])) == ["a\\x41.png", "caf\\xe9.png", "ok.png"]
    assert (table["error_code"].fillna("") == "").all()


def test_a_video_longer_than_its_header_says_is_cut_with_a_note_row(tmp_path, pipeline, monkeypatch):
    """Frames are counted by decoding: a header that claims a short video (here: no length at all) does
    not let a long one through unnoticed; the cut is written as its own row."""
    from core import settings
    from core.live import video_io

    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "long.avi", frames=12)
    real_open = video_io.open_video

    def header_claiming_a_short_video(data):
        video, info = real_open(data)  # the real 1.2 s clip passes the header check...
        info.frames, info.duration_s = 1, 0.1  # ...as a container claiming one frame would
        settings.configure(video_max_seconds=0.5)  # and decoding then runs into the 0.5 s limit
        return video, info

    monkeypatch.setattr(video_io, "open_video", header_claiming_a_short_video)
    run_batch(src, tmp_path / "r.csv", BatchConfig(fps=0), engine=LocalEngine(pipeline), progress=False)
    table = pd.read_csv(tmp_path / "r.csv")
    notes = table[table["error_code"] == "video_truncated"]
    assert len(notes) == 1 and "Only the first 0.5 s were analysed" in notes["error"].iloc[0]
    frames = table["frame"].dropna()
    assert frames.max() < 12 and set(table["file"]) == {"long.avi"}
