"""``Registrar``: registers library models in photos, for a long-lived searcher (meshes and renderer kept warm).

:func:`~cadsearch.register.refine.refine_pose` needs the model's mesh and a silhouette renderer; loading a mesh from
the workspace and uploading it costs more than a refinement, so the registrar keeps the last few meshes (LRU) and
one :class:`~cadsearch.register.refine.SilhouetteRenderer`. One lock serialises refinements: the OpenGL context is
one per process anyway.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from cadsearch.errors import CadsearchError
from cadsearch.framing import Frame
from cadsearch.register.refine import RefineConfig, Registration, SilhouetteRenderer, refine_pose

__all__ = ["Registrar"]


class Registrar:
    """Refines (model, photo mask, estimate) → :class:`~cadsearch.register.refine.Registration`. Thread-safe.

    Args:
        library: the :class:`~cadsearch.library.Library` the models come from (``mesh(model_id)``).
        config: :class:`~cadsearch.register.refine.RefineConfig`.
        cache_size: meshes kept loaded.
    """

    def __init__(self, library: Any, config: RefineConfig = RefineConfig(), cache_size: int = 16) -> None:
        self.library = library
        self.config = config
        self.cache_size = int(cache_size)
        self._meshes: OrderedDict[str, Any] = OrderedDict()
        self._renderer: SilhouetteRenderer | None = None
        self._lock = threading.Lock()
        #: Why registration cannot run in this process (no OpenGL context), or None. Searches then keep their
        #: poses rather than fail: registration refines an answer, it is not needed to give one.
        self.unavailable: str | None = None

    def _mesh(self, model_id: str) -> Any:
        if model_id in self._meshes:
            self._meshes.move_to_end(model_id)
            return self._meshes[model_id]
        mesh = self.library.mesh(model_id)
        self._meshes[model_id] = mesh
        while len(self._meshes) > self.cache_size:
            self._meshes.popitem(last=False)
        return mesh

    def refine(
        self, model_id: str, target: np.ndarray, frame: Frame, polar_deg: float, azimuth_deg: float
    ) -> Registration | None:
        """Refine ``model_id``'s pose and placement against ``target`` (the object mask over ``frame``), starting
        from (``polar_deg``, ``azimuth_deg``). None when the model's mesh cannot be loaded (it stays unregistered),
        or when this process has no OpenGL context (:attr:`unavailable`; said once on stderr)."""
        with self._lock:
            if self.unavailable is not None:
                return None
            try:
                mesh = self._mesh(model_id)
            except Exception:  # noqa: BLE001 - a missing or broken mesh: the result keeps the search's pose
                return None
            if self._renderer is None:
                from cadsearch.render.raster import gl_context

                try:
                    gl_context()  # created here, once, so that a machine without OpenGL is told, not crashed
                except CadsearchError as err:
                    self.unavailable = str(err)
                    print(f"warning: registration is off ({err})", file=sys.stderr)
                    return None
                self._renderer = SilhouetteRenderer(self.config.render_size, cache_size=self.cache_size)
            return refine_pose(mesh, target, frame, polar_deg, azimuth_deg, self._renderer, self.config, model_id)

    def close(self) -> None:
        """Release the renderer and the cached meshes."""
        with self._lock:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
            self._meshes.clear()
