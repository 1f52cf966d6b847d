"""Headless Chromium drives the Annotate page: upload a photo, relabel its face, download the labelled zip."""
from __future__ import annotations

import re

from core.datasets.labelled import read_labelled
from tests.browser.test_browser import (app_url, browser, docs_screenshot,  # noqa: F401  (server + Chromium fixtures)
                                        wait_until_idle)
from tests.conftest import ARTIFACTS, encode


def test_annotate_upload_relabel_export(app_url, browser, tmp_path, astronaut):  # noqa: F811
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode(astronaut, "JPEG"))
    page = browser.new_page(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url + "/Annotate", timeout=120_000)
    page.get_by_text("nothing is written to disk", exact=False).first.wait_for(timeout=180_000)
    page.locator("input[type='file']").first.set_input_files(str(photo))
    page.get_by_text("Reviewed 0 of 1 faces", exact=False).first.wait_for(timeout=180_000)

    caption = page.get_by_text(re.compile(r"Model: \w+")).first.inner_text()
    new = "fear" if "Model: sad" in caption else "sad"
    select = page.locator("[data-testid='stSelectbox']").filter(has_text="True emotion").first
    select.click()
    page.get_by_role("option", name=new, exact=True).click()
    page.get_by_text("Reviewed 1 of 1 faces", exact=False).first.wait_for(timeout=120_000)
    page.get_by_text("Every face is reviewed.").wait_for(timeout=30_000)
    # The success line renders before the download buttons further down the page; until the run ends they
    # still hold the previous run's zip (Streamlit shows them faded), so wait for the run to finish.
    wait_until_idle(page)

    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download labelled zip").click()
    download = info.value
    assert download.suggested_filename == "emolens_labelled.zip"
    labelled = read_labelled(open(download.path(), "rb").read())
    assert [(f.file, f.emotion, f.reviewed) for f in labelled.faces] == [("astronaut.jpg", new, True)]

    assert page.locator("[data-testid='stException']").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "screenshot_annotate.png"), full_page=True)
    docs_screenshot(page, "annotate_review")
    assert not errors, errors
    page.close()
