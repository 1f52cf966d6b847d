"""Reading and summarising batch results (the Batch Results page's logic, importable without Streamlit).

A results file is whatever `python -m core batch` wrote: a CSV, one Parquet file, or a folder of Parquet
shards. Anything else (wrong columns, not a table, empty) becomes a `ResultsError` with a plain message,
so the page never shows a traceback. Columns come back in `core.batch.schema`'s order and types (text:
str or None; whole numbers: pandas' nullable Int64; decimals: float64) whichever format they came from.
Aggregates are small DataFrames the page charts and offers as CSVs.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from core import settings
from core.batch.schema import BATCH_COLUMNS, COLUMNS, NO_FACE, Column
from core.emotion.vocabulary import EMOTIONS
from core.errors import UserFacingError

REQUIRED = ("file", "face", "emotion", "confidence", "error")  # the columns every version has written
TOP_LEVEL = "(top level)"
PATH_REFUSED = ("This path cannot be opened. Give the path of a results file (CSV or Parquet) or a folder of "
                "Parquet shards, relative to the results folder this app is set up to read.")
MAX_PATH_CHARS = 1024
MAKE_ONE = "Results come from `python -m core batch INPUT --out results.csv` (or `.parquet`)."


class ResultsError(UserFacingError):
    """A file that is not usable batch results; `message` is for people."""

    code = "invalid_results"


@dataclass
class ResultsSummary:
    files: int
    faces: int
    no_face_files: int
    error_files: int
    videos: int


@dataclass
class BatchResults:
    """A validated results table (one row per face, error or faceless file) and where it came from."""

    table: pd.DataFrame
    source: str

    @property
    def faces(self) -> pd.DataFrame:
        return self.table[self.table["emotion"].notna()]

    def summary(self) -> ResultsSummary:
        t = self.table
        errors = t[t["error"].notna() & (t["error_code"] != NO_FACE)]
        no_face = t[t["error_code"] == NO_FACE]
        return ResultsSummary(files=t["file"].nunique(), faces=len(self.faces), no_face_files=no_face["file"].nunique(),
                              error_files=errors["file"].nunique(), videos=len(self.videos()))

    def videos(self) -> list[str]:
        """Files with per-frame rows, by name."""
        return sorted(self.faces.loc[self.faces["frame"].notna(), "file"].unique())


def validate(table: pd.DataFrame, source: str) -> BatchResults:
    """Check the columns and types; fill the columns older versions did not write."""
    if table.empty or not len(table.columns):
        raise ResultsError(f"{source} holds no rows. {MAKE_ONE}")
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ResultsError(f"{source} is not an EmoLens batch results file: it has no {', '.join(missing)} "
                           f"column{'s' if len(missing) > 1 else ''}. {MAKE_ONE}")
    table = table.reindex(columns=[*BATCH_COLUMNS, *[c for c in table.columns if c not in BATCH_COLUMNS]])
    for col in COLUMNS:
        table[col.name] = _typed_column(table[col.name], col, source)
    if table["file"].isna().any():
        raise ResultsError(f"Some rows of {source} have no file name. {MAKE_ONE}")
    unknown = set(table["emotion"].dropna()) - set(EMOTIONS)
    if unknown:  # the values themselves are not echoed: a message never carries a file's contents
        raise ResultsError(f"{source} names {len(unknown)} emotion(s) EmoLens does not know. {MAKE_ONE}")
    table["folder"] = [folder_of(f) for f in table["file"]]
    return BatchResults(table.reset_index(drop=True), source)


def _typed_column(values: pd.Series, col: Column, source: str) -> pd.Series:
    """One column as its schema type; blanks (empty text, NaN) become missing."""
    if col.dtype == "string":
        return values.astype(object).where(values.notna() & (values.astype(str) != ""), None)
    numbers = pd.to_numeric(values, errors="coerce")
    if (numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")).any():
        raise ResultsError(f"The {col.name} column of {source} holds values that are not numbers. {MAKE_ONE}")
    if col.dtype == "float":
        return numbers.astype("float64")
    if (numbers.dropna() % 1 != 0).any():
        raise ResultsError(f"The {col.name} column of {source} holds values that are not whole numbers. {MAKE_ONE}")
    return numbers.astype("Int64")


def folder_of(name: str) -> str:
    parent = str(PurePosixPath(str(name).replace("\\", "/")).parent)
    return TOP_LEVEL if parent in (".", "") else parent


def read_results(data: bytes, name: str) -> BatchResults:
    """Uploaded bytes: Parquet by its magic bytes, else CSV."""
    if not data:
        raise ResultsError(f"{name} is empty. {MAKE_ONE}")
    _check_size(len(data), name)
    return _parse(io.BytesIO(data), data[:4] == b"PAR1", name)


def resolve_results_path(text: str, root: Path) -> Path:
    """The results file (or folder of Parquet shards) that `text` names below `root`, resolved with every
    symlink followed. Anything else (outside the root, missing, not a file, too long, unreadable) gets the
    same `PATH_REFUSED` message, so the page tells nobody what exists on the server."""
    text = text.strip()
    if not text or len(text) > MAX_PATH_CHARS or "\x00" in text:
        raise ResultsError(PATH_REFUSED, code="path_refused")
    try:
        base = root.resolve(strict=True)
        target = (base / text).resolve(strict=True)  # an absolute `text` replaces `base`: checked below
        allowed = target.is_relative_to(base) and (target.is_file() or target.is_dir())
    except (OSError, RuntimeError, ValueError):  # too long, a loop of links, no permission, ...
        allowed = False
    if not allowed:
        raise ResultsError(PATH_REFUSED, code="path_refused")
    return target


def read_results_path(target: Path) -> BatchResults:
    """A results file or a folder of Parquet shards, resolved by `resolve_results_path`: sizes are checked
    with `stat` before anything is read, and the tables are parsed straight from the files."""
    if target.is_dir():
        shards = sorted(s for s in target.glob("*.parquet") if s.resolve().parent == target and s.is_file())
        if not shards:
            raise ResultsError(f"{target.name} is a folder without Parquet shards. {MAKE_ONE}")
        _check_size(sum(s.stat().st_size for s in shards), target.name)
        try:  # shard by shard: shards written by other tools may type an all-empty column differently
            return validate(pd.concat([pd.read_parquet(s) for s in shards], ignore_index=True), target.name)
        except ResultsError:
            raise
        except Exception:
            raise ResultsError(f"The Parquet shards in {target.name} could not be read. {MAKE_ONE}") from None
    size = target.stat().st_size
    if not size:
        raise ResultsError(f"{target.name} is empty. {MAKE_ONE}")
    _check_size(size, target.name)
    with open(target, "rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    return _parse(target, parquet, target.name)


def _check_size(size: int, name: str) -> None:
    limit = settings.get().batch_results_max_bytes
    if size > limit:
        raise ResultsError(f"{name} is {size / 2**20:.0f} MB; the limit is {limit / 2**20:.0f} MB. "
                           "Filter it first, or split the run.")


def _parse(source: Path | io.BytesIO, parquet: bool, name: str) -> BatchResults:
    try:
        table = pd.read_parquet(source) if parquet else pd.read_csv(source, low_memory=False)
    except ImportError:
        raise ResultsError("Reading Parquet needs pyarrow (pip install -r requirements-scale.txt).") from None
    except Exception:  # any parse failure of a foreign file is "not a table", never a traceback
        raise ResultsError(f"{name} could not be read as a CSV or Parquet table. {MAKE_ONE}") from None
    return validate(table, name)


# ---- aggregates ------------------------------------------------------------------------------------

def emotion_shares(results: BatchResults, by: str | None = None, top: int = 20) -> pd.DataFrame:
    """Faces and share per emotion, overall or per `by` (e.g. 'folder'); groups past `top` become 'other'."""
    faces = results.faces
    if by is None:
        counts = faces["emotion"].value_counts().reindex(EMOTIONS, fill_value=0)
        return pd.DataFrame({"emotion": EMOTIONS, "faces": counts.values,
                             "share": counts.values / max(1, counts.sum())})
    groups = faces[by].astype(str)
    keep = groups.value_counts().index[:top]
    groups = groups.where(groups.isin(keep), "other")
    counts = pd.crosstab(groups, faces["emotion"]).reindex(columns=EMOTIONS, fill_value=0)
    long = counts.stack().rename("faces").reset_index()
    long["share"] = long["faces"] / long.groupby(by)["faces"].transform("sum").clip(lower=1)
    return long


def video_timeline(results: BatchResults, file: str, smooth_s: float = 0.0) -> pd.DataFrame:
    """Per sampled time of one video: the share of its faces with each emotion, and a centred moving
    average over about `smooth_s` seconds (labels from single frames flicker; the trend is what matters)."""
    rows = results.faces[results.faces["file"] == file]
    if rows.empty:
        return pd.DataFrame(columns=["t_s", "emotion", "share", "smoothed"])
    counts = pd.crosstab(rows["t_s"], rows["emotion"]).reindex(columns=EMOTIONS, fill_value=0).sort_index()
    shares = counts.div(counts.sum(axis=1), axis=0)
    steps = pd.Series(shares.index).diff().dropna()
    dt = float(steps.median()) if len(steps) else 1.0
    window = max(1, int(round(smooth_s / dt)) if dt > 0 else 1)
    smoothed = shares.rolling(window, center=True, min_periods=1).mean()
    out = shares.stack().rename("share").to_frame().join(smoothed.stack().rename("smoothed")).reset_index()
    out.columns = ["t_s", "emotion", "share", "smoothed"]
    return out


def confidence_table(results: BatchResults) -> pd.DataFrame:
    return results.faces[["file", "emotion", "confidence"]].reset_index(drop=True)


def confidence_summary(results: BatchResults) -> pd.DataFrame:
    """Per predicted emotion: faces and confidence quartiles (the download behind the chart)."""
    g = results.faces.groupby("emotion")["confidence"]
    out = g.describe()[["count", "mean", "25%", "50%", "75%"]].reindex(EMOTIONS).dropna(how="all")
    return out.rename(columns={"count": "faces", "50%": "median"}).reset_index()


def errors_table(results: BatchResults) -> pd.DataFrame:
    """Files that failed (not the faceless ones), with their stable code and plain message."""
    t = results.table
    errors = t[t["error"].notna() & (t["error_code"] != NO_FACE)]
    return errors[["file", "error_code", "error"]].drop_duplicates().reset_index(drop=True)


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False).encode()
