"""The local and Ray engines give the same rows on real faces (scikit-image's photos, shipped model), a
broken file, a faceless image and a short generated video; interrupted runs (Ctrl-C in a Ray run, SIGKILL
of the CLI) resume and finish with every input exactly once. Ray runs on a private 2-CPU local instance."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.batch.engine import LocalEngine, run_batch
from core.batch.inputs import open_input
from core.batch.schema import BATCH_COLUMNS
from core.batch.work import BatchConfig
from core.emotion.vocabulary import EMOTIONS
from tests.conftest import ROOT

CONFIG = BatchConfig(fps=4, batch_size=2)
KEY = ["file", "frame", "face"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    import skimage.data

    root = tmp_path_factory.mktemp("media")
    (root / "people" / "more").mkdir(parents=True)
    astronaut = skimage.data.astronaut()
    Image.fromarray(astronaut).save(root / "people" / "astronaut.png")
    Image.fromarray(astronaut[:, ::-1]).save(root / "people" / "more" / "mirrored.jpg", quality=92)
    Image.fromarray(skimage.data.camera()).save(root / "people" / "cameraman.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(root / "noise.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    small = cv2.resize(cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), (256, 256))
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for i in range(20):  # 2 s: the astronaut slides right
        writer.write(np.roll(small, 2 * i, axis=1))
    writer.release()
    return root


@pytest.fixture(scope="module")
def ray_engine():
    ray = pytest.importorskip("ray")
    from core.batch.ray_engine import RayEngine

    engine = RayEngine(workers=2)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20)
    yield engine
    ray.shutdown()


@pytest.fixture(scope="module")
def local_rows(media, tmp_path_factory, shipped_weights) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("local") / "local.csv"
    summary = run_batch(media, out, CONFIG, engine=LocalEngine(), progress=False)
    assert (summary.processed, summary.failed) == (6, 1)
    return pd.read_csv(out)


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = (t.sort_values(KEY, na_position="first").reset_index(drop=True) for t in (a, b))
    assert a[KEY].fillna(-1).equals(b[KEY].fillna(-1))
    assert a["emotion"].fillna("").tolist() == b["emotion"].fillna("").tolist()
    assert a["error_code"].fillna("").tolist() == b["error_code"].fillna("").tolist()
    boxes = ["x1", "y1", "x2", "y2"]
    assert np.allclose(a[boxes].fillna(0), b[boxes].fillna(0), atol=1.0)  # within a pixel
    probs = [f"p_{e}" for e in EMOTIONS]
    assert np.allclose(a[probs].fillna(0), b[probs].fillna(0), atol=2e-3)


def test_local_rows_cover_faces_videos_and_errors(local_rows):
    rows = local_rows.set_index("file")
    assert tuple(local_rows.columns) == BATCH_COLUMNS
    assert rows.loc["people/astronaut.png", "emotion"] == "happy"
    assert rows.loc["broken.jpg", "error_code"] == "corrupt_image"
    assert rows.loc["noise.png", "error_code"] == "no_face"
    video = local_rows[local_rows.file == "clip.avi"]
    assert video["frame"].tolist() == [0, 3, 5, 8, 10, 13, 15, 18] and video["t_s"].iloc[1] == pytest.approx(0.3)
    assert (video["x1"].diff().dropna() > 0).all()  # the box follows the face


def test_ray_run_interrupted_then_resumed_gives_the_same_rows(media, tmp_path, ray_engine, local_rows):
    """Ctrl-C after 3 files of a Ray run to Parquet; the rerun does the other 3; rows equal the local engine's."""

    class CtrlCAfter:
        def __init__(self, k: int) -> None:
            self.k = k

        def run(self, job, config):
            for n, result in enumerate(ray_engine.run(job, config)):
                if n == self.k:
                    raise KeyboardInterrupt
                yield result

    out = tmp_path / "ray.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_batch(media, out, CONFIG, engine=CtrlCAfter(3), progress=False)
    assert pd.read_parquet(out)["file"].nunique() == 3
    summary = run_batch(media, out, CONFIG, engine=ray_engine, progress=False)
    assert (summary.skipped, summary.processed) == (3, 3)
    assert summary.times.detect > 0  # stage times come back from the actors
    table = pd.read_parquet(out)
    assert sorted(table["file"].unique()) == sorted(open_input(media).names)
    assert len(table) == len(local_rows)
    assert_same_rows(local_rows, table)


def test_killed_cli_run_resumes_with_every_input_once(media, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    image = (media / "people" / "astronaut.png").read_bytes()
    for i in range(30):
        (many / f"{i:02d}.png").write_bytes(image)
    out = tmp_path / "r.csv"
    journal = tmp_path / "r.csv.progress.jsonl"
    cmd = [sys.executable, "-m", "core", "batch", str(many), "--out", str(out), "--batch-size", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_text().count("\n") >= 3:  # the header line + 2 commits
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = pd.read_csv(out)["file"].nunique()
    assert 2 <= done < 30
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=300, capture_output=True)
    table = pd.read_csv(out)
    assert len(table) == 30 and sorted(table["file"]) == [f"{i:02d}.png" for i in range(30)]
