"""The one normal-smoothing rule of both renderers: per-corner "crease" normals.

The rasteriser (``low``) and the ray tracer (``high``) upload the normals of :func:`corner_normals`, so the low
and high views of one camera shade alike. A triangle corner averages, weighted by the triangle's interior angle at
that corner, the normals of the triangles around its (welded) vertex that lie within ``crease_deg`` of its own
triangle's normal. Tessellated curved surfaces look smooth and hard CAD edges stay sharp.

Why angle weighting (not area): a vertex normal should not depend on how a flat region happens to be split into
triangles; long thin triangles of CAD tessellations would otherwise pull the normal towards themselves.
Why per-corner cones (not connected groups of faces): the rule needs no edge adjacency, so it works on soups of
triangles with inconsistent winding (a neighbour of opposite orientation counts with its flipped normal),
which is most of the CAD and ShapeNet data.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DEFAULT_CREASE_DEG", "corner_normals", "weld_vertices"]

#: Edges whose faces meet at more than this angle (between normals, degrees) are shaded sharp.
DEFAULT_CREASE_DEG = 30.0


def weld_vertices(vertices: np.ndarray) -> np.ndarray:
    """Ids that identify coincident vertices: shape (V,) int64, equal for positions within ~1e-6 of the extent.

    CAD exports split vertices along UV seams and material borders; welding restores the topology that
    smoothing and closed-surface detection need.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) == 0:
        return np.zeros(0, np.int64)
    extent = float(np.ptp(v, axis=0).max())
    keys = np.ascontiguousarray(np.round(v / max(extent * 1e-6, 1e-12)).astype(np.int64))
    # Unique rows through a void view: much faster than np.unique(axis=0).
    _, weld = np.unique(keys.view(np.dtype((np.void, 24))).reshape(-1), return_inverse=True)
    return weld.reshape(-1).astype(np.int64)


def corner_normals(
    vertices: np.ndarray,
    faces: np.ndarray,
    crease_deg: float = DEFAULT_CREASE_DEG,
    weld: np.ndarray | None = None,
) -> np.ndarray:
    """Per-corner normals with sharp creases kept: shape (F, 3, 3) float32, unit length.

    Each corner gets the angle-weighted mean of the normals of the triangles around its (welded) vertex whose
    normal lies within ``crease_deg`` of its own triangle's — counting a neighbour of opposite
    orientation by its flipped normal, so inconsistent winding neither cancels normals nor makes creases. The
    result points to the same side as the corner's triangle by winding (``cross(b - a, c - a)``), which is what
    both renderers' two-sided shading expects. ``crease_deg <= 0`` gives flat (face) normals. Vertices shared by more
    than 64 triangles (fan centres, mostly on flat caps) keep the face normal, which bounds the cost.
    ``weld`` is :func:`weld_vertices` of ``vertices`` if the caller has it already.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n_faces = len(f)
    tri = v[f]  # (F, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(cross, axis=1)
    unit = np.divide(cross, length[:, None], out=np.zeros_like(cross), where=length[:, None] > 0)
    flat = np.repeat(unit[:, None, :], 3, axis=1)
    if crease_deg <= 0 or n_faces == 0:
        return flat.astype(np.float32)

    w = weld_vertices(v) if weld is None else weld
    corner_vertex = w[f].reshape(-1)  # (3F,)

    # Interior angle at each corner: the weight of that triangle's normal at that vertex.
    e1 = np.roll(tri, -1, axis=1) - tri
    e2 = np.roll(tri, 1, axis=1) - tri
    dots = np.einsum("fij,fij->fi", e1, e2)
    norms = np.linalg.norm(e1, axis=2) * np.linalg.norm(e2, axis=2)
    angle = np.arccos(np.clip(np.divide(dots, norms, out=np.ones_like(dots), where=norms > 0), -1, 1))
    angle = angle.reshape(-1)

    # All (corner, other corner at the same welded vertex) pairs, vectorised by sorting corners by vertex.
    # int32 / float32 where possible: a 200k-triangle mesh has ~4M pairs, and this is memory-bound.
    order = np.argsort(corner_vertex, kind="stable").astype(np.int32)
    counts = np.bincount(corner_vertex)
    starts = (np.cumsum(counts) - counts).astype(np.int32)
    degree = counts[corner_vertex].astype(np.int32)
    active = np.nonzero(degree <= 64)[0].astype(np.int32)
    reps = degree[active]
    pair_corner = np.repeat(active, reps)
    offsets = np.arange(pair_corner.size, dtype=np.int32) - np.repeat(np.cumsum(reps, dtype=np.int32) - reps, reps)
    partner = order[starts[corner_vertex[pair_corner]] + offsets]
    unit32 = unit.astype(np.float32)
    n_other = unit32[partner // 3]  # corner c belongs to face c // 3
    cos = np.einsum("ij,ij->i", unit32[pair_corner // 3], n_other)
    threshold = math.cos(math.radians(crease_deg))
    weight = np.where(np.abs(cos) >= threshold, np.sign(cos) * angle[partner].astype(np.float32), 0.0)

    acc = np.zeros((3 * n_faces, 3))
    for k in range(3):
        acc[:, k] = np.bincount(pair_corner, weights=weight * n_other[:, k], minlength=3 * n_faces)
    acc_len = np.linalg.norm(acc, axis=1)
    result = flat.reshape(-1, 3).copy()
    good = acc_len > 1e-12
    result[good] = acc[good] / acc_len[good, None]
    return result.reshape(n_faces, 3, 3).astype(np.float32)
