"""Procedural chairs: the built-in default library of parametric chair models.

Every chair is built from simple primitives (boxes, swept tubes, tapered sticks, rounded superellipsoid
cushions) in a *build frame* measured in metres that already has the canonical orientation of DESIGN.md:

- **+Y is up**; the floor is ``y = 0`` and the seat top is at ``y ≈ seat_height``.
- **+Z is the chair's front**: a seated person's knees point to +Z, so the backrest stands at **negative Z**
  and the seat's front edge at positive Z. ``x`` runs across the seat (a right-handed frame, so a sitter's
  left hand is at +X).

:func:`_to_canonical` then only translates and scales: the bounding-box centre goes to the origin and the
farthest vertex to distance 1 (no rotation is needed, because the build frame is already canonical).

Each part carries its own vertices with a per-vertex RGBA colour (uint8), so colours survive concatenation and
a GLB export/import round trip (trimesh writes them as ``COLOR_0``). Parts are not welded to each other.

Determinism: chair ``i`` of :func:`generate_chairs` depends only on ``(seed, i)`` through
``numpy.random.default_rng([seed, i])``; the same inputs give byte-identical vertices, faces and colours.

Triangle counts (``generate_chairs(1000, seed=11)``; min–max, median), per family: slat back 0.3k–1.2k (0.7k),
spindle back 0.7k–1.2k (1.0k), upholstered 0.7k–1.0k (0.9k), bar stool 1.2k–1.7k (1.4k), armchair 0.9k–1.9k
(1.0k), office 4.1k–5.7k (4.8k), tubular steel 1.8k–2.2k, lounge 1.4k–2.0k (1.6k), rocking 0.9k–1.5k (1.3k),
bench 0.2k–0.9k (0.5k). Every chair has between :data:`MIN_TRIANGLES` and :data:`MAX_TRIANGLES` triangles.
Office chairs spend most of theirs on the seat and back cushions: ``generate_chair(0, "office")`` is a
4.6k-triangle chair for render benchmarks. Generating 50 chairs takes about 0.2 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import trimesh

__all__ = [
    "FAMILIES",
    "FAMILY_LABELS",
    "MAX_TRIANGLES",
    "MIN_TRIANGLES",
    "ProceduralChair",
    "chair_id",
    "generate_chair",
    "generate_chairs",
]

#: Bounds on the triangle count of any generated chair (checked by the tests).
MIN_TRIANGLES = 200
MAX_TRIANGLES = 8000

Color = tuple[int, int, int]

# ----------------------------------------------------------------------------------------------------------
# Palettes (sRGB). Parts of one chair draw from different palettes so that wood, fabric and metal differ.

WOODS: tuple[Color, ...] = (
    (196, 160, 112),  # oak
    (112, 76, 50),  # walnut
    (150, 84, 56),  # cherry
    (98, 50, 36),  # mahogany
    (218, 192, 150),  # ash / birch
    (62, 48, 40),  # dark stain
    (170, 120, 70),  # teak
)
PAINTS: tuple[Color, ...] = (
    (236, 232, 222),  # white
    (40, 40, 42),  # black
    (92, 130, 110),  # sage green
    (70, 100, 140),  # blue
    (180, 60, 50),  # red
    (220, 190, 90),  # yellow
)
FABRICS: tuple[Color, ...] = (
    (160, 42, 42),  # red
    (42, 58, 104),  # navy
    (204, 160, 52),  # mustard
    (40, 120, 122),  # teal
    (122, 122, 128),  # grey
    (226, 214, 188),  # cream
    (110, 120, 62),  # olive
    (62, 62, 68),  # charcoal
    (190, 96, 56),  # rust
    (200, 130, 142),  # pink
    (90, 60, 110),  # plum
)
LEATHERS: tuple[Color, ...] = (
    (160, 108, 68),  # tan
    (82, 52, 36),  # dark brown
    (36, 32, 30),  # black
    (178, 92, 48),  # cognac
    (210, 200, 185),  # off-white
)
METALS: tuple[Color, ...] = (
    (200, 202, 208),  # chrome
    (42, 42, 44),  # black powder coat
    (96, 98, 104),  # graphite
    (228, 228, 226),  # white
    (176, 148, 84),  # brass
)
PLASTICS: tuple[Color, ...] = (
    (30, 30, 32),  # black
    (232, 232, 228),  # white
    (128, 130, 134),  # grey
    (200, 70, 50),  # orange-red
    (60, 110, 160),  # blue
    (220, 196, 60),  # yellow
    (100, 150, 110),  # green
)
CANE: Color = (214, 180, 118)


# ----------------------------------------------------------------------------------------------------------
# Sampling helpers: every draw goes through these so that params are plain, JSON-serialisable Python values.


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Uniform float in [lo, hi], rounded to 0.1 mm / 1e-4 so params print cleanly."""
    return round(float(rng.uniform(lo, hi)), 4)


def _i(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (inclusive)."""
    return int(rng.integers(lo, hi + 1))


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """One element of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def _color(rng: np.random.Generator, palette: Sequence[Color], jitter: int = 10) -> Color:
    """A palette colour with a small per-chair jitter, so two 'oak' chairs are not exactly alike."""
    base = np.asarray(_pick(rng, palette), dtype=np.int64)
    c = np.clip(base + rng.integers(-jitter, jitter + 1, size=3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


# ----------------------------------------------------------------------------------------------------------
# Geometry: small numpy primitives. Each returns (vertices (n, 3) float64, faces (m, 3) int64) with
# counter-clockwise (outward-facing) winding, so every closed part has positive volume.

#: Sections of round sticks and tubes: a leg reads as round at 256 px without wasting triangles.
ROUND_SECTIONS = 12
THIN_SECTIONS = 8


def _unit_box() -> tuple[np.ndarray, np.ndarray]:
    """A unit cube centred at the origin with *unshared* vertices (flat normals, 36 vertices, 12 faces)."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    v = np.asarray(box.vertices)[np.asarray(box.faces)].reshape(-1, 3)
    return v, np.arange(len(v), dtype=np.int64).reshape(-1, 3)


_BOX_V, _BOX_F = _unit_box()


def _unshare(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give every face its own vertices, so smooth vertex normals become flat (for square sticks)."""
    v2 = v[f].reshape(-1, 3)
    return v2, np.arange(len(v2), dtype=np.int64).reshape(-1, 3)


def _apply(matrix: np.ndarray | None, v: np.ndarray) -> np.ndarray:
    """Apply a 4×4 homogeneous transform to points (n, 3)."""
    if matrix is None:
        return v
    return v @ matrix[:3, :3].T + matrix[:3, 3]


def _translate(t: Sequence[float]) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = t
    return m


def _rot_x(deg: float) -> np.ndarray:
    """Rotation about +X by ``deg`` (right-handed: +Y turns towards +Z)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    m = np.eye(4)
    m[1, 1], m[1, 2], m[2, 1], m[2, 2] = c, -s, s, c
    return m


def _recline(pivot_y: float, pivot_z: float, tilt_deg: float) -> np.ndarray:
    """Transform that leans a backrest built upright (in the plane z = pivot_z) back by ``tilt_deg``.

    The pivot line is parallel to X at (pivot_y, pivot_z). Leaning *back* means its top moves towards -Z, i.e.
    a rotation about X by -tilt (a positive rotation would lean it forward over the seat).
    """
    return _translate((0.0, pivot_y, pivot_z)) @ _rot_x(-tilt_deg) @ _translate((0.0, -pivot_y, -pivot_z))


def _tube(
    points: np.ndarray,
    radius: float | np.ndarray,
    sections: int = ROUND_SECTIONS,
    closed: bool = False,
    caps: bool = True,
    ref: Sequence[float] = (1.0, 0.0, 0.0),
    profile: tuple[float, float] = (1.0, 1.0),
    angle0: float = 0.0,
    flat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Sweep a circle (or ellipse/polygon) of ``radius`` along a polyline.

    Args:
        points: (n, 3) path; for ``closed`` the last point connects back to the first.
        radius: scalar or (n,) radii along the path (tapered sticks).
        sections: vertices per ring (4 with ``angle0=π/4`` gives a square section).
        ref: direction the ring's first axis points to (projected off the path tangent); it is carried along
            the path by projection, which is twist-free for planar paths.
        profile: scale of the ring along its first and second axes (a rectangle or ellipse section).
        flat: unshare the vertices (flat shading; for square sticks and planks).
    """
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    # Tangents: the average of the adjacent segment directions (a miter-free approximation that is good for
    # the filleted paths used here).
    seg = np.diff(np.vstack([p, p[:1]]) if closed else p, axis=0)
    seg /= np.linalg.norm(seg, axis=1, keepdims=True)
    if closed:
        t = seg + np.roll(seg, 1, axis=0)
    else:
        t = np.empty_like(p)
        t[0], t[-1] = seg[0], seg[-1]
        t[1:-1] = seg[1:] + seg[:-1]
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    normals = np.empty_like(p)
    nrm = np.asarray(ref, dtype=np.float64)
    for i in range(n):
        cand = nrm - np.dot(nrm, t[i]) * t[i]
        if np.linalg.norm(cand) < 1e-6:  # ref parallel to the path: pick any perpendicular
            alt = np.array([0.0, 1.0, 0.0]) if abs(t[i][1]) < 0.9 else np.array([1.0, 0.0, 0.0])
            cand = alt - np.dot(alt, t[i]) * t[i]
        nrm = cand / np.linalg.norm(cand)
        normals[i] = nrm
    binormals = np.cross(t, normals)
    theta = angle0 + 2.0 * math.pi * np.arange(sections) / sections
    cu, su = np.cos(theta) * profile[0], np.sin(theta) * profile[1]
    ring = (
        p[:, None, :]
        + r[:, None, None] * (cu[None, :, None] * normals[:, None, :] + su[None, :, None] * binormals[:, None, :])
    ).reshape(-1, 3)
    # Side quads (a, c, b), (a, d, c) with a=(i, j), b=(i+1, j), c=(i+1, j+1), d=(i, j+1) face outward.
    rings = n if closed else n - 1
    i = np.arange(rings)[:, None]
    j = np.arange(sections)[None, :]
    a = i * sections + j
    b = ((i + 1) % n) * sections + j
    c = ((i + 1) % n) * sections + (j + 1) % sections
    d = i * sections + (j + 1) % sections
    faces = [np.stack([a, c, b], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)]
    verts = [ring]
    if caps and not closed:
        # Caps get their own vertices (flat normals). The ring runs counter-clockwise seen from +tangent.
        base = len(ring)
        jj = np.arange(sections)
        for k, sign in ((0, -1), (n - 1, 1)):
            rv = ring[k * sections : (k + 1) * sections]
            verts.append(np.vstack([p[k][None, :], rv]))
            centre, r0, r1 = base, base + 1 + jj, base + 1 + (jj + 1) % sections
            tri = np.stack([np.full(sections, centre), r0, r1], -1)
            faces.append(tri if sign > 0 else tri[:, [0, 2, 1]])
            base += sections + 1
    v, f = np.vstack(verts), np.vstack(faces).astype(np.int64)
    return _unshare(v, f) if flat else (v, f)


def _superellipsoid(
    size: Sequence[float], e_vert: float, e_horiz: float, rows: int = 8, cols: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """A rounded block (cushion, seat, panel) centred at the origin with extents ``size`` = (x, y, z).

    ``e_horiz`` shapes the outline in the XZ plane (1 = ellipse, →0 = rectangle with rounded corners);
    ``e_vert`` shapes the profile along Y (→0 = flat top and bottom with rounded edges). The poles are on ±Y.
    """
    a, b, c = (0.5 * float(s) for s in size)

    def spow(x: np.ndarray, e: float) -> np.ndarray:
        return np.sign(x) * np.abs(x) ** e

    eta = -0.5 * math.pi + math.pi * np.arange(1, rows) / rows  # latitudes, poles excluded
    omega = 2.0 * math.pi * np.arange(cols) / cols
    ce, se = spow(np.cos(eta), e_vert)[:, None], spow(np.sin(eta), e_vert)[:, None]
    co, so = spow(np.cos(omega), e_horiz)[None, :], spow(np.sin(omega), e_horiz)[None, :]
    grid = np.stack([a * ce * co, np.broadcast_to(b * se, (rows - 1, cols)), c * ce * so], -1).reshape(-1, 3)
    v = np.vstack([grid, [[0.0, -b, 0.0], [0.0, b, 0.0]]])
    bottom, top = len(grid), len(grid) + 1
    k = np.arange(rows - 2)[:, None]
    j = np.arange(cols)[None, :]
    p00, p10 = k * cols + j, (k + 1) * cols + j
    p11, p01 = (k + 1) * cols + (j + 1) % cols, k * cols + (j + 1) % cols
    # Increasing latitude goes up (+Y) and increasing ω turns +X towards +Z: (p00, p10, p11) faces outward.
    faces = [np.stack([p00, p10, p11], -1).reshape(-1, 3), np.stack([p00, p11, p01], -1).reshape(-1, 3)]
    jj = np.arange(cols)
    last = (rows - 2) * cols
    faces.append(np.stack([np.full(cols, bottom), (jj + 1) % cols, jj], -1))
    faces.append(np.stack([np.full(cols, top), last + jj, last + (jj + 1) % cols], -1))
    return v, np.vstack(faces).astype(np.int64)


def _fillet(points: Sequence[Sequence[float]], radius: float, segments: int = 6, closed: bool = False):
    """Round the corners of a polyline with quadratic Bézier arcs of about ``radius`` (bent tube frames)."""
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    out = [] if closed else [p[0]]
    idx = range(n) if closed else range(1, n - 1)
    for i in idx:
        prev, cur, nxt = p[i - 1], p[i], p[(i + 1) % n]
        d1, d2 = cur - prev, nxt - cur
        l1, l2 = np.linalg.norm(d1), np.linalg.norm(d2)
        d1, d2 = d1 / l1, d2 / l2
        cosang = float(np.clip(np.dot(d1, d2), -1.0, 1.0))
        if cosang > 0.9995:  # (almost) straight: nothing to round
            out.append(cur)
            continue
        turn = math.acos(cosang)
        td = min(radius * math.tan(turn / 2.0), 0.45 * l1, 0.45 * l2)
        a0, a1 = cur - d1 * td, cur + d2 * td
        s = np.linspace(0.0, 1.0, segments + 1)[:, None]
        out.extend((1 - s) ** 2 * a0 + 2 * (1 - s) * s * cur + s**2 * a1)
    if not closed:
        out.append(p[-1])
    return np.asarray(out)


def _arc_xz(width: float, sagitta: float, y: float, z_mid: float, count: int = 9) -> np.ndarray:
    """Points of a horizontal circular arc across X (from -width/2 to +width/2) at height ``y``.

    The middle is at ``z_mid`` and the ends are ``sagitta`` further towards +Z: a backrest that wraps around
    the sitter (concave towards the front).
    """
    x = np.linspace(-0.5 * width, 0.5 * width, count)
    if sagitta < 1e-6:
        z = np.full_like(x, z_mid)
    else:
        rad = (0.25 * width * width + sagitta * sagitta) / (2.0 * sagitta)
        z = z_mid + rad - np.sqrt(np.maximum(rad * rad - x * x, 0.0))
    return np.stack([x, np.full_like(x, y), z], -1)


class _Parts:
    """Accumulates coloured parts; each part keeps its own vertices and one RGBA colour."""

    def __init__(self) -> None:
        self._v: list[np.ndarray] = []
        self._f: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._count = 0

    def add(self, vf: tuple[np.ndarray, np.ndarray], color: Color, matrix: np.ndarray | None = None) -> None:
        v, f = vf
        v = _apply(matrix, np.asarray(v, dtype=np.float64))
        self._v.append(v)
        self._f.append(np.asarray(f, dtype=np.int64) + self._count)
        rgba = np.array([*color, 255], dtype=np.uint8)
        self._c.append(np.broadcast_to(rgba, (len(v), 4)))
        self._count += len(v)

    # Convenience builders -----------------------------------------------------------------------------------

    def box(
        self,
        center: Sequence[float],
        size: Sequence[float],
        color: Color,
        matrix: np.ndarray | None = None,
    ) -> None:
        """Axis-aligned box of extents ``size`` at ``center`` (then ``matrix``, e.g. a recline)."""
        v = _BOX_V * np.asarray(size, dtype=np.float64) + np.asarray(center, dtype=np.float64)
        self.add((v, _BOX_F), color, matrix)

    def stick(
        self,
        p0: Sequence[float],
        p1: Sequence[float],
        w0: float,
        w1: float | None,
        color: Color,
        shape: str = "round",
        matrix: np.ndarray | None = None,
        sections: int = ROUND_SECTIONS,
    ) -> None:
        """A straight leg/rod from ``p0`` to ``p1``, ``w0``→``w1`` thick (diameter or side), round or square.

        Square sticks keep two faces parallel to the X axis (the way chair legs are cut).
        """
        w1 = w0 if w1 is None else w1
        pts = np.array([p0, p1], dtype=np.float64)
        if shape == "square":
            # A 4-gon rotated 45° has side = radius·√2, so radius = side/√2.
            vf = _tube(pts, np.array([w0, w1]) / math.sqrt(2.0), 4, angle0=math.pi / 4, flat=True)
        else:
            vf = _tube(pts, np.array([w0, w1]) / 2.0, sections)
        self.add(vf, color, matrix)

    def tube(
        self,
        points: np.ndarray,
        radius: float,
        color: Color,
        closed: bool = False,
        sections: int = ROUND_SECTIONS,
        ref: Sequence[float] = (1.0, 0.0, 0.0),
        matrix: np.ndarray | None = None,
    ) -> None:
        """A round tube along a (filleted) path."""
        self.add(_tube(points, radius, sections, closed=closed, ref=ref), color, matrix)

    def plank(
        self,
        points: np.ndarray,
        height: float,
        thickness: float,
        color: Color,
        up: Sequence[float] = (0.0, 1.0, 0.0),
        matrix: np.ndarray | None = None,
    ) -> None:
        """A rectangular-section bar swept along ``points`` (slats, rockers); ``height`` is along ``up``."""
        s = math.sqrt(2.0) / 2.0
        vf = _tube(points, 1.0, 4, ref=up, profile=(height * s, thickness * s), angle0=math.pi / 4, flat=True)
        self.add(vf, color, matrix)

    def cushion(
        self,
        center: Sequence[float],
        size: Sequence[float],
        color: Color,
        e_vert: float = 0.3,
        e_horiz: float = 0.2,
        matrix: np.ndarray | None = None,
        rows: int = 8,
        cols: int = 24,
    ) -> None:
        """A horizontal rounded block (seat, cushion) of extents ``size`` = (x, y, z) at ``center``."""
        v, f = _superellipsoid(size, e_vert, e_horiz, rows, cols)
        self.add((v + np.asarray(center, dtype=np.float64), f), color, matrix)

    def panel(
        self,
        center: Sequence[float],
        width: float,
        height: float,
        thickness: float,
        color: Color,
        e_edge: float = 0.3,
        e_outline: float = 0.2,
        matrix: np.ndarray | None = None,
        rows: int = 8,
        cols: int = 24,
    ) -> None:
        """An upright rounded block facing ±Z (backrest): outline in XY, ``thickness`` along Z.

        Built as a horizontal cushion and turned 90° about X, so ``e_outline`` shapes the XY outline.
        """
        v, f = _superellipsoid((width, thickness, height), e_edge, e_outline, rows, cols)
        v = _apply(_rot_x(90.0), v) + np.asarray(center, dtype=np.float64)
        self.add((v, f), color, matrix)

    def mesh(self) -> trimesh.Trimesh:
        """All parts as one Trimesh in the canonical frame (see :func:`_to_canonical`), vertex-coloured."""
        v = _to_canonical(np.vstack(self._v))
        return trimesh.Trimesh(
            vertices=v,
            faces=np.vstack(self._f),
            vertex_colors=np.vstack(self._c),
            process=False,  # keep per-part vertices: welding would blend colours across parts
        )


def _to_canonical(v: np.ndarray) -> np.ndarray:
    """Build frame (metres, +Y up, front +Z) → canonical frame of DESIGN.md.

    The build frame already has the canonical axes, so only two steps remain: move the bounding-box centre to
    the origin, then scale uniformly so that the farthest vertex is at distance 1.
    """
    lo, hi = v.min(axis=0), v.max(axis=0)
    v = v - 0.5 * (lo + hi)
    return v / float(np.sqrt((v * v).sum(axis=1).max()))


# ----------------------------------------------------------------------------------------------------------
# Shared pieces


def _leg_shape(rng: np.random.Generator) -> tuple[str, float]:
    """A leg shape ('square' or 'round') and its taper (bottom/top thickness ratio; 1 = straight)."""
    shape = _pick(rng, ("square", "round"))
    taper = 1.0 if _chance(rng, 0.4) else _u(rng, 0.55, 0.85)
    return shape, taper


def _lerp(a: Sequence[float], b: Sequence[float], s: float) -> np.ndarray:
    return (1.0 - s) * np.asarray(a, dtype=np.float64) + s * np.asarray(b, dtype=np.float64)


def _four_legs(
    parts: _Parts,
    half_x: float,
    z_front: float,
    z_rear: float,
    top_y: float,
    width: float,
    taper: float,
    shape: str,
    color: Color,
    splay: float = 0.0,
    rear_splay: float = 0.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Four legs from the floor to ``top_y`` at (±half_x, z_front / z_rear); returns their end points.

    ``splay`` moves all feet outwards (x and z) and ``rear_splay`` additionally pushes the rear feet back.
    """
    ends = {}
    for side in (-1.0, 1.0):
        for name, z, dz in (("front", z_front, splay), ("rear", z_rear, -splay - rear_splay)):
            top = np.array([side * half_x, top_y, z])
            foot = np.array([side * (half_x + splay), 0.0, z + dz])
            parts.stick(foot, top, width * taper, width, color, shape)
            ends[f"{name}{'L' if side > 0 else 'R'}"] = (foot, top)
    return ends


# ----------------------------------------------------------------------------------------------------------
# Families. Each has a frozen parameter dataclass, a sampler and a builder working in the build frame.


@dataclass(frozen=True)
class SlatBackParams:
    """Wooden dining chair with a slatted back (horizontal ladder-back or vertical slats)."""

    seat_height: float
    seat_width: float
    seat_depth: float
    seat_thickness: float
    leg_width: float
    leg_shape: str
    leg_taper: float
    rear_splay: float
    back_height: float
    back_tilt_deg: float
    slat_direction: str
    n_slats: int
    slat_curve: float
    top_rail_height: float
    stretchers: bool
    seat_pad: bool
    wood: Color
    seat_color: Color


def _sample_slat_back(rng: np.random.Generator) -> SlatBackParams:
    shape, taper = _leg_shape(rng)
    painted = _chance(rng, 0.3)
    frame = _color(rng, PAINTS if painted else WOODS)
    pad = _chance(rng, 0.4)
    direction = _pick(rng, ("horizontal", "vertical"))
    return SlatBackParams(
        seat_height=_u(rng, 0.43, 0.48),
        seat_width=_u(rng, 0.40, 0.50),
        seat_depth=_u(rng, 0.38, 0.47),
        seat_thickness=_u(rng, 0.02, 0.035),
        leg_width=_u(rng, 0.03, 0.045),
        leg_shape=shape,
        leg_taper=taper,
        rear_splay=_u(rng, 0.0, 0.06),
        back_height=_u(rng, 0.40, 0.58),
        back_tilt_deg=_u(rng, 4.0, 14.0),
        slat_direction=direction,
        n_slats=_i(rng, 2, 4) if direction == "horizontal" else _i(rng, 3, 7),
        slat_curve=_u(rng, 0.0, 0.03),
        top_rail_height=_u(rng, 0.05, 0.10),
        stretchers=_chance(rng, 0.6),
        seat_pad=pad,
        wood=frame,
        # A bare seat is the frame's wood or, as often, a contrasting board (e.g. a painted frame, oak seat).
        seat_color=_color(rng, FABRICS) if pad else (frame if _chance(rng, 0.5) else _color(rng, WOODS)),
    )


def _build_slat_back(p: SlatBackParams, parts: _Parts) -> None:
    H, W, D, T, lw = p.seat_height, p.seat_width, p.seat_depth, p.seat_thickness, p.leg_width
    hx, zf, zr = W / 2 - lw / 2, D / 2 - lw / 2, -D / 2 + lw / 2
    ends = _four_legs(parts, hx, zf, zr, H - T, lw, p.leg_taper, p.leg_shape, p.wood, rear_splay=p.rear_splay)
    parts.box((0, H - T / 2, 0), (W, T, D), p.wood if p.seat_pad else p.seat_color)
    # Apron under the seat: what makes legs and seat read as one frame.
    ah = 0.05
    for sx in (-1, 1):
        parts.box((sx * hx, H - T - ah / 2, 0), (lw * 0.6, ah, D - lw), p.wood)
    parts.box((0, H - T - ah / 2, zf), (W - lw, ah, lw * 0.6), p.wood)
    if p.seat_pad:
        parts.cushion((0, H + 0.02, 0.01), (W * 0.94, 0.04, D * 0.9), p.seat_color, 0.4, 0.25)
    if p.stretchers:
        # Stretchers join the legs where they are at that height (rear legs may splay backwards).
        y = 0.15
        for side in ("L", "R"):
            a = _lerp(*ends[f"front{side}"], y / (H - T))
            b = _lerp(*ends[f"rear{side}"], y / (H - T))
            parts.stick(a, b, lw * 0.5, None, p.wood)
        a = _lerp(*ends["frontR"], (y + 0.05) / (H - T))
        b = _lerp(*ends["frontL"], (y + 0.05) / (H - T))
        parts.stick(a, b, lw * 0.5, None, p.wood)
    # Back: posts, slats and top rail are built upright above the rear legs, then reclined about the seat.
    tilt = _recline(H, zr, p.back_tilt_deg)
    top = H + p.back_height
    for sx in (-1, 1):
        parts.stick((sx * hx, H - T, zr), (sx * hx, top, zr), lw, lw * 0.85, p.wood, p.leg_shape, tilt)
    rail_w = 2 * hx + lw * 0.6
    rail = _arc_xz(rail_w, p.slat_curve, top - p.top_rail_height / 2, zr, 9)
    parts.plank(rail, p.top_rail_height, 0.022, p.wood, matrix=tilt)
    if p.slat_direction == "horizontal":
        lo = H + 0.35 * p.back_height
        hi = top - p.top_rail_height - 0.03
        for k in range(p.n_slats):
            y = lo + (hi - lo) * (k + 0.5) / p.n_slats
            slat = _arc_xz(2 * hx, p.slat_curve, y, zr, 9)
            parts.plank(slat, 0.045, 0.016, p.wood, matrix=tilt)
    else:
        y0 = H + 0.12
        parts.plank(_arc_xz(2 * hx, p.slat_curve, y0, zr, 9), 0.04, 0.02, p.wood, matrix=tilt)
        y1 = top - p.top_rail_height
        span = 2 * hx - lw
        gap = span / p.n_slats
        for k in range(p.n_slats):
            x = -span / 2 + gap * (k + 0.5)
            z = _arc_xz(2 * hx, p.slat_curve, y0, zr, 65)[int(round((x + hx) / (2 * hx) * 64)), 2]
            parts.box((x, (y0 + y1) / 2, z), (min(gap * 0.55, 0.05), y1 - y0, 0.012), p.wood, tilt)


@dataclass(frozen=True)
class SpindleBackParams:
    """Windsor-style chair: thick shaped seat, splayed turned legs, spindles into a comb rail or a bow."""

    seat_height: float
    seat_width: float
    seat_depth: float
    seat_thickness: float
    seat_roundness: float
    leg_diameter: float
    leg_splay: float
    back_style: str
    back_height: float
    back_tilt_deg: float
    n_spindles: int
    rail_curve: float
    h_stretcher: bool
    wood: Color
    seat_color: Color


def _sample_spindle_back(rng: np.random.Generator) -> SpindleBackParams:
    wood = _color(rng, WOODS + PAINTS[:2])
    return SpindleBackParams(
        seat_height=_u(rng, 0.43, 0.47),
        seat_width=_u(rng, 0.42, 0.50),
        seat_depth=_u(rng, 0.39, 0.46),
        seat_thickness=_u(rng, 0.035, 0.05),
        seat_roundness=_u(rng, 0.35, 0.8),
        leg_diameter=_u(rng, 0.03, 0.042),
        leg_splay=_u(rng, 0.03, 0.07),
        back_style=_pick(rng, ("comb", "bow")),
        back_height=_u(rng, 0.42, 0.60),
        back_tilt_deg=_u(rng, 6.0, 16.0),
        n_spindles=_i(rng, 5, 9),
        rail_curve=_u(rng, 0.03, 0.08),
        h_stretcher=_chance(rng, 0.7),
        wood=wood,
        seat_color=wood if _chance(rng, 0.7) else _color(rng, WOODS),
    )


def _build_spindle_back(p: SpindleBackParams, parts: _Parts) -> None:
    H, W, D, T = p.seat_height, p.seat_width, p.seat_depth, p.seat_thickness
    parts.cushion((0, H - T / 2, 0), (W, T, D), p.seat_color, 0.35, p.seat_roundness, rows=6, cols=28)
    hx, zf, zr = 0.32 * W, 0.30 * D, -0.28 * D
    ends = _four_legs(parts, hx, zf, zr, H - T + 0.005, p.leg_diameter, 0.7, "round", p.wood, p.leg_splay)
    if p.h_stretcher:
        y = 0.16
        mids = {}
        for side in ("L", "R"):
            a = _lerp(*ends[f"front{side}"], y / (H - T))
            b = _lerp(*ends[f"rear{side}"], y / (H - T))
            parts.stick(a, b, 0.022, None, p.wood)
            mids[side] = _lerp(a, b, 0.5)
        parts.stick(mids["L"], mids["R"], 0.02, None, p.wood)
    tilt = _recline(H, -0.40 * D, p.back_tilt_deg)
    z0 = -0.40 * D
    top = H + p.back_height
    xs = np.linspace(-1.0, 1.0, p.n_spindles)
    if p.back_style == "comb":
        # Comb back: a curved crest rail carried by the spindles and two slightly thicker outer posts.
        rail = _arc_xz(0.95 * W, p.rail_curve, top - 0.03, z0, 13)
        parts.plank(rail, 0.07, 0.03, p.wood, matrix=tilt)
        for k, s in enumerate(xs):
            x_bot, x_top = s * 0.36 * W, s * 0.42 * W
            z_top = np.interp(x_top, rail[:, 0], rail[:, 2])
            d = 0.028 if k in (0, len(xs) - 1) else 0.016
            parts.stick(
                (x_bot, H - 0.01, z0),
                (x_top, top - 0.04, z_top),
                d,
                d * 0.8,
                p.wood,
                matrix=tilt,
                sections=THIN_SECTIONS,
            )
    else:
        # Bow back: one bent arch from the left of the seat over the top to the right; spindles stop at it.
        half = 0.40 * W
        ang = np.linspace(0.0, math.pi, 17)
        rise = p.back_height
        bow = np.stack([half * np.cos(ang), H - 0.01 + rise * np.sin(ang) ** 0.8, np.full_like(ang, z0)], -1)
        parts.tube(bow, 0.017, p.wood, ref=(0, 0, 1), matrix=tilt)
        for s in xs[1:-1] if p.n_spindles > 2 else xs:
            x = s * 0.8 * half
            yt = H - 0.01 + rise * (math.sqrt(max(1 - (x / half) ** 2, 0.0))) ** 0.8
            parts.stick((x, H - 0.01, z0), (x, yt, z0), 0.015, 0.013, p.wood, matrix=tilt, sections=THIN_SECTIONS)


@dataclass(frozen=True)
class UpholsteredParams:
    """Dining chair with a padded seat and a solid padded back on four wooden or metal legs."""

    seat_height: float
    seat_width: float
    seat_depth: float
    cushion_thickness: float
    leg_width: float
    leg_shape: str
    leg_taper: float
    rear_splay: float
    back_height: float
    back_tilt_deg: float
    back_thickness: float
    back_outline: float
    back_gap: float
    fabric: Color
    legs: Color


def _sample_upholstered(rng: np.random.Generator) -> UpholsteredParams:
    shape, taper = _leg_shape(rng)
    return UpholsteredParams(
        seat_height=_u(rng, 0.44, 0.49),
        seat_width=_u(rng, 0.42, 0.52),
        seat_depth=_u(rng, 0.42, 0.50),
        cushion_thickness=_u(rng, 0.06, 0.11),
        leg_width=_u(rng, 0.03, 0.045),
        leg_shape=shape,
        leg_taper=taper,
        rear_splay=_u(rng, 0.0, 0.07),
        back_height=_u(rng, 0.38, 0.60),
        back_tilt_deg=_u(rng, 5.0, 14.0),
        back_thickness=_u(rng, 0.05, 0.09),
        back_outline=_pick(rng, (0.15, 0.3, 0.6)),
        back_gap=_pick(rng, (0.0, 0.0, 0.06)),
        fabric=_color(rng, FABRICS + LEATHERS),
        legs=_color(rng, WOODS + METALS[:3]),
    )


def _build_upholstered(p: UpholsteredParams, parts: _Parts) -> None:
    H, W, D, T, lw = p.seat_height, p.seat_width, p.seat_depth, p.cushion_thickness, p.leg_width
    hx, zf, zr = W / 2 - lw, D / 2 - lw, -D / 2 + lw
    _four_legs(parts, hx, zf, zr, H - T + 0.01, lw, p.leg_taper, p.leg_shape, p.legs, rear_splay=p.rear_splay)
    parts.cushion((0, H - T / 2, 0), (W, T, D), p.fabric, 0.3, 0.15)
    zb = -D / 2 + p.back_thickness / 2
    tilt = _recline(H - T, zb, p.back_tilt_deg)
    y0 = H - T + p.back_gap
    h = p.back_height + T - p.back_gap
    parts.panel((0, y0 + h / 2, zb), W, h, p.back_thickness, p.fabric, 0.3, p.back_outline, tilt)
    if p.back_gap > 0:
        # A floating back needs visible supports: two struts rising from the rear legs into the panel.
        for sx in (-1, 1):
            parts.stick(
                (sx * hx, H - T, zb - 0.01),
                (sx * hx, y0 + 0.12, zb - 0.01),
                lw * 0.8,
                None,
                p.legs,
                p.leg_shape,
                tilt,
            )


@dataclass(frozen=True)
class BarStoolParams:
    """Tall bar stool with a low back and a footrest ring, on splayed legs or on a pedestal."""

    seat_height: float
    seat_radius: float
    seat_thickness: float
    seat_outline: float
    base: str
    n_legs: int
    leg_diameter: float
    leg_splay: float
    footrest_height: float
    back_style: str
    back_height: float
    back_tilt_deg: float
    frame: Color
    seat_color: Color


def _sample_bar_stool(rng: np.random.Generator) -> BarStoolParams:
    base = _pick(rng, ("legs", "legs", "pedestal"))
    frame = _color(rng, METALS + WOODS[:3])
    return BarStoolParams(
        seat_height=_u(rng, 0.64, 0.80),
        seat_radius=_u(rng, 0.18, 0.22),
        seat_thickness=_u(rng, 0.04, 0.08),
        seat_outline=_pick(rng, (1.0, 1.0, 0.45)),
        base=base,
        n_legs=_pick(rng, (3, 4, 4)),
        leg_diameter=_u(rng, 0.022, 0.034),
        leg_splay=_u(rng, 0.03, 0.09),
        footrest_height=_u(rng, 0.24, 0.34),
        back_style=_pick(rng, ("band", "spindles", "panel")),
        back_height=_u(rng, 0.20, 0.34),
        back_tilt_deg=_u(rng, 6.0, 14.0),
        frame=frame,
        seat_color=_color(rng, FABRICS + LEATHERS + WOODS),
    )


def _build_bar_stool(p: BarStoolParams, parts: _Parts) -> None:
    H, R, T = p.seat_height, p.seat_radius, p.seat_thickness
    parts.cushion((0, H - T / 2, 0), (2 * R, T, 2 * R), p.seat_color, 0.35, p.seat_outline, cols=28)
    yb = H - T
    fh = p.footrest_height
    if p.base == "legs":
        r_top, r_bot = 0.62 * R, 0.62 * R + p.leg_splay + 0.05
        # Rotate the leg pattern so that a 4-leg stool has legs at the corners (front-left, front-right, ...).
        start = math.pi / 4 if p.n_legs == 4 else math.pi / 2
        for k in range(p.n_legs):
            a = start + 2 * math.pi * k / p.n_legs
            d = np.array([math.sin(a), 0.0, math.cos(a)])
            parts.stick(d * r_bot, d * r_top + [0, yb, 0], p.leg_diameter, None, p.frame)
        ring_r = r_bot + (r_top - r_bot) * fh / yb
        ang = 2 * math.pi * np.arange(32) / 32
        ring = np.stack([ring_r * np.sin(ang), np.full_like(ang, fh), ring_r * np.cos(ang)], -1)
        parts.tube(ring, 0.011, p.frame, closed=True, ref=(0, 1, 0), sections=THIN_SECTIONS)
    else:
        parts.cushion((0, 0.012, 0), (0.46, 0.024, 0.46), p.frame, 0.3, 1.0, rows=4, cols=32)
        parts.stick((0, 0.02, 0), (0, 0.32, 0), 0.07, 0.06, p.frame)
        parts.stick((0, 0.30, 0), (0, yb, 0), 0.03, None, p.frame)
        parts.cushion((0, yb - 0.02, 0), (0.2, 0.04, 0.2), p.frame, 0.5, 1.0, rows=4, cols=16)
        ring_r = 0.19
        ang = 2 * math.pi * np.arange(32) / 32
        ring = np.stack([ring_r * np.sin(ang), np.full_like(ang, fh + 0.05), ring_r * np.cos(ang)], -1)
        parts.tube(ring, 0.011, p.frame, closed=True, ref=(0, 1, 0), sections=THIN_SECTIONS)
        for k in range(3):
            a = math.pi / 3 + 2 * math.pi * k / 3
            d = np.array([math.sin(a), 0.0, math.cos(a)])
            parts.stick(
                d * 0.03 + [0, fh + 0.05, 0],
                d * ring_r + [0, fh + 0.05, 0],
                0.014,
                None,
                p.frame,
                sections=THIN_SECTIONS,
            )
    z0 = -0.8 * R
    tilt = _recline(H, z0, p.back_tilt_deg)
    top = H + p.back_height
    if p.back_style == "band":
        band = _arc_xz(1.5 * R, 0.35 * R, top - 0.04, z0, 13)
        parts.plank(band, 0.08, 0.018, p.seat_color if p.base == "pedestal" else p.frame, matrix=tilt)
        for sx in (-1, 1):
            x = sx * 0.5 * R
            z = np.interp(x, band[:, 0], band[:, 2])
            parts.stick((x, H - T, z), (x, top - 0.04, z), 0.02, None, p.frame, matrix=tilt)
    elif p.back_style == "spindles":
        rail = _arc_xz(1.4 * R, 0.3 * R, top - 0.02, z0, 11)
        parts.plank(rail, 0.04, 0.025, p.frame, matrix=tilt)
        for x in np.linspace(-0.6 * R, 0.6 * R, 4):
            z = np.interp(x, rail[:, 0], rail[:, 2])
            parts.stick(
                (x, H - 0.01, z),
                (x, top - 0.03, z),
                0.016,
                None,
                p.frame,
                matrix=tilt,
                sections=THIN_SECTIONS,
            )
    else:
        parts.panel((0, top - 0.5 * p.back_height, z0), 1.5 * R, p.back_height, 0.05, p.seat_color, 0.4, 0.5, tilt)
        parts.stick((0, H - T, z0 - 0.02), (0, H + 0.05, z0 - 0.02), 0.03, None, p.frame, "square", tilt)


@dataclass(frozen=True)
class ArmchairParams:
    """Armchair: an upholstered club chair (block arms) or an open wooden-frame armchair with cushions."""

    style: str
    width: float
    depth: float
    seat_height: float
    arm_height: float
    arm_width: float
    back_height: float
    back_tilt_deg: float
    leg_height: float
    leg_shape: str
    cushion_thickness: float
    fabric: Color
    wood: Color


def _sample_armchair(rng: np.random.Generator) -> ArmchairParams:
    style = _pick(rng, ("club", "open"))
    return ArmchairParams(
        style=style,
        width=_u(rng, 0.72, 0.92) if style == "club" else _u(rng, 0.62, 0.74),
        depth=_u(rng, 0.72, 0.88) if style == "club" else _u(rng, 0.58, 0.70),
        seat_height=_u(rng, 0.40, 0.46),
        arm_height=_u(rng, 0.58, 0.68),
        arm_width=_u(rng, 0.12, 0.20) if style == "club" else _u(rng, 0.05, 0.08),
        back_height=_u(rng, 0.78, 0.95),
        back_tilt_deg=_u(rng, 6.0, 15.0),
        leg_height=_u(rng, 0.05, 0.14),
        leg_shape=_pick(rng, ("square", "round")),
        cushion_thickness=_u(rng, 0.10, 0.15),
        fabric=_color(rng, FABRICS + LEATHERS),
        wood=_color(rng, WOODS),
    )


def _build_armchair(p: ArmchairParams, parts: _Parts) -> None:
    Wt, Dt, H, HA, aw = p.width, p.depth, p.seat_height, p.arm_height, p.arm_width
    lh, ct = p.leg_height, p.cushion_thickness
    if p.style == "club":
        bt = 0.16  # back block thickness
        inner = Wt - 2 * aw
        for sx in (-1, 1):
            parts.cushion((sx * (Wt - aw) / 2, (lh + HA) / 2, 0), (aw, HA - lh, Dt), p.fabric, 0.25, 0.2)
        tilt = _recline(lh, -Dt / 2 + bt / 2, p.back_tilt_deg * 0.5)
        parts.panel(
            (0, (lh + p.back_height) / 2, -Dt / 2 + bt / 2),
            Wt,
            p.back_height - lh,
            bt,
            p.fabric,
            0.3,
            0.2,
            tilt,
        )
        base_top = H - ct
        parts.box((0, (lh + base_top) / 2, bt / 2), (inner + 0.01, base_top - lh, Dt - bt), p.fabric)
        parts.cushion((0, H - ct / 2, bt / 2 + 0.01), (inner, ct, Dt - bt), p.fabric, 0.3, 0.15)
        cb = 0.14  # back cushion thickness
        tilt_c = _recline(H, -Dt / 2 + bt + cb / 2, p.back_tilt_deg)
        hb = p.back_height - H - 0.04
        parts.panel((0, H + hb / 2, -Dt / 2 + bt + cb / 2), inner, hb, cb, p.fabric, 0.35, 0.2, tilt_c)
        lw = 0.05
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.stick(
                    (sx * (Wt / 2 - 0.06), 0, sz * (Dt / 2 - 0.06)),
                    (sx * (Wt / 2 - 0.06), lh + 0.005, sz * (Dt / 2 - 0.06)),
                    lw * 0.7,
                    lw,
                    p.wood,
                    p.leg_shape,
                )
    else:
        lw = 0.045
        hx, zf, zr = Wt / 2 - lw / 2, Dt / 2 - lw / 2, -Dt / 2 + lw / 2
        tilt = _recline(H - ct, zr, p.back_tilt_deg)
        for sx in (-1, 1):
            # Front legs run up to carry the arm; rear legs become the reclined back posts.
            parts.stick((sx * hx, 0, zf + 0.01), (sx * hx, HA, zf), lw * 0.8, lw, p.wood, p.leg_shape)
            parts.stick((sx * hx, 0, zr - 0.04), (sx * hx, H - ct, zr), lw * 0.8, lw, p.wood, p.leg_shape)
            parts.stick((sx * hx, H - ct, zr), (sx * hx, p.back_height, zr), lw, lw * 0.9, p.wood, p.leg_shape, tilt)
            # The arm meets the reclined post at arm height.
            yr = HA + 0.01
            z_post = zr - (yr - (H - ct)) * math.tan(math.radians(p.back_tilt_deg))
            parts.box((sx * hx, yr, (zf + 0.04 + z_post) / 2), (aw, 0.03, zf + 0.04 - z_post + 0.02), p.wood)
            parts.box((sx * hx, H - ct - 0.04, 0), (lw * 0.7, 0.07, Dt - lw), p.wood)
        parts.box((0, H - ct - 0.04, zf), (Wt - lw, 0.07, lw * 0.7), p.wood)
        parts.box((0, H - ct - 0.04, zr), (Wt - lw, 0.07, lw * 0.7), p.wood)
        parts.cushion((0, H - ct / 2, 0.01), (Wt - 2 * lw - 0.01, ct, Dt - 0.02), p.fabric, 0.3, 0.15)
        hb = p.back_height - H - 0.06
        parts.panel((0, H + hb / 2 + 0.02, zr + 0.05), Wt - 2 * lw - 0.02, hb, 0.10, p.fabric, 0.35, 0.2, tilt)
        parts.box((0, p.back_height - 0.03, zr), (Wt - lw, 0.06, 0.03), p.wood, tilt)


@dataclass(frozen=True)
class OfficeParams:
    """Swivel office chair: 5-star base on castors, gas column, padded seat, reclined padded or mesh back."""

    seat_height: float
    seat_width: float
    seat_depth: float
    seat_thickness: float
    base_radius: float
    spoke_style: str
    castor_radius: float
    back_style: str
    back_height: float
    back_width: float
    back_tilt_deg: float
    back_outline: float
    headrest: bool
    arms: bool
    arm_height: float
    base: Color
    seat_color: Color
    plastic: Color
    mesh_color: Color


def _sample_office(rng: np.random.Generator) -> OfficeParams:
    high = _chance(rng, 0.5)
    plastic = _color(rng, PLASTICS[:3], jitter=4)
    return OfficeParams(
        seat_height=_u(rng, 0.44, 0.52),
        seat_width=_u(rng, 0.46, 0.53),
        seat_depth=_u(rng, 0.44, 0.50),
        seat_thickness=_u(rng, 0.06, 0.09),
        base_radius=_u(rng, 0.28, 0.34),
        spoke_style=_pick(rng, ("flat", "arched")),
        castor_radius=_u(rng, 0.025, 0.032),
        back_style=_pick(rng, ("cushion", "cushion", "mesh")),
        back_height=_u(rng, 0.62, 0.75) if high else _u(rng, 0.42, 0.54),
        back_width=_u(rng, 0.40, 0.48),
        back_tilt_deg=_u(rng, 10.0, 20.0),
        back_outline=_pick(rng, (0.25, 0.4, 0.6)),
        headrest=high and _chance(rng, 0.5),
        arms=_chance(rng, 0.75),
        arm_height=_u(rng, 0.18, 0.25),
        base=_color(rng, METALS[:3]),
        seat_color=_color(rng, FABRICS + LEATHERS[1:3]),
        plastic=plastic,
        mesh_color=_color(rng, ((40, 42, 46), (70, 74, 80), (150, 150, 150)), jitter=6),
    )


def _build_office(p: OfficeParams, parts: _Parts) -> None:
    H, W, D, T = p.seat_height, p.seat_width, p.seat_depth, p.seat_thickness
    rc, Rb = p.castor_radius, p.base_radius
    y_spoke = 2 * rc + 0.035
    parts.stick((0, y_spoke - 0.03, 0), (0, y_spoke + 0.03, 0), 0.08, 0.075, p.base, sections=20)
    for k in range(5):
        # One spoke points straight back so that the front (+Z) is clear, as on most office chairs.
        a = math.pi + 2 * math.pi * k / 5
        d = np.array([math.sin(a), 0.0, math.cos(a)])
        if p.spoke_style == "flat":
            path = np.array([d * 0.03 + [0, y_spoke, 0], d * Rb + [0, y_spoke - 0.01, 0]])
        else:  # a spoke that arches up from the hub and comes down to the castor
            s = np.linspace(0.0, 1.0, 7)[:, None]
            path = d * (0.03 + s * (Rb - 0.03)) + np.c_[0 * s, y_spoke + 0.02 * np.sin(np.pi * s), 0 * s]
        parts.plank(path, 0.035, 0.045, p.base)
        tip = d * Rb
        # Castor: a housing and a pair of wheels whose axle is across the spoke (the wheel rolls outward).
        parts.cushion(tip + [0, 2 * rc + 0.005, 0], (0.05, 0.03, 0.05), p.plastic, 0.5, 0.6, rows=6, cols=16)
        side = np.array([d[2], 0.0, -d[0]])
        for sgn in (-1, 1):
            c = tip - d * 0.012 + side * sgn * 0.012 + [0, rc, 0]
            parts.stick(c - side * 0.009, c + side * 0.009, 2 * rc, None, p.plastic, sections=20)
    # Gas column: a wide shroud over a thin chrome piston.
    y_mech = H - T - 0.05
    parts.stick((0, y_spoke + 0.03, 0), (0, y_spoke + 0.20, 0), 0.055, 0.05, p.plastic, sections=20)
    parts.stick((0, y_spoke + 0.18, 0), (0, y_mech, 0), 0.028, None, (200, 202, 208), sections=16)
    parts.box((0, y_mech + 0.025, -0.02), (0.22, 0.05, 0.24), p.plastic)
    parts.box((0, H - T - 0.01, 0), (W - 0.04, 0.02, D - 0.04), p.plastic)
    # The seat and back are the largest smooth surfaces: they get most of the ~5k-triangle budget.
    parts.cushion((0, H - T / 2, 0), (W, T, D), p.seat_color, 0.35, 0.35, rows=14, cols=40)
    # Back and its spine, built upright at z_b then reclined about the seat's rear.
    zb = -D / 2 - 0.03
    tilt = _recline(H, zb, p.back_tilt_deg)
    gap = 0.08
    yb0 = H + gap
    spine = _fillet([(0, y_mech + 0.02, -0.1), (0, y_mech + 0.02, zb - 0.04), (0, yb0 + 0.15, zb - 0.04)], 0.06)
    parts.plank(spine, 0.06, 0.03, p.plastic, up=(1, 0, 0), matrix=tilt)
    bw, bh = p.back_width, p.back_height
    if p.back_style == "cushion":
        parts.panel((0, yb0 + bh / 2, zb), bw, bh, 0.07, p.seat_color, 0.35, p.back_outline, tilt, 14, 40)
    else:
        # Mesh back: a plastic frame tube around the outline with a thin dark membrane stretched inside.
        om = 2 * math.pi * np.arange(48) / 48
        e = max(p.back_outline, 0.3)
        ring = np.stack(
            [
                0.5 * bw * np.sign(np.cos(om)) * np.abs(np.cos(om)) ** e,
                yb0 + 0.5 * bh + 0.5 * bh * np.sign(np.sin(om)) * np.abs(np.sin(om)) ** e,
                np.full_like(om, zb),
            ],
            -1,
        )
        parts.tube(ring, 0.016, p.plastic, closed=True, ref=(0, 0, 1), matrix=tilt)
        parts.panel((0, yb0 + bh / 2, zb), bw - 0.02, bh - 0.02, 0.008, p.mesh_color, 0.5, e, tilt, 6, 40)
    if p.headrest:
        yh = yb0 + bh + 0.09
        parts.panel((0, yh, zb - 0.01), 0.26, 0.12, 0.07, p.seat_color, 0.4, 0.6, tilt)
        parts.stick((0, yb0 + bh - 0.05, zb - 0.045), (0, yh, zb - 0.045), 0.02, None, p.plastic, matrix=tilt)
    if p.arms:
        ya = H + p.arm_height
        for sx in (-1, 1):
            x_in, x_out = sx * 0.09, sx * (W / 2 + 0.03)
            path = _fillet([(x_in, y_mech + 0.01, -0.06), (x_out, y_mech + 0.01, -0.06), (x_out, ya, -0.06)], 0.05)
            parts.plank(path, 0.05, 0.02, p.plastic, up=(0, 0, 1))
            parts.cushion((x_out, ya + 0.015, -0.04), (0.08, 0.03, 0.26), p.plastic, 0.4, 0.4, rows=6, cols=20)


@dataclass(frozen=True)
class CantileverParams:
    """Tubular steel chair: a one-piece cantilever frame (no rear legs) or two sled runners."""

    base: str
    seat_height: float
    seat_width: float
    seat_depth: float
    seat_thickness: float
    tube_radius: float
    bend_radius: float
    front_lean: float
    back_height: float
    back_tilt_deg: float
    back_start: float
    material: str
    metal: Color
    seat_color: Color


def _sample_cantilever(rng: np.random.Generator) -> CantileverParams:
    material = _pick(rng, ("cane", "leather", "shell"))
    seat = {"cane": CANE, "leather": _color(rng, LEATHERS), "shell": _color(rng, PLASTICS + WOODS[:2])}[material]
    return CantileverParams(
        base=_pick(rng, ("cantilever", "sled")),
        seat_height=_u(rng, 0.44, 0.47),
        seat_width=_u(rng, 0.42, 0.48),
        seat_depth=_u(rng, 0.40, 0.46),
        seat_thickness=_u(rng, 0.02, 0.04),
        tube_radius=_u(rng, 0.010, 0.014),
        bend_radius=_u(rng, 0.04, 0.08),
        front_lean=_u(rng, -0.03, 0.06),
        back_height=_u(rng, 0.36, 0.46),
        back_tilt_deg=_u(rng, 6.0, 14.0),
        back_start=_u(rng, 0.08, 0.2),
        material=material,
        metal=_color(rng, METALS, jitter=4),
        seat_color=seat,
    )


def _build_cantilever(p: CantileverParams, parts: _Parts) -> None:
    H, W, D, T, r = p.seat_height, p.seat_width, p.seat_depth, p.seat_thickness, p.tube_radius
    xs = W / 2 - 0.015
    y_rail = H - T - r
    zf, zr = D / 2 - 0.02, -D / 2 + 0.02
    tilt = _recline(H, zr, p.back_tilt_deg)
    top = H + p.back_height
    top_pt = _apply(tilt, np.array([[0.0, top, zr]]))[0]
    if p.base == "cantilever":
        # One continuous tube: left back post → seat rail → front leg → floor runner → across the back of the
        # floor → right floor runner → right front leg → right seat rail → right back post.
        z_floor_rear = -D / 2 + 0.03

        def side(x: float) -> list[tuple[float, float, float]]:
            return [
                (x, top_pt[1], top_pt[2]),
                (x, y_rail, zr),
                (x, y_rail, zf),
                (x, r, zf + p.front_lean),
                (x, r, z_floor_rear),
            ]

        path = side(-xs) + side(xs)[::-1]
        parts.tube(_fillet(path, p.bend_radius, 6), r, p.metal, ref=(0, 1, 0), sections=10)
    else:
        for x in (-xs, xs):
            loop = [(x, r, zf + 0.03 + p.front_lean), (x, r, zr - 0.04), (x, y_rail, zr), (x, y_rail, zf)]
            parts.tube(_fillet(loop, p.bend_radius, 6, closed=True), r, p.metal, closed=True, sections=10)
            parts.tube(
                _fillet([(x, y_rail, zr + 0.06), (x, y_rail, zr), (x, top, zr)], p.bend_radius, 5),
                r,
                p.metal,
                sections=10,
                matrix=tilt,
            )
        parts.stick((-xs, y_rail, zf - 0.05), (xs, y_rail, zf - 0.05), 2 * r, None, p.metal, sections=10)
        parts.stick((-xs, y_rail, zr + 0.05), (xs, y_rail, zr + 0.05), 2 * r, None, p.metal, sections=10)
    parts.cushion((0, H - T / 2, 0.005), (W, T, D), p.seat_color, 0.3 if p.material != "cane" else 0.15, 0.25)
    bh = p.back_height * (1.0 - p.back_start) - 0.01
    y_back = H + p.back_height * p.back_start + bh / 2
    parts.panel((0, y_back, zr - 0.005), W + 0.01, bh, 0.025, p.seat_color, 0.3, 0.3, tilt)


@dataclass(frozen=True)
class LoungeParams:
    """Low, deep, reclined lounge chair with thick cushions on a wooden frame with arms or a steel X-frame."""

    style: str
    seat_height: float
    seat_width: float
    seat_depth: float
    seat_slant_deg: float
    cushion_thickness: float
    back_height: float
    back_tilt_deg: float
    arm_height: float
    headrest: bool
    leg_shape: str
    frame: Color
    fabric: Color


def _sample_lounge(rng: np.random.Generator) -> LoungeParams:
    style = _pick(rng, ("frame", "x_frame"))
    return LoungeParams(
        style=style,
        seat_height=_u(rng, 0.30, 0.37),
        seat_width=_u(rng, 0.58, 0.74),
        seat_depth=_u(rng, 0.60, 0.74),
        seat_slant_deg=_u(rng, 5.0, 10.0),
        cushion_thickness=_u(rng, 0.10, 0.16),
        back_height=_u(rng, 0.58, 0.76),
        back_tilt_deg=_u(rng, 22.0, 34.0),
        arm_height=_u(rng, 0.16, 0.24),
        headrest=_chance(rng, 0.4),
        leg_shape=_pick(rng, ("square", "round")),
        frame=_color(rng, WOODS) if style == "frame" else _color(rng, METALS[:3], jitter=4),
        fabric=_color(rng, FABRICS + LEATHERS),
    )


def _bezier(p0, p1, p2, p3, count: int = 16) -> np.ndarray:
    """Cubic Bézier through control points (each (3,)), ``count`` samples including both ends."""
    s = np.linspace(0.0, 1.0, count)[:, None]
    p0, p1, p2, p3 = (np.asarray(q, dtype=np.float64) for q in (p0, p1, p2, p3))
    return (1 - s) ** 3 * p0 + 3 * (1 - s) ** 2 * s * p1 + 3 * (1 - s) * s**2 * p2 + s**3 * p3


def _build_lounge(p: LoungeParams, parts: _Parts) -> None:
    H, W, D, ct = p.seat_height, p.seat_width, p.seat_depth, p.cushion_thickness
    lw = 0.05
    hx = W / 2 + lw / 2
    zf, zr = D / 2 - lw / 2, -D / 2 + lw / 2
    # The seat slants down towards the back (rear lower), as on most lounge chairs.
    slant = math.tan(math.radians(p.seat_slant_deg))
    y_front = H - ct
    y_rear = y_front - slant * D
    tilt = _recline(y_rear + ct, zr, p.back_tilt_deg)
    bh, cb = p.back_height, 0.12
    if p.style == "frame":
        HA = H + p.arm_height
        for sx in (-1, 1):
            parts.stick((sx * hx, 0, zf + 0.03), (sx * hx, HA, zf), lw * 0.7, lw, p.frame, p.leg_shape)
            parts.stick((sx * hx, 0, zr - 0.05), (sx * hx, HA - 0.04, zr), lw * 0.7, lw, p.frame, p.leg_shape)
            parts.plank(
                np.array([(sx * hx, y_front - 0.03, zf), (sx * hx, y_rear - 0.03, zr)]),
                0.06,
                lw * 0.7,
                p.frame,
            )
            parts.cushion((sx * hx, HA + 0.015, 0.02), (0.09, 0.03, D + 0.1), p.frame, 0.4, 0.3, rows=5, cols=16)
            # Two reclined back posts behind the back cushion.
            parts.stick(
                (sx * (hx - 0.02), y_rear - 0.05, zr - 0.02),
                (sx * (hx - 0.02), y_rear + ct + bh, zr - 0.02),
                lw * 0.8,
                None,
                p.frame,
                p.leg_shape,
                tilt,
            )
        parts.plank(_arc_xz(2 * hx, 0.0, y_front - 0.03, zf, 2), 0.06, lw * 0.7, p.frame)
        parts.box((0, y_rear + ct + bh - 0.05, zr - 0.02), (2 * hx - 0.04, 0.05, 0.025), p.frame, tilt)
    else:
        # Steel X-frame (a Barcelona-like chair): on each side one flat bar runs from the front foot under the
        # seat and up behind the back; the other from the rear foot forward under the seat front.
        xs = W / 2 + 0.012
        top = _apply(tilt, np.array([[0.0, y_rear + ct + bh - 0.05, zr - 0.015]]))[0]
        base = _apply(tilt, np.array([[0.0, y_rear + 0.05, zr - 0.015]]))[0]
        for sx in (-1, 1):
            x = sx * xs
            a = _bezier(
                (x, 0.012, zf + 0.06),
                (x, 0.10, zf - 0.15),
                (x, base[1] - 0.1, base[2] + 0.12),
                (x, base[1], base[2]),
            )
            a = np.vstack([a, _lerp((x, base[1], base[2]), (x, top[1], top[2]), 1.0)])
            b = _bezier(
                (x, 0.012, zr - 0.12),
                (x, 0.12, zr),
                (x, y_front - 0.03, zf - 0.3),
                (x, y_front - 0.015, zf + 0.02),
            )
            for path in (a, b):
                parts.plank(path, 0.014, 0.045, p.frame, up=(1, 0, 0))
        for y, z in ((y_front - 0.03, zf - 0.05), (base[1], base[2])):
            parts.stick((-xs, y, z), (xs, y, z), 0.02, None, p.frame)
    # Seat cushion, slanted like the frame: a rotation about X by -slant lowers its rear (+slant would lower
    # its front).
    seat_m = _translate((0, (y_front + y_rear) / 2 + ct / 2, 0)) @ _rot_x(-p.seat_slant_deg)
    parts.cushion((0, 0, 0), (W, ct, D), p.fabric, 0.4, 0.2, seat_m, rows=10, cols=28)
    parts.panel((0, y_rear + ct + bh / 2 - 0.02, zr + cb / 2), W, bh - 0.04, cb, p.fabric, 0.4, 0.2, tilt, 10, 28)
    if p.headrest:
        parts.panel((0, y_rear + ct + bh - 0.08, zr + cb + 0.04), W * 0.7, 0.14, 0.08, p.fabric, 0.5, 0.5, tilt)


@dataclass(frozen=True)
class RockingParams:
    """Rocking chair: curved rockers under turned legs, tall spindle or slat back, optional arms."""

    seat_height: float
    seat_width: float
    seat_depth: float
    rocker_length: float
    rocker_radius: float
    rocker_height: float
    back_height: float
    back_tilt_deg: float
    back_style: str
    n_back: int
    arms: bool
    wood: Color
    seat_color: Color


def _sample_rocking(rng: np.random.Generator) -> RockingParams:
    wood = _color(rng, WOODS + PAINTS[:1])
    style = _pick(rng, ("spindle", "slat"))
    return RockingParams(
        seat_height=_u(rng, 0.40, 0.45),
        seat_width=_u(rng, 0.46, 0.55),
        seat_depth=_u(rng, 0.42, 0.48),
        rocker_length=_u(rng, 0.80, 0.95),
        rocker_radius=_u(rng, 1.0, 1.5),
        rocker_height=_u(rng, 0.04, 0.06),
        back_height=_u(rng, 0.55, 0.72),
        back_tilt_deg=_u(rng, 12.0, 20.0),
        back_style=style,
        n_back=_i(rng, 5, 9) if style == "spindle" else _i(rng, 3, 5),
        arms=_chance(rng, 0.7),
        wood=wood,
        seat_color=wood if _chance(rng, 0.6) else _color(rng, FABRICS),
    )


def _build_rocking(p: RockingParams, parts: _Parts) -> None:
    H, W, D, rh = p.seat_height, p.seat_width, p.seat_depth, p.rocker_height
    lw, T = 0.035, 0.03
    hx, zf, zr = W / 2 - lw / 2, D / 2 - lw / 2, -D / 2 + lw / 2
    R = p.rocker_radius
    zc = -0.03  # lowest point of the rockers, slightly behind the seat centre

    def rocker_top(z: float) -> float:
        """Height of the rockers' upper edge above the floor at depth z (chair at rest)."""
        return R - math.sqrt(R * R - (z - zc) ** 2) + rh

    zs = np.linspace(zc - 0.58 * p.rocker_length, zc + 0.42 * p.rocker_length, 17)
    for sx in (-1, 1):
        arc = np.stack([np.full_like(zs, sx * hx), [rocker_top(z) - rh / 2 for z in zs], zs], -1)
        parts.plank(arc, rh, 0.025, p.wood, up=(0, 1, 0))
        parts.stick(
            (sx * hx, rocker_top(zf) - 0.01, zf),
            (sx * hx, (H + 0.22) if p.arms else H - T, zf),
            lw * 0.85,
            lw,
            p.wood,
        )
        parts.stick((sx * hx, rocker_top(zr) - 0.01, zr), (sx * hx, H - T, zr), lw * 0.85, lw, p.wood)
        # Side stretchers low between the legs keep the frame from looking like a table on skis.
        y = rocker_top(0.0) + 0.10
        parts.stick((sx * hx, y, zf), (sx * hx, y, zr), 0.02, None, p.wood, sections=THIN_SECTIONS)
    parts.box((0, H - T / 2, 0), (W, T, D), p.wood)
    if p.seat_color != p.wood:  # a fabric seat colour means a loose cushion on the wooden seat
        parts.cushion((0, H + 0.025, 0.01), (W * 0.92, 0.05, D * 0.9), p.seat_color, 0.4, 0.25)
    tilt = _recline(H, zr, p.back_tilt_deg)
    top = H + p.back_height
    for sx in (-1, 1):
        parts.stick((sx * hx, H - T, zr), (sx * hx, top, zr), lw, lw * 0.8, p.wood, matrix=tilt)
    rail = _arc_xz(2 * hx + 0.04, 0.04, top - 0.05, zr, 11)
    parts.plank(rail, 0.08, 0.025, p.wood, matrix=tilt)
    if p.back_style == "spindle":
        lower = _arc_xz(2 * hx, 0.04, H + 0.10, zr, 11)
        parts.plank(lower, 0.035, 0.025, p.wood, matrix=tilt)
        for x in np.linspace(-hx, hx, p.n_back + 2)[1:-1]:
            z = float(np.interp(x, rail[:, 0], rail[:, 2]))
            parts.stick(
                (x, H + 0.10, z),
                (x, top - 0.08, z),
                0.016,
                0.014,
                p.wood,
                matrix=tilt,
                sections=THIN_SECTIONS,
            )
    else:
        for k in range(p.n_back):
            y = H + 0.15 + (p.back_height - 0.25) * k / max(p.n_back - 1, 1)
            parts.plank(_arc_xz(2 * hx, 0.04, y, zr, 9), 0.05, 0.018, p.wood, matrix=tilt)
    if p.arms:
        ya = H + 0.22
        z_post = zr - (ya - H) * math.tan(math.radians(p.back_tilt_deg))
        for sx in (-1, 1):
            parts.box(
                (sx * (hx + 0.01), ya + 0.012, (zf + 0.06 + z_post) / 2),
                (0.07, 0.025, zf + 0.06 - z_post),
                p.wood,
            )


@dataclass(frozen=True)
class BenchParams:
    """Wide bench (settee) with a back: slatted or solid seat, end frames, optional arms."""

    seat_height: float
    width: float
    seat_depth: float
    seat_style: str
    n_seat_slats: int
    back_height: float
    back_tilt_deg: float
    n_back_slats: int
    arms: bool
    frame_material: str
    frame: Color
    boards: Color


def _sample_bench(rng: np.random.Generator) -> BenchParams:
    metal = _chance(rng, 0.35)
    return BenchParams(
        seat_height=_u(rng, 0.42, 0.46),
        width=_u(rng, 1.0, 1.5),
        seat_depth=_u(rng, 0.40, 0.50),
        seat_style=_pick(rng, ("slats", "slats", "cushion")),
        n_seat_slats=_i(rng, 4, 6),
        back_height=_u(rng, 0.35, 0.50),
        back_tilt_deg=_u(rng, 8.0, 16.0),
        n_back_slats=_i(rng, 2, 4),
        arms=_chance(rng, 0.7),
        frame_material="metal" if metal else "wood",
        frame=_color(rng, METALS[1:3] if metal else WOODS + PAINTS[2:4]),
        boards=_color(rng, WOODS + PAINTS[2:4]),
    )


def _build_bench(p: BenchParams, parts: _Parts) -> None:
    H, W, D = p.seat_height, p.width, p.seat_depth
    lw = 0.05
    T = 0.03
    hx, zf, zr = W / 2 - lw / 2, D / 2 - lw / 2, -D / 2 + lw / 2
    tilt = _recline(H, zr, p.back_tilt_deg)
    top = H + p.back_height
    ya = H + 0.22
    xs = [-hx, hx] + ([0.0] if W > 1.25 else [])
    shape = "square" if p.frame_material == "wood" else "round"
    lwf = lw if p.frame_material == "wood" else 0.03
    for x in xs:
        end = abs(x) > 0
        parts.stick((x, 0, zf), (x, ya if (p.arms and end) else H - T, zf), lwf, None, p.frame, shape)
        parts.stick((x, 0, zr - 0.04), (x, H - T, zr), lwf, None, p.frame, shape)
        parts.stick((x, H - T, zr), (x, top, zr), lwf, None, p.frame, shape, tilt)
        parts.box((x, H - T - 0.03, 0), (lwf, 0.06, D), p.frame)
        parts.box((x, 0.12, 0), (lwf * 0.8, 0.04, D - 0.02), p.frame)
        if p.arms and end:
            z_post = zr - (ya - H) * math.tan(math.radians(p.back_tilt_deg))
            parts.box(
                (x * (1 + 0.03 / hx), ya + 0.012, (zf + 0.05 + z_post) / 2),
                (0.08, 0.025, zf + 0.05 - z_post),
                p.frame,
            )
    parts.box((0, 0.12, 0), (2 * hx, 0.04, 0.03), p.frame)
    if p.seat_style == "slats":
        gap = 0.012
        sd = (D - gap * (p.n_seat_slats - 1)) / p.n_seat_slats
        for k in range(p.n_seat_slats):
            z = -D / 2 + sd / 2 + k * (sd + gap)
            parts.box((0, H - T / 2, z), (W + 0.04, T, sd), p.boards)
    else:
        parts.box((0, H - T - 0.01, 0), (W, 0.02, D), p.frame)
        parts.cushion((0, H + 0.02, 0.01), (W - 0.02, 0.08, D - 0.02), p.boards, 0.35, 0.1)
    lo, hi = H + 0.1, top - 0.02
    n = p.n_back_slats
    sh = min(0.10, 0.7 * (hi - lo) / n)
    for k in range(n):
        y = lo + (hi - lo) * (k + 0.5) / n
        parts.box((0, y, zr), (W, sh, 0.022), p.boards, tilt)


# ----------------------------------------------------------------------------------------------------------
# Registry and public API


@dataclass(frozen=True)
class _Family:
    label: str
    sample: Callable[[np.random.Generator], Any]
    build: Callable[[Any, _Parts], None]


_FAMILIES: dict[str, _Family] = {
    "slat_back": _Family("slat-back dining chair", _sample_slat_back, _build_slat_back),
    "spindle_back": _Family("spindle-back dining chair", _sample_spindle_back, _build_spindle_back),
    "upholstered": _Family("upholstered dining chair", _sample_upholstered, _build_upholstered),
    "bar_stool": _Family("bar stool", _sample_bar_stool, _build_bar_stool),
    "armchair": _Family("armchair", _sample_armchair, _build_armchair),
    "office": _Family("office chair", _sample_office, _build_office),
    "cantilever": _Family("tubular steel chair", _sample_cantilever, _build_cantilever),
    "lounge": _Family("lounge chair", _sample_lounge, _build_lounge),
    "rocking": _Family("rocking chair", _sample_rocking, _build_rocking),
    "bench": _Family("bench", _sample_bench, _build_bench),
}

#: Names of the chair families, in the order :func:`generate_chairs` cycles through them.
FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
#: Human-readable label of each family (used in chair names).
FAMILY_LABELS: dict[str, str] = {k: f.label for k, f in _FAMILIES.items()}


@dataclass(frozen=True)
class ProceduralChair:
    """One generated chair.

    Attributes:
        model_id: catalogue id, matching ``^[A-Za-z0-9][A-Za-z0-9._-]*$``.
        name: human-readable name, e.g. ``"spindle-back dining chair 7"``.
        family: one of :data:`FAMILIES`.
        params: the sampled parameters (lengths in metres before canonical scaling, angles in degrees,
            colours as sRGB triples); JSON-serialisable.
        mesh: the chair in the canonical frame (+Y up, front +Z, bbox-centred, farthest vertex at 1),
            with per-vertex RGBA colours.
    """

    model_id: str
    name: str
    family: str
    params: dict[str, Any]
    mesh: trimesh.Trimesh


def _build(rng: np.random.Generator, family: str, model_id: str, name: str) -> ProceduralChair:
    if family not in _FAMILIES:
        raise ValueError(f"unknown chair family {family!r}; choose one of {', '.join(FAMILIES)}")
    spec = _FAMILIES[family]
    params = spec.sample(rng)
    parts = _Parts()
    spec.build(params, parts)
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params).items()}
    return ProceduralChair(model_id=model_id, name=name, family=family, params=d, mesh=parts.mesh())


def generate_chair(seed: int, family: str | None = None) -> ProceduralChair:
    """One chair, deterministic from ``seed`` >= 0 and ``family`` (when None: ``FAMILIES[seed % n]``).

    The id is ``chair-{family}-s{seed}`` (underscores in the family become hyphens). Its random stream,
    ``default_rng([seed, family index, 0x5EED])``, is separate from those of :func:`generate_chairs`, so
    mixing both never gives two copies of one chair.
    """
    fam = FAMILIES[seed % len(FAMILIES)] if family is None else family
    if fam not in _FAMILIES:
        raise ValueError(f"unknown chair family {fam!r}; choose one of {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, FAMILIES.index(fam), 0x5EED])
    return _build(rng, fam, f"chair-{fam.replace('_', '-')}-s{seed}", f"{FAMILY_LABELS[fam]} {seed}")


def chair_id(seed: int, i: int) -> str:
    """The model id of chair ``i`` of generator seed ``seed``."""
    return f"chair-s{seed}-{i:03d}"


def generate_chairs(n: int, seed: int = 0) -> list[ProceduralChair]:
    """``n`` chairs cycling through :data:`FAMILIES` (any ``n >= len(FAMILIES)`` covers every family).

    ``seed`` must be >= 0. Chair ``i`` is of family ``FAMILIES[i % len(FAMILIES)]``, has id :func:`chair_id`
    (``chair-s{seed}-{i:03d}``) and depends only on ``(seed, i)`` (``default_rng([seed, i])``), so a longer list
    extends a shorter one with the same seed.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = []
    for i in range(n):
        fam = FAMILIES[i % len(FAMILIES)]
        rng = np.random.default_rng([seed, i])
        out.append(_build(rng, fam, chair_id(seed, i), f"{FAMILY_LABELS[fam]} {i}"))
    return out
