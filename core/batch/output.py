"""Where batch results go (CSV file or a folder of Parquet shards) and how a rerun knows what is done.

Resume rests on a small append-only journal beside the output (`results.csv.progress.jsonl`, or
`_progress.jsonl` inside a Parquet folder). Rows are written first; only after they are flushed and
fsynced does one journal line commit the batch: `{"files": [...], "csv_bytes": N}` or
`{"files": [...], "shard": "part-000007.parquet"}`. A line is one small write, so it is either whole or
torn; a torn last line is not a commit. A rerun therefore trusts exactly the committed state: it cuts the
CSV back to the committed size (dropping rows of a batch that was being written when the process died)
or deletes shards that no line names, and skips every committed file. A kill loses at most the batches
not yet committed, and every input appears exactly once when the job finishes. Appending one line per
batch keeps the cost flat however many files a job has (a rewritten manifest would grow with the job).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Protocol

from core.batch.inputs import BatchError
from core.batch.work import BATCH_COLUMNS, FileResult

FORMATS = {".csv": "csv", ".parquet": "parquet"}


def output_format(out: str | Path) -> str:
    """'csv' or 'parquet', from the name the user gave (`results.csv`, `results.parquet`)."""
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise BatchError(f"--out must end in .csv or .parquet (got {Path(out).name}).")
    return fmt


class Journal:
    """Append-only JSON lines; `load` keeps the whole lines and cuts a torn tail off the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records, good = [], 0
        with open(self.path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                try:
                    records.append(json.loads(line))
                except ValueError:
                    break
                good += len(line)
        if good != self.path.stat().st_size:
            os.truncate(self.path, good)
        return records

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _repair_tail(path: Path) -> None:
    """Drop a half-written last line (the process was killed mid-write) so appends stay well-formed."""
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        back = min(size, 1 << 20)
        fh.seek(size - back)
        cut = fh.read(back).rfind(b"\n")
        fh.truncate(size - back + cut + 1 if cut >= 0 else 0)


def completed_files(out: Path) -> set[str]:
    """Names already in a results CSV that has no journal (written before journals existed)."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    _repair_tail(out)
    with open(out, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return set()
        if header != BATCH_COLUMNS:
            raise BatchError(f"{out} exists but is not an EmoLens batch results file of this version (different "
                             "columns); choose another --out or move it away.")
        return {row[0] for row in reader if row}


def csv_text(rows: list[dict[str, Any]], header: bool = False) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BATCH_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and v != v) else v) for k, v in row.items()})
    return buf.getvalue()


class ResultSink(Protocol):
    """Receives finished files; `commit` makes everything written so far survive a crash."""

    done: set[str]
    pending: list[str]

    def write(self, result: FileResult) -> bool: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


class _Sink:
    """Shared bookkeeping: committed names, names waiting for the next commit, duplicate guard."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.pending: list[str] = []
        self._pending_set: set[str] = set()

    def _accept(self, name: str) -> bool:
        if name in self.done or name in self._pending_set:
            return False  # e.g. a retried batch delivered twice: every input appears exactly once
        self.pending.append(name)
        self._pending_set.add(name)
        return True

    def _committed(self) -> list[str]:
        names = self.pending
        self.done.update(names)
        self.pending, self._pending_set = [], set()
        return names

    def __enter__(self) -> "_Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass


class CsvSink(_Sink):
    """One CSV file, appended file by file; the journal records the committed size."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        self.journal = Journal(out.with_name(out.name + ".progress.jsonl"))
        records = self.journal.load()
        if records:
            committed = int(records[-1]["csv_bytes"])
            size = out.stat().st_size if out.exists() else -1
            if size < committed:
                raise BatchError(f"{out} is shorter than its progress journal {self.journal.path.name} says "
                                 "(was it edited or replaced?). Delete both to start over.")
            if size > committed:
                os.truncate(out, committed)  # rows of a batch that never committed
            for r in records:
                self.done.update(r["files"])
        else:
            legacy = completed_files(out)  # refuses a foreign CSV before anything is written
            out.parent.mkdir(parents=True, exist_ok=True)
            if not out.exists() or out.stat().st_size == 0:
                out.write_text(csv_text([], header=True), encoding="utf-8")
            self.done = legacy
            self.journal.append({"files": sorted(legacy), "csv_bytes": out.stat().st_size})
        self._fh = open(out, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, result: FileResult) -> bool:
        if not self._accept(result.name):
            return False
        self._fh.write(csv_text(result.rows))
        return True

    def commit(self) -> None:
        if not self.pending:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        size = os.fstat(self._fh.fileno()).st_size
        self.journal.append({"files": self._committed(), "csv_bytes": size})

    def close(self) -> None:
        self._fh.close()


def parquet_schema() -> Any:
    """Fixed column types, so every shard has the same schema (a shard without errors still has them)."""
    import pyarrow as pa

    types = {"file": pa.string(), "frame": pa.int64(), "face": pa.int64(), "emotion": pa.string(),
             "error": pa.string(), "error_code": pa.string()}
    return pa.schema([(c, types.get(c, pa.float64())) for c in BATCH_COLUMNS])


class ParquetSink(_Sink):
    """A folder of Parquet shards, one per committed batch; shards no journal line names are leftovers."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError as exc:
            raise BatchError("Parquet output needs pyarrow<22 (numpy 1.26): "
                             "pip install -r requirements-scale.txt, or write a .csv.") from exc
        if out.exists() and not out.is_dir():
            raise BatchError(f"{out} is a file; Parquet results are written as a folder of shards. "
                             "Choose another --out.")
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.journal = Journal(out / "_progress.jsonl")
        records = self.journal.load()
        shards = {r["shard"] for r in records if r.get("shard")}
        if not records and any(out.glob("*.parquet")):
            raise BatchError(f"{out} holds Parquet files that are not from an EmoLens batch run; "
                             "choose another --out.")
        for stray in [*out.glob("*.parquet"), *out.glob("*.tmp")]:
            if stray.name not in shards:
                stray.unlink()
        for r in records:
            self.done.update(r["files"])
        self._seq = 1 + max((int(s[5:11]) for s in shards), default=0)
        self._rows: list[dict[str, Any]] = []
        self._schema = parquet_schema()

    def write(self, result: FileResult) -> bool:
        if not self._accept(result.name):
            return False
        self._rows.extend(result.rows)
        return True

    def commit(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        name = f"part-{self._seq:06d}.parquet"
        tmp = self.out / (name + ".tmp")
        pq.write_table(pa.Table.from_pylist(self._rows, schema=self._schema), tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.out / name)
        self.journal.append({"files": self._committed(), "shard": name})
        self._rows = []
        self._seq += 1

    def close(self) -> None:
        self._rows = []


def open_sink(out: str | Path) -> CsvSink | ParquetSink:
    """The sink for `out`, recovered to its last committed state (see the module docstring)."""
    out = Path(out)
    return CsvSink(out) if output_format(out) == "csv" else ParquetSink(out)
