"""Automatic crop: a box around the one object, None when unsure, never an exception on odd images."""

import numpy as np
import pytest

from cadsearch.errors import InputError
from cadsearch.framing import (
    MARGIN,
    METHODS,
    check_crop_method,
    crop_frame,
    find_object_box,
    frame_image,
    frame_query,
    grabcut_available,
)

needs_opencv = pytest.mark.skipif(not grabcut_available(), reason="opencv-python-headless is not installed")


def _blob_photo(background: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A red ellipse (box x 150–230, y 60–180) on ``background`` (240, 320, 3)."""
    photo = background.copy()
    yy, xx = np.mgrid[0:240, 0:320]
    photo[((xx - 190) / 40) ** 2 + ((yy - 120) / 60) ** 2 <= 1] = (200, 30, 40)
    return photo, (150, 60, 230, 180)


def _plain() -> np.ndarray:
    return np.full((240, 320, 3), (90, 140, 200), np.uint8)


def _textured() -> np.ndarray:
    """Grey-green stripes with noise: no plain backdrop, nothing red."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    g = 110 + 40 * np.sin(xx / 3.0 + yy / 7.0) + rng.normal(0, 12, (240, 320))
    return np.clip(np.stack([g * 0.8, g, g * 0.7], axis=2), 0, 255).astype(np.uint8)


def _close(box, truth, tol: float) -> bool:
    return box is not None and np.abs(np.subtract(box, truth)).max() <= tol


def test_box_around_a_blob_on_a_plain_or_gradient_backdrop():
    photo, truth = _blob_photo(_plain())
    assert _close(find_object_box(photo, "backdrop"), truth, 3)
    assert _close(find_object_box(photo), truth, 3)  # "auto"
    ramp = np.linspace(60, 200, 320)[None, :, None] * np.ones((240, 1, 3))
    photo, truth = _blob_photo(ramp.astype(np.uint8))
    assert _close(find_object_box(photo, "auto"), truth, 3)


def test_cluttered_background_gives_no_backdrop_box():
    photo, _ = _blob_photo(_textured())
    assert find_object_box(photo, "backdrop") is None
    assert crop_frame(photo) is None  # the searcher keeps the default framing


@needs_opencv
def test_grabcut_finds_the_blob_on_a_texture_deterministically():
    photo, truth = _blob_photo(_textured())
    box = find_object_box(photo, "grabcut")
    assert _close(box, truth, 8)
    assert find_object_box(photo, "grabcut") == box


def test_crop_frame_is_the_training_framing_around_the_object():
    photo, (x0, y0, x1, y1) = _blob_photo(_plain())
    f = crop_frame(photo)
    assert f is not None
    assert f.side == pytest.approx((y1 - y0) * (1 + MARGIN), rel=0.04)
    assert f.centre == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2), abs=2)
    square = frame_image(photo, 64, f)
    red = (square[..., 0] > 150) & (square[..., 1] < 80)
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() - 31.5) < 2 and abs(ys.mean() - 31.5) < 2  # object centred
    assert (ys.max() - ys.min() + 1) / 64 == pytest.approx(1 / (1 + MARGIN), abs=0.05)  # filling as in training


def test_an_object_filling_the_photo_keeps_the_default_framing():
    photo = np.full((100, 100, 3), 250, np.uint8)
    photo[8:92, 10:90] = (30, 60, 200)
    assert crop_frame(photo) is None  # zooming out does not count as a crop
    f = crop_frame(photo, min_zoom=0.0)
    assert f is not None and f.side > 100


@pytest.mark.parametrize("method", METHODS)
def test_blank_noise_and_odd_images_do_not_raise(method):
    rng = np.random.default_rng(1)
    odd = [
        np.full((50, 70, 3), 128, np.uint8),  # blank
        rng.integers(0, 256, (60, 80, 3), dtype=np.uint8),  # noise
        rng.integers(0, 256, (60, 80), dtype=np.uint8),  # grayscale
        rng.random((40, 40, 4)),  # float RGBA
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((3, 500, 3), np.uint8),
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((20, 20, 2), np.uint8),  # not an image
    ]
    for image in odd:
        box = find_object_box(image, method)
        assert box is None or (0 <= box[0] < box[2] <= image.shape[1] and 0 <= box[1] < box[3] <= image.shape[0])
        crop_frame(image, method)
    assert find_object_box(odd[0], method) is None  # nothing to find on a blank image


def test_grayscale_blob_and_unknown_method():
    photo = np.full((120, 160), 30, np.uint8)
    photo[40:80, 100:140] = 220
    assert _close(find_object_box(photo), (100, 40, 140, 80), 2)
    with pytest.raises(InputError, match="grabcut"):
        find_object_box(photo, "yolo")


def test_frame_query_is_the_crop_policy_and_checks_the_method():
    photo, _ = _blob_photo(_plain())
    assert frame_query(photo) == crop_frame(photo, "auto")  # the default: auto, with its zoom gate
    assert frame_query(photo, "none") is None  # the whole photo padded to a square
    assert frame_query(_blob_photo(_textured())[0]) is None  # cluttered: the default framing
    with pytest.raises(InputError, match="unknown crop method 'lasso'"):
        frame_query(photo, "lasso")
    for method in METHODS:
        if method != "grabcut" or grabcut_available():
            assert check_crop_method(method) == method
    if not grabcut_available():
        with pytest.raises(InputError, match="OpenCV"):
            frame_query(photo, "grabcut")
