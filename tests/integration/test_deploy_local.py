"""`make deploy-local` as a user would run it: nginx in front of the app and two API replicas on 127.0.0.1.
A prediction and a page load (over the proxied websocket) go through the proxy, then the slow-sender and
oversized-body attacks: nginx holds them, the API keeps answering."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.browser.test_browser import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.conftest import ROOT, encode, require

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, shipped_weights):
    if not os.path.exists(NGINX):
        require("EMOLENS_REQUIRE_NGINX", "nginx not found (apt-get install nginx)")
    port, app_port, api_port = free_port(), free_port(), free_port()
    while api_port + 1 in (port, app_port):
        api_port = free_port()
    env = {**os.environ, "PYTHON": sys.executable, "EMOLENS_DEPLOY_PORT": str(port),
           "EMOLENS_DEPLOY_APP_PORT": str(app_port), "EMOLENS_DEPLOY_API_PORT": str(api_port),
           "EMOLENS_DEPLOY_DIR": str(tmp_path_factory.mktemp("deploy"))}
    proc = subprocess.Popen(["bash", "deploy/local.sh"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if _get(url + "/_stcore/health")[0] == 200 and _get(url + "/api/healthz")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"deploy/local.sh stopped: {proc.stdout.read()[-2000:]}")
        time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("the deployment did not answer through nginx within 180 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_a_prediction_goes_through_the_proxy(deployment, astronaut):
    boundary = "emolensboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + encode(astronaut) + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(deployment + "/api/v1/predict", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        result = json.loads(resp.read())
    assert resp.status == 200 and result["faces"] and result["faces"][0]["emotion"] == "happy"


def test_the_app_renders_through_the_proxied_websocket(deployment):
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        require("EMOLENS_REQUIRE_BROWSER", f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     args=CHROMIUM_ARGS[1:], headless=True)
        page = browser.new_page()
        page.goto(deployment + "/", timeout=90_000)
        page.get_by_text("facial emotion analysis", exact=False).first.wait_for(timeout=90_000)
        browser.close()


def test_slow_senders_are_held_by_nginx_and_the_api_keeps_answering(deployment):
    port = int(deployment.rsplit(":", 1)[1])
    head = (b"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n")
    slow = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(head + b"--b")
        slow.append(s)
    worst = 0.0
    for _ in range(5):  # meanwhile the API answers at once: nginx has not passed the slow bodies on
        t0 = time.perf_counter()
        assert _get(deployment + "/api/healthz")[0] == 200
        worst = max(worst, time.perf_counter() - t0)
        time.sleep(0.5)
    assert worst < 1.0
    time.sleep(12)  # client_body_timeout is 10 s: nginx answers 408 (or just closes) and drops the upload
    for s in slow:
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
        s.close()
        assert received == b"" or received.startswith(b"HTTP/1.1 408")


def test_an_oversized_body_is_refused_by_nginx_before_it_is_sent(deployment):
    port = int(deployment.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                  b"boundary=b\r\nContent-Length: 400000000\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
