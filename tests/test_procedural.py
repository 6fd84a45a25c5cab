"""Tests of the procedural chair library: determinism, coverage of families, canonical frame, colours."""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pytest
import trimesh

from cadsearch.library import procedural as P
from cadsearch.library.procedural import (
    FAMILIES,
    FAMILY_LABELS,
    MAX_TRIANGLES,
    MIN_TRIANGLES,
    generate_chair,
    generate_chairs,
)

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@pytest.fixture(scope="module")
def chairs() -> list[P.ProceduralChair]:
    """Three chairs of every family (generation is fast: ~5 ms a chair)."""
    return generate_chairs(3 * len(FAMILIES), seed=7)


def _arrays(chair: P.ProceduralChair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = chair.mesh
    return np.asarray(m.vertices), np.asarray(m.faces), np.asarray(m.visual.vertex_colors)


def test_at_least_eight_families_with_labels() -> None:
    assert len(FAMILIES) >= 8
    assert len(set(FAMILIES)) == len(FAMILIES)
    assert set(FAMILY_LABELS) == set(FAMILIES)


def test_same_seed_gives_identical_arrays() -> None:
    a, b = generate_chairs(len(FAMILIES), seed=3), generate_chairs(len(FAMILIES), seed=3)
    for ca, cb in zip(a, b, strict=True):
        assert (ca.model_id, ca.name, ca.family, ca.params) == (cb.model_id, cb.name, cb.family, cb.params)
        for x, y in zip(_arrays(ca), _arrays(cb), strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes()
    one, two = generate_chair(5, "office"), generate_chair(5, "office")
    assert np.asarray(one.mesh.vertices).tobytes() == np.asarray(two.mesh.vertices).tobytes()


def test_different_seeds_differ() -> None:
    a, b = generate_chairs(len(FAMILIES), seed=0), generate_chairs(len(FAMILIES), seed=1)
    for ca, cb in zip(a, b, strict=True):
        assert ca.family == cb.family
        assert ca.params != cb.params
        va, vb = np.asarray(ca.mesh.vertices), np.asarray(cb.mesh.vertices)
        assert va.shape != vb.shape or not np.allclose(va, vb)
    assert generate_chair(1, "bench").params != generate_chair(2, "bench").params


def test_longer_list_extends_shorter_one() -> None:
    """Chair i depends only on (seed, i): asking for more chairs never changes the first ones."""
    short, long = generate_chairs(3, seed=9), generate_chairs(12, seed=9)
    for a, b in zip(short, long[:3], strict=True):
        assert a.model_id == b.model_id
        assert np.asarray(a.mesh.vertices).tobytes() == np.asarray(b.mesh.vertices).tobytes()


def test_n_of_eight_or_more_covers_all_families_with_unique_ids() -> None:
    got = generate_chairs(len(FAMILIES), seed=0)
    assert {c.family for c in got} == set(FAMILIES)
    more = generate_chairs(25, seed=2)
    ids = [c.model_id for c in more]
    assert len(set(ids)) == len(ids)
    assert ids[4] == "chair-s2-004"
    assert generate_chairs(0) == []


def test_ids_names_and_params(chairs: list[P.ProceduralChair]) -> None:
    for c in chairs + [generate_chair(4, "spindle_back"), generate_chair(12)]:
        assert ID_RE.match(c.model_id), c.model_id
        assert c.family in FAMILIES
        assert c.name.startswith(FAMILY_LABELS[c.family])
        assert isinstance(c.mesh, trimesh.Trimesh)
        # Params are plain JSON (no numpy scalars) and round-trip unchanged.
        assert json.loads(json.dumps(c.params)) == c.params


def test_generate_chair_family_choice() -> None:
    assert generate_chair(0, "rocking").family == "rocking"
    assert generate_chair(3).family == FAMILIES[3]
    with pytest.raises(ValueError, match="unknown chair family"):
        generate_chair(0, "sofa")


def test_canonical_frame(chairs: list[P.ProceduralChair]) -> None:
    for c in chairs:
        v = np.asarray(c.mesh.vertices)
        centre = 0.5 * (v.min(axis=0) + v.max(axis=0))
        assert np.abs(centre).max() < 1e-6, c.model_id
        assert abs(np.linalg.norm(v, axis=1).max() - 1.0) < 1e-6, c.model_id


def test_up_is_y_and_front_is_plus_z(chairs: list[P.ProceduralChair]) -> None:
    """The backrest (top 40 % of the height) is behind (−Z); the seat and front legs reach out to +Z."""
    for c in chairs:
        v = np.asarray(c.mesh.vertices)
        y = v[:, 1]
        h = (y - y.min()) / (y.max() - y.min())
        top, low = v[h >= 0.6], v[h < 0.6]
        assert top[:, 2].mean() < 0.0, c.model_id
        # The lower part's mass (seat front, front legs) lies in front of the backrest's ...
        assert low[:, 2].mean() > top[:, 2].mean() + 0.02, c.model_id
        # ... and reaches the front half of the box: a seated person's knees point to +Z.
        assert low[:, 2].max() > 0.1, c.model_id


def test_triangle_counts(chairs: list[P.ProceduralChair]) -> None:
    for c in chairs:
        n = len(c.mesh.faces)
        assert MIN_TRIANGLES <= n <= MAX_TRIANGLES, (c.model_id, n)
    # The render benchmark's ~5k-triangle chair.
    assert 4000 <= len(generate_chair(0, "office").mesh.faces) <= 6000


def test_faces_valid_and_nondegenerate(chairs: list[P.ProceduralChair]) -> None:
    for c in chairs:
        v, f, _ = _arrays(c)
        assert f.min() >= 0 and f.max() < len(v)
        assert np.isfinite(v).all()
        area = np.asarray(c.mesh.area_faces)
        assert (area > 1e-12).mean() > 0.99, c.model_id


def test_colours_present_and_varied(chairs: list[P.ProceduralChair]) -> None:
    multi = 0
    for c in chairs:
        assert c.mesh.visual.kind == "vertex"
        _, _, col = _arrays(c)
        assert col.shape == (len(c.mesh.vertices), 4) and col.dtype == np.uint8
        assert (col[:, 3] == 255).all()
        multi += len(np.unique(col, axis=0)) >= 2
    # Parts have different colours (wood/fabric/metal) on nearly every chair.
    assert multi >= 0.8 * len(chairs)


def test_colours_survive_glb_round_trip() -> None:
    for c in generate_chairs(len(FAMILIES), seed=4):
        data = c.mesh.export(file_type="glb")
        back = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
        assert back.visual.kind == "vertex", c.family
        assert len(back.faces) == len(c.mesh.faces)
        col0 = np.asarray(c.mesh.visual.vertex_colors)
        col1 = np.asarray(back.visual.vertex_colors)
        # Same set of colours, and the same colour per triangle (compared as sorted per-face means, which does
        # not depend on how the loader orders or welds vertices).
        assert {tuple(x) for x in col0} == {tuple(x) for x in col1}
        f0 = np.sort(col0[c.mesh.faces].mean(axis=1), axis=0)
        f1 = np.sort(col1[back.faces].mean(axis=1), axis=0)
        assert np.abs(f0 - f1).max() < 1.0
        assert np.allclose(np.sort(back.vertices, axis=0), np.sort(c.mesh.vertices, axis=0), atol=1e-5)


@pytest.mark.parametrize(
    "vf",
    [
        P._tube(np.array([[0, 0, 0], [0.1, 0.5, 0.2]]), np.array([0.05, 0.03]), 12),
        P._tube(np.array([[0, 0, 0], [0, 1, 0]]), 0.1, 4, angle0=math.pi / 4, flat=True),
        P._tube(P._fillet([(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1)], 0.2), 0.05, 10),
        P._superellipsoid((0.5, 0.1, 0.4), 0.3, 0.2),
        P._superellipsoid((0.3, 0.3, 0.3), 1.0, 1.0),
        (P._BOX_V, P._BOX_F),
    ],
)
def test_primitives_are_closed_and_outward(vf: tuple[np.ndarray, np.ndarray]) -> None:
    """Consistent outward winding (positive volume) so renderers' normals and back-face culling work."""
    v, f = vf
    m = trimesh.Trimesh(v, f, process=False)
    m.merge_vertices()
    assert m.is_watertight
    assert m.volume > 0


def test_closed_tube_is_outward() -> None:
    ang = 2 * math.pi * np.arange(24) / 24
    ring = np.stack([np.sin(ang), np.zeros_like(ang), np.cos(ang)], -1)
    v, f = P._tube(ring, 0.1, 8, closed=True, ref=(0, 1, 0))
    m = trimesh.Trimesh(v, f, process=False)
    assert m.is_watertight and m.volume > 0
