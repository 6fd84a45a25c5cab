"""Training photos for the localiser: the library's own rendered objects pasted into room photos, with exact boxes.

The render job writes every view's colour and exact coverage mask (:func:`cadsearch.render.job.load_view`), so any
number of "photos" of the library's objects in rooms can be made, each with true boxes. :func:`make_composite`
draws one, deterministically from a random generator:

- a background: a random crop, at a random aspect (4:3, 3:4, 16:9, 9:16, 1:1; longer side
  :attr:`CompositeConfig.photo_side`), of a room photo (``shared/data/backgrounds``: indoor photos without chairs,
  so beds, desks and tables become negatives; the few that do show one are left out, :func:`usable_backgrounds`),
  flipped half the time; procedural backgrounds (:class:`~cadsearch.render.backgrounds.RandomBackgrounds`) when there
  are no photos; a plain or gradient studio backdrop :attr:`CompositeConfig.studio_p` of the time;
- 0–5 objects (:class:`Cutout`: a view cut out by its mask), each scaled so its box covers a log-uniform
  2–90 % of the photo's area (its sides at most 1.1 × the photo's), flipped half the time, rolled (rotated in the
  image plane, as a tilted camera sees it: :attr:`CompositeConfig.roll_p`, ±:attr:`CompositeConfig.roll_range_deg`,
  :func:`roll_cutout`) and brightness-jittered, at a random position that may run past the edges (up to 20 % of the
  box); later objects hide earlier ones; :attr:`CompositeConfig.fill_p` of the composites instead hold one object
  filling the frame (a product shot); optional realism (contact shadows, colour harmonised with the room, feathered
  edges, table-like bands hiding an object's lower part, groups of one model side by side: off by default);
- occluders: random rectangles or ellipses cut from other backgrounds, pasted in front of everything;
- photometric noise: colour jitter, blur, sensor noise, JPEG compression.

Boxes are those of the *visible* pixels (coverage ≥ 0.5) in photo pixels ``(x0, y0, x1, y1)``, x right, y down,
exclusive ends; an object with less than :attr:`CompositeConfig.min_visible` of its pixels left visible is no
target (it is mostly hidden, so neither finding nor missing it should be rewarded). With ``return_masks`` the
objects' *visible* coverage masks (N, H, W) come too, aligned with the boxes: their maximum is the photo's
foreground (the localiser's mask head's target).

The room photos are split by :func:`split_backgrounds` (a hash of the file name): one in ten is held out of
training so that benchmarks can composite test photos over rooms the localiser never saw.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

__all__ = [
    "Cutout",
    "CompositeConfig",
    "BackgroundPhotos",
    "load_cutouts",
    "make_composite",
    "roll_cutout",
    "split_backgrounds",
    "usable_backgrounds",
    "BACKGROUNDS_WITH_CHAIRS",
    "ASPECTS",
]

#: IKEA photo ids (the ``0000NNNN`` before ``_`` of ``shared/data/backgrounds``' file names) whose photos show a chair
#: after all: office chairs at desks, armchairs, chairs at a dining table, often only in part at an edge. Picked by eye:
#: 43 ids from contact sheets of the 500 training photos (2026-12-04), 32 more from 200-px contact sheets of all 552
#: photos, each candidate then looked at 260 px tall (2026-12-06; 61 more files, 54 of them training photos). As
#: backgrounds they would teach the localiser that real chairs are background, so :func:`usable_backgrounds` leaves
#: them out of training. Sofas are not chairs here (COCO's rooms box them apart).
BACKGROUNDS_WITH_CHAIRS = frozenset(
    f"{n:08d}" for n in (52, 64, 88, 153, 165, 169, 181, 207, 292, 326, 339, 348, 366, 369, 391, 395, 397, 399,
                         400, 404, 406, 415, 424, 446, 447, 458, 459, 460, 462, 463, 472, 483, 487, 494, 497,
                         498, 499, 523, 529, 536, 538, 548, 560, 561, 562, 564, 568, 572, 577, 582, 583, 584,
                         586, 589, 591, 595, 598, 599, 600, 606, 608, 610, 623, 633, 637, 638, 639, 647, 649,
                         650, 660, 661, 683, 729, 738)
)  # fmt: skip

#: Photo aspects (width, height) the composites are drawn at.
ASPECTS = ((4, 3), (3, 4), (16, 9), (9, 16), (1, 1))


@dataclass
class Cutout:
    """One rendered view cut to its object: ``rgb`` (h, w, 3) uint8 and ``mask`` (h, w) float32 coverage [0, 1].

    ``polar_deg``, ``azimuth_deg`` (the render's camera, degrees) and ``view_id`` come from the view table when
    :func:`load_cutouts` made it (None / "" otherwise).
    """

    rgb: np.ndarray
    mask: np.ndarray
    model_id: str = ""
    polar_deg: float | None = None
    azimuth_deg: float | None = None
    view_id: str = ""


@dataclass(frozen=True)
class CompositeConfig:
    """How composites are drawn (see the module doc). Fractions are of the photo's area or side."""

    photo_side: int = 320  # longer side of a composite, pixels
    max_objects: int = 5
    empty_share: float = 0.08  # composites with no object at all
    area_range: tuple[float, float] = (0.02, 0.9)  # an object's box area / the photo's area (log-uniform)
    outside: float = 0.2  # share of an object's box that may lie past the photo's edge (each axis)
    max_side: float = 1.1  # an object's box side at most this share of the photo's side (big ones get cut off)
    occluder_p: float = 0.5  # chance of 1–2 occluders
    min_visible: float = 0.2  # visible share of an object's pixels below which it is no target
    blur_p: float = 0.3
    noise_p: float = 0.3
    jpeg_p: float = 0.5
    roll_p: float = 0.5  # chance that an object is rolled (a tilted camera); 0 = never, and no random draw for it
    roll_range_deg: float = 25.0  # a rolled object's in-plane rotation, uniform in ± this, degrees
    # chance that an object is recoloured (random per-channel gains, dark to light) and, a third of those times,
    # patterned (a room-photo crop multiplied in), as real chairs are upholstered, dark, wooden and the renders plain.
    # 0 = never, and no random draw for it (BENCHMARKS.md, object masks and the localiser's real rooms)
    recolour_p: float = 0.0
    # realism of the pasting (each 0 = never, and no random draw for it): real chairs stand on a floor in the room's
    # light, half hidden by tables and each other, their edges as soft as the photo's. Measured (BENCHMARKS.md, the
    # localiser's second round): all on (recolour, harmonise, feather, shadow 0.5, table 0.25, group 0.25) lowered the
    # synthetic clutter's top-1 from 0.690 to 0.595 and did not find more real room chairs; at half strength the
    # clutter stayed (0.680) and the room chairs too. Off by default; kept to try with other settings
    shadow_p: float = 0.0  # chance of a contact shadow (a dark, blurred ellipse under the object's base)
    harmonise_p: float = 0.0  # chance that the object's mean colour is pulled 20–70 % towards the background's
    feather_p: float = 0.0  # chance that the object's edge (coverage) is blurred by 0.5–1.5 px (as a photo's edges)
    table_p: float = 0.0  # chance that a table-like band (a room-photo crop) hides the object's lower part
    group_p: float = 0.0  # chance that a composite of 2+ objects is a group: one model at one size, side by side
    # photos of one object filling the frame (product shots, the development photos): chance of a composite with one
    # object whose box covers fill_area of the photo, centred (± 10 %), cut off where it is larger than the photo
    fill_p: float = 0.15
    fill_area: tuple[float, float] = (0.35, 1.0)
    studio_p: float = 0.1  # chance of a plain or gradient backdrop (a studio) instead of a room photo


def split_backgrounds(files: Sequence[Path], held_out: int = 10) -> tuple[list[Path], list[Path]]:
    """(training, held-out) room photos: one file in ``held_out`` (by a CRC-32 of its name) is held out, the same
    split on every machine and whatever else is in the folder."""
    train, held = [], []
    for f in files:
        (held if zlib.crc32(Path(f).name.encode()) % held_out == 0 else train).append(Path(f))
    return train, held


def usable_backgrounds(files: Sequence[Path]) -> list[Path]:
    """``files`` without the photos known to show a chair (:data:`BACKGROUNDS_WITH_CHAIRS`)."""
    return [Path(f) for f in files if Path(f).name.split("_")[0] not in BACKGROUNDS_WITH_CHAIRS]


class BackgroundPhotos:
    """Room photos decoded once (longer side at most ``max_side``), for random crops. Unreadable files are skipped.

    With no files, :meth:`crop` draws procedural backgrounds instead.
    """

    def __init__(self, files: Sequence[Path], max_side: int = 400) -> None:
        self.photos: list[np.ndarray] = []
        for path in files:
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    shrink = max(1.0, max(w, h) / max_side)
                    if shrink > 1.0:
                        im.draft("RGB", (int(w / shrink), int(h / shrink)))  # JPEG: decode at 1/2, 1/4, 1/8
                    im = im.convert("RGB")
                    if max(im.size) > max_side:
                        f = max_side / max(im.size)
                        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))))
                    self.photos.append(np.asarray(im))
            except Exception:  # noqa: BLE001 - a broken photo is simply not used
                continue

    def __len__(self) -> int:
        return len(self.photos)

    def crop(self, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
        """A random crop at aspect w:h (at least a third of the photo's shorter side), flipped half the time,
        resized to (h, w, 3) uint8."""
        if not self.photos:
            from cadsearch.render.backgrounds import RandomBackgrounds

            square = RandomBackgrounds().sample(max(w, h), rng)
            return np.asarray(Image.fromarray(square).resize((w, h), Image.Resampling.BILINEAR))
        photo = self.photos[int(rng.integers(len(self.photos)))]
        ph, pw = photo.shape[:2]
        k = rng.uniform(0.5, 1.0)
        cw = max(2, min(pw, round(k * min(pw, ph * w / h))))
        ch = max(2, min(ph, round(cw * h / w)))
        x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        im = Image.fromarray(photo[y : y + ch, x : x + cw])
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR))


def load_cutouts(
    workspace: str | Path, count: int, seed: int = 0, progress: bool = False, out_dir: str = "views"
) -> list[Cutout]:
    """Up to ``count`` rendered views of the workspace's view table (``<workspace>/<out_dir>``; a seeded sample spread
    over all models), each cut to its mask's box (coverage > 0.02, one pixel of margin), with its camera angles and
    view id."""
    from tqdm import tqdm

    from cadsearch.render.job import load_view, read_view_table

    rows = read_view_table(workspace, out_dir)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(rows), min(count, len(rows)), replace=False))
    out = []
    for i in tqdm(pick, desc="cutouts", unit="view", disable=not progress):
        rgb, mask, _ = load_view(workspace, rows[i])
        ys, xs = np.nonzero(mask > 0.02)
        if len(xs) < 16:
            continue  # an (almost) empty render: nothing to paste
        y0, y1 = max(0, ys.min() - 1), min(mask.shape[0], ys.max() + 2)
        x0, x1 = max(0, xs.min() - 1), min(mask.shape[1], xs.max() + 2)
        row = rows[i]
        out.append(Cutout(rgb[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1].copy(), row.model_id,
                          float(row.polar_deg), float(row.azimuth_deg), row.view_id))  # fmt: skip
    return out


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))


def roll_cutout(rgb: np.ndarray, alpha: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """A cutout rotated by ``degrees`` counter-clockwise (as seen in the image) about its centre, on a canvas
    enlarged to hold all of it: ``(rgb (h', w', 3) float32, alpha (h', w') float32 in [0, 1])``.

    Colour is rotated premultiplied by coverage and divided back, so the object's edges do not pick up the black
    of the canvas's new corners (bilinear interpolation; the corners get coverage 0).
    """
    a = np.asarray(alpha, np.float32)
    stack = np.concatenate([np.asarray(rgb, np.float32) * a[..., None], a[..., None]], axis=2)
    # ndimage.rotate turns the (row, column) axes: axes=(1, 0) with +angle is counter-clockwise on screen;
    # "grid-constant" interpolates against the zero canvas at the edges (plain "constant" cuts them hard)
    out = ndimage.rotate(stack, float(degrees), axes=(1, 0), reshape=True, order=1, mode="grid-constant", cval=0.0)
    a_out = np.clip(out[..., 3], 0.0, 1.0)
    colour = out[..., :3] / np.maximum(a_out, 1e-3)[..., None]
    return np.clip(colour, 0.0, 255.0).astype(np.float32), a_out.astype(np.float32)


def _paste(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    """Blend ``rgb`` with coverage ``alpha`` into float ``canvas`` at (x, y) (clipped to the canvas); returns the
    coverage placed on the full canvas (H, W) float32."""
    h, w = canvas.shape[:2]
    full = np.zeros((h, w), np.float32)
    cx0, cy0 = max(0, x), max(0, y)
    cx1, cy1 = min(w, x + alpha.shape[1]), min(h, y + alpha.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return full
    a = alpha[cy0 - y : cy1 - y, cx0 - x : cx1 - x]
    src = rgb[cy0 - y : cy1 - y, cx0 - x : cx1 - x].astype(np.float32)
    region = canvas[cy0:cy1, cx0:cx1]
    region[:] = src * a[..., None] + region * (1.0 - a[..., None])
    full[cy0:cy1, cx0:cx1] = a
    return full


def _occluder_mask(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A soft-edged rectangle or ellipse (h, w) float32 in [0, 1]."""
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    if rng.random() < 0.5:
        draw.rectangle((0, 0, w - 1, h - 1), fill=255)
    else:
        draw.ellipse((0, 0, w - 1, h - 1), fill=255)
    return np.asarray(im.filter(ImageFilter.GaussianBlur(0.8)), np.float32) / 255.0


def _recolour(rgb: np.ndarray, rng: np.random.Generator, backgrounds: BackgroundPhotos) -> np.ndarray:
    """The object in another colour, keeping its shading: per-channel gains (one overall level 0.2–1.3 times a
    colour in 0.5–1.5 per channel); a third of the time also a pattern (a crop of a room photo, normalised to mean 1,
    blended in at 30–80 %). (h, w, 3) float32 in [0, 255]."""
    h, w = rgb.shape[:2]
    gains = (rng.uniform(0.2, 1.3) * rng.uniform(0.5, 1.5, 3)).astype(np.float32)
    out = rgb * gains
    if rng.random() < 1 / 3:
        pattern = backgrounds.crop(rng, max(2, w), max(2, h)).astype(np.float32)
        pattern /= max(1.0, float(pattern.mean()))
        k = np.float32(rng.uniform(0.3, 0.8))
        out = out * (1 - k + k * pattern)
    return np.clip(out, 0, 255).astype(np.float32)


def _studio(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A plain or gradient backdrop (h, w, 3) float32, as behind a product shot."""
    from cadsearch.render.backgrounds import GradientBackgrounds, PlainBackgrounds

    source = GradientBackgrounds() if rng.random() < 0.6 else PlainBackgrounds()
    square = source.sample(max(w, h), rng)
    return np.asarray(Image.fromarray(square).resize((w, h), Image.Resampling.BILINEAR), np.float32)


def _harmonise(rgb: np.ndarray, alpha: np.ndarray, canvas: np.ndarray, x: int, y: int, t: float) -> np.ndarray:
    """The object's per-channel mean colour moved a share ``t`` of the way (as gains, 0.3–3×) towards the mean of
    the background it is pasted over (the room's light and colour cast), (h, w, 3) float32."""
    h, w = canvas.shape[:2]
    region = canvas[max(0, y) : min(h, y + alpha.shape[0]), max(0, x) : min(w, x + alpha.shape[1])]
    weight = float(alpha.sum())
    if region.size == 0 or weight < 1.0:
        return rgb
    obj = (rgb.reshape(-1, 3) * alpha.reshape(-1, 1)).sum(axis=0) / weight
    gains = np.clip(region.reshape(-1, 3).mean(axis=0) / np.maximum(obj, 1.0), 0.3, 3.0)
    return np.clip(rgb * (1.0 + t * (gains - 1.0)).astype(np.float32), 0, 255).astype(np.float32)


def _contact_shadow(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, rng: np.random.Generator) -> None:
    """Darken ``canvas`` in place under the base of an object about to be pasted at (x, y): a blurred ellipse as wide
    as the object's lowest fifth (× 0.9–1.3), 8–25 % as tall, centred on its bottom row, 25–60 % darker."""
    rows = np.nonzero(alpha.max(axis=1) >= 0.5)[0]
    if not len(rows):
        return
    bottom = int(rows[-1])
    base = alpha[max(0, bottom - max(1, alpha.shape[0] // 5)) : bottom + 1] >= 0.5
    cols = np.nonzero(base.any(axis=0))[0]
    sw = max(4, round((cols[-1] - cols[0] + 1) * rng.uniform(0.9, 1.3)))
    sh = max(2, round(sw * rng.uniform(0.08, 0.25)))
    pad = max(2, sh)
    im = Image.new("L", (sw + 2 * pad, sh + 2 * pad), 0)
    ImageDraw.Draw(im).ellipse((pad, pad, pad + sw - 1, pad + sh - 1), fill=255)
    shade = np.asarray(im.filter(ImageFilter.GaussianBlur(sh / 3)), np.float32) / 255.0 * rng.uniform(0.25, 0.6)
    cx = x + (cols[0] + cols[-1]) / 2
    sx, sy = round(cx - shade.shape[1] / 2), round(y + bottom - shade.shape[0] / 2)
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = max(0, sx), max(0, sy), min(w, sx + shade.shape[1]), min(h, sy + shade.shape[0])
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] *= (1.0 - shade[y0 - sy : y1 - sy, x0 - sx : x1 - sx])[..., None]


def _table(canvas: np.ndarray, box: tuple[int, int, int, int], backgrounds: BackgroundPhotos,
           rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Paste a table-like band in front of an object placed at ``box`` = (x, y, w, h): a room-photo crop 1.2–2.5 ×
    the object's width, from 35–70 % of its height down past its base, with a darker top edge; returns the band's
    coverage (H, W)."""
    x, y, bw, bh = box
    tw = max(4, round(bw * rng.uniform(1.2, 2.5)))
    top = y + round(bh * rng.uniform(0.35, 0.7))
    th = max(4, y + bh - top + round(bh * rng.uniform(0.05, 0.3)))
    tx = round(x + bw / 2 - tw / 2 + rng.uniform(-0.3, 0.3) * bw)
    patch = backgrounds.crop(rng, tw, th).astype(np.float32)
    edge = max(1, round(th * rng.uniform(0.03, 0.12)))
    patch[:edge] *= rng.uniform(0.4, 0.8)  # the tabletop's edge
    return _paste(canvas, np.clip(patch, 0, 255), _occluder_mask(rng, tw, th) if rng.random() < 0.3
                  else np.ones((th, tw), np.float32), tx, top)  # fmt: skip


def _photometric(image: np.ndarray, rng: np.random.Generator, cfg: CompositeConfig) -> np.ndarray:
    x = image.astype(np.float32)
    # colour: brightness × per-channel gain (white balance), contrast and saturation, as one affine map per pixel
    gain = (rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3)).astype(np.float32)
    contrast, saturation = np.float32(rng.uniform(0.7, 1.3)), np.float32(rng.uniform(0.6, 1.3))
    x *= gain
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * saturation
    mean = np.float32(x.mean())
    x = (x - mean) * contrast + mean
    if rng.random() < cfg.noise_p:
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(rng.uniform(2.0, 8.0))
    im = Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < cfg.blur_p:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.5)))
    if rng.random() < cfg.jpeg_p:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(rng.integers(30, 91)))
        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(im)


def make_composite(
    rng: np.random.Generator,
    cutouts: Sequence[Cutout],
    backgrounds: BackgroundPhotos,
    cfg: CompositeConfig = CompositeConfig(),
    n_objects: int | None = None,
    return_masks: bool = False,
    placements: list[dict] | None = None,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training photo and the boxes (and, with ``return_masks``, the visible masks) of its objects.

    Args:
        rng: the only source of randomness (same state → same composite).
        cutouts: the library's objects to paste (at least one unless ``n_objects`` is 0).
        backgrounds: room photos (or none: procedural backgrounds).
        cfg: see :class:`CompositeConfig`.
        n_objects: force this many objects (default: none with ``cfg.empty_share``, else 1–``max_objects``, fewer
            more likely).
        return_masks: also return the objects' visible coverage masks.
        placements: if a list, one dict per returned object is appended to it (same order as the boxes):
            ``cutout`` (index into ``cutouts``), ``flipped`` (mirrored left-right), ``roll_deg`` (counter-clockwise
            in the image, 0 = unrolled), ``scale`` (cutout pixels → photo pixels), ``visible`` (share of its
            pixels left visible).

    Returns:
        ``image`` (H, W, 3) uint8 with max(H, W) = ``cfg.photo_side``, ``boxes`` (N, 4) float32
        ``(x0, y0, x1, y1)`` of the visible objects, photo pixels, exclusive ends, and with ``return_masks``
        ``masks`` (N, H, W) float32 coverage in [0, 1] of each object's visible part (later objects and occluders
        removed), in the boxes' order.
    """
    aw, ah = ASPECTS[int(rng.integers(len(ASPECTS)))]
    side = cfg.photo_side
    w, h = (side, max(8, round(side * ah / aw))) if aw >= ah else (max(8, round(side * aw / ah)), side)
    studio = cfg.studio_p > 0 and rng.random() < cfg.studio_p
    canvas = _studio(rng, w, h) if studio else backgrounds.crop(rng, w, h).astype(np.float32)
    fill = cfg.fill_p > 0 and n_objects is None and len(cutouts) > 0 and rng.random() < cfg.fill_p
    if fill:
        n_objects = 1
    if n_objects is None:
        if rng.random() < cfg.empty_share:
            n_objects = 0
        else:
            weights = 1.0 / np.arange(1, cfg.max_objects + 1)  # 1 object most often, 5 least
            n_objects = int(rng.choice(np.arange(1, cfg.max_objects + 1), p=weights / weights.sum()))
    n_objects = min(n_objects, len(cutouts)) if len(cutouts) else 0
    masks: list[np.ndarray] = []  # visible coverage of each object on the canvas
    placed: list[float] = []  # pixels each object covered when pasted
    info: list[dict] = []  # how each object was placed (for ``placements``)
    lo, hi = np.log(cfg.area_range[0]), np.log(cfg.area_range[1])
    # a group (chairs around a table, in a row): one model at one size, bases on one floor line, side by side
    group = n_objects >= 2 and cfg.group_p > 0 and rng.random() < cfg.group_p
    if group:
        g_which = int(rng.integers(len(cutouts)))
        g_area = np.exp(rng.uniform(lo, min(hi, np.log(max(cfg.area_range[0], 0.6 / n_objects)))))
        g_base = rng.uniform(0.5, 1.05) * h  # the floor line (bottom of the boxes), pixels
        g_x = rng.uniform(-0.1, 0.4) * w  # left edge of the first object
        g_step = rng.uniform(0.5, 1.1)  # spacing, in object widths
    for _ in range(n_objects):
        which = g_which if group else int(rng.integers(len(cutouts)))
        cut = cutouts[which]
        ch0, cw0 = cut.mask.shape
        if fill:
            area = rng.uniform(*cfg.fill_area) * w * h
        else:
            area = (g_area if group else np.exp(rng.uniform(lo, hi))) * w * h
        k = np.sqrt(area / (cw0 * ch0))
        # a photo of one chair often shows it filling the frame, cut off at an edge: up to max_side of the photo
        k = min(k, cfg.max_side * w / cw0, cfg.max_side * h / ch0)
        cw, ch = max(4, round(cw0 * k)), max(4, round(ch0 * k))
        rgb, alpha = _resize(cut.rgb, cw, ch), np.clip(_resize(cut.mask, cw, ch), 0.0, 1.0)
        flipped = bool(rng.random() < 0.5)
        if flipped:
            rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        roll = 0.0
        if cfg.roll_p > 0 and rng.random() < cfg.roll_p:  # no draw at roll_p 0: composites as before rolls existed
            roll = float(rng.uniform(-cfg.roll_range_deg, cfg.roll_range_deg))
            rgb, alpha = roll_cutout(rgb, alpha, roll)
            ch, cw = alpha.shape
        rgb = np.clip(rgb.astype(np.float32) * rng.uniform(0.75, 1.25), 0, 255)  # the room's light, not the render's
        if cfg.recolour_p > 0 and rng.random() < cfg.recolour_p:
            rgb = _recolour(rgb, rng, backgrounds)
        if cfg.feather_p > 0 and rng.random() < cfg.feather_p:
            alpha = np.clip(ndimage.gaussian_filter(alpha, rng.uniform(0.5, 1.5)), 0.0, 1.0).astype(np.float32)
        mx, my = round(cfg.outside * cw), round(cfg.outside * ch)
        if fill:
            x = round((w - cw) / 2 + rng.uniform(-0.1, 0.1) * w)
            y = round((h - ch) / 2 + rng.uniform(-0.1, 0.1) * h)
        elif group:
            x = round(g_x + len(info) * g_step * cw + rng.uniform(-0.1, 0.1) * cw)
            y = round(g_base - ch + rng.uniform(-0.05, 0.05) * ch)
        else:
            x = int(rng.integers(-mx, max(-mx, w - cw + mx) + 1))
            y = int(rng.integers(-my, max(-my, h - ch + my) + 1))
        if cfg.harmonise_p > 0 and rng.random() < cfg.harmonise_p:
            rgb = _harmonise(rgb, alpha, canvas, x, y, rng.uniform(0.2, 0.7))
        if cfg.shadow_p > 0 and rng.random() < cfg.shadow_p:
            _contact_shadow(canvas, alpha, x, y, rng)
        cover = _paste(canvas, rgb, alpha, x, y)
        masks = [m * (1.0 - cover) for m in masks]
        masks.append(cover)
        placed.append(float((alpha >= 0.5).sum()))
        info.append({"cutout": which, "flipped": flipped, "roll_deg": roll, "scale": float(k), "box": (x, y, cw, ch)})
    if cfg.table_p > 0:
        for how in info:
            if rng.random() < cfg.table_p:
                cover = _table(canvas, how["box"], backgrounds, rng)
                masks = [mm * (1.0 - cover) for mm in masks]
    if rng.random() < cfg.occluder_p:
        for _ in range(int(rng.integers(1, 3))):
            ow = max(4, round(w * rng.uniform(0.08, 0.4)))
            oh = max(4, round(h * rng.uniform(0.08, 0.5)))
            patch = backgrounds.crop(rng, ow, oh)
            ox, oy = int(rng.integers(-ow // 4, w - ow // 2)), int(rng.integers(-oh // 4, h - oh // 2))
            cover = _paste(canvas, patch, _occluder_mask(rng, ow, oh), ox, oy)
            masks = [m * (1.0 - cover) for m in masks]
    boxes, kept = [], []
    for m, full, how in zip(masks, placed, info, strict=True):
        vis = m >= 0.5
        if full <= 0 or vis.sum() < cfg.min_visible * full:
            continue
        ys, xs = np.nonzero(vis)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        kept.append(m)
        if placements is not None:
            placements.append({k: v for k, v in how.items() if k != "box"} | {"visible": float(vis.sum() / full)})
    image = _photometric(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), rng, cfg)
    boxes_out = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not return_masks:
        return image, boxes_out
    return image, boxes_out, (np.stack(kept) if kept else np.zeros((0, h, w), np.float32)).astype(np.float32)
