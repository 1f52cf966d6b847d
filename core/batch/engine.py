"""Batch analysis: a folder, a zip or a list of images and videos in, one row per face out; resumable.

The pieces (each its own module, so a worker imports only what it runs):
- `core.batch.inputs`: discovery (`open_input`) yields names; an `ItemReader` reads a name where the work runs.
- `core.batch.work`: `process_batch(pipeline, items)` is *all* the per-file work and never raises for a
  bad file. Both engines call it, so they give the same rows.
- engines map it over the names: `LocalEngine` here, in this process; `RayEngine` (`core.batch.ray_engine`,
  optional) on a Ray actor pool with one pipeline per actor.
- `core.batch.output`: a CSV or a folder of Parquet shards, plus the journal that makes reruns resume.
`run_batch` ties them together with a progress bar and a summary.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from core.analysis import ImageAnalysis, analyze_bytes
from core.archive import ArchiveLimits
from core.batch.inputs import InputSpec, ItemReader, open_input
from core.batch.output import open_sink, output_format
from core.batch.work import AnalysisFailed, BatchConfig, FileResult, StageTimes, process_batch
from core.pipeline import EmotionPipeline
from core.validation import ImageRejected

log = logging.getLogger(__name__)


def analyze_payload(pipeline: EmotionPipeline, name: str, payload: bytes | ImageRejected) -> ImageAnalysis:
    """`analyze_bytes` that never raises (the API's per-file path): a failure becomes an error result."""
    if isinstance(payload, ImageRejected):
        return ImageAnalysis(file=name, error_code=payload.code, error=payload.message)
    try:
        return analyze_bytes(pipeline, name, payload)
    except Exception:  # a bug or resource failure on one file must not stop a batch; logged without content
        log.exception("analysis failed on a %d-byte file", len(payload))
        err = AnalysisFailed()
        return ImageAnalysis(file=name, error_code=err.code, error=err.message)


@dataclass
class BatchJob:
    """The names still to do and where they come from. `reader` is this process's (an open zip); remote
    workers build their own from `spec`."""

    spec: InputSpec
    names: list[str]
    reader: ItemReader | None = None

    def local_reader(self) -> ItemReader:
        return self.reader or ItemReader(self.spec)


@dataclass
class BatchSummary:
    """What a run did, for the closing line and the benchmark."""

    total: int
    skipped: int
    processed: int = 0
    failed: int = 0
    faces: int = 0
    wall_s: float = 0.0
    times: StageTimes = field(default_factory=StageTimes)

    def add(self, result: FileResult) -> None:
        self.processed += 1
        self.failed += not result.ok
        self.faces += result.faces
        self.times.add(result.times)

    @property
    def files_per_s(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0


class Engine(Protocol):
    """Maps `process_batch` over a job's names, yielding each file's result as it finishes (any order)."""

    def run(self, job: BatchJob, config: BatchConfig) -> Iterator[FileResult]: ...


class LocalEngine:
    """One pipeline in this process, batch after batch. `threads` sets torch's intra-op threads (0: torch's
    default, one per core); on a busy machine 1 is faster, as OpenMP's spin-waits fight the other load."""

    def __init__(self, pipeline: EmotionPipeline | None = None, threads: int = 0) -> None:
        self._pipeline = pipeline
        self.threads = threads

    def run(self, job: BatchJob, config: BatchConfig) -> Iterator[FileResult]:
        if self.threads > 0:
            import torch

            torch.set_num_threads(self.threads)
        pipeline = self._pipeline or config.make_pipeline()
        reader = job.local_reader()
        size = max(1, config.batch_size)
        for start in range(0, len(job.names), size):
            items = [reader.read(n) for n in job.names[start:start + size]]
            yield from process_batch(pipeline, items, config)


def _ray_engine(**options: Any) -> Engine:
    from core.batch.ray_engine import RayEngine  # lazy: Ray is an optional extra

    return RayEngine(**options)


def _local_engine(threads: int = 0, **_: Any) -> Engine:
    return LocalEngine(threads=threads)


ENGINES: dict[str, Callable[..., Engine]] = {"local": _local_engine, "ray": _ray_engine}


def make_engine(name: str, **options: Any) -> Engine:
    """An engine by name; options go to the engine that uses them (local: threads; ray: address, workers)."""
    if name not in ENGINES:
        raise ValueError(f"Unknown engine {name!r}. Choose one of: {', '.join(ENGINES)}.")
    return ENGINES[name](**options)


def run_batch(source: str | Path, out: str | Path, config: BatchConfig | None = None,
              engine: str | Engine = "local", progress: bool = True,
              limits: ArchiveLimits | None = None) -> BatchSummary:
    """Analyse every file of `source` into `out` (.csv, or .parquet: a folder of shards), skipping done files.

    Results are committed every `config.batch_size` files and when the run stops for any reason (Ctrl-C
    included), so a rerun of the same command resumes where this one stopped.
    """
    from tqdm import tqdm

    config = config or BatchConfig()
    output_format(out)  # a wrong suffix is refused before anything is opened
    with open_input(source, limits) as inputs, open_sink(out) as sink:
        todo = [n for n in inputs.names if n not in sink.done]
        summary = BatchSummary(total=len(inputs.names), skipped=len(inputs.names) - len(todo))
        if not todo:
            return summary
        runner = make_engine(engine) if isinstance(engine, str) else engine
        start = time.perf_counter()
        with tqdm(total=len(todo), unit="file", disable=not progress, dynamic_ncols=True, smoothing=0.1) as bar:
            try:
                for result in runner.run(BatchJob(inputs.spec, todo, inputs.reader), config):
                    if not sink.write(result):
                        continue
                    summary.add(result)
                    bar.set_postfix(faces=summary.faces, errors=summary.failed, refresh=False)
                    bar.update(1)
                    if len(sink.pending) >= config.batch_size:
                        sink.commit()
            finally:
                sink.commit()  # what has fully arrived survives Ctrl-C; only batches in flight are lost
                summary.wall_s = time.perf_counter() - start
    return summary
