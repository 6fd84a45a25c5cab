"""Real photos of the library's kinds of object as cutouts for the localiser's composites.

The localiser learns what an object looks like from the library's renders pasted into room photos
(:mod:`cadsearch.detect.composites`). Renders are clean: plain materials, studio light. Many users also hold product
photos of such objects on a plain or gradient backdrop (a retailer's catalogue shots). Each one keyed off its backdrop
(:func:`cadsearch.framing.autocrop.backdrop_mask`) is a :class:`~cadsearch.detect.composites.Cutout` with the real
thing's materials, light and camera: :func:`load_photo_cutouts` reads a folder or a list of such photos, and
:func:`mix_cutouts` puts them among the rendered ones at a chosen share of the pasted objects.

A photo is used only when its backdrop keys cleanly: a cluttered photo has no backdrop to key (skipped), and an object
cut by the photo's edge (its mask runs along the border) would be pasted with a straight cut through it (skipped).
Photo cutouts carry no camera angles (``polar_deg`` and ``azimuth_deg`` None): they train finding objects, not pose.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from cadsearch.detect.composites import Cutout
from cadsearch.errors import InputError
from cadsearch.framing.autocrop import backdrop_mask

__all__ = ["MAX_SIDE", "MAX_BORDER_SHARE", "photo_cutout", "object_photo_files", "load_photo_cutouts", "mix_cutouts"]

#: A photo is keyed at most this many pixels on its longer side (the composites paste objects at most 320 px).
MAX_SIDE = 320
#: Share of the photo's border pixels the object's mask may touch: more means the photo's edge cuts the object.
MAX_BORDER_SHARE = 0.03
#: An object's mask must cover at least this share of its photo (less: a speck, or the key found only noise).
MIN_AREA_SHARE = 0.03


def photo_cutout(image: np.ndarray, label: str = "") -> Cutout | None:
    """The object of a product photo cut out by keying its plain or gradient backdrop, or None when it does not key.

    The mask keeps the largest part and every part at least a tenth its size (legs, armrests), drops stray pixels
    (one opening), and its edge is softened by half a pixel (coverage, as a render's mask).

    Args:
        image: (H, W, 3) uint8 RGB.
        label: where it came from (kept as the cutout's ``view_id``).

    Returns:
        A :class:`Cutout` cropped to the object's box with one pixel of margin, ``model_id`` empty, or None: no plain
        backdrop, an object cut by the photo's edge (:data:`MAX_BORDER_SHARE`), or one under :data:`MIN_AREA_SHARE`.
    """
    fg = backdrop_mask(image)
    if fg is None:
        return None
    fg = ndimage.binary_opening(fg, iterations=1)
    labels, n = ndimage.label(fg)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    fg = np.isin(labels, np.flatnonzero(sizes >= 0.1 * sizes.max()) + 1)
    h, w = fg.shape
    border = np.concatenate([fg[0], fg[-1], fg[:, 0], fg[:, -1]])
    if border.mean() > MAX_BORDER_SHARE or fg.mean() < MIN_AREA_SHARE:
        return None
    ys, xs = np.nonzero(fg)
    y0, y1 = max(0, ys.min() - 1), min(h, ys.max() + 2)
    x0, x1 = max(0, xs.min() - 1), min(w, xs.max() + 2)
    coverage = np.clip(ndimage.gaussian_filter(fg.astype(np.float32), 0.5), 0.0, 1.0)
    return Cutout(np.ascontiguousarray(image[y0:y1, x0:x1]), coverage[y0:y1, x0:x1].copy(), view_id=label)


def object_photo_files(spec: str | Path) -> list[Path]:
    """The photos named by ``spec``: a folder (its images, recursively, sorted) or a text file listing one path per
    line (relative paths against the list's folder; blank lines and ``#`` comments skipped).

    Raises:
        InputError: ``spec`` is neither, a listed file is missing, or it names no image.
    """
    from cadsearch.render.backgrounds import IMAGE_SUFFIXES

    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    elif path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the object photo list {path}: {exc}") from None
        files = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            f = Path(line).expanduser()
            f = f if f.is_absolute() else path.parent / f
            if not f.is_file():
                raise InputError(f"object photo list {path}: no such file {line!r}")
            files.append(f)
    else:
        raise InputError(f"object photos: {path} is neither a folder nor a list of photos")
    if not files:
        raise InputError(f"object photos: no images in {path}")
    return files


def load_photo_cutouts(files: Sequence[Path], progress: bool = False) -> list[Cutout]:
    """A cutout of every photo in ``files`` whose backdrop keys (:func:`photo_cutout`); unreadable or unkeyable photos
    are skipped. Each photo is read upright (EXIF orientation) at most :data:`MAX_SIDE` px on its longer side."""
    from tqdm import tqdm

    out = []
    for f in tqdm(files, desc="object photos", unit="photo", disable=not progress):
        try:
            with Image.open(f) as im:
                im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4, 1/8 where that is enough
                im = ImageOps.exif_transpose(im).convert("RGB")
                im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                image = np.asarray(im)
        except Exception:  # noqa: BLE001 - a broken photo is simply not used
            continue
        if min(image.shape[:2]) < 16:
            continue
        cut = photo_cutout(image, str(f))
        if cut is not None:
            out.append(cut)
    return out


def mix_cutouts(renders: Sequence[Cutout], photos: Sequence[Cutout], share: float) -> list[Cutout]:
    """One pool of cutouts in which the photos make up about ``share`` of the draws (each photo repeated as often
    as that needs, at least once; the renders once each, first). ``share`` 0 or no photos: the renders alone.

    :func:`~cadsearch.detect.composites.make_composite` draws its objects uniformly from the pool, so with 1,500
    renders, 50 photos and ``share`` 0.25 each photo is in it 10 times (500 of 2,000 entries).
    """
    if not photos or share <= 0:
        return list(renders)
    if not 0 < share < 1:
        raise InputError(f"photo_share must be in [0, 1), got {share}")
    copies = max(1, round(share / (1.0 - share) * len(renders) / len(photos)))
    return list(renders) + [p for p in photos for _ in range(copies)]
