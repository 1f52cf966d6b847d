"""The Ray engine: the same `process_batch` on a stateful Ray Data actor pool, one pipeline per actor.

Ray Data holds only *names* (`{"name": ...}` rows); each actor opens the input itself (`ItemReader`),
loads its models once in `__init__` and turns a batch of names into per-file results (JSON strings), which
stream back to the driver as they finish; the driver writes and commits them (`core.batch.output`). So no
pixels pass through the object store (which could spill them to disk), and the store stays small.

Without an address a private local Ray instance is started (no dashboard, no usage stats, small object
store) and stopped at the end; with one (`HOST:6379`, or `auto`) the job joins that cluster, whose nodes
must have this project installed and see the input paths (a shared filesystem).
"""
from __future__ import annotations

import json
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from core import settings
from core.batch.inputs import BatchError, InputSpec, ItemReader
from core.batch.work import BatchConfig, FileResult, process_batch

if TYPE_CHECKING:
    from core.batch.engine import BatchJob

MISSING = ("The Ray engine needs the optional scale-out packages. Install them with "
           "`pip install -r requirements-scale.txt` (ray[data] and a pyarrow that works with numpy 1.26), "
           "or use --engine local.")


def import_ray() -> ModuleType:
    """`ray` with Ray Data, or a BatchError that says how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise BatchError(MISSING) from exc
    return ray


class BatchActor:
    """One per worker: builds the pipeline once, then analyses batch after batch of names."""

    def __init__(self, spec: InputSpec, config: BatchConfig, torch_threads: int) -> None:
        import torch

        import core  # noqa: F401  (offline switches in the worker too)

        torch.set_num_threads(max(1, torch_threads))
        self.config = config
        self.reader = ItemReader(spec)
        self.pipeline = config.make_pipeline()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        items = [self.reader.read(str(n)) for n in batch["name"]]
        results = process_batch(self.pipeline, items, self.config)
        return {"result": [json.dumps(r.to_json()) for r in results]}


def _worker_env() -> dict[str, str]:
    """Settings travel to workers as environment variables (weights folder, limits, offline switches)."""
    keep = ("EMOLENS_", "YOLO_", "NO_ALBUMENTATIONS", "HF_HUB_OFFLINE", "RAY_USAGE_STATS", "GLOG_", "TF_CPP")
    env = {k: v for k, v in os.environ.items() if k.startswith(keep)}
    env.update(OMP_NUM_THREADS=str(settings.get().batch_torch_threads), PYTHONPATH=os.pathsep.join(
        p for p in (str(settings.PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p))
    return env


class RayEngine:
    """Runs a batch job on Ray: a local instance by default, or the cluster at `address`."""

    def __init__(self, address: str | None = None, workers: int | None = None,
                 worker_cpus: float | None = None, **_: Any) -> None:
        self.ray = import_ray()  # fails here, before any output is opened, when Ray is not installed
        self.address = address
        self.workers = max(1, workers or 1)
        self.worker_cpus = worker_cpus

    def _start(self, ray: ModuleType) -> bool:
        """Start or join Ray; True when this engine started it (and so must stop it)."""
        if ray.is_initialized():
            return False
        common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                      runtime_env={"env_vars": _worker_env()})
        if self.address:
            try:
                ray.init(address=self.address, **common)
            except ConnectionError as exc:
                raise BatchError(
                    f"Could not join the Ray cluster at {self.address} ({exc}). Check the address. A cluster "
                    "started with token authentication (what `ray start` does by default) also needs "
                    "RAY_AUTH_MODE=token and the cluster's token here (~/.ray/auth_token or RAY_AUTH_TOKEN)."
                ) from None
        else:
            cpus = max(os.cpu_count() or 1, self.workers)
            # address="local": a new private instance even when `ray start` runs on this machine
            ray.init(address="local", num_cpus=cpus, object_store_memory=settings.get().ray_object_store_mb * 1024 * 1024,
                     **common)
        return True

    def actor_cpus(self, ray: ModuleType) -> float:
        """CPUs reserved per actor. On a cluster one each; on a small machine less, leaving room for
        Ray Data's own tasks: 2 actors at 1 CPU each on 2 CPUs wait forever on resources (measured)."""
        if self.worker_cpus:
            return self.worker_cpus
        cpus = float(ray.cluster_resources().get("CPU", 1))
        return 1.0 if cpus >= self.workers + 1 else max(0.1, round((cpus - 0.5) / self.workers, 2))

    def run(self, job: BatchJob, config: BatchConfig) -> Iterator[FileResult]:
        ray = self.ray
        started = self._start(ray)
        try:
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # run_batch draws one bar for the whole job
            ctx.print_on_execution_start = False
            n = len(job.names)
            size = max(1, min(config.batch_size, -(-n // self.workers)))  # a small job still feeds every actor
            blocks = max(1, min(-(-n // size), 10_000))
            ds = ray.data.from_items([{"name": name} for name in job.names], override_num_blocks=blocks)
            ds = ds.map_batches(BatchActor, batch_size=size, batch_format="numpy",
                                compute=ray.data.ActorPoolStrategy(size=self.workers),
                                num_cpus=self.actor_cpus(ray),
                                fn_constructor_kwargs={"spec": job.spec, "config": config,
                                                       "torch_threads": settings.get().batch_torch_threads})
            for row in ds.iter_rows():
                yield FileResult.from_json(json.loads(row["result"]))
        finally:
            if started:
                ray.shutdown()
