"""The HTML pages with a fake searcher: upload → results (score, polar, azimuth, overlay), examples, library,
model page, and readable error pages."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cadsearch.library import Library
from cadsearch.web.testing import FakeSearcher
from fakes import make_app, png_bytes

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(name="client")
def client_fixture(web_ws: Path):
    with TestClient(make_app(web_ws, FakeSearcher(Library.open(web_ws))), headers=HTML) as client:
        yield client


def search_upload(client: TestClient, data: bytes, name: str = "chair.png"):
    return client.post("/search", files={"image": (name, data, "image/png")}, follow_redirects=False)


class FixedMatchSearcher(FakeSearcher):
    """The fake searcher with the top result's match set: an exact match or not."""

    def __init__(self, library, match: float) -> None:
        super().__init__(library)
        self.match = match

    def search(self, image, k: int = 5):
        from dataclasses import replace

        result = super().search(image, k)
        result.results[0] = replace(result.results[0], match=self.match)
        return result


@pytest.mark.parametrize("match", [0.93, 0.07])
def test_results_page_says_exact_match_or_closest_models(web_ws: Path, match: float):
    app = make_app(web_ws, FixedMatchSearcher(Library.open(web_ws), match))
    with TestClient(app, headers=HTML) as client:
        page = client.get(search_upload(client, png_bytes(5)).headers["location"]).text
    closest = "No exact match — closest models in your library"
    assert ("<strong>Exact match</strong>" in page) == (match > 0.5) and (closest in page) == (match < 0.5)
    assert re.search(rf'class="match-value">{round(100 * match)}(\.0)?%<', page)


def test_home_has_upload_and_examples(client: TestClient):
    page = client.get("/").text
    assert 'type="file"' in page and 'name="image"' in page and "Drop a photo" in page
    keys = re.findall(r'name="example" value="(ex\d+)"', page)
    assert len(keys) == 4  # one render per model of the tiny workspace
    img = client.get(f"/examples/{keys[0]}")
    assert img.status_code == 200 and Image.open(io.BytesIO(img.content)).size == (64, 64)
    assert client.get("/examples/..%2fcatalog.sqlite").status_code == 404


def test_upload_redirects_to_results_with_score_polar_azimuth(client: TestClient):
    r = search_upload(client, png_bytes(3), "garden chair.png")
    assert r.status_code == 303
    url = r.headers["location"]
    assert re.fullmatch(r"/results/[A-Za-z0-9_-]{16}", url)
    page = client.get(url).text
    assert "garden chair.png" in page and "Query image" in page
    assert page.count('class="card result') == 4
    assert re.search(r'class="score-value">\d+(\.\d)?%<', page)
    assert page.count('class="match-value"') == 4
    assert ("Exact match" in page) != ("No exact match — closest models in your library" in page)
    assert re.search(r"Polar</div><div class=\"pose-value\">\d+°", page)
    assert re.search(r"Azimuth</div><div class=\"pose-value\">\d+°", page)
    # thumbnails at the estimated pose, links to the 3D view at that pose
    assert re.search(r"/api/models/chair-s0-00\d/thumbnail.png\?polar=[\d.]+&amp;azimuth=[\d.]+", page)
    assert re.search(r'href="/models/chair-s0-00\d\?polar=[\d.]+&amp;azimuth=[\d.]+', page)
    query = client.get(url + "/query.jpg")
    assert query.status_code == 200 and Image.open(io.BytesIO(query.content)).size == (96, 64)
    overlay = client.get(url + "/overlay.png")
    assert overlay.status_code == 200 and Image.open(io.BytesIO(overlay.content)).size == (96, 64)
    assert client.get(url + "/overlay.png?rank=9").status_code == 404


def test_example_search(client: TestClient):
    r = client.post("/search", data={"example": "ex1"}, follow_redirects=False)
    assert r.status_code == 303
    assert "spindle-back dining chair 1" in client.get(r.headers["location"]).text
    r = client.post("/search", data={"example": "../../etc/passwd"})
    assert r.status_code == 400 and "no longer available" in r.text


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [(b"", 400, "empty"), (b"not an image at all", 400, "not an image"), (None, 413, "larger than")],
)
def test_bad_upload_shows_the_home_page_with_a_message(client: TestClient, data, status, words):
    if data is None:
        data = png_bytes(7, 400, 400)  # over the tests' 300 kB limit
    r = search_upload(client, data, "oops.png")
    assert r.status_code == status
    assert words in r.text.lower() and "Traceback" not in r.text
    assert 'class="alert"' in r.text or "File too large" in r.text


def test_no_file_chosen(client: TestClient):
    r = client.post("/search", data={})
    assert r.status_code == 400 and "choose a photo" in r.text.lower()


def test_expired_result_is_a_friendly_404(client: TestClient):
    r = client.get("/results/doesnotexist")
    assert r.status_code == 404 and "search again" in r.text.lower() and "<html" in r.text


def test_unknown_page_is_a_404_page(client: TestClient):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "<html" in r.text and "Not found" in r.text
    api = client.get("/api/no/such/thing")  # the API answers JSON even to a browser
    assert api.status_code == 404 and api.json()["detail"]


def test_library_page_and_category_filter(client: TestClient, web_ws: Path):
    page = client.get("/models").text
    for m in Library.open(web_ws).list():
        assert f'href="/models/{m.model_id}"' in page and f"/api/models/{m.model_id}/thumbnail.png" in page
    assert client.get("/models?category=chair").text.count('class="card model-card"') == 4
    empty = client.get("/models?category=vase")
    assert empty.status_code == 200 and 'class="card model-card"' not in empty.text


def test_model_page_places_the_camera_at_the_pose(client: TestClient):
    page = client.get("/models/chair-s0-002?polar=72.5&azimuth=400&score=0.8").text
    assert "<model-viewer" in page and "/static/vendor/model-viewer.min.js" in page
    assert 'camera-orbit="40.00deg 72.50deg auto"' in page  # azimuth 400° = 40°; theta = azimuth, phi = polar
    assert "/api/models/chair-s0-002/model.glb" in page and "Estimated pose" in page and "80%" in page
    plain = client.get("/models/chair-s0-002").text
    assert "Estimated pose" not in plain
    assert client.get("/models/chair-s0-002?polar=-5").status_code == 422


def test_static_files_are_served(client: TestClient):
    assert client.get("/static/css/app.css").status_code == 200
    vendor = client.get("/static/vendor/model-viewer.min.js")
    assert vendor.status_code == 200 and len(vendor.content) > 100_000
    assert client.get("/static/..%2f..%2fapp.py").status_code == 404


class TwoObjectSearcher(FakeSearcher):
    """The fake's ranking, answered for two detected objects (the second with other matches); ``whole_first``: the
    first object's answer is the whole photo's instead (it beat a part's box), the second one was found."""

    whole_first = False

    def search(self, image, k: int = 5):
        from cadsearch.search.searcher import FoundObject

        first = super().search(image, k)
        second = super().search(image[::-1].copy(), k)
        h, w = image.shape[:2]
        boxes = [(0.0, 0.0, w / 2, h / 2), (w / 2, h / 4, float(w), float(h))]
        one = FoundObject((0.0, 0.0, float(w), float(h)), None, first.results) if self.whole_first else FoundObject(
            boxes[0], 0.91, first.results)  # fmt: skip
        first.objects = [one, FoundObject(boxes[1], 0.47, second.results)]
        return first


def test_results_page_numbers_the_objects_and_shows_each_ones_matches(web_ws: Path):
    searcher = TwoObjectSearcher(Library.open(web_ws))
    with TestClient(make_app(web_ws, searcher), headers=HTML) as client:
        url = search_upload(client, png_bytes(3)).headers["location"]
        page = client.get(url).text
        assert "2 objects found" in page and f"{url}/boxes.png" in page
        assert 'href="' + url + '?object=2"' in page and "91%" in page and "47%" in page
        first = re.findall(r'href="/models/([\w-]+)\?', client.get(url).text)
        second_page = client.get(url + "?object=2").text
        second = re.findall(r'href="/models/([\w-]+)\?', second_page)
        assert "for object 2 of 2" in second_page and first != second
        assert "overlay.png?rank=1&amp;object=2" in second_page
        boxes = client.get(url + "/boxes.png")
        assert boxes.status_code == 200 and Image.open(io.BytesIO(boxes.content)).size == (96, 64)
        overlay = client.get(url + "/overlay.png?rank=1&object=2")
        assert overlay.status_code == 200 and Image.open(io.BytesIO(overlay.content)).size == (96, 64)
        assert client.get(url + "?object=3").status_code == 404
        assert client.get(url + "/overlay.png?object=3").status_code == 404


def test_results_page_lists_a_whole_photo_first_object_and_numbers_the_found_box_2(web_ws: Path):
    from cadsearch.detect.pictures import draw_boxes

    searcher = TwoObjectSearcher(Library.open(web_ws))
    searcher.whole_first = True
    with TestClient(make_app(web_ws, searcher), headers=HTML) as client:
        url = search_upload(client, png_bytes(3)).headers["location"]
        page = client.get(url).text
        assert "2 objects found" in page and "whole photo" in page and "47%" in page
        assert 'href="' + url + '?object=1"' in page and 'href="' + url + '?object=2"' in page
        assert "for object 1 of 2" in page
        boxes = np.asarray(Image.open(io.BytesIO(client.get(url + "/boxes.png").content)).convert("RGB"))
        photo = np.asarray(Image.open(io.BytesIO(client.get(url + "/query.jpg").content)).convert("RGB"))
        h, w = boxes.shape[:2]
        # the one box drawn is numbered 2, as its link says (the photo under it is the page's display copy)
        assert boxes.shape == photo.shape
        two = draw_boxes(np.zeros_like(boxes), [(w / 2, h / 4, float(w), float(h))], [0.47], numbers=[2])
        one = draw_boxes(np.zeros_like(boxes), [(w / 2, h / 4, float(w), float(h))], [0.47])
        ink = two.any(axis=2)
        assert (boxes[ink] == two[ink]).all() and not (boxes[one.any(axis=2)] == one[one.any(axis=2)]).all()


# --- registered results: roll, fit, the refined overlay, the 3D view turned by the roll ------------------------


def test_registered_results_show_roll_and_fit_and_link_the_pose_with_roll(web_ws: Path):
    searcher = FakeSearcher(Library.open(web_ws), registered=True)
    with TestClient(make_app(web_ws, searcher), headers=HTML) as client:
        page = client.get(search_upload(client, png_bytes(3)).headers["location"]).text
    image = np.asarray(Image.open(io.BytesIO(png_bytes(3))).convert("RGB"))
    matches = searcher.search(image, 5).results
    assert page.count("Roll</div>") == len(matches) and page.count('class="fit-value"') == len(matches)
    for m in matches:
        pose = f"polar={m.polar_deg:.2f}&amp;azimuth={m.azimuth_deg:.2f}&amp;roll={m.roll_deg:.2f}"
        assert f'href="/models/{m.model_id}?{pose}&amp;score=' in page  # the "View in 3D" link and the title
        assert f'src="/api/models/{m.model_id}/thumbnail.png?{pose}"' in page
        assert f'Roll</div><div class="pose-value">{round(m.roll_deg)}°' in page
        assert f'class="fit-value">{m.silhouette_iou:.2f}<' in page
        # the roll dial, turned counter-clockwise (SVG turns clockwise)
        assert f'transform="rotate({round(-m.roll_deg, 2) + 0.0} 24 24)"' in page


def test_unregistered_results_have_no_roll(client: TestClient):
    page = client.get(search_upload(client, png_bytes(3)).headers["location"]).text
    assert "roll=" not in page and "Roll</div>" not in page and "fit-value" not in page


def test_overlay_of_a_registered_result_uses_its_placement_scaled_to_the_display(web_ws: Path):
    """The results page shows the photo at most 1024 px wide; the placement is in the uploaded photo's pixels."""
    from cadsearch.search.overlay import OUTLINE_RGB, render_overlay

    library = Library.open(web_ws)
    big = np.full((800, 1200, 3), 170, np.uint8)
    big[:, :40] = 90  # not a plain backdrop box the unregistered fit could go for either
    data = io.BytesIO()
    Image.fromarray(big).save(data, format="PNG")
    searcher = FakeSearcher(library, registered=True)
    with TestClient(make_app(web_ws, searcher), headers=HTML) as client:
        url = search_upload(client, data.getvalue()).headers["location"]
        served = np.asarray(Image.open(io.BytesIO(client.get(url + "/overlay.png?rank=2").content)).convert("RGB"))
    match = searcher.search(big, 5).results[1]
    assert served.shape == (683, 1024, 3)
    expected = render_overlay(library, big, match, size=1024)  # the overlay scales the placement itself
    outline, want = np.all(served == OUTLINE_RGB, axis=2), np.all(expected == OUTLINE_RGB, axis=2)
    assert want.sum() > 300
    assert (outline & want).sum() / want.sum() > 0.9
    shown = np.asarray(Image.fromarray(big).resize((1024, 683), Image.Resampling.LANCZOS))
    unscaled = render_overlay(library, shown, match, placement=match.placement)  # what a missed scaling draws
    assert (np.all(unscaled == OUTLINE_RGB, axis=2) & want).sum() / want.sum() < 0.5


def test_model_page_turns_the_view_by_the_roll(client: TestClient):
    page = client.get("/models/chair-s0-002?polar=70&azimuth=30&roll=30&score=0.8").text
    assert 'style="transform: rotate(-30.00deg)"' in page and 'data-roll="30.00"' in page  # CSS turns clockwise
    assert 'id="live-roll">30°<' in page and "<dt>Roll</dt><dd>30°</dd>" in page
    assert 'camera-orbit="30.00deg 70.00deg auto"' in page
    wrapped = client.get("/models/chair-s0-002?polar=70&azimuth=30&roll=-330").text
    assert 'style="transform: rotate(-30.00deg)"' in wrapped  # -330° is +30°
    plain = client.get("/models/chair-s0-002?polar=70&azimuth=30").text
    assert 'style="transform: rotate(0.00deg)"' in plain and "<dt>Roll</dt>" not in plain
    for bad in ("abc", "nan", "inf", ""):
        r = client.get(f"/models/chair-s0-002?polar=70&roll={bad}")
        assert r.status_code == 422 and "roll" in r.text and "Traceback" not in r.text


def test_thumbnail_with_roll_is_the_picture_turned_counter_clockwise(client: TestClient):
    def thumbnail(**params) -> np.ndarray:
        r = client.get("/api/models/chair-s0-001/thumbnail.png", params={"polar": 70, "azimuth": 30, **params})
        assert r.status_code == 200
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))

    upright = thumbnail()
    assert (thumbnail(roll=90) == np.rot90(upright, 1)).all()  # np.rot90: counter-clockwise
    assert (thumbnail(roll=360) == upright).all() and (thumbnail(roll=0.3) == upright).all()  # whole degrees
    turned = thumbnail(roll=30)
    assert not (turned == upright).all() and (turned[0, 0] == 255).all()  # white corners
    assert client.get("/api/models/chair-s0-001/thumbnail.png?roll=nan").status_code == 422
