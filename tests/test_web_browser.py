"""End to end in real headless Chromium (Playwright): upload a photo on the home page, wait for the results,
check that a score, a polar and an azimuth are shown, and take screenshots.

Chromium is Debian's (/usr/bin/chromium; `apt-get install chromium`); Playwright never downloads a browser.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cadsearch.library import Library
from cadsearch.web.testing import FakeSearcher, running_server
from fakes import make_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(name="browser")
def browser_fixture():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_upload_and_see_results(browser, web_ws: Path, tmp_path: Path):
    upload = tmp_path / "my chair.jpg"
    # a real-looking query: one of the workspace's renders, enlarged like a photo
    shutil.copy(next((web_ws / "views" / "chair-s0-002").glob("0*[0-9].png")), tmp_path / "view.png")
    from PIL import Image

    Image.open(tmp_path / "view.png").convert("RGB").resize((480, 480)).save(upload, quality=92)

    app = make_app(web_ws, FakeSearcher(Library.open(web_ws)))
    with running_server(app) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/")
        page.screenshot(path=str(tmp_path / "home.png"), full_page=True)
        # choosing a file submits the form by itself (app.js); no click needed
        page.set_input_files("#image-input", str(upload))
        page.wait_for_url(re.compile(r".*/results/[A-Za-z0-9_-]+$"), timeout=15_000)
        page.wait_for_selector(".result .score-value")
        page.wait_for_function(
            "() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout=15_000
        )
        scores = page.locator(".score-value").all_inner_texts()
        polars = page.locator(".pose-item:has-text('Polar') .pose-value").all_inner_texts()
        azimuths = page.locator(".pose-item:has-text('Azimuth') .pose-value").all_inner_texts()
        assert scores and all(re.fullmatch(r"\d+(\.\d)?%", s) for s in scores)
        matches = page.locator(".match-value").all_inner_texts()
        assert len(matches) == len(scores) and all(re.fullmatch(r"\d+(\.\d)?%", s) for s in matches)
        assert re.fullmatch(r"(Exact match|No exact match — closest models in your library)\b.*",
                            page.inner_text(".verdict strong"))  # fmt: skip
        assert polars and all(re.fullmatch(r"\d+°", s) for s in polars)
        assert azimuths and all(re.fullmatch(r"\d+°", s) for s in azimuths)
        assert "my chair.jpg" in page.inner_text("main")
        page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
        page.click(".result.top .result-actions a")
        page.wait_for_selector("model-viewer")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(tmp_path / "model.png"))
        page.close()
    for name in ("home.png", "results.png", "model.png"):
        assert (tmp_path / name).stat().st_size > 10_000
