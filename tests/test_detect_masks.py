"""Object masks for the localiser: composites return the visible masks of their objects, roll turns cutouts in the
image plane, masks are framed and unframed like the photo, and the mask head's maps have the stride-4 shape."""

from __future__ import annotations

import numpy as np
import pytest

from cadsearch.detect.composites import (
    BackgroundPhotos,
    CompositeConfig,
    Cutout,
    _contact_shadow,
    _harmonise,
    make_composite,
    roll_cutout,
    usable_backgrounds,
)
from cadsearch.detect.masks import frame_mask, mask_iou, unframe_mask
from cadsearch.framing import Frame, frame_image

#: the realistic-pasting options off (each: no random draw), for tests that need exact object shapes and colours
NO_REALISM = {"recolour_p": 0.0, "shadow_p": 0.0, "harmonise_p": 0.0, "feather_p": 0.0, "table_p": 0.0,
              "group_p": 0.0}  # fmt: skip
PLAIN = CompositeConfig(photo_side=160, occluder_p=0.0, blur_p=0.0, noise_p=0.0, jpeg_p=0.0, **NO_REALISM)


def _discs(n: int = 3) -> list[Cutout]:
    yy, xx = np.mgrid[0:40, 0:30]
    mask = (((xx - 15) / 14.0) ** 2 + ((yy - 20) / 19.0) ** 2 <= 1).astype(np.float32)
    return [Cutout(np.full((40, 30, 3), 60 * (i + 1), np.uint8), mask) for i in range(n)]


def _bar(length: int = 60, thick: int = 4) -> Cutout:
    """A thin upright bar (length × thick pixels), exactly masked."""
    return Cutout(np.full((length, thick, 3), 200, np.uint8), np.ones((length, thick), np.float32))


def _mask_box(m: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m >= 0.5)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_composite_masks_match_the_boxes_and_cost_no_randomness() -> None:
    photos = BackgroundPhotos([])
    cfg = CompositeConfig(photo_side=128)  # occluders and overlaps on: masks are the *visible* parts
    seen_overlap = False
    for seed in range(12):
        image, boxes = make_composite(np.random.default_rng(seed), _discs(), photos, cfg)
        placements: list[dict] = []
        image2, boxes2, masks = make_composite(np.random.default_rng(seed), _discs(), photos, cfg,
                                               return_masks=True, placements=placements)  # fmt: skip
        assert np.array_equal(image, image2) and np.array_equal(boxes, boxes2)  # the same draw with or without
        assert masks.shape == (len(boxes), *image.shape[:2]) and masks.dtype == np.float32
        assert len(placements) == len(boxes)
        assert masks.min(initial=0.0) >= 0.0 and masks.max(initial=1.0) <= 1.0
        for m, b in zip(masks, boxes, strict=True):
            assert _mask_box(m) == tuple(int(v) for v in b)
        if len(masks) > 1:
            seen_overlap |= bool(((masks > 0.5).sum(axis=0) > 1).any())  # (0.5 and 0.5 is a tie)
    assert not seen_overlap  # a pixel is visible on one object at most (later ones hide earlier ones)
    _, none, empty = make_composite(np.random.default_rng(0), _discs(), photos, cfg, n_objects=0, return_masks=True)
    assert none.shape == (0, 4) and empty.shape[0] == 0 and empty.ndim == 3


def test_roll_turns_the_cutout_counter_clockwise_with_clean_edges() -> None:
    bar = _bar()
    rgb, alpha = roll_cutout(bar.rgb, bar.mask, 90.0)
    x0, y0, x1, y1 = _mask_box(alpha)
    assert (x1 - x0, y1 - y0) == (60, 4)  # upright → lying
    rgb, alpha = roll_cutout(bar.rgb, bar.mask, 45.0)
    x0, y0, x1, y1 = _mask_box(alpha)
    assert abs((x1 - x0) - (y1 - y0)) <= 2 and 42 <= x1 - x0 <= 48  # 60 · sin 45° + 4 · cos 45° ≈ 45
    # counter-clockwise on screen: the bar's top end moves left, so its top row lies left of its bottom row
    top, bottom = np.nonzero(alpha[y0] >= 0.5)[0].mean(), np.nonzero(alpha[y1 - 1] >= 0.5)[0].mean()
    assert top < bottom
    # premultiplied: the edge pixels keep the object's colour instead of fading to the canvas's black
    edge = (alpha > 0.05) & (alpha < 0.95)
    assert edge.any() and np.abs(rgb[edge] - 200).max() < 1.0


def test_rolled_composites_rotate_the_box_of_a_thin_bar() -> None:
    photos = BackgroundPhotos([])
    base = CompositeConfig(photo_side=160, occluder_p=0.0, blur_p=0.0, noise_p=0.0, jpeg_p=0.0, outside=0.0,
                           area_range=(0.02, 0.02), roll_p=0.0, **NO_REALISM)  # fmt: skip
    rolled = CompositeConfig(**{**base.__dict__, "roll_p": 1.0, "roll_range_deg": 60.0})
    upright = make_composite(np.random.default_rng(1), [_bar()], photos, base, n_objects=1)[1][0]
    assert (upright[3] - upright[1]) > 5 * (upright[2] - upright[0])
    angles = []
    for seed in range(8):
        placements: list[dict] = []
        _, boxes = make_composite(np.random.default_rng(seed), [_bar()], photos, rolled, n_objects=1,
                                  placements=placements)  # fmt: skip
        theta = np.radians(placements[0]["roll_deg"])
        length, thick = 60 * placements[0]["scale"], 4 * placements[0]["scale"]
        w, h = boxes[0, 2] - boxes[0, 0], boxes[0, 3] - boxes[0, 1]
        assert w == pytest.approx(length * abs(np.sin(theta)) + thick * abs(np.cos(theta)), abs=3)
        assert h == pytest.approx(length * abs(np.cos(theta)) + thick * abs(np.sin(theta)), abs=3)
        angles.append(placements[0]["roll_deg"])
    assert max(np.abs(angles)) <= 60 and np.ptp(angles) > 30


def test_a_framed_mask_lines_up_with_the_framed_photo_and_maps_back() -> None:
    h, w = 90, 140
    yy, xx = np.mgrid[0:h, 0:w]
    disc = ((xx - 100) ** 2 + (yy - 40) ** 2 <= 20**2).astype(np.float32)
    photo = np.where(disc[..., None] > 0, 255, 0).astype(np.uint8).repeat(3, axis=2)
    for frame in (None, Frame(70.0, 5.0, 70.0), Frame(60.0, -20.0, 100.0)):  # whole, inside, past the edge
        square = frame_mask(disc, 64, frame)
        framed = frame_image(photo, 64, frame)[..., 0] / 255.0
        assert square.shape == (64, 64) and mask_iou(square, framed) > 0.9
        f = frame or Frame(0.0, -25.0, 140.0)  # the whole photo's letterbox square
        back = unframe_mask(square, f, h, w)
        assert back.shape == (h, w) and mask_iou(back, disc) > 0.9
    assert np.isnan(mask_iou(np.zeros((4, 4)), np.zeros((4, 4))))


def test_the_mask_head_predicts_on_the_stride_4_grid() -> None:
    import torch

    from cadsearch.detect.model import CenterHead, MaskHead

    s = 64  # the body's maps for a 64 px input: strides 4, 8, 16, 32 (lite0's channels)
    c4, c8, c16, c32 = (torch.zeros(2, c, s // k, s // k) for c, k in ((24, 4), (40, 8), (112, 16), (320, 32)))
    head, mask_head = CenterHead((112, 320), 16).eval(), MaskHead((24, 40, 112, 320), 16).eval()
    with torch.no_grad():
        heat, size, offset = head(c16, c32)
        mask = mask_head(c4, c8, c16, c32)
    assert heat.shape == (2, 1, 4, 4) and size.shape == offset.shape == (2, 2, 4, 4)
    assert mask.shape == (2, 1, 16, 16) and torch.isfinite(mask).all()
    # the heads share no weights (training keeps each one's best epoch) and the mask head has no box outputs
    assert not {id(p) for p in head.parameters()} & {id(p) for p in mask_head.parameters()}
    assert not any(k.startswith(("context.heat", "context.size", "context.offset")) for k in mask_head.state_dict())


def test_recoloured_objects_keep_their_masks_and_change_colour() -> None:
    photos = BackgroundPhotos([])
    plain = CompositeConfig(**{**PLAIN.__dict__, "roll_p": 0.0})
    recoloured = CompositeConfig(**{**plain.__dict__, "recolour_p": 1.0})
    colours = []
    for cfg in (plain, recoloured):
        image, boxes, masks = make_composite(np.random.default_rng(5), _discs(1), photos, cfg, n_objects=1,
                                             return_masks=True)  # fmt: skip
        again = make_composite(np.random.default_rng(5), _discs(1), photos, cfg, n_objects=1)[0]
        assert np.array_equal(image, again) and _mask_box(masks[0]) == tuple(int(v) for v in boxes[0])
        colours.append(image[masks[0] > 0.99].astype(float).mean(axis=0))
    assert np.abs(colours[0] - colours[1]).max() > 5  # the same disc, another colour


def test_a_table_band_hides_the_lower_part_of_the_same_placement() -> None:
    photos = BackgroundPhotos([])
    free = CompositeConfig(**{**PLAIN.__dict__, "roll_p": 0.0, "outside": 0.0, "area_range": (0.1, 0.1)})
    behind = CompositeConfig(**{**free.__dict__, "table_p": 1.0})
    for seed in range(4):  # the table is drawn after every object is placed: the same placement both ways
        _, whole = make_composite(np.random.default_rng(seed), _discs(1), photos, free, n_objects=1)
        _, hidden, masks = make_composite(np.random.default_rng(seed), _discs(1), photos, behind, n_objects=1,
                                          return_masks=True)  # fmt: skip
        assert len(hidden) <= 1
        if len(hidden):  # mostly hidden objects are no target at all (min_visible)
            assert hidden[0, 1] == whole[0, 1] and hidden[0, 3] < whole[0, 3]  # same top, bottom cut off
            assert _mask_box(masks[0]) == tuple(int(v) for v in hidden[0])


def test_a_group_is_one_model_at_one_size_side_by_side() -> None:
    photos = BackgroundPhotos([])
    cfg = CompositeConfig(**{**PLAIN.__dict__, "group_p": 1.0, "occluder_p": 0.0, "min_visible": 0.0})
    placements: list[dict] = []
    make_composite(np.random.default_rng(1), _discs(3), photos, cfg, n_objects=3, placements=placements)
    assert len({p["cutout"] for p in placements}) == 1 and len({round(p["scale"], 6) for p in placements}) == 1


def test_a_contact_shadow_darkens_under_the_base_only() -> None:
    canvas = np.full((100, 100, 3), 200.0, np.float32)
    alpha = np.zeros((40, 30), np.float32)
    alpha[:, 5:25] = 1.0
    _contact_shadow(canvas, alpha, 35, 20, np.random.default_rng(0))  # the object's base row is y = 59
    assert canvas[59, 50].max() < 180 and np.all(canvas[:40] == 200.0)  # dark at the base, nothing above it


def test_harmonising_pulls_the_object_towards_the_background_colour() -> None:
    canvas = np.zeros((50, 50, 3), np.float32)
    canvas[..., 0] = 200.0
    rgb, alpha = np.full((10, 10, 3), 100.0, np.float32), np.ones((10, 10), np.float32)
    out = _harmonise(rgb, alpha, canvas, 5, 5, 0.5)
    assert out[0, 0, 0] == pytest.approx(150.0) and out[0, 0, 1] < 100.0  # red up, green and blue down


def test_backgrounds_showing_a_chair_are_left_out() -> None:
    from pathlib import Path

    # 52 and 729 from the first look, 64 (an armchair at the photo's edge) and 738 from the second
    files = [Path("00000052_001.jpg"), Path("00000053_001.jpg"), Path("x/00000729_002.jpg"), Path("00000064_001.jpg"),
             Path("x/00000738_004.jpg")]  # fmt: skip
    assert usable_backgrounds(files) == [Path("00000053_001.jpg")]


def test_frame_filling_objects_and_studio_backdrops() -> None:
    photos = BackgroundPhotos([])
    fill = CompositeConfig(**{**PLAIN.__dict__, "fill_p": 1.0, "roll_p": 0.0, "empty_share": 0.0})
    for seed in range(6):
        image, boxes = make_composite(np.random.default_rng(seed), _discs(), photos, fill)
        h, w = image.shape[:2]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (h * w)
        assert len(boxes) == 1 and area[0] > 0.25  # one object, at least a quarter of the photo
    rooms = BackgroundPhotos([])
    rooms.photos.append(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))  # a "busy room"
    steps = {}
    for share in (0.0, 1.0):
        cfg = CompositeConfig(**{**PLAIN.__dict__, "studio_p": share})
        image, _ = make_composite(np.random.default_rng(0), _discs(), rooms, cfg, n_objects=0)
        steps[share] = int(np.abs(np.diff(image.astype(np.int16), axis=1)).max())
    assert steps[0.0] > 50 and steps[1.0] <= 3  # a plain or gradient backdrop instead of the room photo
