"""End to end in real headless Chromium (Playwright): upload a photo on the home page, wait for the results,
check that a score, a polar and an azimuth are shown, and take screenshots; a registered result's roll and fit are
shown and its 3D view opens turned by the roll (the viewer's computed CSS transform).

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


def _rotation_deg(transform: str) -> float:
    """The turn of a computed CSS ``transform`` (``matrix(a, b, c, d, e, f)``), degrees, clockwise as CSS turns."""
    import math

    a, b = (float(v) for v in re.fullmatch(r"matrix\(([^,]+), ([^,]+),.*\)", transform).groups())
    return math.degrees(math.atan2(b, a))


def test_registered_result_opens_the_3d_view_turned_by_its_roll(browser, web_ws: Path, tmp_path: Path):
    import io

    import numpy as np
    from PIL import Image

    upload = tmp_path / "tilted chair.png"
    Image.open(next((web_ws / "views" / "chair-s0-001").glob("0*[0-9].png"))).convert("RGB").resize((320, 320)).save(
        upload
    )
    searcher = FakeSearcher(Library.open(web_ws), registered=True)
    top = searcher.search(np.asarray(Image.open(io.BytesIO(upload.read_bytes())).convert("RGB")), 5).results[0]
    app = make_app(web_ws, searcher)
    with running_server(app) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/")
        page.set_input_files("#image-input", str(upload))
        page.wait_for_url(re.compile(r".*/results/[A-Za-z0-9_-]+$"), timeout=15_000)
        rolls = page.locator(".pose-item:has-text('Roll') .pose-value").all_inner_texts()
        assert rolls and rolls[0] == f"{round(top.roll_deg)}°"
        assert page.locator(".fit-value").first.inner_text() == f"{top.silhouette_iou:.2f}"
        page.click(".result.top .result-actions a")
        page.wait_for_selector("model-viewer")
        # the view is turned counter-clockwise by the roll: CSS turns clockwise, so by -roll
        transform = page.eval_on_selector("#viewer", "v => getComputedStyle(v).transform")
        assert abs(_rotation_deg(transform) + top.roll_deg) < 0.05
        assert page.inner_text("#live-roll") == f"{round(top.roll_deg)}°"
        page.wait_for_timeout(1500)
        page.screenshot(path=str(tmp_path / "model-rolled.png"))
        page.click("#reset-view")  # back to the refined pose: still turned by the roll
        transform = page.eval_on_selector("#viewer", "v => getComputedStyle(v).transform")
        assert abs(_rotation_deg(transform) + top.roll_deg) < 0.05
        page.goto(url + "/models/chair-s0-002?polar=70&azimuth=30&roll=30")
        page.wait_for_selector("model-viewer")
        transform = page.eval_on_selector("#viewer", "v => getComputedStyle(v).transform")
        assert abs(_rotation_deg(transform) + 30.0) < 0.05
        page.close()
    assert (tmp_path / "model-rolled.png").stat().st_size > 10_000
