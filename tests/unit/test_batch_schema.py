"""The batch row schema (core.batch.schema) is the one declaration every writer and reader follows: the
stored contract's header, the Upload page's table, the CSV and Parquet writers, and the results reader,
with types that survive a round trip through either format."""
from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from core.analysis import ImageAnalysis, results_table
from core.batch.output import open_sink
from core.batch.results import ResultsError, read_results, read_results_path
from core.batch.schema import BATCH_COLUMNS, COLUMNS, FACE_COLUMNS, NO_FACE, arrow_schema, batch_row
from core.batch.work import FileResult, analysis_rows
from core.emotion.vocabulary import EMOTIONS
from core.pipeline import FaceResult
from tests.conftest import ROOT

PANDAS_DTYPES = {"string": "object", "int": "Int64", "float": "float64"}


def sample_rows() -> list[dict]:
    """A video face, an image face, a failed file and a faceless one, as the batch writes them."""
    probs = np.array([0.05, 0.05, 0.05, 0.6, 0.1, 0.05, 0.1], np.float32)
    face = FaceResult(box=(1.04, 2.0, 30.0, 40.0), score=0.91234, probs=probs)
    return [*analysis_rows(ImageAnalysis(file="v.mp4", faces=[face]), frame=12, t_s=0.4),
            *analysis_rows(ImageAnalysis(file="dir/a.png", faces=[face, face])),
            *analysis_rows(ImageAnalysis(file="b.png", error_code="corrupt_image", error="Damaged.")),
            *analysis_rows(ImageAnalysis(file="c.png"))]


def test_the_declaration_is_the_stored_contract():
    with open(ROOT / "tests" / "golden" / "expected_batch_folder.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == BATCH_COLUMNS
    assert BATCH_COLUMNS[:4] == ("file", "frame", "t_s", "face") and BATCH_COLUMNS[-2:] == ("error", "error_code")
    names = {dtype: [c.name for c in COLUMNS if c.dtype == dtype] for dtype in ("string", "int", "float")}
    assert names["int"] == ["frame", "face"] and names["string"] == ["file", "emotion", "error", "error_code"]
    assert set(names["float"]) == {"t_s", "x1", "y1", "x2", "y2", "score", "confidence", *(f"p_{e}" for e in EMOTIONS)}


def test_upload_table_is_the_batch_row_without_video_and_code_columns():
    assert FACE_COLUMNS == tuple(c for c in BATCH_COLUMNS if c not in ("frame", "t_s", "error_code"))
    assert tuple(results_table([]).columns) == FACE_COLUMNS
    face = FaceResult(box=(1, 2, 3, 4), score=0.9, probs=np.full(7, 1 / 7, np.float32))
    table = results_table([ImageAnalysis(file="a.png", faces=[face]), ImageAnalysis(file="b.png")])
    assert tuple(table.columns) == FACE_COLUMNS and table["error"].tolist() == [None, "no face found"]


def test_batch_row_is_complete_ordered_and_plain_python():
    row = batch_row({"file": "a.png", "face": np.int64(2), "score": np.float32(0.5), "x1": float("nan"),
                     "unknown": 1})
    assert tuple(row) == BATCH_COLUMNS
    assert row["face"] == 2 and type(row["face"]) is int and type(row["score"]) is float
    assert row["x1"] is None and row["frame"] is None and "unknown" not in row
    for row in sample_rows():
        for col in COLUMNS:
            value = row[col.name]
            assert value is None or type(value) is {"string": str, "int": int, "float": float}[col.dtype]


def write(out, rows: list[dict]) -> None:
    with open_sink(out) as sink:
        sink.write(FileResult("all", rows, ok=True, faces=3))
        sink.commit()


def test_both_writers_follow_the_schema(tmp_path):
    import pyarrow.parquet as pq

    write(tmp_path / "r.csv", sample_rows())
    with open(tmp_path / "r.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == BATCH_COLUMNS
    write(tmp_path / "r.parquet", sample_rows())
    [shard] = (tmp_path / "r.parquet").glob("*.parquet")
    assert pq.read_schema(shard).remove_metadata().equals(arrow_schema())


def test_types_and_values_round_trip_through_csv_and_parquet(tmp_path):
    rows = sample_rows()
    write(tmp_path / "r.csv", rows)
    write(tmp_path / "r.parquet", rows)
    from_csv = read_results_path(tmp_path / "r.csv").table[list(BATCH_COLUMNS)]
    from_parquet = read_results_path(tmp_path / "r.parquet").table[list(BATCH_COLUMNS)]
    for table in (from_csv, from_parquet):
        assert {c.name: str(table[c.name].dtype) for c in COLUMNS} == {c.name: PANDAS_DTYPES[c.dtype] for c in COLUMNS}
        back = [{k: (None if v is pd.NA or (isinstance(v, float) and v != v) else v) for k, v in r.items()}
                for r in table.to_dict("records")]
        assert back == rows
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert from_csv["error_code"].tolist()[-1] == NO_FACE


def test_reader_refuses_fractions_in_whole_number_columns():
    table = pd.DataFrame([batch_row({"file": "a.png", "face": 1, "emotion": "happy", "confidence": 0.9})])
    table["face"] = 1.5
    with pytest.raises(ResultsError, match="face column of r.csv holds values that are not whole numbers"):
        read_results(table.to_csv(index=False).encode(), "r.csv")
