"""Environment maps for the ray tracer: built-in procedural skies and user images.

An environment is an **equirectangular** (latitude-longitude) image of linear RGB radiance, float32, shape
``(H, W, 3)`` with ``W = 2 H``. Its layout follows Mitsuba's ``envmap`` emitter, so arrays made here can be
handed to it unchanged:

- row 0 is the zenith (+Y), row ``H - 1`` the nadir (−Y); pixel row ``i`` has polar angle θ = π (i + ½) / H;
- column ``j`` has the angle ``u = 2π (j + ½) / W`` and the direction
  ``d = (sin θ sin u, cos θ, −sin θ cos u)``, so the image's centre column looks along +Z.

The built-in skies put their key light (softbox or sun) at azimuth 0 of the DESIGN.md convention, i.e. towards
+Z, above the horizon. A renderer turns an environment about +Y to place that light where it wants it (the ray
tracer keeps it at a fixed angle from the camera, so every view is lit from the front-side).

Built-in skies (generated at run time with numpy, nothing is downloaded):

- ``studio``: soft grey gradient (bright above, dark floor) with a large softbox key and a weaker fill;
- ``daylight``: blue sky brightening towards the horizon, a warm sun with a glow, brownish ground;
- ``overcast``: grey sky (CIE overcast falloff, brightest at the zenith), no sun, soft shadows only;
- ``sunset``: orange-to-violet gradient with a low, warm sun.

User environments are image files (``.hdr``, ``.exr``: linear; ``.png``, ``.jpg``, ``.jpeg``: sRGB, decoded
to linear) or a folder of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cadsearch.render.cameras import direction_from_elevation

__all__ = [
    "BUILTIN_SKIES",
    "KeyLight",
    "SKY_KEY_LIGHTS",
    "ENVIRONMENT_SUFFIXES",
    "builtin_sky",
    "equirect_directions",
    "list_environments",
    "load_environment",
    "resolve_environments",
    "resize_equirect",
    "srgb_to_linear",
    "linear_to_srgb",
]

#: Names accepted by :func:`builtin_sky`.
BUILTIN_SKIES: tuple[str, ...] = ("studio", "daylight", "overcast", "sunset")
#: File suffixes :func:`list_environments` picks up from a folder (lower case).
ENVIRONMENT_SUFFIXES: tuple[str, ...] = (".hdr", ".exr", ".png", ".jpg", ".jpeg")
_LINEAR_SUFFIXES = (".hdr", ".exr")


@dataclass(frozen=True)
class KeyLight:
    """The main light of a sky, for a renderer that replaces the sky's small bright source by an area light.

    Attributes:
        elevation_deg: height above the horizon, degrees (its azimuth is 0, towards +Z, in the sky's frame).
        color: linear RGB tint, brightest channel 1.
        irradiance: irradiance it gives a surface at the origin facing it, linear units (about what the sky's
            own disc gives, so a sky looks the same lit either way).
    """

    elevation_deg: float
    color: tuple[float, float, float]
    irradiance: float


#: Key light matching each built-in sky's softbox or sun (``None``: the sky has no dominant source).
SKY_KEY_LIGHTS: dict[str, KeyLight | None] = {
    "studio": KeyLight(50.0, (1.0, 0.96, 0.9), 2.8),
    "daylight": KeyLight(50.0, (1.0, 0.93, 0.8), 4.5),
    "overcast": None,
    "sunset": KeyLight(8.0, (1.0, 0.6, 0.3), 3.0),
}


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear, same shape, float32."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear values → sRGB encoding, clipped to [0, 1], same shape, float32."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def equirect_directions(height: int, width: int | None = None) -> np.ndarray:
    """Unit world directions of the pixel centres of an equirectangular image, shape (H, W, 3) float64.

    Layout as in the module docstring (Mitsuba's ``envmap``): row 0 is +Y, the centre column looks along +Z.
    """
    width = 2 * height if width is None else width
    theta = (np.arange(height) + 0.5) * (math.pi / height)
    u = (np.arange(width) + 0.5) * (2.0 * math.pi / width)
    t, p = np.meshgrid(theta, u, indexing="ij")
    return np.stack([np.sin(t) * np.sin(p), np.cos(t), -np.sin(t) * np.cos(p)], axis=-1)


def _disc(d: np.ndarray, centre: np.ndarray, radius_deg: float, soft_deg: float) -> np.ndarray:
    """Smooth-edged disc of angular ``radius_deg`` around ``centre`` on directions ``d``: (H, W) in [0, 1]."""
    angle = np.degrees(np.arccos(np.clip(d @ centre, -1.0, 1.0)))
    return np.clip((radius_deg + soft_deg - angle) / max(soft_deg, 1e-6), 0.0, 1.0)


def _glow(d: np.ndarray, centre: np.ndarray, width_deg: float) -> np.ndarray:
    """Gaussian falloff in angle around ``centre``: (H, W) in [0, 1]."""
    angle = np.degrees(np.arccos(np.clip(d @ centre, -1.0, 1.0)))
    return np.exp(-0.5 * (angle / width_deg) ** 2)


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    """Per-pixel linear blend of two RGB colours, ``t`` of shape (H, W) → (H, W, 3)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a + (b - a) * t[..., None]


def builtin_sky(name: str, width: int = 256, lights: bool = True) -> np.ndarray:
    """A procedural sky named ``name`` (see :data:`BUILTIN_SKIES`) as linear RGB radiance.

    Returns float32 of shape ``(width // 2, width, 3)``. Radiance is scaled so that a white diffuse surface
    facing up gets an irradiance of roughly 2–4 (≈ 0.6–1.0 linear after the 1/π of a diffuse BRDF), which the
    ray tracer's default exposure maps to a bright but unclipped product shot. The key light sits at azimuth 0
    (towards +Z); see the module docstring for the layout.

    ``lights=False`` leaves out the small bright sources (softboxes, sun disc; glows stay): a smooth sky for
    ambient light when a renderer adds its own key light as an area emitter, which is far less noisy to
    sample at a few samples per pixel than a small bright patch of an environment map.
    """
    if name not in BUILTIN_SKIES:
        raise ValueError(f"unknown sky {name!r}; choose one of {', '.join(BUILTIN_SKIES)}")
    if width < 16 or width % 2:
        raise ValueError(f"sky width must be an even number >= 16, got {width}")
    d = equirect_directions(width // 2, width)
    y = d[..., 1]
    up = np.clip(y, 0.0, 1.0)
    down = np.clip(-y, 0.0, 1.0)
    # Lights are a few pixels wide at least (a light thinner than a pixel would alias and be hard to sample).
    min_radius = 2.5 * 360.0 / width

    if name == "studio":
        # Grey cyclorama: brighter overhead, a dim floor, plus a big softbox key and a fill on the other side.
        img = _mix([0.22, 0.22, 0.23], [0.45, 0.45, 0.47], up**0.7)
        img = np.where(y[..., None] < 0, _mix([0.16, 0.16, 0.16], [0.06, 0.06, 0.06], down**0.5), img)
        key = _disc(d, direction_from_elevation(0.0, 50.0), max(14.0, min_radius), 6.0)
        fill = _disc(d, direction_from_elevation(-120.0, 25.0), max(20.0, min_radius), 10.0)
        img += (14.0 * key[..., None] + 1.2 * fill[..., None]) * lights
    elif name == "daylight":
        horizon = np.exp(-4.0 * up)  # sky whitens towards the horizon
        img = _mix([0.10, 0.22, 0.55], [0.60, 0.72, 0.85], horizon)
        ground = _mix([0.30, 0.26, 0.20], [0.12, 0.10, 0.08], down**0.4)
        img = np.where(y[..., None] < 0, ground, img)
        sun_dir = direction_from_elevation(0.0, 50.0)
        img += np.array([1.0, 0.95, 0.8]) * (0.8 * _glow(d, sun_dir, 12.0))[..., None]
        sun = 160.0 * lights * _disc(d, sun_dir, max(5.0, min_radius), 1.5)
        img += np.array([1.0, 0.93, 0.8]) * sun[..., None]
    elif name == "overcast":
        sky = 0.55 * (1.0 + 2.0 * up) / 3.0  # CIE standard overcast sky: zenith three times the horizon
        img = np.stack([sky * 0.97, sky, sky * 1.04], axis=-1)
        img = np.where(y[..., None] < 0, _mix([0.16, 0.16, 0.15], [0.08, 0.08, 0.08], down**0.5), img)
        # A faint brighter patch where the sun hides, so shading still has a direction.
        img += 0.5 * _glow(d, direction_from_elevation(0.0, 55.0), 25.0)[..., None]
    else:  # sunset
        img = _mix([0.9, 0.42, 0.16], [0.12, 0.10, 0.30], up**0.45)
        img = np.where(y[..., None] < 0, _mix([0.18, 0.10, 0.07], [0.05, 0.04, 0.04], down**0.4), img)
        sun_dir = direction_from_elevation(0.0, 8.0)
        img += np.array([1.0, 0.55, 0.25]) * (1.5 * _glow(d, sun_dir, 15.0))[..., None]
        sun = 120.0 * lights * _disc(d, sun_dir, max(5.0, min_radius), 1.5)
        img += np.array([1.0, 0.6, 0.3]) * sun[..., None]
    return np.ascontiguousarray(img, dtype=np.float32)


def resize_equirect(img: np.ndarray, width: int) -> np.ndarray:
    """Resample an equirectangular image to ``(width // 2, width, C)`` (area-averaging when shrinking).

    Uses Pillow's float mode per channel, so HDR values survive. Returns float32.
    """
    from PIL import Image

    img = np.asarray(img, dtype=np.float32)
    h, w = width // 2, width
    if img.shape[:2] == (h, w):
        return img
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c])).resize((w, h), Image.Resampling.BOX))
        for c in range(img.shape[2])
    ]
    return np.stack(chans, axis=-1).astype(np.float32)


def _read_image(path: Path) -> np.ndarray:
    """An image file as linear float32 RGB (H, W, 3)."""
    suffix = path.suffix.lower()
    if suffix in _LINEAR_SUFFIXES:
        # Mitsuba reads .hdr/.exr; it is a dependency of the ray tracer that uses environments anyway.
        import mitsuba as mi

        if not mi.variant():
            mi.set_variant("scalar_rgb")
        bmp = mi.Bitmap(str(path))
        arr = np.array(bmp, dtype=np.float32)
    else:
        from PIL import Image

        with Image.open(path) as im:
            arr = srgb_to_linear(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    # Drop alpha and any extra channels; clamp NaN/negative values an HDR might carry.
    return np.nan_to_num(np.clip(arr[..., :3], 0.0, None)).astype(np.float32)


def load_environment(path_or_name: str | Path, width: int | None = None) -> np.ndarray:
    """A built-in sky (by name) or an equirectangular image file as linear RGB float32 ``(H, W, 3)``.

    ``width``: resample to ``(width // 2, width)``; ``None`` keeps a file's own size (built-ins: 256).
    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for an unknown suffix.
    """
    if isinstance(path_or_name, str) and path_or_name in BUILTIN_SKIES:
        return builtin_sky(path_or_name, width or 256)
    path = Path(path_or_name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"environment {str(path_or_name)!r} is neither a built-in sky ({', '.join(BUILTIN_SKIES)}) "
            "nor an image file"
        )
    if path.suffix.lower() not in ENVIRONMENT_SUFFIXES:
        raise ValueError(f"environment {path} must be one of {', '.join(ENVIRONMENT_SUFFIXES)}")
    img = _read_image(path)
    return resize_equirect(img, width) if width else img


def list_environments(folder: str | Path) -> list[Path]:
    """Environment image files directly inside ``folder``, sorted by name."""
    folder = Path(folder).expanduser()
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in ENVIRONMENT_SUFFIXES)


def resolve_environments(
    spec: str | Path | Iterable[str | Path] | None, width: int = 256
) -> list[tuple[str, np.ndarray]]:
    """Turn an environment option into a list of ``(name, image)`` pairs, images ``(width // 2, width, 3)``.

    ``spec`` may be ``None`` (→ ``studio``), a built-in name, an image file, a folder of images, or a list of
    those. Every image is resampled to the same size so that renderers can swap between them cheaply.
    """
    if spec is None:
        spec = ["studio"]
    elif isinstance(spec, (str, Path)):
        spec = [spec]
    out: list[tuple[str, np.ndarray]] = []
    for item in spec:
        if isinstance(item, str) and item in BUILTIN_SKIES:
            out.append((item, builtin_sky(item, width)))
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            files = list_environments(path)
            if not files:
                raise FileNotFoundError(f"environment folder {path} holds no {', '.join(ENVIRONMENT_SUFFIXES)} images")
            out.extend((f.name, load_environment(f, width)) for f in files)
        else:
            out.append((path.name, load_environment(path, width)))
    return out
