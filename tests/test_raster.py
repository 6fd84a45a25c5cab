"""The OpenGL rasteriser (quality ``low``): orientation against the camera convention, colours, textures,
outputs (alpha, depth), determinism and lighting, robustness to CAD meshes."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading

import numpy as np
import pytest
import trimesh
from PIL import Image

from cadsearch.errors import CadsearchError
from cadsearch.render import raster, release_renderers
from cadsearch.render.cameras import Camera
from cadsearch.render.raster import CoverageRenderer, RasterRenderer, closed_faces, gl_context
from cadsearch.render.types import Renderer, RenderOutput

SIZE = 96


@pytest.fixture(scope="module", autouse=True)
def _need_gl():
    try:
        gl_context()
    except CadsearchError as exc:  # e.g. a machine without Mesa's EGL
        pytest.skip(f"no OpenGL context: {exc}")


@pytest.fixture(scope="module")
def renderer():
    r = RasterRenderer(SIZE)
    yield r
    r.close()


def _box(extents, center, color) -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=extents)
    m.apply_translation(center)
    m.visual.face_colors = np.tile(np.array([*color, 255], np.uint8), (len(m.faces), 1))
    return m


@pytest.fixture(scope="module")
def marked_box() -> trimesh.Trimesh:
    """A grey cube with a red marker on its front (+Z) and a green one on its top (+Y); fits the unit ball."""
    return trimesh.util.concatenate(
        [
            _box((1.0, 1.0, 1.0), (0, 0, 0), (170, 170, 170)),
            _box((0.5, 0.5, 0.2), (0, 0, 0.6), (230, 20, 20)),
            _box((0.3, 0.2, 0.3), (0, 0.6, 0), (20, 200, 20)),
        ]
    )


def _red(out: RenderOutput) -> np.ndarray:
    rgb = out.rgb.astype(int)
    return out.mask & (rgb[..., 0] > 100) & (rgb[..., 1] < 70) & (rgb[..., 2] < 70)


def _green(out: RenderOutput) -> np.ndarray:
    rgb = out.rgb.astype(int)
    return out.mask & (rgb[..., 1] > 90) & (rgb[..., 0] < 70) & (rgb[..., 2] < 70)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) in pixels, y down."""
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


# --- orientation (DESIGN.md's camera convention) -------------------------------------------------------------


def test_output_types(renderer, marked_box):
    out = renderer.render(marked_box, Camera(90, 0))
    assert isinstance(renderer, Renderer)
    assert renderer.quality == "low" and renderer.size == SIZE
    assert out.rgb.shape == (SIZE, SIZE, 3) and out.rgb.dtype == np.uint8
    assert out.alpha.shape == (SIZE, SIZE) and out.alpha.dtype == np.float32
    assert out.depth.shape == (SIZE, SIZE) and out.depth.dtype == np.float32
    assert out.mask.dtype == bool
    assert out.alpha.min() >= 0.0 and out.alpha.max() <= 1.0
    assert np.all(out.rgb[out.alpha == 0] == 0)  # over black


def test_front_view_shows_marker_in_centre(renderer, marked_box):
    out = renderer.render(marked_box, Camera(90, 0))
    red = _red(out)
    assert red.mean() > 0.05
    x, y = _centroid(red)
    assert abs(x - SIZE / 2) < 0.1 * SIZE and abs(y - SIZE / 2) < 0.1 * SIZE


def test_back_view_hides_front_marker(renderer, marked_box):
    assert _red(renderer.render(marked_box, Camera(90, 180))).sum() == 0


@pytest.mark.parametrize(("azimuth", "side"), [(90.0, "left"), (270.0, "right"), (60.0, "left"), (300.0, "right")])
def test_side_views_put_front_on_the_expected_side(renderer, marked_box, azimuth, side):
    red = _red(renderer.render(marked_box, Camera(90, azimuth)))
    assert red.sum() > 10
    x, _ = _centroid(red)
    assert (x < SIZE / 2) if side == "left" else (x > SIZE / 2)


@pytest.mark.parametrize("azimuth", [0.0, 90.0, 200.0])
def test_up_is_image_top(renderer, marked_box, azimuth):
    out = renderer.render(marked_box, Camera(90, azimuth))
    _, y = _centroid(_green(out))
    assert y < 0.3 * SIZE  # the +Y marker sits above the cube, at the top of the image
    ys = np.nonzero(out.mask.any(axis=1))[0]
    assert _centroid(out.mask)[1] > ys.min()  # sanity: the object spans downwards from there


def test_polar_angle_shows_top_from_above(renderer, marked_box):
    above = _green(renderer.render(marked_box, Camera(30, 0))).sum()
    level = _green(renderer.render(marked_box, Camera(90, 0))).sum()
    below = _green(renderer.render(marked_box, Camera(150, 0))).sum()
    assert above > level > below
    assert below == 0  # hidden behind the cube


# --- outputs -------------------------------------------------------------------------------------------------


def test_depth_matches_coverage_and_geometry(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=4)
    cam = Camera(90, 0)
    out = renderer.render(sphere, cam)
    np.testing.assert_array_equal(out.depth > 0, out.alpha > 0)
    # The nearest point of the unit sphere is at distance - 1 along the view axis; the silhouette (tangent
    # points) at distance - 1/distance.
    assert out.depth[out.depth > 0].min() == pytest.approx(cam.distance - 1.0, abs=0.01)
    assert out.depth.max() == pytest.approx(cam.distance - 1.0 / cam.distance, abs=0.02)
    # Depth grows from the centre outwards.
    c = SIZE // 2
    assert out.depth[c, c] < out.depth[c, c + SIZE // 4] < out.depth[c, c + SIZE // 3]


@pytest.mark.parametrize("antialias", ["ssaa", "msaa"])
def test_alpha_is_antialiased(antialias):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    out = RasterRenderer(SIZE, samples=4, antialias=antialias).render(sphere, Camera(70, 20))
    edge = (out.alpha > 0) & (out.alpha < 1)
    assert edge.sum() > SIZE  # a ring of partial pixels around the silhouette
    np.testing.assert_array_equal(out.depth > 0, out.alpha > 0)
    hard = RasterRenderer(SIZE, samples=1).render(sphere, Camera(70, 20))
    assert set(np.unique(hard.alpha)) <= {0.0, 1.0}
    # The anti-aliased mask agrees with the aliased one except on a few edge pixels.
    assert (hard.mask != out.mask).mean() < 0.01


def test_unit_sphere_fits_the_image(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    for polar, azimuth in [(90, 0), (30, 45), (150, 300)]:
        out = renderer.render(sphere, Camera(polar, azimuth))
        border = np.concatenate([out.alpha[0], out.alpha[-1], out.alpha[:, 0], out.alpha[:, -1]])
        assert border.max() == 0.0
        rows = np.nonzero(out.mask.any(axis=1))[0]
        assert rows.max() - rows.min() > 0.8 * SIZE  # fills most of the frame


# --- determinism and lighting --------------------------------------------------------------------------------


def test_renders_are_deterministic(marked_box):
    a = RasterRenderer(SIZE).render(marked_box, Camera(70, 35), light_seed=5)
    b = RasterRenderer(SIZE).render(marked_box, Camera(70, 35), light_seed=5)
    for name in ("rgb", "alpha", "depth"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_light_seed_changes_shading_not_mask(renderer, marked_box):
    cam = Camera(70, 35)
    base = renderer.render(marked_box, cam)
    lit = [renderer.render(marked_box, cam, light_seed=s) for s in (1, 2)]
    for out in lit:
        np.testing.assert_array_equal(out.alpha, base.alpha)
        np.testing.assert_array_equal(out.depth, base.depth)
        assert np.abs(out.rgb.astype(int) - base.rgb).mean() > 1.0
    assert not np.array_equal(lit[0].rgb, lit[1].rgb)


def test_light_jitter_is_per_camera_and_reproducible(marked_box):
    r = RasterRenderer(SIZE, light_jitter=True)
    a1, a2 = r.render(marked_box, Camera(70, 35)), r.render(marked_box, Camera(70, 35))
    np.testing.assert_array_equal(a1.rgb, a2.rgb)
    plain = RasterRenderer(SIZE).render(marked_box, Camera(70, 35))
    assert not np.array_equal(a1.rgb, plain.rgb)


def test_shading_is_neither_black_nor_washed_out(renderer):
    out = renderer.render(trimesh.creation.icosphere(subdivisions=3), Camera(60, 30))
    lum = out.rgb[out.alpha == 1].astype(float).mean(axis=1)
    assert 60 < lum.mean() < 220
    assert lum.std() > 15  # visible shading across the sphere
    assert (lum > 250).mean() < 0.05 and (lum < 15).mean() < 0.05


# --- colours and textures ------------------------------------------------------------------------------------


def _quad(**visual_kw) -> trimesh.Trimesh:
    """A square in the z=0 plane facing +Z, x and y in [-0.7, 0.7]."""
    v = np.array([[-0.7, -0.7, 0], [0.7, -0.7, 0], [0.7, 0.7, 0], [-0.7, 0.7, 0]], float)
    return trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], process=False, **visual_kw)


def _halves(out: RenderOutput) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour of the fully covered pixels in the left and right halves."""
    full = out.alpha == 1
    left, right = full.copy(), full.copy()
    left[:, SIZE // 2 :] = False
    right[:, : SIZE // 2] = False
    return out.rgb[left].mean(axis=0), out.rgb[right].mean(axis=0)


def _red_blue_image() -> Image.Image:
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = (255, 0, 0)
    img[:, 4:] = (0, 0, 255)
    return Image.fromarray(img)


UV = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)


@pytest.mark.parametrize("material", ["simple", "pbr"])
def test_texture_appears(renderer, material):
    if material == "simple":
        mat = trimesh.visual.material.SimpleMaterial(image=_red_blue_image())
    else:
        mat = trimesh.visual.material.PBRMaterial(baseColorTexture=_red_blue_image())
    quad = _quad(visual=trimesh.visual.TextureVisuals(uv=UV, material=mat))
    left, right = _halves(renderer.render(quad, Camera(90, 0)))
    assert left[0] > 100 and left[2] < 40  # red on the left (u = 0 at x = -0.7)
    assert right[2] > 100 and right[0] < 40  # blue on the right


def test_texture_is_not_flipped_vertically(renderer):
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4] = (0, 255, 0)  # top of the picture green → v = 1 → the quad's top (+Y)
    img[4:] = (255, 0, 255)
    mat = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(img))
    out = renderer.render(_quad(visual=trimesh.visual.TextureVisuals(uv=UV, material=mat)), Camera(90, 0))
    top = out.rgb[SIZE // 4, SIZE // 2].astype(int)
    bottom = out.rgb[3 * SIZE // 4, SIZE // 2].astype(int)
    assert top[1] > 100 and top[0] < 40
    assert bottom[0] > 100 and bottom[1] < 40


def test_material_colour_without_image_or_uv(renderer):
    mat = trimesh.visual.material.PBRMaterial(baseColorFactor=[0, 0, 255, 255])
    quad = _quad(visual=trimesh.visual.TextureVisuals(uv=None, material=mat))
    left, right = _halves(renderer.render(quad, Camera(90, 0)))
    assert left[2] > 100 and left[0] < 40 and right[2] > 100


def test_vertex_colours_appear(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    colors = np.where(sphere.vertices[:, :1] < 0, [[255, 0, 0, 255]], [[0, 0, 255, 255]]).astype(np.uint8)
    sphere.visual.vertex_colors = colors
    left, right = _halves(renderer.render(sphere, Camera(90, 0)))
    assert left[0] > left[2] + 50
    assert right[2] > right[0] + 50


def test_face_colours_appear(renderer, marked_box):
    out = renderer.render(marked_box, Camera(60, 30))
    assert _red(out).sum() > 20 and _green(out).sum() > 20


def test_no_visual_is_light_grey(renderer):
    out = renderer.render(trimesh.creation.icosphere(subdivisions=3), Camera(90, 0))
    px = out.rgb[out.alpha == 1].astype(int)
    assert np.abs(px[:, 0] - px[:, 2]).mean() < 12  # neutral (the lights are only slightly tinted)
    assert px.mean() > 100


# --- CAD robustness and normals ------------------------------------------------------------------------------


def test_inconsistent_winding_is_lit_like_consistent(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    flipped = sphere.copy()
    faces = flipped.faces.copy()
    faces[::2] = faces[::2, ::-1]  # every other triangle wound the other way
    flipped = trimesh.Trimesh(flipped.vertices, faces, process=False)
    a = renderer.render(sphere, Camera(60, 30))
    b = renderer.render(flipped, Camera(60, 30))
    np.testing.assert_array_equal(a.mask, b.mask)
    assert np.abs(a.rgb.astype(int) - b.rgb).mean() < 2.0


def test_open_surface_visible_from_both_sides(renderer):
    quad = _quad()
    front = renderer.render(quad, Camera(90, 10))
    back = renderer.render(quad, Camera(90, 170))
    assert front.mask.mean() > 0.2 and back.mask.mean() > 0.2
    assert back.rgb[back.alpha == 1].mean() > 40  # lit, not black, from behind


def test_culling_closed_parts_does_not_change_the_image(marked_box):
    a = RasterRenderer(SIZE, cull=True).render(marked_box, Camera(50, 130))
    b = RasterRenderer(SIZE, cull=False).render(marked_box, Camera(50, 130))
    np.testing.assert_array_equal(a.alpha, b.alpha)
    assert np.abs(a.rgb.astype(int) - b.rgb).max() <= 2


def test_closed_faces():
    box = trimesh.creation.box()
    closed, inward = closed_faces(box.vertices, box.faces)
    assert closed.all() and not inward.any()
    closed, inward = closed_faces(box.vertices, box.faces[:, ::-1])
    assert closed.all() and inward.all()
    closed, _ = closed_faces(box.vertices, box.faces[1:])  # a hole
    assert not closed.any()
    # Duplicated (unwelded) vertices still count as closed; an open quad next to the box does not spoil it.
    split = trimesh.Trimesh(box.vertices[box.faces].reshape(-1, 3), np.arange(36).reshape(-1, 3), process=False)
    assert closed_faces(split.vertices, split.faces)[0].all()
    both = trimesh.util.concatenate([box, _quad()])
    closed, _ = closed_faces(both.vertices, both.faces)
    assert closed[:12].all() and not closed[12:].any()


def test_mesh_cache_notices_edits(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=2)
    a = renderer.render(sphere, Camera(90, 0))
    sphere.apply_translation([0.3, 0, 0])
    sphere.apply_scale(0.5)
    b = renderer.render(sphere, Camera(90, 0))
    assert b.mask.sum() < 0.5 * a.mask.sum()
    assert _centroid(b.mask)[0] > _centroid(a.mask)[0]


def test_coverage_renders_are_the_one_sample_alpha(marked_box):
    """The coverage path (positions only, no depth test, one 8-bit channel) draws exactly what the full renderer
    covers with one sample: closed parts (culled), inward-wound ones, open ones seen from behind, a mesh partly
    outside the view, a mesh edited after upload, and a keyed mesh."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    inward = trimesh.Trimesh(sphere.vertices * 0.4 + [0.5, 0.0, 0.0], sphere.faces[:, ::-1], process=False)
    scene = trimesh.util.concatenate([marked_box.copy(), inward, _quad()])
    large = trimesh.creation.box(extents=(3.0, 0.3, 0.3))  # beyond the unit ball: clipped at the image border
    full = RasterRenderer(SIZE, samples=1)
    cover = CoverageRenderer(SIZE)
    try:
        for mesh in (marked_box, scene, large, _quad()):
            for polar, azimuth in ((90, 10), (90, 170), (90, 90), (50, 130), (5, 300), (160, 45)):
                camera = Camera(polar, azimuth)
                got = cover.render(mesh, camera)
                assert got.dtype == np.float32 and got.shape == (SIZE, SIZE)
                np.testing.assert_array_equal(got, full.render(mesh, camera).alpha)
        edited = sphere.copy()
        before = cover.render(edited, Camera(90, 0))
        edited.apply_scale(0.5)
        np.testing.assert_array_equal(cover.render(edited, Camera(90, 0)), full.render(edited, Camera(90, 0)).alpha)
        assert cover.render(edited, Camera(90, 0)).sum() < 0.5 * before.sum()
        keyed = cover.render(scene, Camera(70, 20), key="scene")
        np.testing.assert_array_equal(keyed, full.render(scene, Camera(70, 20)).alpha)
        empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), int))
        assert cover.render(empty, Camera(90, 0)).max() == 0
        with pytest.raises(TypeError):
            cover.render(trimesh.Scene(), Camera(90, 0))
    finally:
        full.close()
        cover.close()
    with pytest.raises(RuntimeError):
        cover.render(sphere, Camera(90, 0))


def test_empty_and_bad_input(renderer):
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), int))
    out = renderer.render(empty, Camera(90, 0))
    assert out.alpha.max() == 0 and out.depth.max() == 0
    with pytest.raises(TypeError):
        renderer.render(trimesh.Scene(), Camera(90, 0))
    with pytest.raises(ValueError):
        RasterRenderer(SIZE, samples=3)  # ssaa needs a square number


def test_context_failure_is_a_one_line_error(monkeypatch):
    release_renderers()
    monkeypatch.setenv(raster.GL_BACKEND_ENV, "no-such-backend")
    try:
        with pytest.raises(CadsearchError) as info:
            gl_context()
        assert "\n" not in str(info.value) and "OpenGL" in str(info.value)
    finally:
        monkeypatch.delenv(raster.GL_BACKEND_ENV)
        release_renderers()
    gl_context()  # back to normal


def test_any_thread_can_render_a_new_mesh():
    """A context belongs to the thread that made it (another cannot make buffers on it): a web request thread that
    registers a model never uploaded before must still render it, exactly as the main thread does."""
    renderer = RasterRenderer(SIZE)
    renderer.render(trimesh.creation.box(), Camera(90, 0))  # the context exists, made for the main thread's call
    sphere = trimesh.creation.icosphere(subdivisions=2)
    answers: list = []

    def render_in_thread() -> None:
        try:
            answers.append(renderer.render(sphere, Camera(60, 30)))
        except Exception as exc:  # noqa: BLE001 - the failure is the answer
            answers.append(exc)

    worker = threading.Thread(target=render_in_thread)
    worker.start()
    worker.join()
    assert isinstance(answers[0], RenderOutput), answers[0]
    again = RasterRenderer(SIZE).render(sphere, Camera(60, 30))
    assert answers[0].alpha.max() > 0 and np.array_equal(answers[0].rgb, again.rgb)


def _render_in_child(queue) -> None:
    try:
        out = RasterRenderer(32).render(trimesh.creation.icosphere(subdivisions=2), Camera(90, 0))
        queue.put(float(out.alpha.mean()))
    except CadsearchError as exc:
        queue.put(str(exc))


@pytest.mark.skipif(os.name != "posix", reason="fork start method")
def test_forked_child_fails_fast_instead_of_hanging():
    """Mesa hangs on the first draw in a child forked after GL was initialised: we raise instead."""
    gl_context()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_render_in_child, args=(queue,))
    proc.start()
    try:
        message = queue.get(timeout=30)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    assert isinstance(message, str) and "spawn" in message


def test_renders_in_spawned_worker():
    parent = RasterRenderer(32).render(trimesh.creation.icosphere(subdivisions=2), Camera(90, 0))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_render_in_child, args=(queue,))
    proc.start()
    try:
        child_alpha = queue.get(timeout=60)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    assert child_alpha == pytest.approx(float(parent.alpha.mean()))


def test_texture_without_uv_uses_its_mean_colour(renderer):
    mat = trimesh.visual.material.SimpleMaterial(image=_red_blue_image())
    quad = _quad(visual=trimesh.visual.TextureVisuals(uv=None, material=mat))
    left, right = _halves(renderer.render(quad, Camera(90, 0)))
    for half in (left, right):  # purple: half red, half blue
        assert half[0] > 40 and half[2] > 40 and half[1] < 20


def test_software_gl_renders_without_anisotropic_filtering():
    assert raster.texture_anisotropy("llvmpipe (LLVM 15.0.6, 256 bits)") == 1.0
    assert raster.texture_anisotropy("softpipe") == 1.0
    assert raster.texture_anisotropy("NVIDIA GeForce RTX 4090/PCIe/SSE2") == raster.ANISOTROPY > 1.0


# A ShapeNet vase and a pose at which llvmpipe's anisotropic texture sampling (Mesa 22.3.6) never returned.
_HANG_MODEL = "shapenet-31b0a01063a976104725f67267e31c89"
_HANG_SCRIPT = """
import sys
from cadsearch.library import load_mesh
from cadsearch.render.cameras import Camera
from cadsearch.render.raster import RasterRenderer
mesh = load_mesh(sys.argv[1], up=sys.argv[2], front=sys.argv[3]).mesh
alpha = RasterRenderer(size=96, samples=1).render(mesh, Camera(69.6760356984623, 352.2446295861282)).alpha
print(float(alpha.sum()))
"""


def test_textured_vase_at_the_llvmpipe_hang_pose_renders(shared_data):
    import csv
    import subprocess
    import sys

    rows = [r for r in csv.DictReader((shared_data / "meshes" / "manifest.csv").open()) if r["model_id"] == _HANG_MODEL]
    if not rows:
        pytest.skip(f"{_HANG_MODEL} is not in the shared manifest")
    row = rows[0]
    # A child process, because a GL call that never returns cannot be interrupted from Python.
    try:
        done = subprocess.run(
            [sys.executable, "-c", _HANG_SCRIPT, str(shared_data / row["path"]), row["up_axis"], row["front_axis"]],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the render did not return within 120 s (llvmpipe's anisotropic sampling loop?)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) > 500  # the vase covers part of the 96 × 96 square
