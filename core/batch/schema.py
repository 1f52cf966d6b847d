"""The batch results row, declared once: every column's name, order and type.

`python -m core batch` writes one row per face (or one row for a failed or faceless file) with these
columns, in this order, to a CSV or to Parquet shards; the Batch Results page reads them back; the Upload
page's per-face table (`core.analysis.results_table`) is the same row without the video and error-code
columns. The names, order and values are a public contract (tests/golden/expected_batch_folder.csv), so
writers and readers take them from here instead of listing them again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Any, Literal, Mapping

from core.emotion.vocabulary import EMOTIONS

if TYPE_CHECKING:
    import pyarrow as pa

Dtype = Literal["string", "int", "float"]

NO_FACE = "no_face"  # the error_code of a file analysed without finding a face (not a failure)
VIDEO_TRUNCATED = "video_truncated"  # a note row: the video was longer than the limit and only partly read


@dataclass(frozen=True)
class Column:
    """One column: its name, its type, and whether the Upload page's per-face table has it too."""

    name: str
    dtype: Dtype
    per_face: bool = True  # False: batch only (video frame and time, the stable error code)


COLUMNS: tuple[Column, ...] = (
    Column("file", "string"),
    Column("frame", "int", per_face=False),   # video frame index; blank for images
    Column("t_s", "float", per_face=False),   # video time in seconds (3 decimals); blank for images
    Column("face", "int"),                    # 1, 2, ... within the image or frame; blank without a face
    *(Column(c, "float") for c in ("x1", "y1", "x2", "y2", "score")),
    Column("emotion", "string"),
    Column("confidence", "float"),
    *(Column(f"p_{e}", "float") for e in EMOTIONS),
    Column("error", "string"),                # plain message (also "no face found")
    Column("error_code", "string", per_face=False),
)
BATCH_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
FACE_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.per_face)


def _typed(value: Any, dtype: Dtype) -> Any:
    if value is None or (isinstance(value, Real) and math.isnan(value)):  # numpy floats count too
        return None
    if dtype == "int":
        return int(value)
    if dtype == "float":
        return float(value)
    return str(value)


def batch_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """A complete row: every column in order, each value as its column's Python type (numpy scalars become
    int/float, so rows serialise to JSON for Ray), and blank (None; NaN counts as blank) where absent."""
    return {c.name: _typed(values.get(c.name), c.dtype) for c in COLUMNS}


def arrow_schema() -> "pa.Schema":
    """The Parquet schema: fixed types, so every shard matches (a shard without errors still has them)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}
    return pa.schema([(c.name, types[c.dtype]) for c in COLUMNS])
