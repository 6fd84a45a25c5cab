"""Evaluation splits: photo CSV parsing, image decoding (EXIF, modes), mirroring, and the graphics split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.evaluate.splits import (
    EVAL_SEED_OFFSET,
    graphics_split,
    photo_split,
    read_image,
)
from cadsearch.library import Library
from cadsearch.render.job import read_render_config


def _halves(path: Path, size=(8, 4), left=(255, 0, 0), right=(0, 0, 255), **save) -> Path:
    """An image whose left half is ``left`` and right half ``right`` (so flips and rotations show)."""
    w, h = size
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2], a[:, w // 2 :] = left, right
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **save)
    return path


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A split folder: ``split/labels.csv`` naming photos in ``split/img/`` and one that is missing."""
    root = tmp_path / "split"
    _halves(root / "img" / "a.png")
    _halves(root / "img" / "b.png")
    (root / "img" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "labels.csv").write_text(
        "photo,model_id,polar_deg,azimuth_deg,confidence\n"
        "img/a.png,chair-1,70,60,high\n"
        "img/b.png,,,,low\n"
        "img/missing.png,,80,10,high\n"
        "img/broken.jpg,,80,10,high\n"
        ",,,,\n"
        "img/a.png, ,80.5,-30,\n"
    )
    return root / "labels.csv"


def test_photo_csv_relative_paths_empty_fields_and_skips(photos: Path) -> None:
    warnings: list[str] = []
    split = photo_split(photos, warn=warnings.append)
    assert split.name == "labels" and split.kind == "photos"
    assert [q.path for q in split.queries] == [photos.parent / "img" / n for n in ("a.png", "b.png", "a.png")]
    a, b, a2 = split.queries
    assert (a.model_id, a.polar_deg, a.azimuth_deg, a.extra) == ("chair-1", 70.0, 60.0, {"confidence": "high"})
    assert (b.model_id, b.polar_deg, b.azimuth_deg) == (None, None, None)
    assert (a2.model_id, a2.polar_deg, a2.azimuth_deg) == (None, 80.5, 330.0)  # azimuth wrapped into [0, 360)
    assert len({q.query_id for q in split.queries}) == 3  # a repeated photo still gets its own id
    assert len(warnings) == 2 and len(split.skipped) == 2
    assert "missing.png" in warnings[0] and "not found" in warnings[0] and "broken.jpg" in warnings[1]
    assert all("\n" not in w for w in warnings)


def test_mirroring_doubles_rows_and_maps_azimuth(photos: Path) -> None:
    split = photo_split(photos, mirror=True, warn=lambda _: None)
    assert len(split.queries) == 6
    originals, mirrors = split.queries[:3], split.queries[3:]
    for q, m in zip(originals, mirrors, strict=True):
        assert m.mirrored and not q.mirrored and m.query_id == q.query_id + "#mirror"
        assert m.polar_deg == q.polar_deg and m.model_id == q.model_id
        assert (m.azimuth_deg is None) == (q.azimuth_deg is None)
        if q.azimuth_deg is not None:
            assert m.azimuth_deg == pytest.approx((360.0 - q.azimuth_deg) % 360.0)
    img, flipped = originals[0].image(), mirrors[0].image()
    assert img[0, 0].tolist() == [255, 0, 0] and flipped[0, 0].tolist() == [0, 0, 255]
    np.testing.assert_array_equal(flipped, img[:, ::-1])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name,polar_deg\nx.png,10\n", "no 'photo' column"),
        ("", "no 'photo' column"),
        ('{"photo": "x.png"}\n', "no 'photo' column"),
        ("photo,polar_deg\nimg.png,abc\n", "not a number"),
        ("photo,polar_deg\nimg.png,200\n", "outside [0, 180]"),
    ],
)
def test_bad_csv_is_one_line_input_error(tmp_path: Path, content: str, expected: str) -> None:
    _halves(tmp_path / "img.png")
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("]", r"\]")) as err:
        photo_split(path)
    assert "\n" not in str(err.value)


def test_binary_or_missing_csv_is_input_error(tmp_path: Path) -> None:
    binary = tmp_path / "photo.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="not a readable CSV"):
        photo_split(binary)
    with pytest.raises(InputError, match="not found"):
        photo_split(tmp_path / "nope.csv")


# --- images ---------------------------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display = rotate 90° clockwise
    path = _halves(tmp_path / "rot.jpg", size=(16, 8), exif=exif.tobytes(), quality=95)
    rgb = read_image(path)
    assert rgb.shape == (16, 8, 3) and rgb.dtype == np.uint8
    # The stored left half (red) becomes the top after a clockwise quarter turn.
    assert rgb[2, 4, 0] > 200 and rgb[2, 4, 2] < 60
    assert rgb[13, 4, 2] > 200 and rgb[13, 4, 0] < 60


def test_image_modes_become_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 6), 77, np.uint8), "L").save(tmp_path / "gray.png")
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[:, :3] = (10, 200, 10, 255)  # left: opaque green; right: fully transparent → white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    deep = np.zeros((4, 6), np.uint16)
    deep[:, :3], deep[:, 3:] = 65535, 32768
    Image.fromarray(deep).save(tmp_path / "deep.png")
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("P", (6, 4), 3).save(tmp_path / "palette.png")

    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (4, 6, 3) and np.all(gray == 77)
    out = read_image(tmp_path / "rgba.png")
    assert out[0, 0].tolist() == [10, 200, 10] and out[0, 5].tolist() == [255, 255, 255]
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out[0, 0].tolist() == [255] * 3 and abs(int(out[0, 5, 0]) - 128) <= 1
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (4, 6, 3) and cmyk[..., 0].mean() > 200 and cmyk[..., 1].mean() < 60
    assert read_image(tmp_path / "palette.png").shape == (4, 6, 3)
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "none.png")


# --- graphics split -------------------------------------------------------------------------------------------


def test_graphics_split_follows_training_config_with_fresh_cameras(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    Library.open(ws).generate_chairs(2)
    ids = [m.model_id for m in Library.open(ws).list()]
    (ws / "views").mkdir(parents=True)
    stored = {"size": 48, "fov_deg": 30.0, "polar_range": [40.0, 80.0], "seed": 3, "views": 50, "unknown": 1}
    (ws / "views" / "render_config.json").write_text(json.dumps({"config": stored}))
    train = read_render_config(ws)
    assert (train.size, train.fov_deg, train.polar_range, train.seed) == (48, 30.0, (40.0, 80.0), 3)

    split = graphics_split(ws, ids, views_per_model=3, progress=False)
    assert split.name == "graphics" and split.kind == "graphics" and len(split.queries) == 6
    assert {q.model_id for q in split.queries} == set(ids)
    assert split.info["render"]["seed"] == 3 + EVAL_SEED_OFFSET
    for q in split.queries:
        assert 40.0 <= q.polar_deg <= 80.0 and 0.0 <= q.azimuth_deg < 360.0
        assert q.image().shape == (48, 48, 3)
        assert q.path.is_relative_to(ws / "eval" / "graphics")
    # Cached: asking again renders nothing new and returns the same queries.
    again = graphics_split(ws, ids[:1], views_per_model=3, progress=False)
    assert [q.query_id for q in again.queries] == [q.query_id for q in split.queries if q.model_id == ids[0]]
    assert not list(ws.rglob("*.tmp"))
