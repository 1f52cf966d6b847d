"""The API as deployed: gunicorn on 127.0.0.1, real sockets, concurrent clients, an oversized body.

A short version of scripts/load_test_api.py (the 60 s, 16-client figures live in the README); it uses
a random tiny model so it needs no research data and no shipped weights.
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
        with script.gunicorn_server(workers=2) as (url, master):
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
