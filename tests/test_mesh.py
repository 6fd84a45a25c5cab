"""Mesh loading (every format, tiny fixtures) and the canonical-frame maths."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from cadsearch.errors import InputError, MeshLoadError
from cadsearch.library import mesh as mesh_module
from cadsearch.library.mesh import (
    AXES,
    axis_rotation,
    canonicalise,
    has_texture,
    load_mesh,
    load_source_mesh,
    parse_axis,
    to_glb_bytes,
)


def assert_canonical(m: trimesh.Trimesh) -> None:
    """Bounding-box centre at the origin and farthest vertex at distance 1."""
    lo, hi = m.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
    assert np.linalg.norm(m.vertices, axis=1).max() == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------- axes


def test_parse_axis_normalises():
    assert parse_axis("y") == "+y"
    assert parse_axis(" -Z ") == "-z"
    assert parse_axis("+X") == "+x"
    with pytest.raises(InputError, match="bad axis"):
        parse_axis("up")


@pytest.mark.parametrize(("up", "front"), list(itertools.product(AXES, AXES)))
def test_axis_rotation_is_proper_and_maps_axes(up, front):
    if up[1] == front[1]:
        with pytest.raises(InputError, match="parallel"):
            axis_rotation(up, front)
        return
    r = axis_rotation(up, front)
    assert r.shape == (3, 3)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(r @ np.array(AXES[up]), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(r @ np.array(AXES[front]), [0, 0, 1], atol=1e-12)


def test_axis_rotation_known_cases():
    np.testing.assert_allclose(axis_rotation("+y", "+z"), np.eye(3))
    # ShapeNet (+y up, front -z): half a turn about Y
    np.testing.assert_allclose(axis_rotation("+y", "-z"), np.diag([-1.0, 1.0, -1.0]))


def _marked_object() -> trimesh.Trimesh:
    """An object in a +z-up, front -y source frame: a base slab, a tall 'backrest' at the back (+y), and a
    small 'nose' sticking out at the front (-y)."""
    base = trimesh.creation.box(extents=(2, 2, 0.2))
    back = trimesh.creation.box(extents=(2, 0.2, 2))
    back.apply_translation((0, 0.9, 1.1))
    nose = trimesh.creation.box(extents=(0.2, 0.6, 0.2))
    nose.apply_translation((0, -1.3, 0))
    m = trimesh.util.concatenate([base, back, nose])
    m.apply_translation((5.0, -3.0, 7.0))  # off-centre, to check centring
    m.apply_scale(40.0)  # arbitrary units, to check scaling
    return m


def test_canonicalise_up_z_front_minus_y_puts_front_at_plus_z_and_top_at_plus_y():
    src = _marked_object()
    before = src.vertices.copy()
    m = canonicalise(src, up="+z", front="-y")
    np.testing.assert_array_equal(src.vertices, before)  # pure
    assert_canonical(m)
    v = m.vertices
    # the nose is the only geometry far out in front
    assert v[:, 2].max() > 0.6
    front_part = v[v[:, 2] > v[:, 2].max() - 0.05]
    assert len(front_part) >= 4
    assert abs(front_part[:, 0]).max() < 0.1  # ... and it is the nose, centred across
    # the backrest is at the top and at the back (-z)
    top = v[v[:, 1] > v[:, 1].min() + 0.6 * np.ptp(v[:, 1])]
    assert top[:, 2].mean() < 0
    # the source's z extent (2.2 units of height) is now the Y extent
    np.testing.assert_allclose(np.ptp(v, axis=0) / np.ptp(v[:, 1]), np.array([2.0, 2.2, 2.6]) / 2.2)


def test_canonicalise_rejects_degenerate_and_parallel_axes():
    point = trimesh.Trimesh(vertices=np.ones((3, 3)), faces=[[0, 1, 2]], process=False)
    with pytest.raises(InputError, match="degenerate"):
        canonicalise(point)
    with pytest.raises(InputError, match="parallel"):
        canonicalise(trimesh.creation.box(), up="+x", front="-x")


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (7, 3), elements=st.floats(-1e3, 1e3)),
    st.sampled_from([("+y", "+z"), ("+z", "-y"), ("-x", "+y"), ("+y", "-z")]),
)
def test_canonicalise_centres_and_scales_any_mesh(points, axes):
    if np.ptp(points, axis=0).max() < 1e-3:
        return  # (nearly) a single point: rejected, tested above
    m = trimesh.Trimesh(vertices=points, faces=[[0, 1, 2], [3, 4, 5], [4, 5, 6]], process=False)
    out = canonicalise(m, *axes)
    assert_canonical(out)
    # a rotation plus a uniform scale: all pairwise distances shrink by the same factor
    d_in = np.linalg.norm(points[:, None] - points[None], axis=-1)
    d_out = np.linalg.norm(out.vertices[:, None] - out.vertices[None], axis=-1)
    factor = d_out.max() / d_in.max()
    np.testing.assert_allclose(d_out, d_in * factor, atol=1e-9)


# ---------------------------------------------------------------------------------------------- formats


def test_obj_with_mtl_and_texture_in_shapenet_layout(make):
    path = make.textured_obj()
    rec = load_mesh(path)
    assert rec.has_texture and has_texture(rec.mesh)
    assert rec.mesh.visual.uv.shape == (len(rec.mesh.vertices), 2)
    assert rec.mesh.visual.material.image.size == (4, 4)
    assert rec.n_faces == 2 and rec.n_vertices == len(rec.mesh.vertices)
    assert rec.source_path == path.absolute()
    assert (rec.up, rec.front) == ("+y", "+z")
    assert_canonical(rec.mesh)


def test_obj_checksum_covers_texture_and_ignores_location(make, tmp_path):
    a = load_mesh(make.textured_obj("a/models")).checksum
    b = load_mesh(make.textured_obj("b/models")).checksum  # identical copy elsewhere
    c = load_mesh(make.textured_obj("c/models", texture_colour=(0, 0, 255))).checksum
    assert a == b
    assert a != c


def test_checksum_of_single_file_is_plain_sha256(make):
    path = make.export("box.stl", make.box())
    assert load_mesh(path).checksum == hashlib.sha256(path.read_bytes()).hexdigest()


def test_obj_mixing_texture_and_plain_material_keeps_texture_atlas(make):
    rec = load_mesh(make.two_material_obj())
    assert rec.has_texture
    assert rec.n_faces == 4
    assert rec.mesh.visual.uv.shape == (len(rec.mesh.vertices), 2)


def test_obj_with_only_material_colours_gets_face_colours(make):
    rec = load_mesh(make.two_material_obj("plain/thing.obj", textured=False))
    assert not rec.has_texture
    assert rec.mesh.visual.kind == "face"
    colours = {tuple(c) for c in rec.mesh.visual.face_colors[:, :3]}
    assert colours == {(255, 0, 0), (0, 0, 255)}


def test_obj_with_missing_texture_still_loads(make):
    path = make.textured_obj()
    (path.parent.parent / "images" / "texture0.png").unlink()
    rec = load_mesh(path)
    assert not rec.has_texture
    assert rec.n_faces == 2


@pytest.mark.parametrize("variant", ["normal", "glued", "same_line"])
def test_off_variants(make, variant):
    rec = load_mesh(make.off(f"pyramid_{variant}.off", variant), up="+z", front="-y")
    assert rec.n_faces == 6  # quad base fan-triangulated + 4 sides
    assert rec.n_vertices == 5
    assert_canonical(rec.mesh)
    # the apex (z = 1 in the source) is at the top now
    assert rec.mesh.vertices[:, 1].argmax() == 4


def test_off_with_ngons_and_face_colours(make):
    text = "OFF\n6 1 0\n0 0 0\n1 0 0\n2 1 0\n1 2 0\n0 2 0\n-1 1 0\n6 0 1 2 3 4 5 255 0 0\n"
    rec = load_mesh(make.text("hexagon.off", text))
    assert rec.n_faces == 4
    assert rec.mesh.visual.kind == "face"
    assert (rec.mesh.visual.face_colors[:, :3] == [255, 0, 0]).all()


def test_ply_with_vertex_colours(make):
    rec = load_mesh(make.coloured_ply())
    assert rec.mesh.visual.kind == "vertex"
    reds = sorted({int(c[0]) for c in rec.mesh.visual.vertex_colors})
    assert reds == [i * 30 for i in range(8)]
    assert_canonical(rec.mesh)


def test_stl(make):
    rec = load_mesh(make.export("box.stl", make.box()))
    assert rec.n_faces == 12
    assert_canonical(rec.mesh)
    # a 1×2×3 box: the half-diagonal becomes 1, so extents scale by 2 / sqrt(14)
    np.testing.assert_allclose(np.ptp(rec.mesh.vertices, axis=0), np.array([1, 2, 3]) * 2 / np.sqrt(14))


def test_glb_scene_applies_node_transforms(make):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a")
    moved = np.eye(4)
    moved[0, 3] = 10.0
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="b", transform=moved)
    path = make.export("two.glb", scene)
    raw, _ = load_source_mesh(path)
    np.testing.assert_allclose(raw.bounds, [[-0.5, -0.5, -0.5], [10.5, 0.5, 0.5]])
    rec = load_mesh(path)
    assert rec.n_faces == 24
    assert_canonical(rec.mesh)


def test_glb_round_trip_keeps_face_colours(make):
    box = make.box()
    colours = np.tile(np.array([0, 0, 255, 255], np.uint8), (12, 1))
    colours[box.triangles_center[:, 1] > 0.99] = [255, 0, 0, 255]  # top face red
    box.visual.face_colors = colours
    path = make.data("faces.glb", to_glb_bytes(box))
    m = load_mesh(path).mesh
    fc = m.visual.face_colors[:, :3]
    top = m.triangles_center[:, 1] > m.vertices[:, 1].max() - 1e-6
    assert top.sum() == 2
    assert (fc[top] == [255, 0, 0]).all()
    assert (fc[~top] == [0, 0, 255]).all()


def test_glb_round_trip_keeps_vertex_colours(make):
    box = make.box()
    box.visual.vertex_colors = np.tile(np.array([10, 20, 30, 255], np.uint8), (8, 1))
    m = load_mesh(make.data("vc.glb", to_glb_bytes(box))).mesh
    assert m.visual.kind == "vertex"
    assert (m.visual.vertex_colors[:, :3] == [10, 20, 30]).all()


def test_glb_with_texture(make):
    quad = trimesh.Trimesh(
        vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], faces=[[0, 1, 2], [0, 2, 3]], process=False
    )
    material = trimesh.visual.material.SimpleMaterial(image=Image.new("RGB", (4, 4), (9, 99, 199)))
    quad.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]], material=material)
    rec = load_mesh(make.export("tex.glb", quad))
    assert rec.has_texture
    assert rec.mesh.visual.uv.shape == (4, 2)


def test_gltf_with_separate_buffer(make):
    files = make.box().export(file_type="gltf")  # {"model.gltf": ..., "gltf_buffer_0.bin": ...}
    for name, data in files.items():
        make.data(f"gltf/{name}", data)
    rec = load_mesh(make.root / "gltf" / "model.gltf")
    assert rec.n_faces == 12
    # the checksum covers the buffer file too
    buffers = [n for n in files if n.endswith(".bin")]
    assert buffers
    assert rec.checksum != hashlib.sha256(files["model.gltf"]).hexdigest()


def test_axes_are_applied_and_recorded(make):
    path = make.export("tall.stl", trimesh.creation.box(extents=(1, 1, 5)))
    rec = load_mesh(path, up="Z", front="-y")
    assert (rec.up, rec.front) == ("+z", "-y")
    ext = np.ptp(rec.mesh.vertices, axis=0)
    assert ext[1] > 4 * ext[0]  # the tall source z axis is now Y


# ---------------------------------------------------------------------------------------------- bad input


def _assert_one_line_error(path, match: str) -> MeshLoadError:
    with pytest.raises(MeshLoadError) as info:
        load_mesh(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert match in message, message
    return info.value


def test_missing_file(tmp_path):
    _assert_one_line_error(tmp_path / "nothere.obj", "no such file")


def test_unsupported_extension(make):
    _assert_one_line_error(make.text("notes.txt", "hello"), "unsupported file type")


def test_folder_is_not_a_file(make):
    make.text("dir.obj/x", "")
    _assert_one_line_error(make.root / "dir.obj", "not a file")


def test_text_file_renamed_obj(make):
    _assert_one_line_error(make.text("essay.obj", "This is a text file.\nNothing to see.\n"), "no triangles")


@pytest.mark.parametrize("ext", [".glb", ".ply", ".stl", ".off", ".obj", ".gltf"])
def test_corrupt_binary(make, ext):
    rng = np.random.default_rng(0)
    path = make.data(f"corrupt{ext}", b"\x00\xff" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    _assert_one_line_error(path, "cannot load mesh")


def test_empty_file_and_mesh_without_faces(make):
    _assert_one_line_error(make.data("zero.stl", b""), "empty")
    _assert_one_line_error(make.text("points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n"), "no triangles")
    _assert_one_line_error(make.text("nofaces.off", "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n"), "no triangles")


def test_nan_vertices(make):
    _assert_one_line_error(make.text("nan.obj", "v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"), "NaN")
    _assert_one_line_error(make.text("inf.off", "OFF\n3 1 0\ninf 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"), "NaN")


def test_degenerate_mesh(make):
    _assert_one_line_error(make.text("dot.obj", "v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n"), "degenerate")


@pytest.mark.parametrize(
    "text",
    [
        "OFF\n3 1 0\n0 0 0\n1 0 0\n",  # truncated
        "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n",  # index out of range
        "OFF\nthree one zero\n",  # bad counts
        "PLY\n3 1 0\n",  # wrong header
    ],
)
def test_corrupt_off(make, text):
    _assert_one_line_error(make.text("bad.off", text), "not a valid OFF file")


def test_huge_file_refused(make, monkeypatch):
    path = make.export("box.stl", make.box())
    monkeypatch.setattr(mesh_module, "MAX_MESH_BYTES", 100)
    _assert_one_line_error(path, "limit")


def test_bad_axes_are_input_errors(make):
    path = make.export("box.stl", make.box())
    with pytest.raises(InputError, match="bad axis"):
        load_mesh(path, up="up")
    with pytest.raises(InputError, match="parallel"):
        load_mesh(path, up="+z", front="-z")


def test_texture_outside_the_model_tree_is_not_read(make, tmp_path):
    """Assets may come from the mesh's folder or the one above, not from anywhere on the disk."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for you")
    folder = make.path("deep/a/b/x.obj").parent
    (folder / "x.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd ../../../../secret.png\n")
    (folder / "x.obj").write_text("mtllib x.mtl\nusemtl m\n" + "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    rec = load_mesh(folder / "x.obj")
    assert not rec.has_texture
    assert rec.checksum != ""
