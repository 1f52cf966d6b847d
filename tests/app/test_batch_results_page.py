"""The Batch Results page: a generated results file (images in folders, one video, errors) explored end to
end, by upload and by server path; malformed files get plain messages; server paths are off unless a results
folder is configured, and then nothing outside it can be opened or even probed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.batch.schema import BATCH_COLUMNS
from core.emotion.vocabulary import EMOTIONS
from tests.app.test_pages import all_text
from tests.conftest import ROOT, reread_settings

PAGE = "pages/7_Batch_Results.py"


def make_results() -> pd.DataFrame:
    """Rows as `python -m core batch` writes them: two folders of images, one video with a happy stretch."""
    rng = np.random.default_rng(0)
    rows = []

    def face(file, emotion, frame=None, t_s=None, face=1):
        p = np.full(7, 0.02)
        p[EMOTIONS.index(emotion)] = 0.88
        row = {"file": file, "frame": frame, "t_s": t_s, "face": face, "x1": 10.0, "y1": 10.0, "x2": 60.0,
               "y2": 60.0, "score": 0.9, "emotion": emotion, "confidence": round(float(rng.uniform(0.4, 0.95)), 4),
               **{f"p_{e}": float(v) for e, v in zip(EMOTIONS, p)}, "error": None, "error_code": None}
        rows.append(row)

    for i in range(12):
        face(f"party/img{i}.jpg", "happy" if i % 3 else "surprise")
        face(f"office/img{i}.jpg", "neutral" if i % 2 else "sad")
    for k in range(20):
        face("clips/talk.mp4", "happy" if 5 <= k < 15 else "neutral", frame=k * 10, t_s=k * 0.5)
    rows.append({"file": "party/broken.png", "error": "The PNG file is damaged.", "error_code": "corrupt_image"})
    rows.append({"file": "office/wall.jpg", "error": "no face found", "error_code": "no_face"})
    return pd.DataFrame(rows).reindex(columns=list(BATCH_COLUMNS))


@pytest.fixture()
def results_csv(tmp_path):
    path = tmp_path / "results.csv"
    make_results().to_csv(path, index=False)
    return path


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / PAGE), default_timeout=120)


def check_explored(at: AppTest) -> None:
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Files": "27", "Faces": "44", "Videos": "1", "Files without a face": "1",
                       "Files with errors": "1"}
    assert len(at.get("plotly_chart")) == 4  # shares, per folder, video timeline, confidence
    labels = {b.label for b in at.get("download_button")}
    assert {"Download shares overall (CSV)", "Download shares per folder (CSV)", "Download this timeline (CSV)",
            "Download confidence per emotion (CSV)", "Download the errors (CSV)"} <= labels
    errors = at.dataframe[-1].value
    assert errors["file"].tolist() == ["party/broken.png"] and errors["error_code"].tolist() == ["corrupt_image"]


def test_upload_a_results_file_and_explore_it(results_csv):
    at = page().run()
    assert not at.exception and "Waiting for a results file" in all_text(at)
    at.file_uploader[0].set_value(("results.csv", results_csv.read_bytes(), "text/csv")).run()
    check_explored(at)
    assert at.selectbox[0].value == "clips/talk.mp4"
    at.slider[0].set_value(0.0).run()
    assert not at.exception


def use_results_root(monkeypatch, root) -> None:
    monkeypatch.setenv("EMOLENS_BATCH_RESULTS_ROOT", str(root))
    reread_settings()


def open_path(text: str) -> AppTest:
    at = page().run()
    at.radio[0].set_value("A path on this machine").run()
    at.text_input[0].set_value(text).run()
    return at


def test_server_path_reads_csv_and_parquet_shards_below_the_root(results_csv, tmp_path, monkeypatch):
    folder = tmp_path / "results.parquet"
    folder.mkdir()
    table = make_results()
    table.iloc[:20].to_parquet(folder / "part-000001.parquet")
    table.iloc[20:].to_parquet(folder / "part-000002.parquet")
    (folder / "_progress.jsonl").write_text("{}\n")
    use_results_root(monkeypatch, tmp_path)
    for text in ("results.csv", "results.parquet", str(results_csv)):  # relative, or absolute inside the root
        check_explored(open_path(text))


def test_default_settings_open_no_server_path(monkeypatch):
    monkeypatch.delenv("EMOLENS_BATCH_RESULTS_ROOT", raising=False)
    reread_settings()
    at = page().run()
    assert not at.exception and not at.text_input and at.radio[0].options == ["Upload a file"]


def test_every_refused_path_gets_the_same_neutral_message(results_csv, tmp_path, monkeypatch):
    from core.batch.results import PATH_REFUSED

    root = tmp_path / "allowed"
    root.mkdir()
    outside = tmp_path / "secret.csv"
    make_results().to_csv(outside, index=False)  # a valid results file, but outside the root
    (root / "link.csv").symlink_to(outside)
    (root / "folder").mkdir()
    use_results_root(monkeypatch, root)
    attempts = ["../secret.csv", str(outside), "link.csv", "nope.csv", "folder/../../secret.csv", "/etc/passwd",
                "~nosuchuser/x.csv", "~/x.csv", "a/" * 3000 + "x.csv", "x" * 300 + ".csv", "/dev/zero"]
    for text in attempts:
        at = open_path(text)
        assert not at.exception, text
        assert [e.value for e in at.error] == [PATH_REFUSED], text
        assert "Traceback" not in all_text(at) and not at.get("plotly_chart")


HEADER = ",".join(BATCH_COLUMNS) + "\n"
BAD_NUMBERS = (HEADER + "a.png,,,one" + "," * (len(BATCH_COLUMNS) - 4) + "\n").encode()
ODD_EMOTION = make_results().assign(emotion="joy").to_csv(index=False).encode()


@pytest.mark.parametrize("name, data, words", [
    ("empty.csv", b"", "is empty"),
    ("other.csv", b"name,score\nx,1\n", "not an EmoLens batch results file"),
    ("photo.csv", bytes(range(256)) * 20, "could not be read as a CSV or Parquet table"),
    ("header_only.csv", (",".join(BATCH_COLUMNS) + "\n").encode(), "holds no rows"),
    ("bad_numbers.csv", BAD_NUMBERS, "not numbers"),
    ("odd_emotion.csv", ODD_EMOTION, "EmoLens does not know"),
])
def test_malformed_files_get_a_plain_message(name, data, words):
    at = page().run()
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    assert not at.exception
    assert len(at.error) == 1 and words in at.error[0].value
    assert "joy" not in at.error[0].value  # a message never echoes the file's cells
    assert "Traceback" not in all_text(at) and not at.get("plotly_chart")


def test_a_file_below_the_root_that_is_too_large_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from core import settings

    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * 4096)
    use_results_root(monkeypatch, tmp_path)
    settings.configure(batch_results_max_bytes=1024)
    at = open_path("big.csv")
    assert not at.exception and "the limit is" in at.error[0].value and str(tmp_path) not in at.error[0].value
