"""Training data: rendered views pre-loaded into RAM, splits, and batched augmentations aimed at real photos.

Views are small (128 px), so all of them are decoded once into uint8 arrays (:class:`ViewBank`, ~1 GB for
15,600 views of 128 × 128 × 4) and augmented a whole batch at a time in torch (:class:`Augmenter`): on two CPU
cores a per-image PIL pipeline in DataLoader workers would steal the cores the network trains on.

Image convention (the *object-centred square*): renders frame the object whole and centred (the camera distance
fits the unit sphere). A photo is framed the same way by :mod:`cadsearch.framing` (padded to a square, or
squared around the object's box) and resized to the input size (:func:`preprocess_images`), the same for
training, validation and prediction.

Augmentations, in order (each with its probability in :class:`AugmentConfig`): object colour gain → scale and
translation jitter with partial truncation, and horizontal flip (azimuth relabelled φ → 360° − φ) → composite
over a background through the render's mask (procedural rooms, gradients, textures, crops of a photo folder),
with other library objects (other views of the batch) standing beside and behind it, cut by the frame →
sometimes another object in front, covering part of it → occluding patches → brightness/contrast/saturation
jitter → grayscale → blur → noise → JPEG compression. The clutter is the library's own: no photos needed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from cadsearch.errors import InputError
from cadsearch.framing import Frame, frame_image
from cadsearch.render.backgrounds import (
    BackgroundSource,
    ImageFolderBackgrounds,
    RandomBackgrounds,
    make_background_source,
)
from cadsearch.render.job import ViewRow, read_view_table

__all__ = [
    "ViewBank",
    "Splits",
    "make_splits",
    "AugmentConfig",
    "BackgroundPool",
    "Augmenter",
    "flip_azimuth",
    "preprocess_images",
    "normalise",
]


def flip_azimuth(azimuth_deg):
    """Azimuth of the mirror image: φ → (360° − φ) mod 360 (a left/right flip mirrors the camera about the
    object's YZ plane: x → −x)."""
    return (360.0 - np.asarray(azimuth_deg, np.float64)) % 360.0


@dataclass
class ViewBank:
    """All views of some rows, in RAM.

    Attributes:
        rgb: (N, S, S, 3) uint8, as rendered (object over its render background).
        mask: (N, S, S) uint8 coverage, 255 = object.
        labels: (N,) int64 class index into ``model_ids`` (-1 for models outside it).
        polar_deg, azimuth_deg: (N,) float64 camera angles.
        model_of: (N,) model id of each view.
        symmetry: (N,) int64 ``symmetry_order`` of each view's model about its up axis (1 none, n n-fold, 0
            continuous; see :mod:`cadsearch.metrics`).
    """

    rgb: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    polar_deg: np.ndarray
    azimuth_deg: np.ndarray
    model_of: list[str]
    symmetry: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def load(
        cls,
        workspace: str | Path,
        rows: Sequence[ViewRow],
        model_ids: Sequence[str],
        size: int | None = None,
        progress: bool = True,
        symmetry: Mapping[str, int] | None = None,
    ) -> ViewBank:
        """Decode ``rows`` (optionally resized, antialiased, to ``size`` px). Labels index ``model_ids``;
        ``symmetry`` maps a model id to its ``symmetry_order`` (missing: 1, no symmetry)."""
        root = Path(workspace)
        index = {m: i for i, m in enumerate(model_ids)}
        n = len(rows)
        first = Image.open(root / rows[0].path) if n else None
        s = size or (first.size[0] if first else 1)
        rgb = np.zeros((n, s, s, 3), np.uint8)
        mask = np.zeros((n, s, s), np.uint8)
        for i, r in enumerate(tqdm(rows, desc="load views", unit="view", disable=not progress, mininterval=1)):
            im = Image.open(root / r.path).convert("RGB")
            mk = Image.open(root / r.mask_path).convert("L")
            if im.size != (s, s):
                im = im.resize((s, s), Image.Resampling.BILINEAR, reducing_gap=2.0)
                mk = mk.resize((s, s), Image.Resampling.BILINEAR, reducing_gap=2.0)
            rgb[i], mask[i] = np.asarray(im), np.asarray(mk)
        return cls(
            rgb=rgb,
            mask=mask,
            labels=np.array([index.get(r.model_id, -1) for r in rows], np.int64),
            polar_deg=np.array([r.polar_deg for r in rows], np.float64),
            azimuth_deg=np.array([r.azimuth_deg for r in rows], np.float64),
            model_of=[r.model_id for r in rows],
            symmetry=np.array([(symmetry or {}).get(r.model_id, 1) for r in rows], np.int64),
        )


@dataclass
class Splits:
    """View rows split three ways, and the training classes.

    ``train``: views of the training models; ``val_views``: held-out views of the same models (pose and
    recognition); ``val_models``: all views of models never trained on (embedding generalisation).
    """

    model_ids: list[str]
    train: list[ViewRow]
    val_views: list[ViewRow]
    val_models: list[ViewRow]
    holdout_model_ids: list[str]


def make_splits(
    workspace: str | Path,
    holdout_models: int = 3,
    val_fraction: float = 0.1,
    seed: int = 0,
    extra_rows: Sequence[ViewRow] = (),
) -> Splits:
    """Split the view table of ``workspace``: ``holdout_models`` whole models (chosen by ``seed``; fewer if that
    would leave under 2 training models) and a ``val_fraction`` of each remaining model's views. Deterministic
    for a seed.

    ``extra_rows``: views of training-only models (:mod:`cadsearch.models.extras`), all trained on: never held
    out, never validated on. Their models come after the workspace's in ``model_ids``, and the workspace's split is
    drawn exactly as without them (same held-out models, same validation views, same class indices)."""
    rows = read_view_table(workspace)
    by_model: dict[str, list[ViewRow]] = {}
    for r in rows:
        by_model.setdefault(r.model_id, []).append(r)
    models = sorted(by_model)
    if len(models) < 2:
        raise InputError(
            f"training needs at least 2 models, the workspace has {len(models)}; add models with "
            "`cadsearch library generate-chairs N` and re-render"
        )
    holdout_models = max(0, min(holdout_models, len(models) - 2))  # small libraries: hold out fewer
    rng = np.random.default_rng(seed)
    held = sorted(rng.choice(models, size=holdout_models, replace=False).tolist()) if holdout_models else []
    train_ids = [m for m in models if m not in held]
    train, val = [], []
    for m in train_ids:
        views = by_model[m]
        perm = rng.permutation(len(views))
        n_val = max(1, round(val_fraction * len(views))) if len(views) > 1 and val_fraction > 0 else 0
        val += [views[i] for i in sorted(perm[:n_val])]
        train += [views[i] for i in sorted(perm[n_val:])]
    extra_ids = sorted({r.model_id for r in extra_rows})
    if set(extra_ids) & set(models):
        raise InputError(f"training-only models are also the workspace's: {sorted(set(extra_ids) & set(models))[:3]}")
    return Splits(train_ids + extra_ids, train + list(extra_rows), val, [r for m in held for r in by_model[m]], held)


class BackgroundPool:
    """A pool of ready backgrounds (P, S, S, 3) uint8, redrawn per epoch from (seed, epoch).

    ``spec`` is a background kind (``random``, ``gradient``, ``texture``, ``plain``, ``white``) or a folder of
    photos; with a folder, 60 % of the pool are photo crops and 40 % procedural (gradients, textures, plain).
    """

    def __init__(self, spec: str, size: int, pool_size: int = 512) -> None:
        self.spec, self.size, self.pool_size = spec, size, pool_size
        source = make_background_source(spec)
        self.sources: list[tuple[BackgroundSource, float]]
        if isinstance(source, ImageFolderBackgrounds):
            self.sources = [(source, 0.6), (RandomBackgrounds(), 0.4)]
        else:
            self.sources = [(source, 1.0)]
        self.images = np.zeros((0, size, size, 3), np.uint8)

    def refresh(self, seed: int, progress: bool = False) -> np.ndarray:
        """Redraw the pool deterministically from ``seed``; returns it."""
        rng = np.random.default_rng(seed)
        weights = np.array([w for _, w in self.sources])
        picks = rng.choice(len(self.sources), size=self.pool_size, p=weights / weights.sum())
        out = np.zeros((self.pool_size, self.size, self.size, 3), np.uint8)
        for i in tqdm(range(self.pool_size), desc="backgrounds", disable=not progress, leave=False):
            out[i] = self.sources[picks[i]][0].sample(self.size, rng)
        self.images = out
        return out


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the augmentations (``p_*`` are per-image probabilities)."""

    scale: tuple[float, float] = (0.8, 1.2)  # zoom of the object; > 1 enlarges (and may truncate it)
    translate: float = 0.12  # max shift, fraction of the image half-width
    p_flip: float = 0.5
    roll_deg: float = 0.0  # max camera roll (in-plane turn of the object, either way), degrees; 0 = none
    p_roll: float = 0.5  # share of the images turned, when roll_deg > 0
    p_background: float = 0.9  # else the render's own background stays
    p_object_color: float = 0.5  # per-channel gain on the object only (real chairs come in any colour)
    p_clutter: float = 0.4  # other library objects beside/behind the object (needs a background from the pool)
    p_clutter_front: float = 0.15  # another object in front, covering an edge of the object
    p_occlude: float = 0.25
    p_color: float = 0.8
    p_gray: float = 0.1
    p_blur: float = 0.25
    p_noise: float = 0.3
    p_jpeg: float = 0.3

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (identity geometry, nothing random)."""
        return cls(scale=(1.0, 1.0), translate=0.0, **{f.name: 0.0 for f in fields(cls) if f.name.startswith("p_")})


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, 3, S, S) float in [0, 1] → normalised with per-channel ``mean``/``std``."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def _blur(x: torch.Tensor, passes: int) -> torch.Tensor:
    """Approximately Gaussian blur of (B, 3, S, S): ``passes`` 3×3 box filters (σ ≈ 0.8 · √passes px).
    Box filters via ``avg_pool2d`` cost a fraction of a depthwise convolution on CPU."""
    for _ in range(passes):
        x = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return x


def _clutter_layer(
    source: torch.Tensor, g: torch.Generator, out_size: int, distance: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Other objects of the batch, moved aside: (B, 4, S0, S0) premultiplied RGB + alpha → the same objects
    rolled to other batch positions (each image gets another image's object), zoomed 0.55–1.1, flipped half the
    time, and shifted by ``distance`` (in half-image widths, mostly sideways, as furniture stands on a floor),
    so that they are cut by the frame. Returns (B, 3, S, S) premultiplied RGB and (B, 1, S, S) alpha."""
    b = source.shape[0]
    offset = int(torch.randint(1, max(b, 2), (1,), generator=g)) if b > 1 else 0
    src = source.roll(offset, 0)
    zoom = 0.55 + 0.55 * torch.rand(b, generator=g)
    radius = distance[0] + (distance[1] - distance[0]) * torch.rand(b, generator=g)
    side = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    angle = (torch.rand(b, generator=g) - 0.5) * 1.4  # ±40° around the horizontal
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, 0, 2] = -side * radius * torch.cos(angle) / zoom
    theta[:, 1, 2] = -radius * torch.sin(angle) / zoom
    grid = F.affine_grid(theta, [b, 4, out_size, out_size], align_corners=False)
    warped = F.grid_sample(src, grid, align_corners=False, padding_mode="zeros")
    return warped[:, :3], warped[:, 3:]


class Augmenter:
    """Batched augmentation: uint8 views + masks → float images (B, 3, S_out, S_out) in [0, 1] and azimuths.

    Deterministic for a seed: all randomness comes from one ``torch.Generator`` and one numpy Generator.
    """

    def __init__(self, out_size: int, config: AugmentConfig | None = None, backgrounds: np.ndarray | None = None):
        self.out_size = out_size
        self.cfg = config or AugmentConfig()
        self.backgrounds = backgrounds  # (P, out_size, out_size, 3) uint8, or None

    def __call__(
        self, rgb: np.ndarray, mask: np.ndarray, azimuth_deg: np.ndarray, seed: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Augment one batch.

        Args:
            rgb: (B, S, S, 3) uint8 views; mask: (B, S, S) uint8 coverage; azimuth_deg: (B,) float64.
            seed: seed of this batch (e.g. hash of run seed, epoch, step).

        Returns:
            images (B, 3, out, out) float32 in [0, 1]; azimuths (B,) float64 after flips (φ → 360 − φ).
        """
        cfg, b, s = self.cfg, len(rgb), self.out_size
        g = torch.Generator().manual_seed(int(seed) % (2**63))
        nrng = np.random.default_rng(int(seed) % (2**63))

        def coin(p: float) -> torch.Tensor:
            return torch.rand(b, generator=g) < p

        def uniform(lo: float, hi: float, shape=None) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(shape or (b,), generator=g)

        img = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0
        alpha = torch.from_numpy(mask).float().unsqueeze(1) / 255.0
        # Object colour: per-channel gain on the object only (the render's material colour is arbitrary).
        gain = torch.where(coin(cfg.p_object_color).view(b, 1), uniform(0.6, 1.4, (b, 3)), torch.ones(b, 3))
        img = (img * gain.view(b, 3, 1, 1)).clamp(0, 1)

        # Geometry: zoom, shift and flip the object (premultiplied by alpha, so edges resample cleanly).
        flip = coin(cfg.p_flip)
        zoom = uniform(*cfg.scale)
        shift = uniform(-cfg.translate, cfg.translate, (b, 2))
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = torch.where(flip, -1.0, 1.0) / zoom
        theta[:, 1, 1] = 1.0 / zoom
        theta[:, :, 2] = -shift
        if cfg.roll_deg > 0:
            # camera roll: the object turned in the image (labels unchanged: roll moves no camera direction);
            # sampling at M(−ρ)·p turns the content counter-clockwise by ρ
            rho = torch.deg2rad(uniform(-cfg.roll_deg, cfg.roll_deg)) * coin(cfg.p_roll).float()
            c, sn = torch.cos(rho), torch.sin(rho)
            turn = torch.stack([torch.stack([c, -sn], 1), torch.stack([sn, c], 1)], 1)  # (B, 2, 2)
            theta[:, :, :2] = theta[:, :, :2] @ turn
        identity = (
            not flip.any()
            and bool((zoom == 1).all())
            and bool((shift == 0).all())
            and rgb.shape[1] == s
            and cfg.roll_deg <= 0
        )
        if identity:
            obj, a = img * alpha, alpha
        else:
            grid = F.affine_grid(theta, [b, 4, s, s], align_corners=False)
            warped = F.grid_sample(torch.cat([img * alpha, alpha], 1), grid, align_corners=False, padding_mode="zeros")
            obj, a = warped[:, :3], warped[:, 3:]
        # The render's own background, warped the same way, stays where no new background is drawn.
        own_bg = img * (1 - alpha)
        if not identity:
            own_bg = F.grid_sample(own_bg, grid, align_corners=False, padding_mode="border")
        x = obj + own_bg
        objects = torch.cat([img * alpha, alpha], 1)  # the batch's objects, the source of clutter
        if self.backgrounds is not None and len(self.backgrounds):
            use_bg = coin(cfg.p_background).view(b, 1, 1, 1)
            idx = torch.randint(len(self.backgrounds), (b,), generator=g)
            pool = torch.from_numpy(self.backgrounds[idx.numpy()]).permute(0, 3, 1, 2).float() / 255.0
            pool = torch.where(coin(0.5).view(b, 1, 1, 1), pool.flip(-1), pool)
            clutter = coin(cfg.p_clutter).view(b, 1, 1, 1)
            if clutter.any():
                c_rgb, c_a = _clutter_layer(objects, g, s, (0.7, 1.5))
                pool = torch.where(clutter, c_rgb + (1 - c_a) * pool, pool)
            x = torch.where(use_bg, obj + (1 - a) * pool, x)
        front = coin(cfg.p_clutter_front).view(b, 1, 1, 1)
        if front.any():
            f_rgb, f_a = _clutter_layer(objects, g, s, (0.9, 1.4))
            x = torch.where(front, f_rgb + (1 - f_a) * x, x)
        x = x.clamp(0, 1)

        # Occluding patches: a rectangle of a random colour or of another background.
        occ = coin(cfg.p_occlude)
        if occ.any():
            yy = torch.arange(s).view(1, s, 1).float() / s
            xx = torch.arange(s).view(1, 1, s).float() / s
            w, h = uniform(0.1, 0.4), uniform(0.1, 0.4)
            x0, y0 = uniform(0, 1) - w / 2, uniform(0, 1) - h / 2
            rect = (
                (xx >= x0.view(b, 1, 1))
                & (xx < (x0 + w).view(b, 1, 1))
                & (yy >= y0.view(b, 1, 1))
                & (yy < (y0 + h).view(b, 1, 1))
            )
            rect = (rect & occ.view(b, 1, 1)).unsqueeze(1)
            fill = uniform(0, 1, (b, 3)).view(b, 3, 1, 1).expand(b, 3, s, s)
            if self.backgrounds is not None and len(self.backgrounds):
                other = torch.from_numpy(
                    self.backgrounds[torch.randint(len(self.backgrounds), (b,), generator=g).numpy()]
                )
                other = other.permute(0, 3, 1, 2).float() / 255.0
                fill = torch.where(coin(0.5).view(b, 1, 1, 1), other, fill)
            x = torch.where(rect, fill, x)

        # Photometric: brightness, contrast, saturation.
        col = coin(cfg.p_color).view(b, 1, 1, 1)
        bright = torch.where(col, uniform(0.65, 1.35).view(b, 1, 1, 1), torch.ones(b, 1, 1, 1))
        contrast = torch.where(col, uniform(0.65, 1.35).view(b, 1, 1, 1), torch.ones(b, 1, 1, 1))
        sat = torch.where(col, uniform(0.5, 1.5).view(b, 1, 1, 1), torch.ones(b, 1, 1, 1))
        x = x * bright
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
        x = gray + (x - gray) * sat
        to_gray = coin(cfg.p_gray).view(b, 1, 1, 1)
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
        x = torch.where(to_gray, gray, x).clamp(0, 1)

        # Blur: three strengths, each applied to its share of the batch.
        blur = coin(cfg.p_blur)
        if blur.any():
            level = torch.randint(3, (b,), generator=g)
            scale = max(1, round(s / 96))  # stronger at large inputs, so the blur is similar relative to the object
            for k in range(3):
                sel = blur & (level == k)
                if sel.any():
                    x[sel] = _blur(x[sel], (k + 1) * scale)
        noise = coin(cfg.p_noise).view(b, 1, 1, 1)
        if noise.any():
            std = uniform(0.0, 0.05).view(b, 1, 1, 1)
            x = torch.where(noise, x + std * torch.randn(x.shape, generator=g), x).clamp(0, 1)

        # JPEG: Pillow round trip of the chosen images (quality 25–90), the one non-vectorised step.
        jpeg = coin(cfg.p_jpeg).numpy()
        if jpeg.any():
            x = x.contiguous()
            for i in np.flatnonzero(jpeg):
                u8 = (x[i].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(u8).save(buf, format="JPEG", quality=int(nrng.integers(25, 91)))
                back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
                x[i] = torch.from_numpy(back.copy()).permute(2, 0, 1).float() / 255.0

        az = np.where(flip.numpy(), flip_azimuth(azimuth_deg), np.asarray(azimuth_deg, np.float64))
        return x.float(), az


def preprocess_images(
    images: Sequence[np.ndarray] | np.ndarray,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    frames: Sequence[Frame | None] | None = None,
) -> torch.Tensor:
    """Images (any size, RGB uint8 HWC or grayscale HW) → normalised (N, 3, size, size) float32 tensor.

    Each image is framed as the object-centred square (:func:`~cadsearch.framing.frame_image`): the whole
    image padded to a square, or ``frames[i]`` (e.g. around an automatically found object) where given.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, np.ndarray):
        images = [images]
    frames = list(frames) if frames is not None else [None] * len(images)
    if len(frames) != len(images):
        raise ValueError(f"{len(frames)} frames for {len(images)} images")
    if not len(images):
        return torch.zeros((0, 3, size, size))
    batch = np.stack([frame_image(im, size, f) for im, f in zip(images, frames, strict=True)])
    x = torch.from_numpy(batch.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    return normalise(x, mean, std)
