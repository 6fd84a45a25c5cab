"""What every renderer returns, and the interface every renderer implements.

Both the rasteriser (quality ``low``, :mod:`cadsearch.render.raster`) and the ray tracer (quality ``high``)
take a canonical mesh and a :class:`~cadsearch.render.cameras.Camera` and return a :class:`RenderOutput`: the
object over black, its anti-aliased coverage and its depth. Backgrounds are a separate step
(:func:`cadsearch.render.backgrounds.composite`), so one render can be reused over many backgrounds and the mask
stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import trimesh

    from cadsearch.render.cameras import Camera

__all__ = ["RenderOutput", "Renderer"]


@dataclass
class RenderOutput:
    """One rendered view. All arrays are top row first (image convention), H = W = the renderer's size.

    Attributes:
        rgb: (H, W, 3) uint8, the shaded object over black, *premultiplied* by coverage: an edge pixel that the
            object covers by a quarter holds a quarter of the object's colour. Composite with
            ``rgb + (1 - alpha) * background``.
        alpha: (H, W) float32 in [0, 1], the object's anti-aliased coverage (fraction of samples covered).
        depth: (H, W) float32, distance from the camera centre along its viewing axis (camera-space −z) in
            canonical units, 0 where no object is seen. At anti-aliased edges it is the depth of the nearest
            covered sample, never a blend of object and background.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, pixels the object covers at least half: ``alpha >= 0.5``."""
        return self.alpha >= 0.5

    @property
    def size(self) -> int:
        """Image height (= width) in pixels."""
        return int(self.alpha.shape[0])


@runtime_checkable
class Renderer(Protocol):
    """A renderer of canonical meshes (``quality`` is ``low`` or ``high``; ``size`` the square image side).

    ``render`` must be deterministic: the same mesh, camera and ``light_seed`` give identical arrays.
    ``light_seed`` picks a random (but reproducible) lighting; ``None`` means the renderer's default lighting.
    ``close`` frees what the renderer holds (GPU buffers, a ray-tracing scene); the renderer is not used after.
    """

    quality: str
    size: int

    def render(self, mesh: trimesh.Trimesh, camera: Camera, *, light_seed: int | None = None) -> RenderOutput:
        """Render ``mesh`` (canonical frame) as seen by ``camera``."""
        ...

    def close(self) -> None:
        """Release resources; idempotent."""
        ...
