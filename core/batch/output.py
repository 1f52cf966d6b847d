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

Without its journal an output is not one to resume: a CSV with rows, or a folder holding Parquet files, is
refused with a plain message (choose another --out) and left as it is. Only a missing or empty CSV, or one
holding just our header (a run killed before its first journal line), starts a new run. Columns and their
types come from `core.batch.schema`.

One run at a time per output: `open_sink` first takes an exclusive lock (`results.csv.lock` beside the output,
held until the sink closes, released by the OS if the process dies), so a second run on the same --out stops
with a plain message instead of recovering, truncating or doubling the first one's rows.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from pathlib import Path
from typing import Any

from core.batch.inputs import BatchError
from core.batch.schema import BATCH_COLUMNS, arrow_schema
from core.batch.work import FileResult

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


def csv_text(rows: list[dict[str, Any]], header: bool = False) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BATCH_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and v != v) else v) for k, v in row.items()})
    return buf.getvalue()


def _empty_or_just(path: Path, header: bytes) -> bool:
    """True for an empty file or one holding only `header`: nothing a new run would overwrite."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(len(header) + 1) in (b"", header)


class OutputLock:
    """An exclusive `flock` on `<out>.lock`, holding the owner's process id so a refusal can name it."""

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (closed in release())
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            owner = self._fh.read(32).strip()
            self._fh.close()
            raise BatchError(f"Another batch run{f' (process {owner})' if owner.isdigit() else ''} is writing "
                             f"{out.name} now. Wait for it to finish, or choose another --out.") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()

    def release(self) -> None:
        if not self._fh.closed:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


class _Sink:
    """Shared bookkeeping: committed names, names waiting for the next commit, duplicate guard."""

    lock: OutputLock | None = None

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

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()


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
            header = csv_text([], header=True).encode()
            if out.exists() and not _empty_or_just(out, header):
                raise BatchError(f"{out} exists but is not an EmoLens batch results file that can be resumed (it "
                                 f"has no progress journal {self.journal.path.name} beside it); choose another "
                                 "--out or move it away.")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(header)
            self.journal.append({"files": [], "csv_bytes": len(header)})
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
        super().close()


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
        self._schema = arrow_schema()

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
        super().close()


def open_sink(out: str | Path) -> CsvSink | ParquetSink:
    """The sink for `out`, locked for this run and recovered to its last committed state (module docstring)."""
    out = Path(out)
    fmt = output_format(out)
    lock = OutputLock(out)  # before anything is read, truncated or deleted
    try:
        sink = CsvSink(out) if fmt == "csv" else ParquetSink(out)
    except BaseException:
        lock.release()
        raise
    sink.lock = lock
    return sink
