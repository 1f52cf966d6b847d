"""Load test of the REST API as deployed: gunicorn on 127.0.0.1, N concurrent clients, a bounded time.

    .venv/bin/python scripts/load_test_api.py --clients 16 --duration 60
    .venv/bin/python scripts/load_test_api.py --heavy --duration 60     # the "Safe to deploy" scenario

`--heavy`: 2 clients (`--clients`) each send 32-file batches of 16-bit PNGs that decode to 40 megapixels
(`--megapixels`) while a third thread polls /healthz every 0.1 s; prints /healthz p50/p99 latency, the
longest request, refusals by code (request-level and per-file) and peak worker RSS.
Gunicorn runs with deploy/gunicorn.conf.py (gthread); the rate limit is off unless --rate-limit is given.

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
def gunicorn_server(workers: int = 2, threads: int | None = None, start_timeout_s: float = 180.0,
                    rate_limit: str = "off", env: dict[str, str] | None = None
                    ) -> Iterator[tuple[str, psutil.Process]]:
    """`gunicorn -c deploy/gunicorn.conf.py core.api:app` on 127.0.0.1:<free port> (threads: the conf's
    default unless given); yields (base URL, master process). The conf preloads the app and has no
    control socket. A load generator is one address, so the rate limit is off unless asked for; `env`
    adds EMOLENS_* values for the server."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
           "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    if threads:
        cmd += ["--threads", str(threads)]
    cmd.append("core.api:app")
    env = {**os.environ, "EMOLENS_API_RATE_LIMIT": rate_limit, **(env or {})}
    log = tempfile.TemporaryFile()  # gunicorn's own log; shown only if it fails to start
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
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
        self.proc, self.every_s, self.peak, self.peak_worker = proc, every_s, 0, 0
        self._stop_event = threading.Event()

    def sample_workers(self) -> int:
        """The largest single worker's RSS (what one process may cost under this load)."""
        best = 0
        for p in self.proc.children(recursive=True):
            try:
                best = max(best, p.memory_info().rss)
            except psutil.Error:
                pass
        return best

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
                self.peak_worker = max(self.peak_worker, self.sample_workers())
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


def heavy_png(megapixels: float) -> bytes:
    """A 16-bit greyscale PNG of about `megapixels` (3:2): tiny on the wire, costly to decode."""
    from PIL import Image

    height = int((megapixels * 1e6 / 1.5) ** 0.5)
    width = int(height * 1.5)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width), np.uint16)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


@dataclass
class HeavyResult:
    clients: int
    duration_s: float
    requests: int
    healthz_polls: int
    healthz_failures: int
    healthz_p50_ms: float
    healthz_p99_ms: float
    healthz_max_ms: float
    longest_request_ms: float
    refusals: dict[str, int]
    peak_worker_rss_mb: float
    peak_total_rss_mb: float


def run_heavy(url: str, png: bytes, clients: int, duration_s: float, files: int = 32,
              master: psutil.Process | None = None) -> HeavyResult:
    """`clients` threads POST `files`-image batches of `png` while one thread polls /healthz (10 per second)."""
    lock = threading.Lock()
    request_ms: list[float] = []
    health_ms: list[float] = []
    health_failures = 0
    refusals: dict[str, int] = {}

    def count(code: str) -> None:
        refusals[code] = refusals.get(code, 0) + 1

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                resp = session.post(url + "/v1/predict/batch", timeout=180,
                                    files=[("images", (f"p{i}.png", png, "image/png")) for i in range(files)])
                body = resp.json()
                codes = ([body["error"]] if resp.status_code != 200 else
                         [r["error_code"] for r in body["results"] if "error_code" in r])
            except (requests.RequestException, ValueError, KeyError) as exc:
                codes = [type(exc).__name__]
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                request_ms.append(ms)
                for code in codes:
                    count(code)

    def poll_health() -> None:
        nonlocal health_failures
        session = requests.Session()
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                ok = session.get(url + "/healthz", timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            health_ms.append((time.perf_counter() - t0) * 1000)
            health_failures += not ok
            time.sleep(0.1)

    sampler = MemorySampler(master) if master is not None else None
    if sampler:
        sampler.start()
    start = time.monotonic()
    deadline = start + duration_s
    with ThreadPoolExecutor(clients + 1) as pool:
        pool.submit(poll_health)
        for _ in range(clients):
            pool.submit(client)
    elapsed = time.monotonic() - start
    if sampler:
        sampler.stop()
    health = np.array(health_ms) if health_ms else np.array([np.nan])
    return HeavyResult(clients=clients, duration_s=round(elapsed, 1), requests=len(request_ms),
                       healthz_polls=len(health_ms), healthz_failures=health_failures,
                       healthz_p50_ms=round(float(np.percentile(health, 50)), 1),
                       healthz_p99_ms=round(float(np.percentile(health, 99)), 1),
                       healthz_max_ms=round(float(np.max(health)), 1),
                       longest_request_ms=round(max(request_ms, default=0.0), 1), refusals=refusals,
                       peak_worker_rss_mb=round((sampler.peak_worker if sampler else 0) / 2**20, 1),
                       peak_total_rss_mb=round((sampler.peak if sampler else 0) / 2**20, 1))


def main_heavy(args: argparse.Namespace, argv: list[str] | None) -> int:
    """The "Safe to deploy" scenario: heavy batches must not starve /healthz."""
    from training import provenance

    png = heavy_png(args.megapixels)
    clients = args.clients if args.clients_given else 2
    print(f"gunicorn -c deploy/gunicorn.conf.py core.api:app, {args.workers} worker(s) on 127.0.0.1; {clients} "
          f"clients x {args.files} PNGs of {args.megapixels:g} MP (16-bit, {len(png) / 1e3:.0f} KB each) for "
          f"{args.duration:.0f} s, /healthz polled every 0.1 s; rate limit {args.rate_limit}; "
          f"{os.cpu_count()} CPUs", flush=True)
    with gunicorn_server(args.workers, args.threads, rate_limit=args.rate_limit) as (url, master):
        result = run_heavy(url, png, clients, args.duration, args.files, master)
    print(f"requests        {result.requests} in {result.duration_s} s")
    print(f"healthz         p50 {result.healthz_p50_ms:.0f} ms, p99 {result.healthz_p99_ms:.0f} ms, "
          f"max {result.healthz_max_ms:.0f} ms ({result.healthz_polls} polls, {result.healthz_failures} failed)")
    print(f"longest request {result.longest_request_ms:.0f} ms")
    print(f"refusals        {dict(sorted(result.refusals.items()))}")
    print(f"peak RSS        {result.peak_worker_rss_mb:.0f} MB largest worker, {result.peak_total_rss_mb:.0f} MB "
          f"master + workers")
    if args.json:
        provenance.write_report(args.json, asdict(result), "scripts/load_test_api.py", argv)
    return 1 if result.healthz_failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (16; --heavy: 2)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: the conf's)")
    parser.add_argument("--rate-limit", default="off", help='EMOLENS_API_RATE_LIMIT for the server (default off)')
    parser.add_argument("--heavy", action="store_true", help="heavy batches while polling /healthz")
    parser.add_argument("--files", type=int, default=32, help="--heavy: images per request")
    parser.add_argument("--megapixels", type=float, default=40.0, help="--heavy: megapixels per image")
    parser.add_argument("--detector", default=None, help="detector name (default: the API's default)")
    parser.add_argument("--image", type=Path, default=None, help="image to send (default: the astronaut)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.clients_given = args.clients is not None
    args.clients = args.clients or 16

    sys.path.insert(0, str(ROOT))
    if args.heavy:
        return main_heavy(args, argv)
    from core import settings
    from training import provenance

    detector = args.detector or settings.get().detector
    image = args.image.read_bytes() if args.image else default_image()
    print(f"gunicorn -c deploy/gunicorn.conf.py core.api:app, {args.workers} worker(s) x "
          f"{args.threads or settings.get().api_threads} thread(s) on 127.0.0.1; "
          f"{args.clients} clients for {args.duration:.0f} s; detector {detector}; image {len(image) / 1e3:.0f} KB; "
          f"{os.cpu_count()} CPUs", flush=True)
    with gunicorn_server(args.workers, args.threads, rate_limit=args.rate_limit) as (url, master):
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
