"""A real browser (headless Debian Chromium) loads the running app; screenshots go to artifacts/."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, ROOT, require

CHROMIUM = os.environ.get("EMOLENS_CHROMIUM", "/usr/bin/chromium")
# Set by `make screenshots` to docs/screenshots: the browser test then also writes the README's pictures.
DOCS_SCREENSHOTS = Path(os.environ["EMOLENS_DOCS_SCREENSHOTS"]) if os.environ.get("EMOLENS_DOCS_SCREENSHOTS") else None
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def wait_until_idle(page, timeout_ms: int = 90_000) -> None:
    """Wait for Streamlit's script run to finish and charts to draw (its status widget disappears)."""
    page.wait_for_timeout(500)
    try:
        page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=timeout_ms)
    except Exception:  # the widget may never show for a fast page
        pass
    page.wait_for_timeout(2500)


def docs_screenshot(page, name: str) -> None:
    """Under `make screenshots`, save what the viewport shows as docs/screenshots/<name>.jpg (README)."""
    if DOCS_SCREENSHOTS:
        wait_until_idle(page)
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.jpg"), type="jpeg", quality=70)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        require("EMOLENS_REQUIRE_BROWSER", f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the Streamlit server did not start within 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:  # a loaded machine may be slow to shut down: do not leave it running
        proc.kill()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                               args=CHROMIUM_ARGS[1:], headless=True)
        yield b
        b.close()


@pytest.mark.parametrize("path, expected", [
    ("/", "facial emotion analysis"),
    ("/Upload_and_Predict", "Upload and Predict"),
    ("/Annotate", "Annotate"),
    ("/Model_Comparison", "Model Comparison"),
    ("/Landmark_Analysis", "Landmark"),
    ("/Fairness_Audit", "Fairness"),
    ("/Batch_Results", "Batch"),
])
def test_page_renders_in_browser(app_url, browser, path, expected):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url + path)
    page.get_by_text(expected, exact=False).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    assert page.locator("[data-testid='stException']").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    name = "home" if path == "/" else path.strip("/").lower()
    page.screenshot(path=str(ARTIFACTS / f"screenshot_{name}.png"), full_page=True)
    docs_screenshot(page, name)
    assert not errors, errors
    page.close()


def test_upload_in_browser(app_url, browser, tmp_path, astronaut):
    from tests.conftest import encode

    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode(astronaut, "JPEG"))
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(app_url + "/Upload_and_Predict")
    page.locator("input[type='file']").first.set_input_files(str(photo))
    page.get_by_text("face(s) found", exact=False).first.wait_for(timeout=90_000)
    page.wait_for_timeout(2000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "screenshot_upload_result.png"), full_page=True)
    docs_screenshot(page, "upload_result")
    page.close()


def test_batch_results_explores_an_uploaded_file(app_url, browser, tmp_path):
    from tests.app.test_batch_results_page import make_results

    results = tmp_path / "results.csv"
    make_results().to_csv(results, index=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/Batch_Results")
    page.locator("input[type='file']").first.set_input_files(str(results))
    page.get_by_text("Files with errors", exact=False).first.wait_for(timeout=90_000)
    wait_until_idle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator(".js-plotly-plot").count() >= 2
    page.screenshot(path=str(ARTIFACTS / "screenshot_batch_results_loaded.png"), full_page=True)
    docs_screenshot(page, "batch_results_loaded")
    page.close()
