"""The Live Webcam page in a real browser: headless Chromium's fake camera streams over WebRTC (localhost, no
ICE server) and annotated frames come back; a generated video file gets a timeline and a CSV.

The fake camera shows a synthetic test pattern, not a face, so the stream test checks that frames arrive, are
processed by the server callback (the FPS/latency readout counts them) and are sent back to the page.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.browser.test_browser import CHROMIUM, CHROMIUM_ARGS, docs_screenshot, free_port
from tests.conftest import ARTIFACTS, ROOT, require

FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
WEBRTC_IFRAME = "iframe[title*='webrtc']"
SLOW = 300_000  # ms: first page load imports torch/MediaPipe and times the classifier backends; CPUs may be shared


@pytest.fixture(scope="module")
def live_app_url():
    """The app on a free localhost port; stopped (killed if it lingers) even when streams were left open."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        require("EMOLENS_REQUIRE_BROWSER", f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Streamlit server did not start within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
            headless=True, args=CHROMIUM_ARGS[1:] + FAKE_CAMERA, viewport={"width": 1400, "height": 1400})
        yield context
        context.close()


def processed_frames(page) -> int:
    found = re.search(r"(\d+) frames processed", page.inner_text("body"))
    return int(found.group(1)) if found else 0


def test_fake_camera_stream_is_processed_and_sent_back(live_app_url, camera_browser):
    page = camera_browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live_app_url + "/Live_Webcam")
    page.locator(WEBRTC_IFRAME).wait_for(timeout=SLOW)
    frame = page.frame_locator(WEBRTC_IFRAME)
    frame.get_by_role("button", name=re.compile("start", re.I)).click(timeout=SLOW)

    deadline = time.time() + 120
    while time.time() < deadline and processed_frames(page) < 10:
        page.wait_for_timeout(1000)
    first = processed_frames(page)
    assert first >= 10, "the server callback processed fewer than 10 frames in 120 s"
    deadline = time.time() + 60
    while time.time() < deadline and processed_frames(page) <= first + 5:
        page.wait_for_timeout(1000)
    assert processed_frames(page) > first + 5  # frames keep coming and the readout keeps updating

    video = frame.locator("video").first
    size = video.evaluate("v => [v.videoWidth, v.videoHeight, v.currentTime]")
    assert size[0] > 0 and size[1] > 0 and size[2] > 0  # annotated frames arrive back in the page
    fps = page.locator("[data-testid='stMetricValue']").first.inner_text()
    assert float(fps) > 0
    assert page.locator("[data-testid='stException']").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "screenshot_live_webcam.png"), full_page=True)
    docs_screenshot(page, "live_webcam")
    frame.get_by_role("button", name=re.compile("stop", re.I)).click()
    assert not errors, errors
    page.close()


def test_video_file_timeline_in_browser(live_app_url, camera_browser, tmp_path):
    import av

    from training.benchmark import generated_frames

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for rgb in generated_frames(20):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    clip = tmp_path / "face.mp4"
    clip.write_bytes(buf.getvalue())

    page = camera_browser.new_page()
    page.goto(live_app_url + "/Live_Webcam")
    page.get_by_role("tab", name=re.compile("Video file")).click(timeout=SLOW)
    page.locator("input[type='file']").first.set_input_files(str(clip))
    page.get_by_text("frames analysed", exact=False).first.wait_for(timeout=SLOW)
    assert "20 frames analysed" in page.inner_text("body")
    page.locator("[data-testid='stPlotlyChart']").first.wait_for(timeout=60_000)  # the timeline
    assert page.get_by_text("Download timeline (CSV)").count() == 1
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "screenshot_video_timeline.png"), full_page=True)
    docs_screenshot(page, "video_timeline")
    page.close()
