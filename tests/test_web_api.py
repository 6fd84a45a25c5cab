"""The JSON API with a fake searcher: search, models, thumbnails, GLB, and every kind of bad input."""

from __future__ import annotations

import io
import json
import resource
import socket
from pathlib import Path

import numpy as np
import pytest
import trimesh
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from cadsearch.cli import main
from cadsearch.errors import InputError
from cadsearch.imageio import read_image
from cadsearch.library import Library
from cadsearch.render.job import read_view_table
from cadsearch.web import Settings
from cadsearch.web.deps import get_searcher
from cadsearch.web.testing import FakeSearcher
from fakes import (
    TEST_UPLOAD_LIMIT,
    exif_rotated_jpeg,
    make_app,
    odd_images,
    patch_scored_searchers,
    png_bomb,
    png_bytes,
)

DESIGN_KEYS = ["rank", "model_id", "name", "category", "score", "match", "polar_deg", "azimuth_deg", "roll_deg"]
REGISTERED_KEYS = [*DESIGN_KEYS, "placement", "silhouette_iou"]  # a result refined by registration
LEAKS = ("Traceback", 'File "', "site-packages", "Error:")  # things a response must never show


@pytest.fixture(name="client")
def client_fixture(web_ws: Path):
    with TestClient(make_app(web_ws, FakeSearcher(Library.open(web_ws)))) as client:
        yield client


def upload(client: TestClient, data: bytes, name: str = "chair.png", **params):
    return client.post("/api/search", files={"image": (name, data, "application/octet-stream")}, params=params)


def assert_clean_error(response, status: int) -> str:
    """The response has ``status``, a JSON ``detail`` sentence, and nothing of a traceback."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and len(detail) > 10
    for leak in LEAKS:
        assert leak not in response.text
    return detail


def answer_to(web_ws: Path, image: np.ndarray) -> list[dict]:
    """The results the (deterministic) fake searcher gives for exactly these pixels."""
    return FakeSearcher(Library.open(web_ws)).search(image, 5).to_json("q")["results"]


# --- search ---------------------------------------------------------------------------------------------------


def test_search_returns_design_json(client: TestClient, web_ws: Path):
    data = (web_ws / "views" / "chair-s0-001" / "0000.png").read_bytes()
    r = upload(client, data, "my chair.png")
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["query", "results", "exact_match", "timing_ms"]
    assert body["exact_match"] == (body["results"][0]["match"] >= 0.5)
    assert body["query"] == "my chair.png"
    assert "total" in body["timing_ms"]
    assert [m["rank"] for m in body["results"]] == [1, 2, 3, 4]  # 4 models, k=5 asks for more than exist
    for m in body["results"]:
        assert list(m) == DESIGN_KEYS
        assert 0.0 <= m["score"] <= 1.0 and 0.0 <= m["match"] <= 1.0
        assert 0.0 <= m["polar_deg"] <= 180.0 and 0.0 <= m["azimuth_deg"] < 360.0
    scores = [m["score"] for m in body["results"]]
    assert scores == sorted(scores, reverse=True)
    # the answer is the searcher's answer to exactly this image
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    expected = FakeSearcher(Library.open(web_ws)).search(image, 5).to_json("my chair.png")
    assert body["results"] == expected["results"]


def test_registered_results_carry_roll_placement_and_fit_exactly_as_the_cli(web_ws: Path):
    """The API answers :meth:`SearchResult.to_json`, the CLI's ``search --json``: registered results with their
    placement and silhouette IoU, found objects when there are, and nothing the CLI leaves out (no nulls)."""
    from cadsearch.search.searcher import FoundObject

    class TwoObjects(FakeSearcher):
        def search(self, image, k: int = 5):
            result = super().search(image, k)
            h, w = image.shape[:2]
            result.objects = [
                FoundObject((0.0, 0.0, w / 2, h / 2), 0.9, result.results),
                FoundObject((0.0, 0.0, float(w), float(h)), None, result.results[:1]),
            ]
            return result

    data = (web_ws / "views" / "chair-s0-001" / "0000.png").read_bytes()
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    for searcher in (FakeSearcher(Library.open(web_ws), registered=True), TwoObjects(Library.open(web_ws))):
        with TestClient(make_app(web_ws, searcher)) as client:
            body = upload(client, data, "chair.png").json()
        expected = searcher.search(image, 5).to_json("chair.png")
        body["timing_ms"], expected["timing_ms"] = {}, {}
        assert body == expected
        assert json.dumps(body) == json.dumps(expected)  # same key order too
        if searcher.registered:
            assert [list(m) for m in body["results"]] == [REGISTERED_KEYS] * len(body["results"])
            m = body["results"][0]
            assert m["roll_deg"] == m["placement"]["roll_deg"] and -25 <= m["roll_deg"] <= 25
            assert list(m["placement"]) == ["center", "side", "roll_deg"] and 0 < m["silhouette_iou"] <= 1
            assert "objects" not in body
        else:
            assert [o["detection_score"] for o in body["objects"]] == [0.9, None]  # a null the CLI prints stays
            assert list(body["objects"][0]["results"][0]) == DESIGN_KEYS


def test_search_k(client: TestClient):
    assert len(upload(client, png_bytes(), k=2).json()["results"]) == 2
    assert_clean_error(upload(client, png_bytes(), k=0), 422)
    assert_clean_error(upload(client, png_bytes(), k=10_000), 400)


def test_search_without_image_is_400(client: TestClient):
    assert "image" in assert_clean_error(client.post("/api/search"), 400)
    r = client.post("/api/search", files={"other": ("x.png", png_bytes(), "image/png")})
    assert_clean_error(r, 400)


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("empty.png", b"", "empty"),
        ("notes.txt", b"these are not the pixels you are looking for\n" * 20, "not an image"),
        ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "cannot read"),
        ("truncated.png", png_bytes(1, 200, 200)[:3000], "truncated"),
        ("truncated.jpg", None, "cannot read"),
        ("html.jpg", b"<html><script>alert(1)</script></html>", "not an image"),
    ],
)
def test_bad_images_are_400_with_a_readable_message(client: TestClient, name, data, words):
    if data is None:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(buf, "JPEG")
        data = buf.getvalue()[: len(buf.getvalue()) // 3]
    detail = assert_clean_error(upload(client, data, name), 400)
    assert words in detail.lower()
    assert name in detail  # says which file


def test_decompression_bomb_is_refused_without_blowing_up_memory(client: TestClient):
    bomb = png_bomb(30000)
    assert len(bomb) < TEST_UPLOAD_LIMIT
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    r = upload(client, bomb, "bomb.png")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.status_code in (400, 413)
    assert_clean_error(r, r.status_code)
    assert (after - before) < 200 * 1024, "decoding the bomb would have needed 900 MB"


def test_image_over_the_pixel_limit_is_400(web_ws: Path):
    with TestClient(make_app(web_ws, FakeSearcher(Library.open(web_ws)), max_pixels=10_000)) as client:
        detail = assert_clean_error(upload(client, png_bytes(0, 200, 100)), 400)
        assert "pixels" in detail


def test_upload_over_the_limit_is_413_by_content_length(client: TestClient):
    big = png_bytes(7, 400, 400)  # ~480 kB of noise, over the 300 kB test limit
    assert len(big) > TEST_UPLOAD_LIMIT
    detail = assert_clean_error(upload(client, big, "big.png"), 413)
    assert "MB" in detail


def test_upload_over_the_limit_is_413_when_streamed(client: TestClient):
    """A chunked body (no Content-Length) is cut off once it passes the limit."""
    sent = []

    def body():
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="image"; filename="s.png"\r\n\r\n'
        for _ in range(100):  # 100 × 64 kB = 6.4 MB, far over the limit
            sent.append(1)
            yield b"\x00" * 65536
        yield b"\r\n--xyz--\r\n"

    r = client.post("/api/search", content=body(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert_clean_error(r, 413)


def test_upload_just_under_the_limit_is_read(client: TestClient):
    data = png_bytes(8, 250, 250)
    assert TEST_UPLOAD_LIMIT * 0.5 < len(data) < TEST_UPLOAD_LIMIT
    assert upload(client, data).status_code == 200


def test_exif_orientation_is_applied(client: TestClient, web_ws: Path):
    data = exif_rotated_jpeg(80, 40)  # stored 80 wide × 40 high, shown upright: 40 wide × 80 high
    r = upload(client, data, "phone.jpg")
    assert r.status_code == 200, r.text
    with Image.open(io.BytesIO(data)) as stored:
        upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
        sideways = np.asarray(stored.convert("RGB"))
    assert upright.shape == (80, 40, 3)
    # the user gets the answer for the photo as it is shown, not as it is stored
    assert r.json()["results"] == answer_to(web_ws, upright) != answer_to(web_ws, sideways)


@pytest.mark.parametrize("name", sorted(odd_images()))
def test_grayscale_rgba_cmyk_16bit_are_accepted(client: TestClient, web_ws: Path, tmp_path: Path, name: str):
    data = odd_images()[name]
    r = upload(client, data, name)
    assert r.status_code == 200, r.text
    # the same answer as ``cadsearch search`` reading the same file from disk: the whole 64 × 48 picture, in RGB
    (tmp_path / name).write_bytes(data)
    image = read_image(tmp_path / name)
    assert image.shape == (48, 64, 3)
    assert r.json()["results"] == answer_to(web_ws, image)


def test_no_searcher_is_503_with_the_reason(web_ws: Path):
    with TestClient(make_app(web_ws, None)) as client:
        detail = assert_clean_error(upload(client, png_bytes()), 503)
        assert "index" in detail or "train" in detail
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["search_ready"] is False and health["models"] == 4


def test_unexpected_errors_are_a_generic_500(web_ws: Path):
    class Broken:
        library = Library.open(web_ws)

        def search(self, image, k=5):
            raise RuntimeError("secret internal detail at /srv/cadsearch")

    app = make_app(web_ws, None)
    app.dependency_overrides[get_searcher] = lambda: Broken()
    with TestClient(app, raise_server_exceptions=False) as client:
        r = upload(client, png_bytes())
        assert_clean_error(r, 500)
        assert "secret" not in r.text and "/srv" not in r.text
        page = client.get("/results/x/overlay.png?rank=abc", headers={"accept": "text/html"})
        assert page.status_code in (404, 422) and "Traceback" not in page.text


def test_the_detect_threshold_setting_reaches_the_searcher(search_ws: Path, monkeypatch, capsys):
    patch_scored_searchers(search_ws, monkeypatch)  # its localiser finds two objects, scored 0.8 and 0.35
    photo = (search_ws / read_view_table(search_ws)[0].path).read_bytes()
    found = {}
    for threshold in (None, 0.5):
        with TestClient(make_app(search_ws, detect_threshold=threshold)) as client:  # the app loads the searcher
            r = upload(client, photo)
            assert r.status_code == 200, r.text
            found[threshold] = [o["detection_score"] for o in r.json()["objects"]]
    assert found == {None: [0.8, 0.35], 0.5: [0.8]}
    monkeypatch.setenv("CADSEARCH_WEB_DETECT_THRESHOLD", "0.5")
    assert Settings.from_env(search_ws).detect_threshold == 0.5
    for bad, words in (("1.5", "between 0 and 1"), ("high", "not a number")):
        monkeypatch.setenv("CADSEARCH_WEB_DETECT_THRESHOLD", bad)
        with pytest.raises(InputError, match=words):
            Settings.from_env(search_ws)
    monkeypatch.delenv("CADSEARCH_WEB_DETECT_THRESHOLD")
    # `cadsearch serve` refuses it at once, in one line, where no detector is trained (search_ws has none)
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: pytest.fail("served without a detector"))
    with socket.socket() as free:  # a port nothing listens on, so that only the threshold can be refused
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    with pytest.raises(SystemExit) as stop:
        main(["--workspace", str(search_ws), "serve", "--port", port, "--detect-threshold", "0.4"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "cadsearch train detector" in err


# --- models ---------------------------------------------------------------------------------------------------


def test_health(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok", "search_ready": True, "detail": None, "models": 4}


def test_models_list_and_detail(client: TestClient, web_ws: Path):
    models = client.get("/api/models").json()
    assert [m["model_id"] for m in models] == [m.model_id for m in Library.open(web_ws).list()]
    assert client.get("/api/models", params={"category": "chair"}).json() == models
    assert client.get("/api/models", params={"category": "vase"}).json() == []
    detail = client.get(f"/api/models/{models[0]['model_id']}").json()
    assert detail["category"] == "chair" and len(detail["checksum"]) == 64
    assert "path" not in detail and str(web_ws) not in str(detail)  # no server paths leak


def test_thumbnail_png_is_rendered_and_cached(client: TestClient, web_ws: Path):
    r = client.get("/api/models/chair-s0-002/thumbnail.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(r.content))
    assert im.size == (256, 256)
    assert np.asarray(im.convert("L")).min() < 200  # something is drawn
    assert list((web_ws / "web-cache" / "thumbnails").glob("chair-s0-002-*.png"))
    posed = client.get("/api/models/chair-s0-002/thumbnail.png", params={"polar": 90, "azimuth": 90})
    assert posed.status_code == 200 and posed.content != r.content


@pytest.mark.parametrize("params", [{"polar": "nan"}, {"polar": 500}, {"azimuth": "inf"}, {"polar": "abc"}])
def test_thumbnail_bad_pose_is_422(client: TestClient, params):
    assert_clean_error(client.get("/api/models/chair-s0-002/thumbnail.png", params=params), 422)


def test_glb_is_the_canonical_mesh(client: TestClient, web_ws: Path):
    r = client.get("/api/models/chair-s0-000/model.glb")
    assert r.status_code == 200 and r.headers["content-type"] == "model/gltf-binary"
    assert r.content[:4] == b"glTF"
    mesh = trimesh.load(io.BytesIO(r.content), file_type="glb", force="mesh")
    canonical = Library.open(web_ws).mesh("chair-s0-000")
    assert np.allclose(mesh.bounds, canonical.bounds, atol=1e-4)
    assert client.get("/api/models/chair-s0-000/model.glb").content == r.content  # cached file


ESCAPES = [
    "nope",
    "..",
    "%2e%2e",
    "%2E%2E",
    "%2e%2e%2f",
    "%2e%2e%2fcatalog.sqlite",
    "..%2fcatalog.sqlite",
    "..%2f..%2fetc%2fpasswd",
    "%2fetc%2fpasswd",
    "%252e%252e%252f",
    ".hidden",
    "a%00b",
    "a%0a",
    "chair-s0-000%0a",
    "x" * 129,
    "%5c..%5cwindows",
]


@pytest.mark.parametrize("model_id", ESCAPES)
@pytest.mark.parametrize("suffix", ["", "/thumbnail.png", "/model.glb"])
def test_unknown_and_escaping_ids_are_404(client: TestClient, web_ws: Path, model_id: str, suffix: str):
    before = sorted(p.name for p in web_ws.rglob("*"))
    r = client.get(f"/api/models/{model_id}{suffix}")
    assert_clean_error(r, 404)
    if model_id != "..":  # the client itself resolves a bare ".." segment (to "/"); %2e%2e reaches the server
        page = client.get(f"/models/{model_id}", headers={"accept": "text/html"})
        assert page.status_code == 404 and "Traceback" not in page.text
    assert sorted(p.name for p in web_ws.rglob("*")) == before  # nothing written anywhere


def test_openapi_docs(client: TestClient):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/models", "/api/models/{model_id}", "/healthz"} <= set(spec["paths"])
    assert "/" not in spec["paths"]  # pages are not part of the API
