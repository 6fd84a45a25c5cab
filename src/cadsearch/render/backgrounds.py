"""Backgrounds behind rendered views, as a separate step from rendering.

A renderer returns the object over black with its coverage (:class:`~cadsearch.render.types.RenderOutput`);
:func:`composite` puts it over any background, so one render can be reused over many backgrounds and the mask
stays exact. Background *sources* make backgrounds on demand, deterministically from a random generator:

=============  =======================================================================  ==================
spec           source                                                                   view-table name
=============  =======================================================================  ==================
``plain``      one random colour                                                        ``plain``
``white``      white                                                                    ``white``
``gradient``   random linear or radial two-colour gradient                              ``gradient``
``texture``    procedural texture: value noise, stripes or checks in random colours     ``texture``
``random``     a mix: gradient 40 %, texture 40 %, plain 20 %                            that source's name
``rooms``      procedural room corners: wall, floor in perspective, skirting, furniture  ``rooms``
``scenes``     a mix for training: rooms 50 %, texture 20 %, gradient 20 %, plain 10 %   that source's name
a folder       random square crops of the photos in it (.jpg/.jpeg/.png/.webp)          ``image:<file>``
=============  =======================================================================  ==================

All images are (H, W, 3) uint8 RGB, H = W = ``size``.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.render.types import RenderOutput

__all__ = [
    "composite",
    "BackgroundSource",
    "PlainBackgrounds",
    "GradientBackgrounds",
    "TextureBackgrounds",
    "RandomBackgrounds",
    "RoomBackgrounds",
    "scene_backgrounds",
    "ImageFolderBackgrounds",
    "make_background_source",
    "IMAGE_SUFFIXES",
]

#: File suffixes (lower case) that :class:`ImageFolderBackgrounds` picks up.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

RngLike = np.random.Generator | int | None


def _rng(rng: RngLike) -> np.random.Generator:
    """A Generator from a Generator (used as is) or a seed."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def composite(out: RenderOutput, background: np.ndarray) -> np.ndarray:
    """The render over ``background``: ``rgb + (1 - alpha) * background`` (``rgb`` is premultiplied).

    Args:
        out: a render; its ``alpha`` (and so its mask) is not changed.
        background: (H, W, 3) uint8 of the render's size.

    Returns:
        (H, W, 3) uint8. Where alpha is 1 it is exactly ``out.rgb``; where alpha is 0 exactly the background.
    """
    bg = np.asarray(background)
    if bg.shape != out.rgb.shape:
        raise ValueError(f"background shape {bg.shape} does not match the render's {out.rgb.shape}")
    a = out.alpha.astype(np.float32)[..., None]
    result = out.rgb.astype(np.float32) + (1.0 - a) * bg.astype(np.float32)
    return np.clip(np.rint(result), 0, 255).astype(np.uint8)


class BackgroundSource:
    """Makes backgrounds: ``sample(size, rng)`` → (size, size, 3) uint8, deterministic for a given rng state.

    ``name`` names the source (its spec); :meth:`draw` also returns the name of the background drawn, for the
    view table (``plain``, ``gradient``, ``image:<file name>``, ...). ``rng`` is a ``np.random.Generator``
    (advanced in place) or an int seed.
    """

    name: str = "background"

    def draw(self, size: int, rng: RngLike = None) -> tuple[np.ndarray, str]:
        """A background and its view-table name."""
        raise NotImplementedError

    def sample(self, size: int, rng: RngLike = None) -> np.ndarray:
        """A background, (size, size, 3) uint8."""
        return self.draw(size, rng)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A random colour, float (3,) in [0, 255]: random hue, mostly muted, any brightness (like real rooms)."""
    hue = rng.uniform(0.0, 1.0)
    sat = rng.uniform(0.0, 1.0) ** 1.5  # skewed towards greys and muted colours
    val = rng.uniform(0.08, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    rgb = val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)  # HSV → RGB
    return rgb * 255.0


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1], x to the right and y down, each (size, size) float32."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(t, t)


class PlainBackgrounds(BackgroundSource):
    """One colour: ``color`` (RGB 0–255) if given, else a random colour per background."""

    def __init__(self, color: tuple[int, int, int] | None = None, name: str | None = None) -> None:
        self.color = None if color is None else tuple(int(c) for c in color)
        self.name = name or ("plain" if color is None else "white" if self.color == (255, 255, 255) else "plain")

    def draw(self, size: int, rng: RngLike = None) -> tuple[np.ndarray, str]:
        color = np.array(self.color, np.float64) if self.color is not None else _random_color(_rng(rng))
        return np.broadcast_to(_to_uint8(color), (size, size, 3)).copy(), self.name


class GradientBackgrounds(BackgroundSource):
    """A random two-colour gradient: linear (random direction) or radial (random centre and radius)."""

    name = "gradient"

    def draw(self, size: int, rng: RngLike = None) -> tuple[np.ndarray, str]:
        g = _rng(rng)
        c0, c1 = _random_color(g), _random_color(g)
        x, y = _grid(size)
        if g.uniform() < 0.5:
            angle = g.uniform(0.0, 2.0 * math.pi)
            t = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle)
            t = t / (0.5 * (abs(math.cos(angle)) + abs(math.sin(angle)))) * 0.5 + 0.5  # corners reach 0 and 1
        else:
            cx, cy = g.uniform(-0.2, 1.2, 2)
            radius = g.uniform(0.5, 1.5)
            t = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / radius
        t = np.clip(t, 0.0, 1.0)[..., None]
        return _to_uint8(c0 * (1.0 - t) + c1 * t), self.name


def _value_noise(size: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Fractal value noise in [0, 1], (size, size) float32: random grids upsampled bicubically, summed."""
    total = np.zeros((size, size), np.float32)
    base = int(rng.integers(2, 7))
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        cells = base * 2**octave
        grid = rng.uniform(0.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
        img = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
        total += amp * np.asarray(img, np.float32)
        norm += amp
        amp *= float(rng.uniform(0.35, 0.65))
    total /= norm
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / (hi - lo) if hi > lo else np.full_like(total, 0.5)


class TextureBackgrounds(BackgroundSource):
    """Procedural textures in random colours: fractal value noise, soft stripes, or (rotated) checks; stripes
    and checks are modulated by noise so that they look less synthetic."""

    name = "texture"

    def draw(self, size: int, rng: RngLike = None) -> tuple[np.ndarray, str]:
        g = _rng(rng)
        kind = int(g.integers(0, 3))
        x, y = _grid(size)
        angle = g.uniform(0.0, math.pi)
        u = x * math.cos(angle) + y * math.sin(angle)
        v = -x * math.sin(angle) + y * math.cos(angle)
        if kind == 0:  # noise
            t = _value_noise(size, g)
        elif kind == 1:  # stripes with soft edges
            freq = g.uniform(2.0, 20.0)
            sharp = g.uniform(1.0, 8.0)
            t = 0.5 + 0.5 * np.tanh(sharp * np.sin(2.0 * math.pi * freq * u + g.uniform(0, 2 * math.pi)))
        else:  # checks
            freq = g.uniform(2.0, 12.0)
            t = 0.5 + 0.5 * np.tanh(4.0 * np.sin(2 * math.pi * freq * u) * np.sin(2 * math.pi * freq * v))
        if kind != 0:
            mix = g.uniform(0.0, 0.5)
            t = (1.0 - mix) * t + mix * _value_noise(size, g)
        c0, c1 = _random_color(g), _random_color(g)
        t = t[..., None].astype(np.float32)
        img = c0 * (1.0 - t) + c1 * t
        # A little per-pixel grain, like sensor noise in photos.
        img = img + g.normal(0.0, g.uniform(0.0, 6.0), img.shape)
        return _to_uint8(img), self.name


class RandomBackgrounds(BackgroundSource):
    """A mix of sources, picked per background with the given weights (default: gradient 0.4, texture 0.4,
    plain 0.2)."""

    name = "random"

    def __init__(self, sources: list[tuple[BackgroundSource, float]] | None = None) -> None:
        if sources is None:
            sources = [(GradientBackgrounds(), 0.4), (TextureBackgrounds(), 0.4), (PlainBackgrounds(), 0.2)]
        self.sources = [s for s, _ in sources]
        weights = np.array([w for _, w in sources], np.float64)
        self.weights = weights / weights.sum()

    def draw(self, size: int, rng: RngLike = None) -> tuple[np.ndarray, str]:
        g = _rng(rng)
        source = self.sources[int(g.choice(len(self.sources), p=self.weights))]
        return source.draw(size, g)


def _wood_color(rng: np.random.Generator) -> np.ndarray:
    """A floor colour, float (3,) in [0, 255]: mostly wood browns and greys, sometimes any colour."""
    if rng.uniform() < 0.6:
        base = np.array([150.0, 105.0, 65.0]) * rng.uniform(0.35, 1.45)  # light to dark wood
        return np.clip(base + rng.normal(0.0, 12.0, 3), 0.0, 255.0)
    return _random_color(rng)


class RoomBackgrounds(BackgroundSource):
    """Procedural room corners, the kind of scene a piece of furniture is photographed in without a studio.

    A wall (light, muted colour, soft light fall-off, sometimes wallpaper-like texture, windows, pictures or
    doors as rectangles) meets a floor seen in perspective (planks or tiles converging to a vanishing point, or
    carpet noise) along a slightly tilted line with an optional corner kink and a skirting board; then a few
    furniture-like silhouettes (boxes on legs, thin vertical bars, ellipses) in front, vignetting and grain.
    Deterministic for a generator state. Cost: ~2 ms at 160 px.
    """

    name = "rooms"

    def draw(self, size: int, rng: RngLike = None) -> tuple[np.ndarray, str]:
        g = _rng(rng)
        x, y = _grid(size)
        # The wall/floor boundary: y = horizon + slope * (x - corner), with a kink at a room corner.
        horizon = g.uniform(0.3, 0.85)
        corner = g.uniform(0.0, 1.0)
        slope_l, slope_r = g.normal(0.0, 0.12), g.normal(0.0, 0.12)
        if g.uniform() < 0.5:  # a corner: the two walls' floor lines slope away from it
            slope_l, slope_r = -abs(g.uniform(0.05, 0.35)), abs(g.uniform(0.05, 0.35))
        boundary = horizon + np.where(x < corner, slope_l * (x - corner), slope_r * (x - corner))
        floor = y > boundary

        # Wall: a light muted colour, lit from one side, optionally textured.
        wall_col = _random_color(g)
        wall_col = wall_col + (255.0 - wall_col) * g.uniform(0.2, 0.8)  # walls are mostly light
        light_dir = g.uniform(0, 2 * math.pi)
        shade = 1.0 + g.uniform(0.0, 0.35) * ((x - 0.5) * math.cos(light_dir) + (y - 0.5) * math.sin(light_dir))
        wall = wall_col * shade[..., None]
        if g.uniform() < 0.3:  # wallpaper or plaster texture, low contrast
            t = TextureBackgrounds().sample(size, g).astype(np.float32)
            wall = wall * (1.0 - 0.25) + 0.25 * t
        if g.uniform() < 0.5:  # the other wall of the corner a little darker
            wall = np.where((x > corner)[..., None], wall * g.uniform(0.7, 1.0), wall)
        for _ in range(int(g.integers(0, 4))):  # windows (bright), pictures and doors (any colour)
            w, h = g.uniform(0.08, 0.4), g.uniform(0.1, 0.5)
            x0, y0 = g.uniform(-0.1, 1.0), g.uniform(-0.2, horizon - 0.1)
            rect = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < min(y0 + h, horizon))
            col = np.full(3, g.uniform(220, 255)) if g.uniform() < 0.4 else _random_color(g)
            wall = np.where(rect[..., None], col, wall)

        # Floor in perspective: depth 1 / (y - y_vanish), across (x - x_vanish) * depth.
        y_vanish = horizon - g.uniform(0.05, 0.6)
        x_vanish = g.uniform(-0.5, 1.5)
        depth = 1.0 / np.maximum(y - y_vanish, 1e-3)
        across = (x - x_vanish) * depth
        c0 = _wood_color(g)
        c1 = np.clip(c0 * g.uniform(0.6, 1.1) + g.normal(0, 10, 3), 0, 255)
        kind = int(g.integers(0, 3))
        if kind == 0:  # planks: seams along the depth direction, staggered ends
            width = g.uniform(0.05, 0.25)
            plank = np.floor(across / width)
            ends = np.floor(depth / g.uniform(0.8, 3.0) + 0.37 * plank)
            t = ((plank * 0.6180339 + ends * 0.41421356) % 1.0)[..., None]
            seam = (np.abs(((across / width) % 1.0) - 0.5) > 0.47)[..., None]
            floor_img = c0 * (1 - t) + c1 * t
            floor_img = np.where(seam, floor_img * 0.6, floor_img)
        elif kind == 1:  # tiles
            tile = g.uniform(0.15, 0.6)
            check = ((np.floor(across / tile) + np.floor(depth / (tile * 4.0))) % 2)[..., None]
            floor_img = c0 * (1 - check) + c1 * check
        else:  # carpet
            t = _value_noise(size, g)[..., None]
            floor_img = c0 * (0.85 + 0.3 * t)
        # Light falls off with distance on the floor too.
        floor_img = floor_img * np.clip(0.75 + 0.35 * (y - horizon), 0.5, 1.2)[..., None]
        img = np.where(floor[..., None], floor_img, wall)
        if g.uniform() < 0.6:  # skirting board along the boundary
            board = (y > boundary - g.uniform(0.01, 0.05)) & ~floor
            col = np.full(3, g.uniform(200, 255)) if g.uniform() < 0.6 else _random_color(g)
            img = np.where(board[..., None], col, img)

        # Furniture-like silhouettes: a box on legs, a thin bar (a leg, a lamp stand), an ellipse (a rug, a pot).
        for _ in range(int(g.integers(0, 4))):
            col = _random_color(g)
            shape = int(g.integers(0, 3))
            if shape == 0:
                w, h = g.uniform(0.15, 0.6), g.uniform(0.05, 0.2)
                x0, y0 = g.uniform(-0.2, 1.0), g.uniform(0.2, 0.9)
                top = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
                leg_h = g.uniform(0.05, 0.35)
                leg_w = g.uniform(0.01, 0.03)
                legs = (
                    ((np.abs(x - x0 - leg_w) < leg_w) | (np.abs(x - x0 - w + leg_w) < leg_w))
                    & (y >= y0)
                    & (y < y0 + h + leg_h)
                )
                mask = top | legs
            elif shape == 1:
                w = g.uniform(0.005, 0.04)
                x0, y0 = g.uniform(0, 1), g.uniform(-0.2, 0.8)
                mask = (np.abs(x - x0) < w) & (y >= y0) & (y < y0 + g.uniform(0.2, 0.8))
            else:
                cx, cy = g.uniform(0, 1), g.uniform(0.3, 1.1)
                rx, ry = g.uniform(0.05, 0.4), g.uniform(0.02, 0.2)
                mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0
            img = np.where(mask[..., None], col * g.uniform(0.8, 1.1), img)

        # Camera: vignetting, a slight colour cast, grain.
        r2 = (x - 0.5) ** 2 + (y - 0.5) ** 2
        img = img * (1.0 - g.uniform(0.0, 0.6) * r2)[..., None] * g.uniform(0.9, 1.1, 3)
        img = img + g.normal(0.0, g.uniform(0.0, 5.0), img.shape)
        return _to_uint8(img), self.name


def scene_backgrounds() -> RandomBackgrounds:
    """The training default: procedural rooms 50 %, textures 20 %, gradients 20 %, plain 10 % (no photos
    needed)."""
    return RandomBackgrounds(
        [(RoomBackgrounds(), 0.5), (TextureBackgrounds(), 0.2), (GradientBackgrounds(), 0.2), (PlainBackgrounds(), 0.1)]
    )


class ImageFolderBackgrounds(BackgroundSource):
    """Random square crops of the photos in a folder (searched recursively, sorted, listed once).

    Each background picks a photo, a crop whose side is a random ``scale`` (default 0.3–1) of the photo's
    shorter side at a random position, flips it left-right half the time, and resizes it to ``size``.
    Files that cannot be read are skipped with a warning. Decoded photos (reduced so that their shorter side is
    at most ``max_side`` px) are kept in an LRU cache of at most ``cache_mb`` megabytes, since decoding a JPEG
    costs more than rendering a view.

    Raises :class:`~cadsearch.errors.InputError` for a missing folder or one without readable images.
    """

    def __init__(
        self,
        folder: str | Path,
        scale: tuple[float, float] = (0.3, 1.0),
        max_side: int = 512,
        cache_mb: float = 256.0,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"background folder {str(self.folder)!r} does not exist or is not a folder")
        files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        self.files: list[Path] = []
        for path in files:  # reading headers only: cheap, and catches most broken or mislabelled files
            try:
                with Image.open(path) as im:
                    im.size  # noqa: B018 - forces the header to be parsed
                self.files.append(path)
            except Exception as exc:
                warnings.warn(f"skipping unreadable background image {path}: {exc}", RuntimeWarning, stacklevel=2)
        if not self.files:
            raise InputError(
                f"background folder {str(self.folder)!r} has no readable images "
                f"({', '.join(IMAGE_SUFFIXES)}); add some or use --backgrounds plain"
            )
        self.scale = (float(scale[0]), float(scale[1]))
        self.max_side = int(max_side)
        self.cache_bytes = int(cache_mb * 1e6)
        self.name = f"images:{self.folder.name}"
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cached_bytes = 0

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes get the file list, not the parent's decoded images.
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["_cached_bytes"] = 0
        return state

    def _load(self, path: Path) -> np.ndarray:
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        with Image.open(path) as im:
            # JPEG draft mode decodes directly at 1/2, 1/4 or 1/8 scale: much faster for big photos.
            w, h = im.size
            shrink = max(1.0, min(w, h) / self.max_side)
            if shrink > 1.0:
                im.draft("RGB", (int(w / shrink), int(h / shrink)))
            im = im.convert("RGB")
            w, h = im.size
            if min(w, h) > self.max_side:
                f = self.max_side / min(w, h)
                im = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
            arr = np.asarray(im)
        self._cache[path] = arr
        self._cached_bytes += arr.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
        return arr

    def draw(self, size: int, rng: RngLike = None) -> tuple[np.ndarray, str]:
        g = _rng(rng)
        while self.files:
            index = int(g.integers(len(self.files)))
            path = self.files[index]
            try:
                photo = self._load(path)
            except Exception as exc:  # a file that passed the header check but does not decode
                warnings.warn(f"skipping unreadable background image {path}: {exc}", RuntimeWarning, stacklevel=2)
                del self.files[index]
                continue
            h, w = photo.shape[:2]
            side = max(1, round(min(h, w) * g.uniform(*self.scale)))
            top = int(g.integers(0, h - side + 1))
            left = int(g.integers(0, w - side + 1))
            crop = Image.fromarray(photo[top : top + side, left : left + side])
            if g.uniform() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop = crop.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            return np.asarray(crop, np.uint8).copy(), f"image:{path.name}"
        raise InputError(f"background folder {str(self.folder)!r} has no readable images left")


def make_background_source(spec: str) -> BackgroundSource:
    """The source for a ``--backgrounds`` value: ``plain``, ``white``, ``gradient``, ``texture``, ``random``,
    ``rooms``, ``scenes``, or a folder of photos. Raises :class:`~cadsearch.errors.InputError` for anything else."""
    key = str(spec).strip()
    named = {
        "plain": lambda: PlainBackgrounds(),
        "white": lambda: PlainBackgrounds((255, 255, 255), name="white"),
        "gradient": GradientBackgrounds,
        "texture": TextureBackgrounds,
        "random": RandomBackgrounds,
        "rooms": RoomBackgrounds,
        "scenes": scene_backgrounds,
    }
    if key.lower() in named:
        return named[key.lower()]()
    path = Path(key).expanduser()
    if path.is_dir():
        return ImageFolderBackgrounds(path)
    raise InputError(
        f"unknown backgrounds {spec!r}: use plain, white, gradient, texture, random, rooms, scenes, "
        "or a folder of images"
    )
