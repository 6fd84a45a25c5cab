"""cadsearch: find the 3D model a photo shows, and the camera pose it was taken from.

Public API (kept small on purpose; see DESIGN.md for the conventions):

- :class:`cadsearch.library.Library` — the catalog of canonical meshes in a workspace.
- :func:`cadsearch.render.create_renderer` — ``"low"`` (OpenGL rasteriser) renderers.
- :mod:`cadsearch.render.cameras` — the one camera convention (polar/azimuth in degrees).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
