"""Registration overlay: shape, and the outline drawn where the model is in the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cadsearch.framing import backdrop_box
from cadsearch.library import Library
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
