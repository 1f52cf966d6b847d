"""The API as deployed: gunicorn on 127.0.0.1, real sockets, concurrent clients, an oversized body.

A short version of scripts/load_test_api.py (gunicorn with deploy/gunicorn.conf.py; the 60 s figures live in
the README); it uses a random tiny model so it needs no research data and no shipped weights.
"""
from __future__ import annotations

import http.client
import importlib.util
import json
import sys
from urllib.parse import urlparse

import pytest

from core import settings
from tests.conftest import ROOT
from tests.unit.test_api import make_tiny_weights


def _load_script():
    spec = importlib.util.spec_from_file_location("load_test_api", ROOT / "scripts" / "load_test_api.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    script = _load_script()
    weights = make_tiny_weights(tmp_path_factory.mktemp("weights"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOLENS_WEIGHTS_DIR", str(weights))  # inherited by gunicorn's workers
        # Clients here outnumber the heavy slots on 2 shared cores: they wait for a slot instead of a quick 503.
        with script.gunicorn_server(workers=2, env={"EMOLENS_API_BUSY_WAIT_S": "60"}) as (url, master):
            yield script, url, master


def test_concurrent_clients_under_gunicorn_get_no_error(server):
    script, url, master = server
    image = script.default_image()
    script.warm_up(url, image, "haar", workers=2)
    result = script.run_load(url, image, clients=6, duration_s=8, detector="haar", master=master, workers=2)
    assert result.requests >= 6 and result.errors == 0, result
    assert result.peak_rss_mb > 0


def test_oversized_body_gets_a_json_413_over_a_real_socket(server):
    _, url, _ = server
    conn = http.client.HTTPConnection(urlparse(url).hostname, urlparse(url).port, timeout=30)
    conn.putrequest("POST", "/v1/predict")
    conn.putheader("Content-Type", "multipart/form-data; boundary=b")
    conn.putheader("Content-Length", str(settings.get().api_max_request_bytes + 1))
    conn.endheaders()
    conn.send(b"--b\r\n")  # the server must answer from the headers, without reading 32 MB
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 413 and body["error"] == "request_too_large"


def test_garbage_over_a_real_socket_is_a_client_error(server):
    _, url, _ = server
    conn = http.client.HTTPConnection(urlparse(url).hostname, urlparse(url).port, timeout=30)
    conn.request("POST", "/v1/predict", body=b"\x00\xff" * 500, headers={"Content-Type": "multipart/form-data"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status in (400, 415, 422) and body["error"] and "Traceback" not in body["message"]


def test_healthz_stays_responsive_while_heavy_batches_arrive(server):
    """The tester's scenario, shortened: 2 clients sending 32 × 40 MP PNG batches; /healthz keeps answering
    and every such batch is refused from the image headers (nothing is decoded)."""
    script, url, master = server
    png = script.heavy_png(40)
    result = script.run_heavy(url, png, clients=2, duration_s=5, files=32, master=master)
    assert result.healthz_failures == 0 and result.healthz_polls >= 10, result
    assert result.healthz_p99_ms < 2000 and result.longest_request_ms < 30000, result
    assert set(result.refusals) == {"too_many_pixels"}, result


def test_decodable_batches_within_budget_leave_healthz_answering(server):
    """Batches that are within the budget and really decode (6 × 10 MP) occupy the heavy slots; /healthz
    still answers from the other threads, and extra batches get a quick 503 `busy` rather than a queue."""
    script, url, master = server
    png = script.heavy_png(10)
    result = script.run_heavy(url, png, clients=4, duration_s=6, files=6, master=master)
    assert result.healthz_failures == 0 and result.healthz_p99_ms < 2000, result
    assert set(result.refusals) <= {"busy"}, result
