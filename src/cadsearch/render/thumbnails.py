"""Thumbnails: one picture of a model from a flattering, fixed viewpoint, for people (sheets, web pages)."""

from __future__ import annotations

import numpy as np
import trimesh

from cadsearch.render.cameras import Camera

__all__ = ["THUMBNAIL_POLAR_DEG", "THUMBNAIL_AZIMUTH_DEG", "library_sheet", "render_thumbnail"]

#: A front three-quarter view from a little above: the usual product shot.
THUMBNAIL_POLAR_DEG = 65.0
THUMBNAIL_AZIMUTH_DEG = 35.0


def render_thumbnail(
    mesh: trimesh.Trimesh,
    renderer,
    polar_deg: float = THUMBNAIL_POLAR_DEG,
    azimuth_deg: float = THUMBNAIL_AZIMUTH_DEG,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """``mesh`` (canonical frame) seen from (``polar_deg``, ``azimuth_deg``) over a plain ``background``.

    ``renderer`` is any renderer from :func:`cadsearch.render.create_renderer`; its size sets the thumbnail's.
    Returns (H, W, 3) uint8.
    """
    out = renderer.render(mesh, Camera(polar_deg, azimuth_deg))
    bg = np.asarray(background, dtype=np.float32)
    # rgb is premultiplied by coverage, so compositing over a colour is rgb + (1 - alpha) * colour.
    rgb = out.rgb.astype(np.float32) + (1.0 - out.alpha[..., None]) * bg
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def library_sheet(library, model_ids, size: int = 160, columns: int = 8, captions=None):
    """A contact sheet of the thumbnails of ``model_ids`` from ``library`` (a :class:`cadsearch.library.Library`).

    Captions default to the models' names. Returns a Pillow RGB image.
    """
    from cadsearch.render import create_renderer
    from cadsearch.viz import contact_sheet

    renderer = create_renderer("low", size=size)
    try:
        thumbs = [render_thumbnail(library.mesh(model_id), renderer) for model_id in model_ids]
    finally:
        renderer.close()
    if captions is None:
        captions = [library.get(model_id).name for model_id in model_ids]
    return contact_sheet(thumbs, captions, columns=columns)
