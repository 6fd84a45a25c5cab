"""The object-centred square: photos of any shape are padded (not cropped) to what the networks saw in training."""

import numpy as np
import pytest

from cadsearch.errors import InputError
from cadsearch.framing import Frame, centre_frame, frame_for, frame_image, upright_image


def test_portrait_photo_is_padded_not_cropped():
    photo = np.full((40, 20, 3), 200, np.uint8)  # grey backdrop
    photo[0, 8:12] = (255, 0, 0)  # the top of the backrest, on the first row
    photo[-1, 8:12] = (0, 0, 255)  # the feet, on the last row
    f = frame_for(40, 20)
    assert (f.x0, f.y0, f.side) == (-10.0, 0.0, 40.0)
    out = frame_image(photo, 40, f)
    assert out.shape == (40, 40, 3)
    assert tuple(out[0, 20]) == (255, 0, 0) and tuple(out[-1, 20]) == (0, 0, 255)  # both ends kept
    assert (out[:, :10] == 200).all() and (out[:, 30:] == 200).all()  # padding in the border's colour
    assert np.array_equal(frame_image(photo, 40), out)  # the whole photo is the default frame


def test_square_image_is_only_resized():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(frame_image(img, 32), img)
    assert frame_image(img, 16).shape == (16, 16, 3)


def test_frame_around_a_box_with_margin_and_outside_the_photo():
    f = frame_for(100, 100, box=(80, 10, 100, 50), margin=0.5)  # 20 × 40 box near the right edge
    assert f.side == pytest.approx(60.0) and f.centre == pytest.approx((90.0, 30.0))
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, 90:] = 255
    out = frame_image(img, 60, f)
    assert out.shape == (60, 60, 3)
    assert (out[:, 45:] == np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]), 0)).all()
    assert (out[30, 31:39] == 255).all()  # the white band stays where it was, relative to the frame centre


def test_frames_at_fractional_positions_inside_the_photo():
    img = np.zeros((100, 100, 3), np.uint8)
    img[30:40, 30:40] = 255
    for x0 in (10.0, 10.3, 10.7, 29.5):
        out = frame_image(img, 160, Frame(x0, x0, 50.0))
        assert out.shape == (160, 160, 3)
        centre = (35 - x0) * 160 / 50  # the white square's centre, in output pixels
        c = int(round(centre))
        assert out[c, c].min() > 200
    assert Frame(1, 2, 3).scaled(2) == Frame(2, 4, 6)


def test_grayscale_rgba_and_bad_shapes():
    assert frame_image(np.zeros((10, 30), np.uint8), 8).shape == (8, 8, 3)
    assert frame_image(np.zeros((10, 30, 4), np.uint8), 8).shape == (8, 8, 3)
    with pytest.raises(InputError):
        frame_image(np.zeros((4, 4, 5), np.uint8), 8)
    assert Frame(0, 0, 4).centre == (2, 2)


def test_centre_frame_is_the_centre_crop():
    photo = np.arange(30 * 50 * 3, dtype=np.uint8).reshape(30, 50, 3)  # landscape, odd margin (20 px)
    f = centre_frame(30, 50)
    assert f == Frame(10.0, 0.0, 30.0)
    assert np.array_equal(frame_image(photo, 30, f), photo[:, 10:40])  # no padding, no resampling at its own size
    assert centre_frame(41, 40) == Frame(0.0, 0.0, 40.0)


def test_upright_image_turns_a_rolled_object_back_upright():
    """A bar photographed with the camera rolled by 20° (the photo turned counter-clockwise about the frame's
    centre) is upright again in ``upright_image(..., 20)``: as ``frame_image`` cut it from the unrolled photo."""
    from PIL import Image

    photo = np.full((300, 400, 3), 90, np.uint8)
    photo[80:220, 190:210] = 250  # an upright bar
    photo[80:100, 150:250] = 250  # with a crossbar on top: a T, so that a turn either way shows
    frame = Frame(110.0, 60.0, 180.0)
    turn = Image.fromarray(photo).rotate(20, Image.Resampling.BILINEAR, center=frame.centre, fillcolor=(90,) * 3)
    rolled = np.asarray(turn)
    upright = frame_image(photo, 96, frame).astype(np.float64)

    def diff(a: np.ndarray) -> float:
        return float(np.abs(a.astype(np.float64) - upright).mean())

    assert diff(upright_image(rolled, 96, frame, 20.0)) < 4.0
    assert diff(frame_image(rolled, 96, frame)) > 4 * diff(upright_image(rolled, 96, frame, 20.0))
    assert diff(upright_image(rolled, 96, frame, -20.0)) > 4 * diff(upright_image(rolled, 96, frame, 20.0))
    assert diff(upright_image(photo, 96, frame, 0.0)) < 2.0  # no roll: the frame as frame_image cuts it
    # past the photo's edges, at any roll, the border's colour as frame_image pads (never black corners)
    edge = Frame(-150.0, -100.0, 300.0)
    for roll in (0.0, 45.0, -30.0):
        out = upright_image(photo, 64, edge, roll)
        assert out.shape == (64, 64, 3) and (out[:4, :4] == 90).all() and out.min() >= 89


def test_upright_image_undoes_the_roll_a_registration_reports():
    """The roll convention across layers: an object drawn at a registration's placement rolled by 20°
    (:func:`cadsearch.register.warp_render`, as the registered overlay draws it) is turned back upright by
    ``upright_image(..., 20)``, not by −20°: the upright pass turns by the roll registration reports."""
    from cadsearch.register import Placement, warp_render

    alpha = np.zeros((64, 64), np.float32)
    alpha[8:56, 28:36] = 1.0  # a T: a bar
    alpha[8:16, 12:52] = 1.0  # and its crossbar
    rgb = np.zeros((64, 64, 3), np.uint8)

    def photo(roll: float) -> np.ndarray:
        _, a = warp_render(Placement(200.0, 150.0, 160.0, roll), rgb, alpha, 300, 400)
        return np.repeat((250 * a[..., None] + 90 * (1 - a[..., None])).astype(np.uint8), 3, axis=2)

    frame = Frame(120.0, 70.0, 160.0)  # the placement's square
    upright = frame_image(photo(0.0), 96, frame).astype(np.float64)
    back = float(np.abs(upright_image(photo(20.0), 96, frame, 20.0) - upright).mean())
    wrong = float(np.abs(upright_image(photo(20.0), 96, frame, -20.0) - upright).mean())
    assert back < 4.0 and wrong > 4 * back
