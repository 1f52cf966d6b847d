"""The Batch Results page: a generated results file (images in folders, one video, errors) explored end to
end, by upload and by server path; malformed files get plain messages; the server path can be turned off."""
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


def test_server_path_reads_csv_and_parquet_shards(results_csv, tmp_path):
    folder = tmp_path / "results.parquet"
    folder.mkdir()
    table = make_results()
    table.iloc[:20].to_parquet(folder / "part-000001.parquet")
    table.iloc[20:].to_parquet(folder / "part-000002.parquet")
    (folder / "_progress.jsonl").write_text("{}\n")
    for path in (results_csv, folder):
        at = page().run()
        at.radio[0].set_value("A path on this machine").run()
        at.text_input[0].set_value(str(path)).run()
        check_explored(at)


HEADER = ",".join(BATCH_COLUMNS) + "\n"
BAD_NUMBERS = (HEADER + "a.png,,,one" + "," * (len(BATCH_COLUMNS) - 4) + "\n").encode()
ODD_EMOTION = make_results().assign(emotion="joy").to_csv(index=False).encode()


@pytest.mark.parametrize("name, data, words", [
    ("empty.csv", b"", "is empty"),
    ("other.csv", b"name,score\nx,1\n", "not an EmoLens batch results file"),
    ("photo.csv", bytes(range(256)) * 20, "could not be read as a CSV or Parquet table"),
    ("header_only.csv", (",".join(BATCH_COLUMNS) + "\n").encode(), "holds no rows"),
    ("bad_numbers.csv", BAD_NUMBERS, "not numbers"),
    ("odd_emotion.csv", ODD_EMOTION, "emotions EmoLens does not know"),
])
def test_malformed_files_get_a_plain_message(name, data, words):
    at = page().run()
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    assert not at.exception
    assert len(at.error) == 1 and words in at.error[0].value
    assert "Traceback" not in all_text(at) and not at.get("plotly_chart")


def test_missing_path_is_a_plain_message_and_paths_can_be_disabled(monkeypatch, tmp_path):
    at = page().run()
    at.radio[0].set_value("A path on this machine").run()
    at.text_input[0].set_value(str(tmp_path / "nope.csv")).run()
    assert not at.exception and "does not exist" in at.error[0].value
    monkeypatch.setenv("EMOLENS_BATCH_RESULTS_SERVER_PATHS", "0")
    reread_settings()
    at = page().run()
    assert not at.exception and not at.text_input and not at.radio[0].options[1:]
