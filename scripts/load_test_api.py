"""Load test of the REST API as deployed: gunicorn on 127.0.0.1, N concurrent clients, a bounded time.

    .venv/bin/python scripts/load_test_api.py --clients 16 --duration 60

Starts `gunicorn core.api:app` on a free local port, waits for /healthz, warms every worker (model
loading is not a request we want to time), then lets N client threads POST one image to
/v1/predict in a loop for `--duration` seconds. Prints throughput, latency percentiles, errors
(any non-200 or connection failure) and the peak resident memory of gunicorn (master + workers,
sampled every 0.2 s). Exit code 1 when any request failed. The image is scikit-image's astronaut
(a shippable sample photo) unless --image is given. Weights come from EMOLENS_WEIGHTS_DIR as usual.
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    requests: int
    errors: int
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    peak_rss_mb: float
    workers: int
    detector: str
    error_kinds: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn_server(workers: int = 2, threads: int = 1, timeout_s: int = 120,
                    start_timeout_s: float = 180.0) -> Iterator[tuple[str, psutil.Process]]:
    """`gunicorn core.api:app` on 127.0.0.1:<free port>; yields (base URL, master process)."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
           "--bind", f"127.0.0.1:{port}", "--timeout", str(timeout_s), "--graceful-timeout", "10",
           # --preload: import torch & co once in the master, workers fork ready (a slow import on a busy
           # machine would otherwise overrun the boot timeout); no control socket file in $HOME.
           "--preload", "--no-control-socket", "core.api:app"]
    log = tempfile.TemporaryFile()  # gunicorn's own log; shown only if it fails to start
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read().decode()[-3000:]}")
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /healthz within {start_timeout_s:.0f} s")
            time.sleep(0.5)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class MemorySampler(threading.Thread):
    """Peak RSS of a process tree (gunicorn master + workers), sampled in the background."""

    def __init__(self, proc: psutil.Process, every_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.proc, self.every_s, self.peak = proc, every_s, 0
        self._stop_event = threading.Event()

    def sample(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.peak = max(self.peak, self.sample())
            except psutil.Error:
                pass
            self._stop_event.wait(self.every_s)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def default_image() -> bytes:
    import skimage.data
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def run_load(url: str, image: bytes, clients: int, duration_s: float, detector: str,
             master: psutil.Process | None = None, workers: int = 0) -> LoadResult:
    """N threads POST `image` to /v1/predict until the deadline; every response is checked."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                resp = session.post(url + "/v1/predict", files={"image": ("astronaut.jpg", image, "image/jpeg")},
                                    data={"detector": detector}, timeout=180)
                ok = resp.status_code == 200 and "faces" in resp.json()
                kind = "" if ok else f"HTTP {resp.status_code}"
            except (requests.RequestException, ValueError) as exc:
                ok, kind = False, type(exc).__name__
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(ms)
                if not ok:
                    errors[kind] = errors.get(kind, 0) + 1

    sampler = MemorySampler(master) if master is not None else None
    if sampler:
        sampler.start()
    start = time.monotonic()
    deadline = start + duration_s
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    elapsed = time.monotonic() - start
    peak = sampler.stop() if sampler else 0
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return LoadResult(clients=clients, duration_s=round(elapsed, 1), requests=len(latencies),
                      errors=sum(errors.values()), throughput_rps=round(len(latencies) / elapsed, 2),
                      p50_ms=round(float(np.percentile(lat, 50)), 1), p90_ms=round(float(np.percentile(lat, 90)), 1),
                      p99_ms=round(float(np.percentile(lat, 99)), 1), max_ms=round(float(np.max(lat)), 1),
                      peak_rss_mb=round(peak / 2**20, 1), workers=workers, detector=detector, error_kinds=errors)


def warm_up(url: str, image: bytes, detector: str, workers: int) -> None:
    """Enough parallel requests that every worker has loaded its models before timing starts."""
    def one(_: int) -> None:
        requests.post(url + "/v1/predict", files={"image": ("w.jpg", image)}, data={"detector": detector},
                      timeout=300).raise_for_status()

    with ThreadPoolExecutor(max(2, workers * 2)) as pool:
        list(pool.map(one, range(max(2, workers * 4))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread when > 1)")
    parser.add_argument("--detector", default=None, help="detector name (default: the API's default)")
    parser.add_argument("--image", type=Path, default=None, help="image to send (default: the astronaut)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from core import settings
    from training import provenance

    detector = args.detector or settings.get().detector
    image = args.image.read_bytes() if args.image else default_image()
    print(f"gunicorn core.api:app, {args.workers} worker(s) x {args.threads} thread(s) on 127.0.0.1; "
          f"{args.clients} clients for {args.duration:.0f} s; detector {detector}; image {len(image) / 1e3:.0f} KB; "
          f"{os.cpu_count()} CPUs", flush=True)
    with gunicorn_server(args.workers, args.threads) as (url, master):
        warm_up(url, image, detector, args.workers)
        result = run_load(url, image, args.clients, args.duration, detector, master, args.workers)
    print(f"requests     {result.requests} in {result.duration_s} s")
    print(f"throughput   {result.throughput_rps} requests/s")
    print(f"latency      p50 {result.p50_ms:.0f} ms, p90 {result.p90_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, "
          f"max {result.max_ms:.0f} ms")
    print(f"errors       {result.errors}" + (f" {result.error_kinds}" if result.errors else ""))
    print(f"peak memory  {result.peak_rss_mb:.0f} MB RSS (gunicorn master + {args.workers} workers)")
    if args.json:
        provenance.write_report(args.json, asdict(result), "scripts/load_test_api.py", argv)
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
