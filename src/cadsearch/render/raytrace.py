"""The *high* quality renderer: a physically based path tracer on Mitsuba 3.

A view: the canonical mesh with its colours (per-vertex, per-face or a UV texture; light grey when it has
none) as a slightly glossy plastic (``principled`` BSDF, two-sided because CAD and ShapeNet meshes have
inconsistent winding), lit by a smooth environment map (ambient light) and a square area light (the key: soft,
directional, casts the shadows). The key stays at a fixed angle to the camera (upper left, like the
rasteriser's key light; ``light_seed`` varies it), so every view is lit from the front-side. Optional: a
ground plane at the object's lowest point that receives a soft shadow, and a skybox (the environment seen
behind the object).

Camera model: exactly :class:`~cadsearch.render.cameras.Camera` (vertical field of view, square image, roll
0). Mitsuba's camera looks down its local +Z with +X to the image's *left*; its ``to_world`` is built from the
OpenGL view matrix, so both renderers see the same image (tested: the silhouettes of ``low`` and ``high``
agree, and at φ = 90° the object's front points to the image's left).

Outputs (:class:`~cadsearch.render.types.RenderOutput`):

- ``rgb``: sRGB uint8. Without ground plane and skybox (the defaults): the object over black, premultiplied
  by coverage at its edges, as the rasteriser's, ready for ``backgrounds.composite``. With a ground plane or
  a skybox it is a finished picture (plane, shadow, sky) and must not be composited again; see
  :attr:`RayTracer.composites_background`.
- ``alpha``: the object's coverage only, never the plane or the sky (a second, cheap pass; see below).
- ``depth``: distance along the camera's viewing axis in canonical units, 0 where no object. At anti-aliased
  edges it is the mean depth of the samples that hit the object (never blended with the background; the
  rasteriser keeps the nearest one instead, a sub-pixel difference).

Why a second pass for coverage and depth: the film's alpha counts every surface hit, ground plane included,
and Mitsuba's ``aov`` integrator is slow in the scalar variant (~8× a primary-ray pass here). Instead a
second scene holds only the object, as an area emitter whose radiance is a per-vertex attribute equal to the
vertex position (offset to stay positive). A one-bounce path tracer then gives per pixel the fraction of
samples that hit the object (alpha channel) and the coverage-weighted mean hit position (RGB), exactly,
because barycentric interpolation of vertex positions is the hit point itself; depth is that mean position
projected on the viewing axis. The pass uses the beauty pass's sampler, seed and sample count, so its
samples fall on the same image positions and its alpha edges line up with the RGB edges.

Variants: ``cuda_ad_rgb`` (NVIDIA GPU), ``llvm_ad_rgb`` (vectorised CPU JIT; needs libLLVM ≥ 17, e.g.
Debian's ``libllvm19``) or ``scalar_rgb`` (always works), picked automatically in that order, or forced with
the ``variant`` argument or the environment variable ``CADSEARCH_MITSUBA_VARIANT``. Probing runs in a
subprocess (a mismatched libLLVM can crash the process that loads it); its answer is passed to child
processes through the environment, so worker processes do not probe again. ``DRJIT_LIBLLVM_PATH`` is set
to the newest libLLVM ≥ 17 found when the user has not set it. The JIT variants compile their kernels once
per mesh (~1 s on a CPU); per-view changes (camera, lights) are written so that they never recompile.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import subprocess
import sys
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from .cameras import Camera, camera_seed, direction_from_elevation
from .environments import (
    BUILTIN_SKIES,
    SKY_KEY_LIGHTS,
    KeyLight,
    builtin_sky,
    linear_to_srgb,
    resolve_environments,
    srgb_to_linear,
)
from .normals import DEFAULT_CREASE_DEG, corner_normals
from .types import RenderOutput

__all__ = [
    "RayTracer",
    "VARIANT_ENV",
    "VARIANT_PREFERENCE",
    "available_variant",
    "find_libllvm",
    "variant_works",
]

log = logging.getLogger(__name__)

#: Environment variable that forces a Mitsuba variant (e.g. ``scalar_rgb``), skipping the probe.
VARIANT_ENV = "CADSEARCH_MITSUBA_VARIANT"
#: Automatic choice, best first.
VARIANT_PREFERENCE: tuple[str, ...] = ("cuda_ad_rgb", "llvm_ad_rgb", "scalar_rgb")
# Result of this process's (or a parent's) probe, so that forked/spawned workers need not probe again.
_PROBED_ENV = "_CADSEARCH_MITSUBA_PROBED"
# Dr.Jit's JIT needs LLVM ≥ 17 in practice: Debian's 14–16 crash it.
_MIN_LLVM = 17
_DEFAULT_COLOR_SRGB = (0.78, 0.78, 0.78)  # light grey for meshes without any visual
_PLANE_COLOR_SRGB = (0.72, 0.72, 0.72)


# --- variant selection ------------------------------------------------------------------------------------


def find_libllvm() -> str | None:
    """Path of the newest libLLVM shared library (version ≥ 17) on this system, or ``None``.

    Looks in the usual Debian/Ubuntu/Fedora places (``/usr/lib/*/libLLVM*.so*``, ``/usr/lib/llvm-*/lib``,
    ``/usr/lib64``, ``/usr/local/lib``). Older versions are skipped on purpose: Dr.Jit crashes with them.
    """
    patterns = [
        "/usr/lib/*/libLLVM*.so*",
        "/usr/lib/libLLVM*.so*",
        "/usr/lib64/libLLVM*.so*",
        "/usr/lib/llvm-*/lib/libLLVM*.so*",
        "/usr/local/lib/libLLVM*.so*",
        "/opt/homebrew/opt/llvm/lib/libLLVM*.dylib",
        "/usr/local/opt/llvm/lib/libLLVM*.dylib",
    ]
    best: tuple[int, str] | None = None
    for pattern in patterns:
        for path in glob.glob(pattern):
            match = re.search(r"libLLVM[-.]?(?:so\.)?(\d+)", os.path.basename(path))
            if not match:
                continue
            version = int(match.group(1))
            if version >= _MIN_LLVM and (best is None or version > best[0]):
                best = (version, path)
    return best[1] if best else None


def _ensure_libllvm_env() -> None:
    """Point Dr.Jit at a suitable libLLVM unless the user already did (it may otherwise pick an old one)."""
    if not os.environ.get("DRJIT_LIBLLVM_PATH"):
        path = find_libllvm()
        if path:
            os.environ["DRJIT_LIBLLVM_PATH"] = path


_PROBE_CODE = """
import sys
import mitsuba as mi
mi.set_variant(sys.argv[1])
scene = mi.load_dict({"type": "scene", "s": {"type": "sphere"}, "e": {"type": "constant"},
                      "integrator": {"type": "path", "max_depth": 2}})
sensor = mi.load_dict({"type": "perspective", "film": {"type": "hdrfilm", "width": 4, "height": 4},
                       "to_world": mi.ScalarTransform4f().look_at(origin=[0, 0, 4], target=[0, 0, 0],
                                                                  up=[0, 1, 0])})
img = mi.render(scene, sensor=sensor, spp=1)
assert float(mi.TensorXf(img).numpy().mean()) > 0
print("ok")
"""


def variant_works(variant: str, timeout_s: float = 180.0) -> bool:
    """Whether Mitsuba's ``variant`` can render here, tried in a subprocess (a crash there cannot hurt us)."""
    if variant.startswith("cuda") and not _cuda_present():
        return False
    env = dict(os.environ)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE, variant],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        log.debug("Mitsuba variant %s probe failed: %s", variant, exc)
        return False
    ok = proc.returncode == 0 and "ok" in proc.stdout
    if not ok:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        log.debug("Mitsuba variant %s does not work here: %s", variant, tail[0])
    return ok


def _key_corners(position: np.ndarray, size: float) -> np.ndarray:
    """Corners (4, 3) float32 of a ``size`` × ``size`` square centred at ``position``, facing the origin.

    Wound counter-clockwise seen from the origin, so the mesh's normal (and a one-sided emitter's light)
    points at the object. Its edges are horizontal and "up" in the plane of +Y, like a softbox on a stand.
    """
    forward = -position / np.linalg.norm(position)  # towards the origin
    right = np.cross(forward, [0.0, 1.0, 0.0])
    if np.linalg.norm(right) < 1e-9:  # straight overhead
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    h = size / 2.0
    c = np.array([position + h * (sx * right + sy * up) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    # Mitsuba's face normal is (c1 - c0) × (c2 - c0); it must point towards the origin.
    if np.dot(np.cross(c[1] - c[0], c[2] - c[0]), forward) < 0:
        c = c[::-1]
    return c.astype(np.float32)


def _set_param(params: Any, key: str, value: Any) -> None:
    """Write a scene parameter as an opaque JIT value (no-op distinction in the scalar variant)."""
    import drjit as dr

    if dr.is_jit_v(value):
        dr.make_opaque(value)
    params[key] = value


def _cuda_present() -> bool:
    """Cheap check for an NVIDIA driver before paying for a subprocess probe."""
    import ctypes.util

    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0") or bool(ctypes.util.find_library("cuda"))


def available_variant(requested: str | None = None) -> str:
    """The Mitsuba variant to use: ``requested``, else ``$CADSEARCH_MITSUBA_VARIANT``, else the best working.

    Raises ``ValueError`` when a requested variant is not one this Mitsuba build has.
    """
    import mitsuba as mi

    _ensure_libllvm_env()
    chosen = requested or os.environ.get(VARIANT_ENV) or None
    if chosen:
        if chosen not in mi.variants():
            raise ValueError(f"Mitsuba variant {chosen!r} is not available; this build has {mi.variants()}")
        return chosen
    probed = os.environ.get(_PROBED_ENV)
    if probed and probed in mi.variants():
        return probed
    for variant in VARIANT_PREFERENCE:
        if variant in mi.variants() and (variant == "scalar_rgb" or variant_works(variant)):
            os.environ[_PROBED_ENV] = variant  # children inherit it and skip the probe
            return variant
    raise RuntimeError(f"none of the Mitsuba variants {VARIANT_PREFERENCE} is available")


# --- mesh conversion --------------------------------------------------------------------------------------


@dataclass
class _MeshData:
    """A trimesh converted for Mitsuba: unindexed (three vertices per face), float32 arrays.

    Unindexed so that per-corner normals (creases kept sharp), per-face colours and UV seams need no special
    cases. ``colors`` are linear RGB per corner, or ``None`` when ``color`` (uniform, linear) or ``texture``
    (sRGB uint8 image + ``uvs``) is used instead.
    """

    positions: np.ndarray  # (3F, 3)
    normals: np.ndarray  # (3F, 3)
    uvs: np.ndarray | None = None  # (3F, 2), Mitsuba convention: v = 0 at the top of the image
    colors: np.ndarray | None = None  # (3F, 3) linear
    color: tuple[float, float, float] = (0.6, 0.6, 0.6)  # linear
    texture: np.ndarray | None = None  # (h, w, 3) uint8 sRGB
    texture_factor: tuple[float, float, float] = (1.0, 1.0, 1.0)  # linear multiplier of the texture
    vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (V, 3) indexed
    faces: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint32))  # (F, 3) indexed


def _as_rgb_uint8(image: Any) -> np.ndarray | None:
    """A PIL image (or array) as (h, w, 3) uint8 RGB, or ``None``."""
    if image is None:
        return None
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3])


def _color_to_linear(rgba: Any) -> np.ndarray:
    """uint8 (or 0–1 float) sRGB colours (..., 3|4) → linear float32 (..., 3)."""
    arr = np.asarray(rgba)
    arr = arr[..., :3].astype(np.float32) / (255.0 if arr.dtype.kind in "ui" or arr.max() > 1.0 else 1.0)
    return srgb_to_linear(arr)


def prepare_mesh(mesh: trimesh.Trimesh, crease_deg: float = DEFAULT_CREASE_DEG) -> _MeshData:
    """Convert a canonical trimesh (with any visual) into :class:`_MeshData`.

    Normals are :func:`~cadsearch.render.normals.corner_normals`, the rasteriser's, so that the low and high
    views of one camera shade alike.
    """
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    data = _MeshData(
        positions=vertices[faces].reshape(-1, 3).astype(np.float32),
        normals=corner_normals(vertices, faces, crease_deg).reshape(-1, 3),
        vertices=vertices.astype(np.float32),
        faces=faces.astype(np.uint32),
        color=tuple(srgb_to_linear(np.array(_DEFAULT_COLOR_SRGB))),
    )
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if isinstance(visual, trimesh.visual.TextureVisuals):
        material = visual.material
        image = getattr(material, "baseColorTexture", None)
        if image is None:
            image = getattr(material, "image", None)
        factor = getattr(material, "baseColorFactor", None)
        if factor is None:
            factor = getattr(material, "main_color", None)
        uv = visual.uv
        texture = _as_rgb_uint8(image)
        if texture is not None and uv is not None and len(uv) == len(vertices):
            uvs = np.asarray(uv, dtype=np.float64)[faces].reshape(-1, 2)
            # trimesh follows OBJ/glTF-as-loaded: v = 0 at the image's bottom; Mitsuba's v = 0 is the top row.
            data.uvs = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1).astype(np.float32)
            data.texture = texture
            # A SimpleMaterial's main colour is already baked into its (packed) image; glTF factors multiply.
            if getattr(material, "baseColorTexture", None) is not None and factor is not None:
                data.texture_factor = tuple(float(x) for x in _color_to_linear(np.asarray(factor)))
        elif factor is not None:
            data.color = tuple(float(x) for x in _color_to_linear(np.asarray(factor)))
    elif kind == "vertex":
        data.colors = _color_to_linear(visual.vertex_colors)[faces].reshape(-1, 3)
    elif kind == "face":
        data.colors = np.repeat(_color_to_linear(visual.face_colors), 3, axis=0)
    if data.colors is not None and np.ptp(data.colors, axis=0).max() < 1e-4:
        # One colour everywhere (e.g. trimesh's default face colour): a uniform BSDF is cheaper.
        data.color = tuple(float(x) for x in data.colors[0])
        data.colors = None
    return data


# --- the renderer -----------------------------------------------------------------------------------------


@dataclass
class _MeshEntry:
    """Mitsuba objects built for one mesh (LRU-bounded; an id-keyed entry checks its mesh is still alive)."""

    ref: weakref.ref
    data: _MeshData
    plane_y: float
    beauty_mesh: Any
    coverage_scene: Any
    coverage_params: Any
    position_offset: float  # added to every coordinate of the cover mesh's position attribute
    scenes: dict[tuple[bool, int], tuple[Any, Any]] = field(default_factory=dict)  # → (scene, params)


@dataclass
class _Environment:
    """One environment as the renderer uses it: the image given to ``envmap`` and its key light, if any."""

    name: str
    image: np.ndarray  # (H, 2H, 3) float32 linear
    key: KeyLight | None


class RayTracer:
    """Physically based renderer (quality ``"high"``) implementing the ``Renderer`` protocol.

    Args:
        size: image width = height in pixels.
        spp: samples per pixel of the beauty pass (and of the cover pass when it gives alpha; see ``depth_spp``).
        ground_plane: put a grey plane under the object (at its lowest point) that catches its shadow. Views
            from below the plane render without it. Makes ``rgb`` a finished picture rather than a layer
            (see :attr:`composites_background`).
        environment: ``None`` (a grey ``studio`` sky for ambient light, hidden from the camera), a built-in
            sky (``studio``, ``daylight``, ``overcast``, ``sunset``), an equirectangular image file, a folder
            of them, or a list of those. With several, each view picks one at random from ``light_seed`` (the
            first when ``light_seed`` is ``None``).
        skybox: show the environment behind the object. Default: on when ``environment`` is given.
        variant: Mitsuba variant; default automatic (see the module docstring).
        seed: base seed; a view's sample seed is derived from it and the camera, so the same arguments always
            give the same image, whatever order views are rendered in.
        max_depth: longest light path (2 = direct light only, 3 = plus one bounce, e.g. light the floor
            throws up under a seat). Each step costs roughly 15 % more time.
        exposure: linear multiplier applied before the sRGB encoding.
        key_light: a square area light as the key (soft, directional, casts the shadow). Sampling an area
            light is far less noisy than sampling a small bright spot of an environment map. ``None``: on for
            the default lighting and built-in skies with a sun or softbox (whose own disc is then left out of
            the sky), off for image files and ``overcast``. ``True``: also for those (a studio-like key).
        key_irradiance: override the key's irradiance on a surface facing it at the origin (the ambient
            ``studio`` sky gives about 1.2 to an upward-facing one), linear units. ``None``: the sky's value.
        key_size, key_distance: side of the key light's square and its distance from the origin, canonical
            units; their ratio sets the shadow's softness (default ≈ 19° wide source).
        env_scale: multiplier of the environment's radiance.
        light_azimuth_deg: azimuth of the key light (and of the environment's own sun) relative to the
            camera's azimuth; negative is towards the camera's left (default: upper left, like the
            rasteriser's key light). ``light_seed`` adds a random angle in ±``light_jitter_deg``.
        light_elevation_deg: the key light's height above the horizon; ``None``: the sky's (studio: 50°). With
            ``light_seed`` and no skybox it is random in 25–70°.
        light_jitter_deg: range of the random key-light azimuth offset drawn from ``light_seed``.
        light_jitter: when True, a render without ``light_seed`` gets random lighting seeded from the camera
            (as the rasteriser's option of the same name).
        env_width: width in pixels the environments are resampled to (height is half).
        threads: worker threads of Mitsuba/Dr.Jit in this process (default: all cores).
        cache_size: how many meshes keep their Mitsuba scenes (building them is the slow part).
        crease_deg: angle between face normals (degrees) above which an edge is shaded sharp; the
            rasteriser's default, so that both renderers shade alike.
        depth_spp: samples per pixel of the cover pass when it only has to give depth (object over black);
            with a plane or sky it gives alpha too and uses ``spp``.

    Attributes:
        variant: the Mitsuba variant in use, e.g. ``"llvm_ad_rgb"``.
        environments: ``(name, image)`` of the environments in use.
    """

    quality = "high"

    def __init__(
        self,
        size: int = 128,
        spp: int = 16,
        ground_plane: bool = False,
        environment: str | Path | Iterable[str | Path] | None = None,
        skybox: bool | None = None,
        variant: str | None = None,
        seed: int = 0,
        *,
        max_depth: int = 3,
        exposure: float = 1.0,
        key_light: bool | None = None,
        key_irradiance: float | None = None,
        key_size: float = 2.0,
        key_distance: float = 6.0,
        env_scale: float = 1.0,
        light_azimuth_deg: float = -40.0,
        light_elevation_deg: float | None = None,
        light_jitter_deg: float = 80.0,
        light_jitter: bool = False,
        env_width: int = 256,
        threads: int | None = None,
        cache_size: int = 4,
        crease_deg: float = DEFAULT_CREASE_DEG,
        depth_spp: int = 4,
    ) -> None:
        if size < 1 or spp < 1:
            raise ValueError(f"size and spp must be positive, got size={size}, spp={spp}")
        if max_depth < 1:
            raise ValueError(f"max_depth must be at least 1, got {max_depth}")
        import mitsuba as mi

        self.size = int(size)
        self.spp = int(spp)
        self.ground_plane = bool(ground_plane)
        self.skybox = (environment is not None) if skybox is None else bool(skybox)
        self.seed = int(seed)
        self.max_depth = int(max_depth)
        self.exposure = float(exposure)
        self.key_irradiance = None if key_irradiance is None else float(key_irradiance)
        self.key_size = float(key_size)
        self.key_distance = float(key_distance)
        self.env_scale = float(env_scale)
        self.light_azimuth_deg = float(light_azimuth_deg)
        self.light_elevation_deg = None if light_elevation_deg is None else float(light_elevation_deg)
        self.light_jitter_deg = float(light_jitter_deg)
        self.light_jitter = bool(light_jitter)
        self.cache_size = max(1, int(cache_size))
        self.crease_deg = float(crease_deg)
        self.depth_spp = max(1, int(depth_spp))

        self.variant = available_variant(variant)
        mi.set_variant(self.variant)
        log.info("ray tracer: Mitsuba %s, variant %s", mi.__version__, self.variant)
        if threads:
            import drjit as dr

            dr.set_thread_count(int(threads))
        self._mi = mi
        self._envs = self._load_environments(environment, key_light, env_width)
        self.environments = [(e.name, e.image) for e in self._envs]
        self._env_bitmaps = [mi.Bitmap(np.ascontiguousarray(e.image)) for e in self._envs]
        self._entries: OrderedDict[tuple[str, Any], _MeshEntry] = OrderedDict()
        # Stratified sampling (less noise) needs a square count; other counts get the independent sampler.
        root = math.isqrt(self.spp)
        self._sampler = "stratified" if root * root == self.spp else "independent"

    @staticmethod
    def _load_environments(
        spec: str | Path | Iterable[str | Path] | None, key_light: bool | None, width: int
    ) -> list[_Environment]:
        """Environments with their key lights, per the ``key_light`` rule of the class docstring."""
        studio_key = SKY_KEY_LIGHTS["studio"]
        items: list[str | Path] = (
            ["studio"] if spec is None else [spec] if isinstance(spec, (str, Path)) else list(spec)
        )
        envs: list[_Environment] = []
        for item in items:
            if isinstance(item, str) and item in BUILTIN_SKIES:
                key = SKY_KEY_LIGHTS[item] if key_light is not False else None
                if key is None and key_light:
                    key = studio_key
                # The sky's own disc is left out when the area light stands in for it.
                lights = key is None or SKY_KEY_LIGHTS[item] is None
                envs.append(_Environment(item, builtin_sky(item, width, lights=lights), key))
            else:
                key = studio_key if key_light else None
                envs.extend(_Environment(name, img, key) for name, img in resolve_environments(item, width))
        return envs

    # -- public API ----------------------------------------------------------------------------------------

    @property
    def composites_background(self) -> bool:
        """True when ``rgb`` may show more than the object (ground plane, sky): then it is a finished picture,
        not a premultiplied layer to put over a background with ``alpha`` (``alpha`` is the object's anyway).
        """
        return self.ground_plane or self.skybox

    def render(
        self, mesh: trimesh.Trimesh, camera: Camera, *, light_seed: int | None = None, key: Any = None
    ) -> RenderOutput:
        """Render ``mesh`` (canonical frame) seen by ``camera``; see the module docstring for the outputs.

        ``light_seed``: ``None`` for the default lighting (key light at ``light_azimuth_deg`` from the camera,
        first environment; with ``light_jitter``, a seed derived from the camera instead); an integer draws
        the key-light direction, its strength (×0.7–1.3) and, with several environments, which one is used.
        ``key``: optional cache key naming the mesh (e.g. a model id) instead of the mesh object itself.
        """
        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"RayTracer.render needs a trimesh.Trimesh, got {type(mesh).__name__}")
        mi = self._mi
        if mi.variant() != self.variant:
            mi.set_variant(self.variant)  # another renderer in this process may have switched it
        entry = self._entry(mesh, key)

        if light_seed is None and self.light_jitter:
            light_seed = camera_seed(camera)
        offset, elevation, strength, env_index = self.light_azimuth_deg, self.light_elevation_deg, 1.0, 0
        if light_seed is not None:
            rng = np.random.default_rng(light_seed)
            offset += float(rng.uniform(-self.light_jitter_deg, self.light_jitter_deg))
            jittered_elevation = float(rng.uniform(25.0, 70.0))
            strength = float(rng.uniform(0.7, 1.3))
            env_index = int(rng.integers(len(self._envs)))
            if not self.skybox and elevation is None:
                # Only without a visible sky: with one, the key must stay where the sky's sun glow is.
                elevation = jittered_elevation

        with_plane = self.ground_plane and camera.position[1] > entry.plane_y + 1e-3
        scene, params = self._scene(entry, with_plane, env_index)
        self._place_lights(params, self._envs[env_index], camera, offset, elevation, strength)

        sensor = self._sensor(camera)
        seed = self._view_seed(camera)
        visible_background = with_plane or self.skybox
        beauty = np.array(mi.render(scene, sensor=sensor, spp=self.spp, seed=seed), dtype=np.float32)
        # Over black, the beauty film's alpha is the object's coverage and the cover pass only gives depth,
        # for which a few samples suffice; otherwise the cover pass gives alpha too, at full quality.
        cover_spp = self.spp if visible_background else min(self.spp, self.depth_spp)
        self._aim_cover(entry, camera)
        cover = np.array(mi.render(entry.coverage_scene, sensor=sensor, spp=cover_spp, seed=seed), dtype=np.float32)
        return self._compose(beauty, cover, camera, entry.position_offset, visible_background=visible_background)

    def close(self) -> None:
        """Drop the cached Mitsuba scenes; idempotent (a later ``render`` would rebuild them)."""
        self._entries.clear()

    def __enter__(self) -> RayTracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------------

    def _place_lights(
        self,
        params: Any,
        env: _Environment,
        camera: Camera,
        offset_deg: float,
        elevation_deg: float | None,
        strength: float,
    ) -> None:
        """Turn the environment and move the key light to ``offset_deg`` of azimuth from the camera.

        Values are written as Dr.Jit arrays made opaque: a plain Python number or scalar transform would be
        baked into the JIT kernel as a constant, and every new view would then recompile it (~0.3–1 s) in
        the LLVM and CUDA variants. For the same reason the key light is a two-triangle mesh whose vertices
        move, not a ``rectangle`` shape: a rectangle's ``to_world`` ends up as a constant in the kernel.
        """
        mi = self._mi
        azimuth = camera.azimuth_deg + offset_deg
        # The sky's azimuth 0 (where its sun/softbox is) goes to the key light's azimuth.
        _set_param(params, "env.to_world", mi.Transform4f(mi.ScalarTransform4f().rotate([0, 1, 0], azimuth)))
        _set_param(params, "env.scale", mi.Float(self.env_scale * strength))
        if env.key is not None:
            elevation = env.key.elevation_deg if elevation_deg is None else elevation_deg
            key_position = direction_from_elevation(azimuth, elevation) * self.key_distance
            corners = _key_corners(key_position, self.key_size).ravel()
            # Moving geometry makes Mitsuba rebuild the scene's BVH (~10 ms for 5k triangles, ~20 ms for 32k),
            # so skip it when the key has not moved (e.g. several renders of one camera).
            if not np.array_equal(np.asarray(params["key.vertex_positions"]), corners):
                params["key.vertex_positions"] = corners
            _set_param(
                params,
                "key.emitter.radiance.value",
                mi.Color3f(*(float(x) for x in self._key_radiance(env) * strength)),
            )
        params.update()

    @staticmethod
    def _aim_cover(entry: _MeshEntry, camera: Camera) -> None:
        """Point the cover mesh's vertex normals at the camera, so every hit sees the emitting side.

        Any surface point's interpolated normal then points roughly at the camera, whatever the winding.
        Normals are not geometry: no BVH rebuild, and a JIT variant does not recompile.
        """
        towards = camera.position[None, :] - entry.data.vertices
        towards /= np.maximum(np.linalg.norm(towards, axis=1, keepdims=True), 1e-12)
        entry.coverage_params["object.vertex_normals"] = towards.astype(np.float32).ravel()
        entry.coverage_params.update()

    def _key_radiance(self, env: _Environment) -> np.ndarray:
        """Linear RGB radiance of the key's square for its irradiance at the origin: E = L·area/distance²."""
        assert env.key is not None
        irradiance = env.key.irradiance if self.key_irradiance is None else self.key_irradiance
        return np.array(env.key.color) * irradiance * self.key_distance**2 / self.key_size**2

    def _view_seed(self, camera: Camera) -> int:
        """Stable 31-bit sample seed from the base seed and the camera.

        Not from the light seed: the samples' image positions, hence alpha and depth, then depend only on
        the geometry, and a relit view differs from the original only by its lighting.
        """
        key = f"{self.seed}|{camera.polar_deg:.6f}|{camera.azimuth_deg:.6f}|{camera.distance:.6f}|"
        key += f"{camera.fov_deg:.6f}"
        return zlib.crc32(key.encode()) & 0x7FFFFFFF

    def _sensor(self, camera: Camera) -> Any:
        """A Mitsuba perspective sensor equal to ``camera``.

        The OpenGL camera looks down −Z with +X to the right; Mitsuba's looks down +Z with +X to the left. So
        Mitsuba's camera-to-world is OpenGL's with its X and Z axes negated (a rotation by 180° about the
        camera's Y axis, not a mirror). Using the view matrix also keeps the pole fallback of ``look_at``.
        """
        mi = self._mi
        cam_to_world = np.linalg.inv(camera.view_matrix()) @ np.diag([-1.0, 1.0, -1.0, 1.0])
        distance = float(np.linalg.norm(camera.position))
        return mi.load_dict(
            {
                "type": "perspective",
                "fov_axis": "y",
                "fov": float(camera.fov_deg),
                # Near clip must not cut a close object; the far clip must reach the plane's horizon.
                "near_clip": max(1e-3, 0.01 * distance),
                "far_clip": 1e4,
                "to_world": mi.ScalarTransform4f(cam_to_world.tolist()),
                "film": {
                    "type": "hdrfilm",
                    "width": self.size,
                    "height": self.size,
                    "pixel_format": "rgba",
                    # Box filter: a pixel averages its own samples only, so alpha is exact coverage.
                    "rfilter": {"type": "box"},
                },
                "sampler": {"type": self._sampler, "sample_count": self.spp},
            }
        )

    def _entry(self, mesh: trimesh.Trimesh, key: Any = None) -> _MeshEntry:
        """Cached Mitsuba objects for ``mesh`` (built on first use), looked up by ``key`` or the object."""
        cache_key = ("id", id(mesh)) if key is None else ("key", key)
        entry = self._entries.get(cache_key)
        # An id can be reused once its mesh is freed, so an id-keyed entry must still point at this mesh.
        if entry is not None and (key is not None or entry.ref() is mesh):
            self._entries.move_to_end(cache_key)
            return entry
        entry = self._build_entry(mesh)
        self._entries[cache_key] = entry
        while len(self._entries) > self.cache_size:
            self._entries.popitem(last=False)
        return entry

    def _build_entry(self, mesh: trimesh.Trimesh) -> _MeshEntry:
        """Upload ``mesh`` twice: shaded (beauty) and as a position emitter (coverage/depth pass)."""
        mi = self._mi
        data = prepare_mesh(mesh, self.crease_deg)
        if len(data.faces) == 0:
            raise ValueError("cannot render a mesh without faces")

        props = mi.Properties()
        props["bsdf"] = mi.load_dict(self._bsdf_dict(data))
        n = len(data.positions)
        beauty = mi.Mesh(
            "object",
            n,
            n // 3,
            props=props,
            has_vertex_normals=True,
            has_vertex_texcoords=data.uvs is not None,
        )
        params = mi.traverse(beauty)
        params["vertex_positions"] = data.positions.ravel()
        params["faces"] = np.arange(n, dtype=np.uint32)
        params["vertex_normals"] = data.normals.ravel()
        if data.uvs is not None:
            params["vertex_texcoords"] = data.uvs.ravel()
        params.update()
        if data.colors is not None:
            beauty.add_attribute("vertex_color", 3, np.ascontiguousarray(data.colors, np.float32).ravel())

        cprops = mi.Properties()
        cprops["emitter"] = mi.load_dict(
            {"type": "area", "radiance": {"type": "mesh_attribute", "name": "vertex_position"}}
        )
        # Vertex normals are set per view to face the camera (see _aim_cover): an area emitter is one-sided
        # and judges the side by the shading normal, and CAD/ShapeNet winding cannot be trusted.
        cover = mi.Mesh("coverage", len(data.vertices), len(data.faces), props=cprops, has_vertex_normals=True)
        cparams = mi.traverse(cover)
        cparams["vertex_positions"] = data.vertices.ravel()
        cparams["faces"] = data.faces.ravel()
        cparams["vertex_normals"] = np.tile(np.array([0.0, 1.0, 0.0], np.float32), len(data.vertices))
        cparams.update()
        # Emitted radiance must stay positive: shift positions so the smallest coordinate is 1.
        offset = 1.0 - float(data.vertices.min())
        cover.add_attribute("vertex_position", 3, (data.vertices + offset).astype(np.float32).ravel())
        coverage_scene = mi.load_dict(
            # max_depth 1: emitters seen directly and nothing else, i.e. no shading work at all.
            {"type": "scene", "integrator": {"type": "path", "max_depth": 1}, "object": cover}
        )
        # The plane sits a hair below the lowest vertex, so coplanar bottom faces (chair feet) do not z-fight.
        plane_y = float(data.vertices[:, 1].min()) - 1e-4
        return _MeshEntry(
            ref=weakref.ref(mesh),
            data=data,
            plane_y=plane_y,
            beauty_mesh=beauty,
            coverage_scene=coverage_scene,
            coverage_params=mi.traverse(coverage_scene),
            position_offset=offset,
        )

    def _bsdf_dict(self, data: _MeshData) -> dict:
        """Slightly glossy plastic with the mesh's colour source as base colour, two-sided."""
        mi = self._mi
        if data.texture is not None:
            if data.texture_factor != (1.0, 1.0, 1.0):
                # Mitsuba has no texture-product plugin: fold a glTF colour factor into a linear image.
                lin = srgb_to_linear(data.texture.astype(np.float32) / 255.0) * np.array(data.texture_factor)
                bitmap, raw = mi.Bitmap(np.ascontiguousarray(lin, dtype=np.float32)), True
            else:
                # 8-bit images are read as sRGB and linearised by Mitsuba; the copy makes the buffer writable.
                bitmap, raw = mi.Bitmap(np.array(data.texture, dtype=np.uint8, order="C")), False
            base: dict = {"type": "bitmap", "bitmap": bitmap, "raw": raw, "filter_type": "bilinear"}
        elif data.colors is not None:
            base = {"type": "mesh_attribute", "name": "vertex_color"}
        else:
            base = {"type": "rgb", "value": list(data.color)}
        return {
            # Two-sided: CAD and ShapeNet meshes have open shells and inconsistent winding.
            "type": "twosided",
            "material": {
                "type": "principled",
                "base_color": base,
                "roughness": 0.45,
                "specular": 0.35,
                "metallic": 0.0,
            },
        }

    def _scene(self, entry: _MeshEntry, with_plane: bool, env_index: int) -> tuple[Any, Any]:
        """Beauty scene (and its traversed parameters) for one mesh, plane on/off and environment."""
        cache_key = (with_plane, env_index)
        if cache_key in entry.scenes:
            return entry.scenes[cache_key]
        mi = self._mi
        env = self._envs[env_index]
        scene_dict: dict[str, Any] = {
            "type": "scene",
            "integrator": {"type": "path", "max_depth": self.max_depth, "hide_emitters": not self.skybox},
            "object": entry.beauty_mesh,
            "env": {"type": "envmap", "bitmap": self._env_bitmaps[env_index]},
        }
        if with_plane:
            # A 100 × 100 square: its far edge is close to the horizon from every camera.
            plane_color = srgb_to_linear(np.array(_PLANE_COLOR_SRGB)).tolist()
            scene_dict["plane"] = {
                "type": "rectangle",
                "to_world": mi.ScalarTransform4f()
                .translate([0.0, entry.plane_y, 0.0])
                .rotate([1, 0, 0], -90)
                .scale(50.0),
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": plane_color}},
            }
        if env.key is not None:
            # Moved per view by _place_lights: a one-sided square facing the origin (see there why a mesh).
            props = mi.Properties()
            props["emitter"] = mi.load_dict(
                {"type": "area", "radiance": {"type": "rgb", "value": self._key_radiance(env).tolist()}}
            )
            # Null BSDF: camera rays pass through the square, so it never shows up in the alpha channel.
            props["bsdf"] = mi.load_dict({"type": "null"})
            key_mesh = mi.Mesh("key", 4, 2, props=props)
            key_params = mi.traverse(key_mesh)
            key_params["vertex_positions"] = _key_corners(
                np.array([0.0, self.key_distance, 0.0]), self.key_size
            ).ravel()
            key_params["faces"] = np.array([0, 1, 2, 0, 2, 3], dtype=np.uint32)
            key_params.update()
            scene_dict["key"] = key_mesh
        scene = mi.load_dict(scene_dict)
        result = (scene, mi.traverse(scene))
        entry.scenes[cache_key] = result
        return result

    def _compose(
        self,
        beauty: np.ndarray,
        cover: np.ndarray,
        camera: Camera,
        position_offset: float,
        *,
        visible_background: bool,
    ) -> RenderOutput:
        """Turn the beauty and cover films, linear RGBA (H, W, 4) each, into a :class:`RenderOutput`.

        Over black (``visible_background`` False) alpha is the beauty film's own: the key light's square has a
        null BSDF, so camera rays pass through it and only the object counts, and the RGB edges are then
        premultiplied by exactly that alpha. Otherwise the plane or sky would count, and alpha is the cover
        pass's.
        """
        cover_alpha = np.clip(cover[..., 3], 0.0, 1.0)
        alpha = cover_alpha if visible_background else np.clip(beauty[..., 3], 0.0, 1.0)
        # Mean hit position over the covered samples → distance along the viewing axis.
        mean_pos = cover[..., :3] / np.maximum(cover_alpha, 1e-6)[..., None] - position_offset
        forward = -camera.view_matrix()[2, :3]
        depth = np.where(cover_alpha > 0, (mean_pos - camera.position) @ forward, 0.0)
        missing = (alpha > 0) & (cover_alpha == 0)
        if missing.any() and (cover_alpha > 0).any():
            # Edge pixels the fewer cover samples missed (or, in the scalar variant, whose samples fell
            # elsewhere): take the depth of the nearest pixel that has one.
            from scipy.ndimage import distance_transform_edt

            _, (iy, ix) = distance_transform_edt(cover_alpha == 0, return_indices=True)
            depth = np.where(missing, depth[iy, ix], depth)
        depth = np.where(alpha > 0, depth, 0.0).astype(np.float32)

        linear = beauty[..., :3] * self.exposure
        if visible_background:
            rgb = linear_to_srgb(linear)
        else:
            # Object over black: encode the un-premultiplied colour, then premultiply, as a rasteriser's
            # anti-aliased edge over black would be.
            a = alpha[..., None]
            rgb = linear_to_srgb(linear / np.maximum(a, 1e-6)) * a
        rgb8 = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
        return RenderOutput(rgb=rgb8, alpha=alpha.astype(np.float32), depth=depth)
