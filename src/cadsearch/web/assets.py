"""Pictures and files of library models for the web pages: thumbnails, posed renders, GLBs, overlays.

Default-pose thumbnails and GLB files are cached on disk under ``<workspace>/web-cache/`` (written atomically,
named by the model's checksum so a changed model never shows a stale picture); renders at an estimated pose
are cached in memory only (poses are unbounded, a disk cache of them would grow without limit).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from cadsearch.framing import Frame
from cadsearch.register.placement import Placement
from cadsearch.render.thumbnails import THUMBNAIL_AZIMUTH_DEG, THUMBNAIL_POLAR_DEG, render_thumbnail
from cadsearch.web.images import encode_png
from cadsearch.workspace import atomic_write_bytes

__all__ = ["ModelAssets", "CACHE_DIR"]

T = TypeVar("T")

log = logging.getLogger("cadsearch.web")

#: The web app's cache folder inside the workspace.
CACHE_DIR = "web-cache"
#: Colour around the model in thumbnails (:func:`~cadsearch.render.thumbnails.render_thumbnail`'s default).
THUMBNAIL_BACKGROUND = (255, 255, 255)
#: Posed renders kept in memory (a results page shows top-k of them; ~30 KB each).
POSED_CACHE_SIZE = 512


def _drop_gl_context() -> None:
    """Release the process's OpenGL context, if any (the next render makes a new one)."""
    from cadsearch.render import release_renderers

    release_renderers()


class ModelAssets:
    """Makes and caches the pictures and files of ``library``'s models.

    Thread-safe. Every mesh load and every render runs on one dedicated thread: the library's mesh cache is not
    thread-safe (the renders themselves run on the rasteriser's own GL thread, whichever thread asks, see
    :mod:`cadsearch.render.raster`). :meth:`close` releases the process's OpenGL context and stops the thread.
    """

    def __init__(self, library: Any, workspace: Path, thumbnail_size: int = 256):
        self.library = library
        self.cache_dir = Path(workspace) / CACHE_DIR
        self.size = int(thumbnail_size)
        self._renderer = None
        self._lock = threading.Lock()  # guards the in-memory cache only
        self._posed: OrderedDict[tuple, bytes] = OrderedDict()
        self._render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cadsearch-render")

    def _on_render_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the render thread and wait for its result (exceptions propagate)."""
        return self._render_thread.submit(fn, *args).result()

    def close(self) -> None:
        """Release the process's OpenGL context and stop the thread (after the renders already asked for)."""
        if self._renderer is not None:
            self._on_render_thread(_drop_gl_context)
            self._renderer = None
        self._render_thread.shutdown(wait=True)

    # --- thumbnails ---------------------------------------------------------------------------------------

    def thumbnail_png(
        self,
        model_id: str,
        polar_deg: float | None = None,
        azimuth_deg: float | None = None,
        roll_deg: float | None = None,
    ) -> bytes:
        """PNG of ``model_id`` from the default product-shot pose, or from (``polar_deg``, ``azimuth_deg``), the
        picture turned counter-clockwise by ``roll_deg`` (the render square turned about its centre, as a
        :class:`~cadsearch.register.Placement` turns it; the model stays inside, it fits the inscribed circle).

        Raises:
            InputError: unknown model id (the caller answers 404).
        """
        info = self.library.get(model_id)
        # Whole degrees: finer turns are invisible in a thumbnail, and rounding lets near poses share a render.
        roll = float(round(roll_deg or 0.0) % 360)
        if polar_deg is None and azimuth_deg is None and roll == 0.0:
            path = self.cache_dir / "thumbnails" / f"{model_id}-{info.checksum[:12]}-{self.size}.png"
            if path.is_file():
                return path.read_bytes()
            png = encode_png(self._render(model_id, THUMBNAIL_POLAR_DEG, THUMBNAIL_AZIMUTH_DEG))
            # not durable: a thumbnail lost in a power cut is simply rendered again
            atomic_write_bytes(path, png, durable=False)
            return png
        # Whole degrees: finer steps are invisible in a thumbnail, and rounding lets near poses share a render.
        polar = float(np.clip(round(polar_deg if polar_deg is not None else THUMBNAIL_POLAR_DEG), 1, 179))
        azimuth = float(round(azimuth_deg if azimuth_deg is not None else THUMBNAIL_AZIMUTH_DEG) % 360)
        key = (model_id, info.checksum, polar, azimuth, roll)
        with self._lock:
            cached = self._posed.get(key)
            if cached is not None:
                self._posed.move_to_end(key)
                return cached
        picture = self._render(model_id, polar, azimuth)
        if roll:
            # PIL turns counter-clockwise for a positive angle, as our roll does; the corners get the background
            turned = Image.fromarray(picture).rotate(roll, Image.Resampling.BICUBIC, fillcolor=THUMBNAIL_BACKGROUND)
            picture = np.asarray(turned)
        png = encode_png(picture)
        with self._lock:
            self._posed[key] = png
            while len(self._posed) > POSED_CACHE_SIZE:
                self._posed.popitem(last=False)
        return png

    def _render(self, model_id: str, polar_deg: float, azimuth_deg: float) -> np.ndarray:
        return self._on_render_thread(self._render_here, model_id, polar_deg, azimuth_deg)

    def _render_here(self, model_id: str, polar_deg: float, azimuth_deg: float) -> np.ndarray:
        if self._renderer is None:
            from cadsearch.render import create_renderer

            self._renderer = create_renderer("low", size=self.size)
        return render_thumbnail(
            self.library.mesh(model_id), self._renderer, polar_deg, azimuth_deg, background=THUMBNAIL_BACKGROUND
        )

    # --- 3D file --------------------------------------------------------------------------------------------

    def glb_path(self, model_id: str) -> Path:
        """The cached binary glTF of ``model_id``'s canonical mesh (+Y up, front +Z), exported on first use.

        Raises:
            InputError: unknown model id.
        """
        info = self.library.get(model_id)
        path = self.cache_dir / "glb" / f"{model_id}-{info.checksum[:12]}.glb"
        if not path.is_file():
            mesh = self._on_render_thread(self.library.mesh, model_id)
            atomic_write_bytes(path, mesh.export(file_type="glb"), durable=False)
        return path

    # --- registration overlay ---------------------------------------------------------------------------------

    def overlay_png(
        self,
        image: np.ndarray,
        match: Any,
        frame: Frame | None = None,
        box: Any = None,
        placement: Placement | None = None,
    ) -> bytes:
        """PNG of ``match``'s model drawn over ``image`` (H, W, 3 uint8) at the estimated pose, fitted to the object:
        at ``placement`` (the registered render square in ``image``'s pixels) when given, else placed on ``frame``
        (the square the network looked at, in ``image``'s pixels) or fitted to ``box`` (a detected object's box in
        those pixels) (:func:`cadsearch.search.overlay.render_overlay`)."""
        from cadsearch.search.overlay import render_overlay

        overlay = self._on_render_thread(render_overlay, self.library, image, match, None, frame, box, placement)
        return encode_png(np.asarray(overlay, dtype=np.uint8))
