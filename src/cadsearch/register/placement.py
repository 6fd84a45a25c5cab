"""Where a model's render lands in a photo: a :class:`Placement` (centre, size and roll of the render square).

A render (:mod:`cadsearch.render`) is a square image of the model seen from (θ, φ) at roll 0, the camera at
:func:`~cadsearch.render.cameras.fit_distance`, the model's centre at the square's centre. A placement puts that
square into the photo: turned **counter-clockwise** by ``roll_deg`` about its centre (the object's up then leans
to the image's left for a positive roll; DESIGN.md's ``roll_deg``), scaled to ``side`` photo pixels and centred at
``(cx, cy)``. For a camera roll about the optical axis the turned render is exact; position and scale stand for the
camera's distance and aim (a weak-perspective approximation, good while the object is small in the field of view).

Coordinates: photo pixels, x right, y down, continuous (pixel ``i`` covers [i, i + 1)); render pixels the same on
the render square of side ``R``. Then, with M(ρ) = [[cos ρ, sin ρ], [−sin ρ, cos ρ]] (counter-clockwise on screen
with y down)::

    photo = (cx, cy) + side / R · M(ρ) · (render − R / 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cadsearch.framing import Frame

__all__ = ["Placement", "warp_render"]


@dataclass(frozen=True)
class Placement:
    """The render square in the photo: centre ``(cx, cy)`` and ``side`` in photo pixels, ``roll_deg`` counter-
    clockwise (see the module doc)."""

    cx: float
    cy: float
    side: float
    roll_deg: float = 0.0

    @classmethod
    def from_frame(cls, frame: Frame, roll_deg: float = 0.0) -> Placement:
        """The render square on ``frame`` (the square the network looked at), as the overlay placed it before
        registration."""
        cx, cy = frame.centre
        return cls(cx, cy, frame.side, roll_deg)

    def square(self) -> Frame:
        """The render square as a :class:`~cadsearch.framing.Frame` of the photo, unturned (:meth:`from_frame`'s
        inverse): where the appearance checks compare a placed render with the photo."""
        return Frame(self.cx - self.side / 2, self.cy - self.side / 2, self.side)

    def scaled(self, factor: float) -> Placement:
        """The same placement in a copy of the photo resized by ``factor``."""
        return Placement(self.cx * factor, self.cy * factor, self.side * factor, self.roll_deg)

    def matrix(self, render_size: int) -> np.ndarray:
        """(2, 3) float64 affine map from render pixels to photo pixels (the module doc's formula)."""
        k = self.side / render_size
        r = math.radians(self.roll_deg)
        m = k * np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
        t = np.array([self.cx, self.cy]) - m @ np.array([render_size / 2, render_size / 2])
        return np.concatenate([m, t[:, None]], axis=1)

    def to_photo(self, points: np.ndarray, render_size: int) -> np.ndarray:
        """(N, 2) render-pixel points (x, y) → (N, 2) photo pixels."""
        a = self.matrix(render_size)
        return np.asarray(points, np.float64) @ a[:, :2].T + a[:, 2]

    def to_json(self) -> dict[str, float | list[float]]:
        """``{"center": [cx, cy], "side": s, "roll_deg": ρ}``, photo pixels and degrees, rounded."""
        return {"center": [round(self.cx, 1), round(self.cy, 1)], "side": round(self.side, 1),
                "roll_deg": round(self.roll_deg, 2)}  # fmt: skip


def _inverse(a: np.ndarray) -> tuple[float, ...]:
    """PIL's AFFINE data: the photo → render map (a, b, c, d, e, f) of a render → photo (2, 3) matrix."""
    full = np.vstack([a, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)
    return tuple(float(v) for v in inv[:2].ravel())


def warp_render(
    placement: Placement, rgb: np.ndarray, alpha: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """A render drawn into a ``height`` × ``width`` photo at ``placement``.

    Args:
        placement: where the render square goes (photo pixels).
        rgb: (R, R, 3) uint8 render, premultiplied by coverage (:class:`~cadsearch.render.types.RenderOutput`).
        alpha: (R, R) float32 coverage in [0, 1].
        height, width: the photo's size, pixels.

    Returns:
        ``(rgb (H, W, 3) float32 premultiplied, alpha (H, W) float32 in [0, 1])``; zero where the render is not.
    """
    size = alpha.shape[0]
    data = _inverse(placement.matrix(size))
    out_alpha = Image.fromarray(np.asarray(alpha, np.float32), mode="F").transform(
        (width, height), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=0.0
    )
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(rgb[..., c]).astype(np.float32), mode="F").transform(
                (width, height), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=0.0
            )
        )
        for c in range(3)
    ]
    return np.stack(channels, axis=-1), np.clip(np.asarray(out_alpha), 0.0, 1.0)
