"""Rendering: cameras, renderers behind one factory, backgrounds, and the render job.

``create_renderer("low")`` gives the OpenGL rasteriser (Phong, headless EGL); ``create_renderer("high")`` the
Mitsuba 3 ray tracer (cast shadows, environment lighting). Both take a canonical ``trimesh.Trimesh`` and a
:class:`~cadsearch.render.cameras.Camera` and return a :class:`~cadsearch.render.types.RenderOutput`, and they
agree on what a camera sees (the silhouettes match).
"""

from __future__ import annotations

from typing import Any

from cadsearch.errors import InputError
from cadsearch.render.cameras import Camera

__all__ = ["QUALITIES", "Camera", "create_renderer", "release_renderers"]

#: Qualities a single renderer can have; the render job also accepts "mixed" (a share of views in each).
QUALITIES = ("low", "high")


def create_renderer(quality: str = "low", size: int = 128, **options: Any):
    """A renderer for ``quality`` (``"low"`` or ``"high"``) producing ``size`` × ``size`` images.

    ``options`` go to the backend: e.g. ``samples`` (MSAA) and ``light_jitter`` for ``low``; ``spp``,
    ``ground_plane`` and ``environment`` for ``high``. Backends import lazily, so using one never requires the
    other's dependencies.
    """
    if quality == "low":
        from cadsearch.render.raster import RasterRenderer

        return RasterRenderer(size=size, **options)
    if quality == "high":
        from cadsearch.render.raytrace import RayTracer

        return RayTracer(size=size, **options)
    raise InputError(f"unknown render quality {quality!r}; choose one of: {', '.join(QUALITIES)}")


def release_renderers() -> None:
    """Release the rendering resources this process holds for all renderers: today the rasteriser's OpenGL
    context (and the meshes and framebuffers on it).

    The next render makes a new context (on the rasteriser's GL thread, :mod:`cadsearch.render.raster`). Existing
    renderers stay usable; a process that holds nothing is left as it is. The ray tracer keeps no thread-bound
    state (its scenes belong to each renderer and go with :meth:`close`), so there is nothing to release for it.
    """
    from cadsearch.render.raster import release_gl

    release_gl()
