"""Background sources and compositing."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.render.backgrounds import (
    GradientBackgrounds,
    ImageFolderBackgrounds,
    PlainBackgrounds,
    RandomBackgrounds,
    RoomBackgrounds,
    TextureBackgrounds,
    composite,
    make_background_source,
)
from cadsearch.render.types import RenderOutput

SPECS = ["plain", "white", "gradient", "texture", "random", "rooms", "scenes"]


@pytest.fixture()
def photo_folder(tmp_path: Path) -> Path:
    """Three tiny photos of different sizes and formats (one in a subfolder)."""
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (50, 30, 3), dtype=np.uint8)).save(tmp_path / "b.PNG")
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(tmp_path / "sub" / "c.webp")  # grey
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("size", [17, 64])
def test_sources_shape_and_determinism(spec, size):
    source = make_background_source(spec)
    a = source.sample(size, np.random.default_rng(7))
    b = source.sample(size, np.random.default_rng(7))
    assert a.shape == (size, size, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, source.sample(size, 7))  # an int seed works the same


@pytest.mark.parametrize("spec", ["plain", "gradient", "texture", "random", "rooms", "scenes"])
def test_sources_vary_with_the_generator(spec):
    source = make_background_source(spec)
    rng = np.random.default_rng(1)
    images = [source.sample(32, rng) for _ in range(6)]
    assert len({img.tobytes() for img in images}) == 6


def test_white_and_given_colour():
    img, name = make_background_source("white").draw(8, 0)
    assert name == "white" and np.all(img == 255)
    assert np.all(PlainBackgrounds((10, 20, 30)).sample(4, 0) == [10, 20, 30])


def test_names():
    assert make_background_source("plain").draw(8, 0)[1] == "plain"
    assert GradientBackgrounds().draw(8, 0)[1] == "gradient"
    assert TextureBackgrounds().draw(8, 0)[1] == "texture"
    names = {RandomBackgrounds().draw(8, np.random.default_rng(i))[1] for i in range(40)}
    assert names == {"plain", "gradient", "texture"}


def test_gradient_and_texture_are_not_flat():
    for source in (GradientBackgrounds(), TextureBackgrounds()):
        stds = [source.sample(64, np.random.default_rng(i)).std() for i in range(5)]
        assert np.median(stds) > 3.0


def test_image_folder(photo_folder):
    source = make_background_source(str(photo_folder))
    assert isinstance(source, ImageFolderBackgrounds)
    assert sorted(p.name for p in source.files) == ["a.jpg", "b.PNG", "c.webp"]
    rng = np.random.default_rng(3)
    names = set()
    for _ in range(30):
        img, name = source.draw(24, rng)
        assert img.shape == (24, 24, 3) and img.dtype == np.uint8
        names.add(name)
    assert names == {"image:a.jpg", "image:b.PNG", "image:c.webp"}
    fresh = ImageFolderBackgrounds(photo_folder)
    np.testing.assert_array_equal(fresh.sample(24, 5), source.sample(24, 5))  # cache does not matter
    clone = pickle.loads(pickle.dumps(source))  # worker processes get a copy without the decoded cache
    assert len(clone._cache) == 0
    np.testing.assert_array_equal(clone.sample(24, 5), source.sample(24, 5))


def test_image_folder_crops_come_from_the_photo(tmp_path):
    img = np.zeros((30, 30, 3), np.uint8)
    img[...] = (200, 100, 50)
    Image.fromarray(img).save(tmp_path / "flat.png")
    out = ImageFolderBackgrounds(tmp_path).sample(16, 0)
    assert np.all(np.abs(out.astype(int) - [200, 100, 50]) <= 1)


def test_corrupt_image_is_skipped(photo_folder):
    (photo_folder / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.warns(RuntimeWarning, match="broken.jpg"):
        source = ImageFolderBackgrounds(photo_folder)
    assert "broken.jpg" not in {p.name for p in source.files}
    rng = np.random.default_rng(0)
    for _ in range(10):
        source.sample(8, rng)


def test_truncated_image_skipped_when_decoding(tmp_path):
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(tmp_path / "good.png")
    buf = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf)
    data = buf.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])  # the header is fine, the data is not
    buf.unlink()
    source = ImageFolderBackgrounds(tmp_path)
    rng = np.random.default_rng(0)
    with pytest.warns(RuntimeWarning, match="cut.jpg"):
        names = {source.draw(8, rng)[1] for _ in range(20)}
    assert names == {"image:good.png"}


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(InputError):
        ImageFolderBackgrounds(tmp_path)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(InputError):
        make_background_source(str(tmp_path))
    with pytest.raises(InputError):
        make_background_source(str(tmp_path / "missing"))
    with pytest.raises(InputError):
        make_background_source("sparkles")


def _render(alpha: np.ndarray, color=(200, 50, 20)) -> RenderOutput:
    rgb = np.rint(alpha[..., None] * np.array(color, np.float32)).astype(np.uint8)  # premultiplied
    return RenderOutput(rgb=rgb, alpha=alpha.astype(np.float32), depth=(alpha > 0).astype(np.float32) * 3)


def test_composite_keeps_object_and_background():
    alpha = np.zeros((8, 8), np.float32)
    alpha[2:6, 2:6] = 1.0
    alpha[1, 2:6] = 0.5
    out = _render(alpha)
    bg = TextureBackgrounds().sample(8, 0)
    result = composite(out, bg)
    assert result.shape == (8, 8, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(result[alpha == 1], out.rgb[alpha == 1])
    np.testing.assert_array_equal(result[alpha == 0], bg[alpha == 0])
    half = result[1, 2:6].astype(int)
    expected = np.rint(out.rgb[1, 2:6] + 0.5 * bg[1, 2:6].astype(np.float32))
    assert np.abs(half - expected).max() <= 1
    # Compositing never touches the render itself: the mask stays exact.
    np.testing.assert_array_equal(out.alpha, alpha)
    with pytest.raises(ValueError):
        composite(out, np.zeros((4, 4, 3), np.uint8))


def test_composite_over_white_and_black():
    alpha = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    out = _render(alpha, color=(255, 255, 255))
    np.testing.assert_array_equal(composite(out, np.zeros((4, 4, 3), np.uint8)), out.rgb)
    assert np.all(composite(out, np.full((4, 4, 3), 255, np.uint8)) >= 254)


def test_rooms_have_a_wall_above_a_floor():
    """Room backgrounds are not flat, and their top and bottom rows (wall, floor) usually differ in colour."""
    rooms = RoomBackgrounds()
    images = [rooms.sample(64, np.random.default_rng(i)) for i in range(12)]
    assert np.median([im.std() for im in images]) > 5.0
    top_vs_bottom = [np.abs(im[:4].mean((0, 1)) - im[-4:].mean((0, 1))).max() for im in images]
    assert np.median(top_vs_bottom) > 10.0
    assert rooms.draw(8, 0)[1] == "rooms"


def test_scenes_mix_rooms_and_procedural_sources():
    scenes = make_background_source("scenes")
    names = {scenes.draw(8, np.random.default_rng(i))[1] for i in range(60)}
    assert names == {"rooms", "texture", "gradient", "plain"}
