"""Pictures of what a network learnt: first-layer filters, and feature maps of chosen layers for a photo.

Both read a checkpoint (so they work on what ``cadsearch train`` wrote) and write a PNG grid atomically.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.models.data import preprocess_images
from cadsearch.models.predictor import load_predictor
from cadsearch.workspace import atomic_write_bytes

__all__ = ["write_filters", "write_feature_maps", "image_grid"]


def image_grid(tiles: np.ndarray, cols: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tiles (N, h, w) or (N, h, w, 3) float in [0, 1] → one uint8 RGB grid image with ``pad`` px white gaps,
    each tile enlarged ``scale`` times (nearest neighbour, so filter pixels stay visible)."""
    tiles = np.asarray(tiles, np.float32)
    if tiles.ndim == 3:
        tiles = np.repeat(tiles[..., None], 3, axis=3)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, _ = tiles.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = tiles[i]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def _save_png(image: np.ndarray, out_png: str | Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(out_png, buf.getvalue())
    return Path(out_png)


def write_filters(checkpoint: str | Path, out_png: str | Path) -> Path:
    """First-layer filters (scratch: the first conv; transfer: the backbone stem) as a grid PNG.

    Each filter (3, k, k) is shown as an RGB tile normalised on its own (min → 0, max → 1), so weak and strong
    filters are equally visible. Returns ``out_png``.
    """
    predictor = load_predictor(checkpoint, backend="torch")
    w = predictor.model.first_conv().weight.detach().float().numpy()  # (out, 3, k, k)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    hi = w.max(axis=(1, 2, 3), keepdims=True)
    tiles = ((w - lo) / np.maximum(hi - lo, 1e-8)).transpose(0, 2, 3, 1)
    return _save_png(image_grid(tiles, scale=max(1, 48 // w.shape[-1])), out_png)


def write_feature_maps(
    checkpoint: str | Path,
    image_path: str | Path,
    out_png: str | Path,
    layers: list[str] | None = None,
    top: int = 16,
) -> Path:
    """Feature maps of ``layers`` for the photo at ``image_path``: per layer, the ``top`` channels with the
    highest mean activation, each normalised to [0, 1], as one row of tiles after the input image.

    Layer names: scratch ``conv1`` … ``conv7``; transfer ``stem``, ``block0`` … ``blockN``, ``adapter``.
    Defaults: three layers from early to late. Unknown names raise :class:`InputError` listing the valid ones.
    """
    predictor = load_predictor(checkpoint, backend="torch")
    model = predictor.model
    available = model.feature_layers()
    names = list(available)
    layers = layers or [names[0], names[len(names) // 2], names[-1]]
    for name in layers:
        if name not in available:
            raise InputError(f"unknown layer {name!r}; choose from {', '.join(names)}")
    try:
        photo = np.asarray(Image.open(image_path).convert("RGB"))
    except Exception as exc:
        raise InputError(f"cannot read image {image_path}: {exc}") from None
    x = preprocess_images([photo], predictor.input_size, predictor.mean, predictor.std)
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        available[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out.detach()))
        for n in layers
    ]
    try:
        with torch.no_grad():
            model.forward_head(model.forward_features(x))
    finally:
        for h in hooks:
            h.remove()
    tile = 64
    inp = np.asarray(Image.fromarray(photo).resize((tile, tile)), np.float32) / 255.0
    rows = []
    for name in layers:
        fmap = captured[name][0].float()  # (C, h, w)
        order = fmap.mean(dim=(1, 2)).argsort(descending=True)[:top]
        tiles = [inp]
        for c in order:
            m = fmap[c].numpy()
            m = (m - m.min()) / max(float(m.max() - m.min()), 1e-8)
            big = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize((tile, tile), Image.NEAREST))
            tiles.append(np.repeat(big[..., None], 3, axis=2).astype(np.float32) / 255.0)
        while len(tiles) < top + 1:
            tiles.append(np.ones((tile, tile, 3), np.float32))
        rows.append(np.stack(tiles))
    grid = image_grid(np.concatenate(rows), cols=top + 1)
    return _save_png(grid, out_png)
