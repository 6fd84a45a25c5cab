"""The Mitsuba ray tracer (quality ``high``) and its environment maps.

Small images (48–64 px) and few samples keep the file well under a minute. Most tests force the
``scalar_rgb`` variant (no JIT compile, same images on every machine); the silhouette test against the
rasteriser uses the variant picked automatically, so the one a user gets is checked too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

pytest.importorskip("mitsuba", reason="the ray tracer needs Mitsuba 3 (pip install cadsearch[raytrace])")

from cadsearch.render.cameras import Camera  # noqa: E402
from cadsearch.render.environments import (  # noqa: E402
    BUILTIN_SKIES,
    builtin_sky,
    equirect_directions,
    list_environments,
    load_environment,
    resolve_environments,
)
from cadsearch.render.raytrace import (  # noqa: E402
    VARIANT_ENV,
    RayTracer,
    available_variant,
    find_libllvm,
)
from cadsearch.render.types import Renderer, RenderOutput  # noqa: E402

SCALAR = "scalar_rgb"


def canonical(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre at the bounding-box centre and scale the farthest vertex to distance 1 (DESIGN.md)."""
    mesh = mesh.copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(1.0 / np.linalg.norm(mesh.vertices, axis=1).max())
    return mesh


def asymmetric() -> trimesh.Trimesh:
    """A box with a nose along +Z (its front), a fin on top (+Y) at the back and a stub to the +X side.

    The bulk (box) sits at the back, so in a side view most of the mask is on the back's side of the image.
    """
    body = trimesh.creation.box(extents=[0.6, 0.6, 0.9])
    nose = trimesh.creation.box(extents=[0.25, 0.25, 0.7])
    nose.apply_translation([0.0, 0.0, 0.75])
    fin = trimesh.creation.box(extents=[0.1, 0.45, 0.3])
    fin.apply_translation([0.0, 0.5, -0.25])
    stub = trimesh.creation.box(extents=[0.4, 0.15, 0.15])
    stub.apply_translation([0.45, -0.15, 0.0])
    return canonical(trimesh.util.concatenate([body, nose, fin, stub]))


@pytest.fixture(scope="module")
def shape() -> trimesh.Trimesh:
    return asymmetric()


@pytest.fixture(scope="module")
def tracer() -> RayTracer:
    """Scalar variant, object over black (no plane, no sky)."""
    return RayTracer(48, 4, variant=SCALAR)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ---------------------------------------------------------------------------------------------- outputs


def test_output_types_and_protocol(tracer: RayTracer, shape: trimesh.Trimesh) -> None:
    assert isinstance(tracer, Renderer)
    assert tracer.quality == "high" and tracer.size == 48 and tracer.variant == SCALAR
    out = tracer.render(shape, Camera(70, 30))
    assert isinstance(out, RenderOutput)
    assert out.rgb.shape == (48, 48, 3) and out.rgb.dtype == np.uint8
    assert out.alpha.shape == (48, 48) and out.alpha.dtype == np.float32
    assert out.depth.shape == (48, 48) and out.depth.dtype == np.float32
    assert out.alpha.min() >= 0.0 and out.alpha.max() <= 1.0
    assert out.mask.any() and not out.mask.all()
    # Object over black, premultiplied: no colour where there is no object.
    assert (out.rgb[out.alpha == 0] == 0).all()
    # Depth: 0 off the object, within the unit ball's depth range on it.
    cam = Camera(70, 30)
    assert (out.depth[out.alpha == 0] == 0).all()
    covered = out.depth[out.alpha > 0]
    assert covered.min() > cam.distance - 1.0 - 1e-3 and covered.max() < cam.distance + 1.0 + 1e-3
    assert not tracer.composites_background


def test_rejects_bad_arguments(shape: trimesh.Trimesh) -> None:
    with pytest.raises(ValueError):
        RayTracer(0, variant=SCALAR)
    with pytest.raises(ValueError, match="not available"):
        RayTracer(32, variant="no_such_variant")
    with pytest.raises(TypeError):
        RayTracer(32, 1, variant=SCALAR).render("not a mesh", Camera(60, 0))  # type: ignore[arg-type]


def test_deterministic_for_a_seed(shape: trimesh.Trimesh) -> None:
    cam = Camera(65, 140)
    a = RayTracer(40, 4, variant=SCALAR, seed=3, ground_plane=True).render(shape, cam, light_seed=7)
    b = RayTracer(40, 4, variant=SCALAR, seed=3, ground_plane=True).render(shape, cam, light_seed=7)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    np.testing.assert_array_equal(a.depth, b.depth)
    # Another base seed only changes the noise; another light seed changes the lighting, not the object.
    c = RayTracer(40, 4, variant=SCALAR, seed=4, ground_plane=True).render(shape, cam, light_seed=7)
    assert not np.array_equal(a.rgb, c.rgb)
    assert iou(a.mask, c.mask) > 0.95
    d = RayTracer(40, 4, variant=SCALAR, seed=3, ground_plane=True).render(shape, cam, light_seed=8)
    assert np.abs(a.rgb.astype(int) - d.rgb.astype(int)).mean() > 2.0
    np.testing.assert_array_equal(a.alpha, d.alpha)


# ---------------------------------------------------------------------------------------------- geometry


def test_azimuth_90_puts_the_front_on_the_left(tracer: RayTracer, shape: trimesh.Trimesh) -> None:
    """DESIGN.md: φ = 90° sees the object's left side, its front (+Z, the thin nose) points to the image's left.

    So the bulky back of the object fills the right half more than the thin nose fills the left half; at
    φ = 270° the other way round.
    """
    half = tracer.size // 2
    for azimuth, front_on_left in ((90.0, True), (270.0, False)):
        mask = tracer.render(shape, Camera(90, azimuth)).mask
        left, right = mask[:, :half].sum(), mask[:, half:].sum()
        assert (right > 1.3 * left) == front_on_left, (azimuth, left, right)
        assert (left > 1.3 * right) == (not front_on_left), (azimuth, left, right)
        # Roll 0, +Y up: the thin fin is on top, so the upper half holds fewer object pixels than the lower.
        assert mask[:half].sum() < 0.8 * mask[half:].sum()
    # φ = 0 looks at the front: +X (the thin stub) is on the image's right, the bulk of the box on the left.
    mask = tracer.render(shape, Camera(90, 0)).mask
    assert mask[:, half:].sum() < 0.8 * mask[:, :half].sum()


def test_silhouette_matches_rasteriser(shape: trimesh.Trimesh) -> None:
    """Same mesh, same camera: the masks of ``low`` and ``high`` agree (IoU ≥ 0.97), and so do depths."""
    try:
        from cadsearch.render.raster import RasterRenderer

        raster = RasterRenderer(128)
        raster.render(shape, Camera(60, 0))
    except Exception as exc:  # noqa: BLE001 - any GL/import failure means "no rasteriser here"
        pytest.skip(f"rasteriser unavailable: {exc}")
    tracer = RayTracer(128, 16)  # automatic variant: the one users get
    # Generic angles: at exactly 90°/90° box faces are edge-on and whole rows of edge pixels have a coverage
    # of exactly 1/2, where the 0.5 threshold of a 4-sample and a 16-sample estimate tie-break differently.
    cameras = [Camera(62, 33), Camera(88, 93), Camera(47, 200), Camera(118, 301), Camera(30, 137, fov_deg=50)]
    for cam in cameras:
        low, high = raster.render(shape, cam), tracer.render(shape, cam)
        assert iou(low.mask, high.mask) >= 0.97, (cam, iou(low.mask, high.mask))
        both = low.mask & high.mask & (low.alpha == 1) & (high.alpha == 1)
        # The rasteriser keeps the nearest of its 4 samples, we the mean: ~half a pixel of slope apart.
        assert np.abs(low.depth[both] - high.depth[both]).mean() < 0.02
    raster.close()


def test_depth_ignores_face_winding(tracer: RayTracer, shape: trimesh.Trimesh) -> None:
    """ShapeNet-style meshes have faces wound either way; depth (and alpha) must not care."""
    flipped = shape.copy()
    faces = flipped.faces.copy()
    faces[::2] = faces[::2, ::-1]  # every other face turned inside out
    flipped = trimesh.Trimesh(flipped.vertices, faces, process=False)
    for cam in (Camera(55, 120), Camera(125, 300)):
        a, b = tracer.render(shape, cam), tracer.render(flipped, cam)
        # (Scalar variant: the samples' positions follow the random numbers shading used before them, so a
        # few edge pixels may differ when shading does.)
        assert iou(a.mask, b.mask) > 0.98
        full = (a.alpha == 1) & (b.alpha == 1)
        np.testing.assert_allclose(a.depth[full], b.depth[full], atol=1e-3)
        assert b.depth[full].min() > cam.distance - 1.0 and b.depth[full].max() < cam.distance + 1.0


# ---------------------------------------------------------------------------------------------- lighting


def test_ground_plane_catches_a_shadow() -> None:
    """A slab over a foot casts a shadow on the plane: darker than with the foot alone, far pixels unchanged."""
    foot = trimesh.creation.box(extents=[0.1, 0.1, 0.1])
    foot.apply_translation([0.6, -0.55, 0.6])
    slab = trimesh.creation.box(extents=[1.0, 0.08, 1.0])
    slab.apply_translation([0.0, 0.2, 0.0])
    with_slab = trimesh.util.concatenate([foot, slab])
    # Same plane height (the foot's bottom) and scale in both scenes: no re-centring.
    tracer = RayTracer(64, 16, variant=SCALAR, ground_plane=True, light_elevation_deg=80.0)
    assert tracer.composites_background
    cam = Camera(75, 0, distance=4.5)
    shadowed = tracer.render(with_slab, cam)
    plain = tracer.render(foot, cam)
    free = (shadowed.alpha == 0) & (plain.alpha == 0)
    lum_s = shadowed.rgb.astype(float).mean(axis=2)
    lum_p = plain.rgb.astype(float).mean(axis=2)
    under = np.zeros_like(free)
    under[36:44, 22:42] = True  # the plane just below the slab, between it and the camera
    under &= free
    far = np.zeros_like(free)
    far[56:, :6] = True  # near bottom-left corner, outside the shadow
    far &= free
    assert under.sum() > 20 and far.sum() > 20
    assert lum_s[under].mean() < 0.8 * lum_p[under].mean(), (lum_s[under].mean(), lum_p[under].mean())
    assert abs(lum_s[far].mean() - lum_p[far].mean()) < 0.08 * lum_p[far].mean()
    # The plane is in the picture but not in the mask.
    assert (lum_s[free] > 20).mean() > 0.5
    assert shadowed.alpha[60:, :].max() == 0.0


def test_view_from_below_the_plane_drops_it(shape: trimesh.Trimesh) -> None:
    out = RayTracer(40, 4, variant=SCALAR, ground_plane=True).render(shape, Camera(150, 20))
    assert out.mask.any()
    assert (out.rgb[out.alpha == 0] == 0).all()  # no plane hiding the object, black around it


def test_skybox_shows_the_environment_behind_the_object(shape: trimesh.Trimesh) -> None:
    cam = Camera(80, 45)
    sky = RayTracer(48, 4, variant=SCALAR, environment="daylight").render(shape, cam)
    black = RayTracer(48, 4, variant=SCALAR).render(shape, cam)
    background = sky.alpha == 0
    assert background.sum() > 100
    assert sky.rgb[background].mean() > 60  # the sky, not black
    assert (black.rgb[black.alpha == 0] == 0).all()
    top = sky.rgb[:4].reshape(-1, 3).astype(float).mean(axis=0)
    assert top[2] > top[0]  # blue sky above the horizon
    assert iou(sky.mask, black.mask) > 0.95  # alpha is still the object alone


def test_environment_folder_and_light_seed_pick_environments(tmp_path: Path, shape: trimesh.Trimesh) -> None:
    folder = tmp_path / "envs"
    folder.mkdir()
    Image.new("RGB", (32, 16), (250, 40, 40)).save(folder / "red.png")
    Image.new("RGB", (32, 16), (40, 40, 250)).save(folder / "blue.jpg")
    tracer = RayTracer(32, 1, variant=SCALAR, environment=folder)
    assert [name for name, _ in tracer.environments] == ["blue.jpg", "red.png"]
    seen = set()
    for seed in range(8):
        out = tracer.render(shape, Camera(80, 10), light_seed=seed)
        r, _, b = out.rgb[out.alpha == 0].reshape(-1, 3).astype(float).mean(axis=0)
        seen.add("red" if r > b else "blue")
    assert seen == {"red", "blue"}


# ---------------------------------------------------------------------------------------------- colours


def test_vertex_and_face_colours_show() -> None:
    mesh = canonical(trimesh.creation.icosphere(subdivisions=2))
    mesh.visual.face_colors = np.where(
        (mesh.triangles_center[:, 0] > 0)[:, None], [230, 30, 30, 255], [30, 30, 230, 255]
    ).astype(np.uint8)
    out = RayTracer(48, 4, variant=SCALAR).render(mesh, Camera(90, 0))
    left, right = out.rgb[20:28, 8:16].reshape(-1, 3).mean(0), out.rgb[20:28, 32:40].reshape(-1, 3).mean(0)
    assert left[2] > left[0] + 40 and right[0] > right[2] + 40  # +X (red) is on the right at φ = 0
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.tile([20, 200, 20, 255], (len(mesh.vertices), 1)))
    out = RayTracer(48, 4, variant=SCALAR).render(mesh, Camera(90, 0))
    centre = out.rgb[20:28, 20:28].reshape(-1, 3).mean(0)
    assert centre[1] > centre[0] + 40 and centre[1] > centre[2] + 40


def _textured_chair(shared_data: Path) -> trimesh.Trimesh:
    """The first ShapeNet chair of the manifest that carries a real UV texture, canonical frame."""
    rows = list(csv.DictReader((shared_data / "meshes" / "manifest.csv").open()))
    chairs = [r for r in rows if r["category"] == "chair" and r["source"].startswith("shapenet")]
    for row in chairs:
        path = shared_data / row["path"]
        try:
            from cadsearch.library import load_mesh

            mesh = load_mesh(path, up=row["up_axis"], front=row["front_axis"]).mesh
        except ImportError:  # the library loader is optional for this test
            mesh = canonical(trimesh.load(path, force="mesh"))
        material = getattr(mesh.visual, "material", None)
        image = getattr(material, "image", None) if material is not None else None
        if image is not None and min(image.size) >= 64:
            return mesh
    pytest.skip("no ShapeNet chair with a texture image in the manifest")


def test_textured_chair_shows_its_texture(shared_data: Path) -> None:
    chair = _textured_chair(shared_data)
    tracer = RayTracer(64, 4, variant=SCALAR)
    textured = tracer.render(chair, Camera(70, 30))
    plain_mesh = chair.copy()
    plain_mesh.visual = trimesh.visual.ColorVisuals(plain_mesh)
    plain = tracer.render(plain_mesh, Camera(70, 30))

    def colours(out: RenderOutput, min_chroma: int = 0) -> int:
        """Distinct colours (4 bits a channel) of fully covered pixels at least ``min_chroma`` from grey."""
        px = out.rgb[out.alpha == 1].astype(int)
        px = px[px.max(axis=1) - px.min(axis=1) >= min_chroma]
        return len(np.unique(px // 16, axis=0))

    def saturation(out: RenderOutput) -> float:
        px = out.rgb[out.alpha == 1].astype(float)
        return float((px.max(axis=1) - px.min(axis=1)).mean())

    assert colours(textured) > 12
    # Shading alone gives greys; the texture gives many distinct colours away from grey.
    assert colours(textured, min_chroma=24) > 8 >= colours(plain, min_chroma=24)
    assert saturation(textured) > saturation(plain) + 5


# ---------------------------------------------------------------------------------------------- variants


def test_variant_override_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIANT_ENV, SCALAR)
    assert available_variant() == SCALAR
    assert RayTracer(16, 1).variant == SCALAR
    assert available_variant("scalar_rgb") == SCALAR
    monkeypatch.setenv(VARIANT_ENV, "bogus_rgb")
    with pytest.raises(ValueError):
        available_variant()


def test_find_libllvm_returns_a_recent_library_or_none() -> None:
    path = find_libllvm()
    assert path is None or (Path(path).exists() and "LLVM" in Path(path).name)


# ---------------------------------------------------------------------------------------------- environments


def test_builtin_skies_are_equirectangular_linear_images() -> None:
    for name in BUILTIN_SKIES:
        img = builtin_sky(name, 64)
        assert img.shape == (32, 64, 3) and img.dtype == np.float32
        assert np.isfinite(img).all() and img.min() >= 0.0
        assert img[:8].mean() > img[-8:].mean()  # brighter sky above than ground below
    lit, unlit = builtin_sky("daylight", 128), builtin_sky("daylight", 128, lights=False)
    assert lit.max() > 50 and unlit.max() < 5  # the sun disc is what ``lights`` removes
    with pytest.raises(ValueError):
        builtin_sky("moon")


def test_equirect_directions_follow_mitsuba_layout() -> None:
    d = equirect_directions(8, 16)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0)
    assert d[0, :, 1].min() > 0.9 and d[-1, :, 1].max() < -0.9  # first row zenith, last nadir
    centre = d[4, 8]  # centre column just below the horizon looks along +Z
    assert centre[2] > 0.9


def test_load_environment_files_and_folders(tmp_path: Path) -> None:
    Image.new("RGB", (40, 20), (255, 128, 0)).save(tmp_path / "b.png")
    Image.new("RGB", (40, 20), (0, 0, 0)).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    img = load_environment(tmp_path / "b.png")
    assert img.shape == (20, 40, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[0, 0], [1.0, 0.2158605, 0.0], atol=1e-3)  # sRGB decoded to linear
    assert load_environment(tmp_path / "b.png", width=16).shape == (8, 16, 3)
    assert [p.name for p in list_environments(tmp_path)] == ["a.jpg", "b.png"]
    envs = resolve_environments([tmp_path, "studio"], width=32)
    assert [n for n, _ in envs] == ["a.jpg", "b.png", "studio"]
    assert all(e.shape == (16, 32, 3) for _, e in envs)
    import mitsuba as mi

    hdr = np.full((8, 16, 3), 7.5, np.float32)  # beyond 1: must survive as linear radiance
    mi.Bitmap(hdr).write(str(tmp_path / "bright.exr"))
    np.testing.assert_allclose(load_environment(tmp_path / "bright.exr"), hdr, rtol=1e-3)
    with pytest.raises(FileNotFoundError):
        load_environment(tmp_path / "missing.hdr")
    with pytest.raises(ValueError):
        load_environment(tmp_path / "notes.txt")
