"""Registration overlay: shape, and the outline drawn where the model is in the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.framing import backdrop_box
from cadsearch.library import Library
from cadsearch.register import Placement
from cadsearch.render.job import load_view, read_view_table
from cadsearch.search import ModelMatch
from cadsearch.search.overlay import OUTLINE_RGB, render_overlay


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    im = Image.fromarray((mask * 255).astype(np.uint8))
    from PIL import ImageFilter

    return np.asarray(im.filter(ImageFilter.MaxFilter(2 * px + 1))) > 0


def test_outline_is_drawn_on_the_object(search_ws: Path) -> None:
    library = Library.open(search_ws)
    row = read_view_table(search_ws)[2]
    rgb, mask, _ = load_view(search_ws, row)
    # the object, shrunk and moved into a larger photo: the fit must find it there
    photo = np.zeros((240, 320, 3), np.uint8) + rgb[0, 0]
    small = np.asarray(Image.fromarray(rgb).resize((120, 120)))
    small_mask = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((120, 120))) >= 128
    photo[90:210, 170:290] = small
    truth = np.zeros((240, 320), bool)
    truth[90:210, 170:290] = small_mask
    match = ModelMatch(1, row.model_id, "x", "chair", 0.9, row.polar_deg, row.azimuth_deg, row.view_id)
    out = render_overlay(library, photo, match)
    assert out.shape == photo.shape and out.dtype == np.uint8
    outline = np.all(out == OUTLINE_RGB, axis=2)
    assert outline.sum() > 50
    assert (outline & _dilate(truth, 6)).sum() / outline.sum() > 0.9  # on the object's silhouette
    # something is blended on the object and the far corner is untouched
    assert np.abs(out[truth].astype(int) - photo[truth].astype(int)).mean() > 5
    assert (out[:40, :40] == photo[:40, :40]).all()


def test_overlay_size_and_backdrop_box() -> None:
    blank = np.full((50, 80, 3), 200, np.uint8)
    assert backdrop_box(blank) is None  # nothing differs from the border
    blank[10:30, 40:60] = 20
    x0, y0, x1, y1 = backdrop_box(blank)
    assert (round(x0), round(y0), round(x1), round(y1)) == (40, 10, 60, 30)


def test_overlay_output_size(search_ws: Path) -> None:
    library = Library.open(search_ws)
    row = read_view_table(search_ws)[0]
    rgb, _, _ = load_view(search_ws, row)
    match = ModelMatch(1, row.model_id, "x", "chair", 0.9, row.polar_deg, row.azimuth_deg, row.view_id)
    assert render_overlay(library, rgb, match, size=96).shape == (96, 96, 3)


# --- one drawing path: frame / box fit as roll-0 placements, registered placements with roll -------------------


def _overlay_before_registration(library: Library, photo: np.ndarray, match: ModelMatch) -> np.ndarray:
    """The overlay as drawn before registration (commit 98f6bdf), for a photo at its own size: the render resized
    to the placed side and pasted at whole pixels, placed by the backdrop box or else the padded square."""
    from PIL import ImageFilter

    from cadsearch.framing import frame_for
    from cadsearch.search.overlay import BLEND, RENDER_SIZE, _render, _resize

    h, w = photo.shape[:2]
    rgb, alpha = _render(library, match.model_id, match.polar_deg, match.azimuth_deg, RENDER_SIZE)
    f = frame_for(h, w)
    side, (cx, cy) = f.side, f.centre
    box = backdrop_box(photo)
    ys, xs = np.nonzero(alpha >= 0.5)
    if box is not None:
        rx0, rx1, ry0, ry1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        bx0, by0, bx1, by1 = box
        side = RENDER_SIZE * 0.5 * ((bx1 - bx0) / (rx1 - rx0) + (by1 - by0) / (ry1 - ry0))
        cx = (bx0 + bx1) / 2 - ((rx0 + rx1) / 2 / RENDER_SIZE - 0.5) * side
        cy = (by0 + by1) / 2 - ((ry0 + ry1) / 2 / RENDER_SIZE - 0.5) * side
    n = max(2, int(round(side)))
    left, top = int(round(cx - n / 2)), int(round(cy - n / 2))
    big_rgb, big_alpha = _resize(rgb, n).astype(np.float32), np.clip(_resize(alpha, n), 0.0, 1.0)
    canvas_a, canvas_rgb = np.zeros((h, w), np.float32), np.zeros((h, w, 3), np.float32)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + n, h), min(left + n, w)
    canvas_a[y0:y1, x0:x1] = big_alpha[y0 - top : y1 - top, x0 - left : x1 - left]
    canvas_rgb[y0:y1, x0:x1] = big_rgb[y0 - top : y1 - top, x0 - left : x1 - left]
    out = photo.astype(np.float32) * (1.0 - BLEND * canvas_a[..., None]) + BLEND * canvas_rgb
    mask = Image.fromarray(((canvas_a >= 0.5) * 255).astype(np.uint8))
    width = max(3, round(max(h, w) / 250)) | 1
    edge = np.asarray(mask.filter(ImageFilter.MaxFilter(width))) > np.asarray(mask.filter(ImageFilter.MinFilter(width)))
    out[edge] = OUTLINE_RGB
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _outline(picture: np.ndarray) -> np.ndarray:
    return np.all(picture == OUTLINE_RGB, axis=2)


def _match_for(search_ws: Path, i: int = 2, **fields) -> ModelMatch:
    row = read_view_table(search_ws)[i]
    return ModelMatch(1, row.model_id, "x", "chair", 0.9, row.polar_deg, row.azimuth_deg, row.view_id, **fields)


@pytest.mark.parametrize("backdrop", ["plain", "cluttered"])
def test_unregistered_overlay_is_the_overlay_of_before(search_ws: Path, backdrop: str) -> None:
    """Box fit (plain backdrop) and frame placement (cluttered: no backdrop box) now go through a Placement and the
    affine warp; what they draw must not move: the same outline within a pixel and the same colours within a few
    levels (the old paste rounded the square to whole pixels, the warp keeps the fraction)."""
    library = Library.open(search_ws)
    match = _match_for(search_ws)
    rng = np.random.default_rng(0)
    if backdrop == "plain":
        photo = np.full((240, 320, 3), 170, np.uint8)
        photo[70:190, 110:250] = (90, 60, 40)  # the "object": a box the fit scales the silhouette to
    else:
        photo = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    assert (backdrop_box(photo) is None) == (backdrop == "cluttered")
    before = _overlay_before_registration(library, photo, match)
    after = render_overlay(library, photo, match)
    assert after.shape == before.shape
    old, new = _outline(before), _outline(after)
    assert old.sum() > 100 and abs(int(new.sum()) - int(old.sum())) < 0.1 * old.sum()
    assert (new & _dilate(old, 1)).sum() / new.sum() > 0.97 and (old & _dilate(new, 1)).sum() / old.sum() > 0.97
    inside = ~_dilate(old | new, 1)  # away from the outlines: the blended render and the untouched photo
    diff = np.abs(after.astype(int) - before.astype(int))[inside]
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 30


def _silhouette_at(search_ws: Path, match: ModelMatch, placement: Placement, h: int, w: int) -> np.ndarray:
    """Where the render's silhouette (coverage ≥ 0.5) lands in an ``h`` × ``w`` photo at ``placement``: every
    silhouette pixel centre mapped by :meth:`Placement.to_photo` (the contract), no image warping involved."""
    from cadsearch.search.overlay import RENDER_SIZE, _render

    _, alpha = _render(Library.open(search_ws), match.model_id, match.polar_deg, match.azimuth_deg, RENDER_SIZE)
    ys, xs = np.nonzero(alpha >= 0.5)
    pts = placement.to_photo(np.stack([xs + 0.5, ys + 0.5], axis=1), RENDER_SIZE)
    out = np.zeros((h, w), bool)
    ix, iy = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
    keep = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out[iy[keep], ix[keep]] = True
    return out


def test_registered_overlay_draws_the_silhouette_turned_at_the_placement(search_ws: Path) -> None:
    library = Library.open(search_ws)
    h, w = 240, 320
    photo = np.full((h, w, 3), 170, np.uint8)
    photo[10:60, 10:80] = 20  # something a box fit would have gone for: the registered placement must win
    drawn = {}
    for roll in (0.0, 30.0, -30.0):
        placement = Placement(175.0, 130.0, 220.0, roll)
        match = _match_for(search_ws, roll_deg=roll, placement=placement, silhouette_iou=0.9)
        drawn[roll] = render_overlay(library, photo, match)
    expected = _silhouette_at(search_ws, _match_for(search_ws), Placement(175.0, 130.0, 220.0, 30.0), h, w)
    assert expected.sum() > 2000
    edge = _dilate(expected, 2) & _dilate(~expected, 2)  # ±2 px around the expected silhouette's boundary
    on = {roll: (_outline(picture) & edge).sum() / _outline(picture).sum() for roll, picture in drawn.items()}
    assert on[30.0] > 0.95  # the outline is the silhouette turned by +30° at the placement
    assert on[0.0] < 0.7 and on[-30.0] < 0.7  # and not the upright or the mirrored turn

    # counter-clockwise, checked on the drawings alone: the silhouette's long axis turns by +30° (y up)
    def axis_deg(picture: np.ndarray) -> float:
        ys, xs = np.nonzero(np.any(picture != photo, axis=2))
        x, y = xs - xs.mean(), -(ys - ys.mean())
        return float(np.degrees(0.5 * np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean())))

    def turn(a: float, b: float) -> float:  # b - a on lines (mod 180), in [-90, 90)
        return (b - a + 90.0) % 180.0 - 90.0

    assert abs(turn(axis_deg(drawn[0.0]), axis_deg(drawn[30.0])) - 30.0) < 2.0
    assert abs(turn(axis_deg(drawn[0.0]), axis_deg(drawn[-30.0])) + 30.0) < 2.0
    assert (drawn[30.0][:5, :5] == photo[:5, :5]).all()  # far corner untouched


def test_registered_placement_follows_the_output_size(search_ws: Path) -> None:
    """A placement is in the searched image's pixels: drawn on a half-size output it lands at half the place."""
    library = Library.open(search_ws)
    photo = np.full((240, 320, 3), 170, np.uint8)
    placement = Placement(175.0, 130.0, 220.0, 30.0)
    match = _match_for(search_ws, roll_deg=30.0, placement=placement, silhouette_iou=0.9)
    full_picture = render_overlay(library, photo, match)
    half_picture = render_overlay(library, photo, match, size=160)
    assert half_picture.shape == (120, 160, 3)
    half = _outline(half_picture)
    expected = _silhouette_at(search_ws, match, placement.scaled(0.5), 120, 160)
    edge = _dilate(expected, 2) & _dilate(~expected, 2)
    assert (half & edge).sum() / half.sum() > 0.9
    ys, xs = np.nonzero(np.any(full_picture != 170, axis=2))  # the drawn silhouette, blend and outline
    hy, hx = np.nonzero(np.any(half_picture != 170, axis=2))
    assert abs(hx.mean() - xs.mean() / 2) < 2 and abs(hy.mean() - ys.mean() / 2) < 2
    # an explicit placement (e.g. scaled to a display copy of the photo) wins over the match's own
    moved = _outline(render_overlay(library, photo, match, placement=Placement(100.0, 120.0, 110.0, 30.0)))
    assert abs(np.nonzero(moved)[1].mean() - 100.0) < 10


def test_objects_overlay_draws_each_registered_placement(search_ws: Path) -> None:
    from cadsearch.detect.pictures import draw_boxes
    from cadsearch.search.overlay import render_objects_overlay
    from cadsearch.search.searcher import FoundObject

    library = Library.open(search_ws)
    photo = np.full((200, 400, 3), 170, np.uint8)
    left = Placement(100.0, 100.0, 150.0, 25.0)
    right = Placement(300.0, 100.0, 150.0, -25.0)
    objects = [
        FoundObject((30.0, 30.0, 170.0, 170.0), 0.9, [_match_for(search_ws, roll_deg=25.0, placement=left)]),
        FoundObject((230.0, 30.0, 370.0, 170.0), 0.8, [_match_for(search_ws, roll_deg=-25.0, placement=right)]),
    ]
    out = render_objects_overlay(library, photo, objects, size=200)  # half size: placements scale with it
    assert out.shape == (100, 200, 3)
    # the numbered boxes are drawn in the same green: leave their pixels out
    blank = np.full((100, 200, 3), 170, np.uint8)
    boxes = _outline(draw_boxes(blank, [(15, 15, 85, 85), (115, 15, 185, 85)], [0.9, 0.8]))
    outline = _outline(out) & ~boxes
    for p, half in ((left, np.s_[:, :100]), (right, np.s_[:, 100:])):
        expected = _silhouette_at(search_ws, objects[0].results[0], p.scaled(0.5), 100, 200)
        near = _dilate(expected, 2) & _dilate(~expected, 2)
        assert outline[half].sum() > 50
        assert (outline[half] & near[half]).sum() / outline[half].sum() > 0.9
