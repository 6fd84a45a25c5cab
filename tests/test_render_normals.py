"""The normal-smoothing rule shared by both renderers (``render/normals.py``).

The low (rasteriser) and high (ray tracer) views of one camera must shade alike, so both renderers upload the
normals of one function. The CPU side of both is checked without OpenGL or Mitsuba; what Mitsuba's mesh holds
after the upload is checked when Mitsuba is installed.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import trimesh

from cadsearch.render.normals import DEFAULT_CREASE_DEG, corner_normals
from cadsearch.render.raster import RasterRenderer, mesh_buffers
from cadsearch.render.raytrace import RayTracer, prepare_mesh


def _box() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=[0.8, 1.2, 0.6])


def _cylinder() -> trimesh.Trimesh:
    # 24 sides: 15° between side faces (smoothed), 90° to the caps (sharp).
    return trimesh.creation.cylinder(radius=0.5, height=1.2, sections=24)


def _flipped_half(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """``mesh`` with every other face wound the other way, as in much CAD and ShapeNet data."""
    faces = np.asarray(mesh.faces).copy()
    faces[::2] = faces[::2, ::-1]
    return trimesh.Trimesh(np.asarray(mesh.vertices), faces, process=False)


MESHES = {"box": _box, "cylinder": _cylinder, "inconsistent cylinder": lambda: _flipped_half(_cylinder())}


def test_both_renderers_default_to_the_shared_crease() -> None:
    assert inspect.signature(RasterRenderer).parameters["crease_angle_deg"].default == DEFAULT_CREASE_DEG
    assert inspect.signature(RayTracer).parameters["crease_deg"].default == DEFAULT_CREASE_DEG


def test_corner_normals_smooth_but_keep_creases() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    n = corner_normals(sphere.vertices, sphere.faces)
    radial = sphere.vertices[sphere.faces]
    radial /= np.linalg.norm(radial, axis=2, keepdims=True)
    assert np.einsum("fij,fij->fi", n, radial).min() > 0.999  # smooth: normals ≈ the sphere's
    box = _box()
    n = corner_normals(box.vertices, box.faces)
    np.testing.assert_allclose(n, np.repeat(box.face_normals[:, None], 3, axis=1), atol=1e-6)  # sharp
    flat = corner_normals(sphere.vertices, sphere.faces, 0.0)
    np.testing.assert_allclose(flat, np.repeat(sphere.face_normals[:, None], 3, axis=1), atol=1e-6)


def test_corner_normals_ignore_winding() -> None:
    """A flipped face gets the same normal, pointing to its own (flipped) side: no cancelling, no false crease."""
    cyl = _cylinder()
    flipped = _flipped_half(cyl)
    a = corner_normals(cyl.vertices, cyl.faces)
    b = corner_normals(flipped.vertices, flipped.faces)
    sign = np.where(np.arange(len(cyl.faces)) % 2 == 0, -1.0, 1.0)[:, None, None]
    # The flipped faces list their corners in reverse order: compare corner by corner.
    b = np.where(sign < 0, b[:, ::-1], b)
    np.testing.assert_allclose(b, sign * a, atol=1e-5)


@pytest.mark.parametrize("name", list(MESHES))
def test_rasteriser_and_ray_tracer_prepare_the_same_normals(name: str) -> None:
    """The per-corner normal arrays that each renderer hands to its backend are equal, corner for corner."""
    mesh = MESHES[name]()
    # cull=False keeps the mesh's own face order and winding (culling moves closed parts first and rewinds
    # inward ones), so corners line up with the ray tracer's; for these outward meshes culling changes nothing.
    low = mesh_buffers(mesh, cull=False).vertices["normal"]
    high = prepare_mesh(mesh).normals
    assert low.shape == high.shape == (3 * len(mesh.faces), 3)
    np.testing.assert_array_equal(low, high)
    if name != "inconsistent cylinder":
        np.testing.assert_array_equal(mesh_buffers(mesh).vertices["normal"], high)
    # Smooth sides, sharp rims: the normals are neither all flat nor all smoothed across the crease.
    flat = np.repeat(mesh.face_normals, 3, axis=0)
    differs = np.abs(np.abs(np.einsum("ij,ij->i", low, flat)) - 1.0) > 1e-4
    assert differs.any() == name.endswith("cylinder")


@pytest.mark.parametrize("name", ["box", "cylinder"])
def test_mitsuba_holds_the_rasterisers_normals(name: str) -> None:
    """What the ray tracer uploads into Mitsuba's mesh equals the rasteriser's vertex buffer normals."""
    pytest.importorskip("mitsuba", reason="the ray tracer needs Mitsuba 3 (pip install cadsearch[raytrace])")
    import mitsuba as mi

    mesh = MESHES[name]()
    tracer = RayTracer(size=16, spp=1, variant="scalar_rgb")
    try:
        entry = tracer._entry(mesh)
        uploaded = np.asarray(mi.traverse(entry.beauty_mesh)["vertex_normals"], dtype=np.float32).reshape(-1, 3)
    finally:
        tracer.close()
    np.testing.assert_allclose(uploaded, mesh_buffers(mesh).vertices["normal"], atol=1e-6)
