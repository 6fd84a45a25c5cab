"""The searcher issue's automatic-crop benchmark: does cropping to the object before embedding help?

Queries made from fresh eval renders on the plain backdrop (``<workspace>/eval_views/``, rendered first if missing:
``--eval-views`` per model, the training size, seed 20240611, as the old ``benchmarks/accuracy.py`` made them;
object cut out by its mask):

- ``render``: the render as it is (plain backdrop, the training framing);
- ``fill``: the object at the training framing over a random room photo (``shared/data/backgrounds``), square;
- ``clutter``: the object scaled so its box's longer side is 25–60 % of the photo's shorter side, at a random
  position, over a random room-photo crop of aspect 4:3, 3:4 or 16:9 (longer side 320 px);
- ``studio``: the same over a plain or linear-gradient backdrop of random colours with mild noise (product shots);
- ``studio_large``: as ``studio`` with the object at 75–100 % of the shorter side (little zoom needed).

For every crop method of :mod:`cadsearch.framing.autocrop` (raw: any box found is used; ``auto`` with its zoom gate, as
the searcher would call it; plus ``oracle``: the mask's true box, and ``pad``: the whole photo as the box, i.e. only
the training margin) the transfer predictor sees the resulting frames; reported:
classifier top-1 (:func:`cadsearch.metrics.topk_accuracy` of ``class_probs`` against the true model), pose error
mean/median/Acc@30 (:func:`cadsearch.metrics.pose_errors_deg`, symmetry-aware with the catalog's symmetry), the
share of queries that got a crop, and the crop time. Then the labelled development photos plus their mirrors
(:func:`cadsearch.evaluate.splits.photo_split`, EXIF applied; photos with both angles): azimuth error and the
sector-balanced azimuth Acc@30 (as ``benchmarks/accuracy.py``).

Usage:
    python benchmarks/autocrop.py [WORKSPACE] [--n 300] [--eval-views 10] [--json benchmarks/results/autocrop.json]

Changed in issue #10: metrics from :mod:`cadsearch.metrics` (pose errors symmetry-aware; a render of a model the
network was not trained on counts as a top-1 miss instead of failing), photos read by ``photo_split`` (EXIF
applied; the mirror images come after all the originals), ``eval_views/`` rendered here when missing (the new
``accuracy.py`` evaluates on ``cadsearch evaluate``'s graphics split, whose random backgrounds the composites
cannot use). Same keys.

GrabCut needs ``opencv-python-headless`` (the ``crop`` extra, which ``make`` installs); without it the ``grabcut``
row is None everywhere (``auto`` never uses it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cadsearch.evaluate.run import symmetry_orders
from cadsearch.evaluate.splits import photo_split
from cadsearch.framing import MARGIN, crop_frame, frame_for, frame_query, grabcut_available
from cadsearch.imageio import read_image
from cadsearch.metrics import (
    azimuth_errors_deg,
    pose_errors_deg,
    sector_balanced_accuracy,
    summarize_pose,
    topk_accuracy,
)
from cadsearch.models import checkpoint_path, load_predictor
from cadsearch.render.job import RenderConfig, load_view, read_render_config, read_view_table, render_views

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ASPECTS = ((4, 3), (3, 4), (16, 9))
PHOTO_SIDE = 320
#: Composited scenes: (over a room photo?, range of the object box's longer side / the photo's shorter side).
SCENES = {"clutter": (True, (0.25, 0.6)), "studio": (False, (0.25, 0.6)), "studio_large": (False, (0.75, 1.0))}
METHODS = ("none", "pad", "oracle", "backdrop", "grabcut", "saliency", "auto")


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 or (H, W) float image to ``size`` = (w, h), bilinear."""
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR))
    return np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BILINEAR))


def _background(rng: np.random.Generator, files: list[Path], w: int, h: int) -> np.ndarray:
    """A random crop of a random room photo at aspect w:h, resized to (h, w, 3)."""
    im = read_image(files[rng.integers(len(files))])
    ih, iw = im.shape[:2]
    cw = min(iw, round(ih * w / h))
    ch = min(ih, round(cw * h / w))
    cw = min(cw, round(ch * w / h))
    x, y = rng.integers(0, iw - cw + 1), rng.integers(0, ih - ch + 1)
    return _resize(im[y : y + ch, x : x + cw], (w, h))


def _studio(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A plain or linear-gradient backdrop of random colours with mild sensor noise, (h, w, 3) uint8."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if rng.random() < 0.5:
        c1 = c0
    t = np.linspace(0, 1, h)[:, None, None] if rng.random() < 0.5 else np.linspace(0, 1, w)[None, :, None]
    bg = c0 + (c1 - c0) * t + rng.normal(0, 2.0, (h, w, 3))
    return np.clip(np.round(bg), 0, 255).astype(np.uint8)


def _paste(rgb: np.ndarray, mask: np.ndarray, bg: np.ndarray, x: int, y: int) -> np.ndarray:
    """Put a render (composited over its plain backdrop, coverage ``mask``) at (x, y) of ``bg``."""
    plain = np.median(rgb[mask < 0.01], axis=0) if (mask < 0.01).any() else np.zeros(3)
    out = bg.astype(np.float32)
    h, w = mask.shape
    m = mask[..., None]
    # the render is m·object + (1 − m)·plain: swap the plain part for the room photo
    patch = rgb.astype(np.float32) + (1.0 - m) * (out[y : y + h, x : x + w] - plain)
    out[y : y + h, x : x + w] = patch
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def make_queries(ws: Path, rows, files: list[Path], seed: int = 0):
    """{variant: (images, true boxes)} for the rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = {v: ([], []) for v in ("render", "fill", *SCENES)}
    for row in rows:
        rgb, mask, _ = load_view(ws, row)
        n = mask.shape[0]
        ys, xs = np.nonzero(mask >= 0.5)
        bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        out["render"][0].append(rgb)
        out["render"][1].append((bx0, by0, bx1, by1))
        side = 256
        k = side / n
        big_rgb, big_mask = _resize(rgb, (side, side)), np.clip(_resize(mask, (side, side)), 0, 1)
        out["fill"][0].append(_paste(big_rgb, big_mask, _background(rng, files, side, side), 0, 0))
        out["fill"][1].append((bx0 * k, by0 * k, bx1 * k, by1 * k))
        for variant, (room, scale) in SCENES.items():
            aw, ah = ASPECTS[rng.integers(len(ASPECTS))]
            w, h = (PHOTO_SIDE, round(PHOTO_SIDE * ah / aw)) if aw >= ah else (round(PHOTO_SIDE * aw / ah), PHOTO_SIDE)
            frac = rng.uniform(*scale)
            pad = 2  # keep the soft edge of the silhouette
            cut_rgb = rgb[max(0, by0 - pad) : by1 + pad, max(0, bx0 - pad) : bx1 + pad]
            cut_mask = mask[max(0, by0 - pad) : by1 + pad, max(0, bx0 - pad) : bx1 + pad]
            k = frac * min(w, h) / max(bx1 - bx0, by1 - by0)
            cw, ch = min(w, max(2, round(cut_rgb.shape[1] * k))), min(h, max(2, round(cut_rgb.shape[0] * k)))
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            bg = _background(rng, files, w, h) if room else _studio(rng, w, h)
            photo = _paste(_resize(cut_rgb, (cw, ch)), np.clip(_resize(cut_mask, (cw, ch)), 0, 1), bg, x, y)
            ox, oy = max(0, bx0 - pad), max(0, by0 - pad)
            sx, sy = cw / cut_rgb.shape[1], ch / cut_rgb.shape[0]
            out[variant][0].append(photo)
            out[variant][1].append((x + (bx0 - ox) * sx, y + (by0 - oy) * sy, x + (bx1 - ox) * sx, y + (by1 - oy) * sy))
    return out


def frames_for(images, boxes, method: str):
    """The frames of ``method`` for each image, and the mean crop time in ms."""
    t = time.perf_counter()
    if method == "none":
        frames = [None] * len(images)
    elif method == "pad":
        frames = [frame_for(im.shape[0], im.shape[1], None, MARGIN) for im in images]
    elif method == "oracle":
        frames = [frame_for(im.shape[0], im.shape[1], b, MARGIN) for im, b in zip(images, boxes, strict=True)]
    elif method == "auto":
        frames = [frame_query(im, "auto") for im in images]  # exactly as the searcher frames a query (zoom gate)
    else:
        frames = [crop_frame(im, method, min_zoom=0.0) for im in images]  # the single methods raw: any box found
    return frames, 1000 * (time.perf_counter() - t) / max(1, len(images))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", type=Path, nargs="?", default=Path("/tmp/bench/ws"))
    ap.add_argument("--n", type=int, default=300, help="eval renders to use")
    ap.add_argument("--eval-views", type=int, default=10, help="views per model if eval_views/ must be rendered")
    ap.add_argument("--photos", type=Path, default=SHARED / "photos" / "dev_viewpoints.csv")
    ap.add_argument("--backgrounds", type=Path, default=SHARED / "backgrounds")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "autocrop.json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ws = args.workspace
    pred = load_predictor(checkpoint_path(ws, "transfer"))
    index = {m: i for i, m in enumerate(pred.model_ids)}
    if not (ws / "eval_views" / "views.csv").is_file():
        config = RenderConfig(views=args.eval_views, size=read_render_config(ws).size, seed=20240611)
        render_views(ws, config, workers=2, out_dir="eval_views")
    rows = read_view_table(ws, "eval_views")
    rng = np.random.default_rng(1)
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(args.n, len(rows)), replace=False))]
    files = sorted(p for p in args.backgrounds.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    queries = make_queries(ws, rows, files)
    labels = np.array([index.get(r.model_id, -1) for r in rows])  # -1: not a training class, always a miss
    pol, az = np.array([r.polar_deg for r in rows]), np.array([r.azimuth_deg for r in rows])
    symmetry = symmetry_orders(ws)
    orders = np.array([symmetry.get(r.model_id, 1) for r in rows])
    results: dict = {
        "setup": {
            "workspace": str(ws),
            "checkpoint": "transfer",
            "n": len(rows),
            "margin": MARGIN,
            "grabcut_available": grabcut_available(),
            "backgrounds": len(files),
        },  # fmt: skip
    }
    print(f"{len(rows)} renders, margin {MARGIN:.3f}, grabcut available: {grabcut_available()}")
    header = f"{'set':<12} {'method':<9} {'cropped':>7} {'top1':>6} {'pose mean':>9} {'median':>7} {'crop ms':>7}"
    print(header)
    for variant, (images, boxes) in queries.items():
        results[variant] = {}
        for method in METHODS:
            if method == "pad" and variant == "render":
                continue
            frames, ms = frames_for(images, boxes, method)
            p = pred.predict(images, frames=frames)
            pose = summarize_pose(pose_errors_deg(pol, az, p.polar_deg, p.azimuth_deg, orders))
            r = {
                "cropped": float(np.mean([f is not None for f in frames])),
                "top1": topk_accuracy(p.class_probs, labels, 1),
                "pose_mean_deg": pose["mean"],
                "pose_median_deg": pose["median"],
                "acc30": pose["acc30"],
                "crop_ms": ms,
            }
            results[variant][method] = r
            print(f"{variant:<12} {method:<9} {r['cropped']:7.2f} {r['top1']:6.3f} {r['pose_mean_deg']:9.1f} "
                  f"{r['pose_median_deg']:7.1f} {ms:7.1f}", flush=True)  # fmt: skip
    if args.photos.exists():
        split = photo_split(args.photos, mirror=True)  # every photo, then its mirror image (φ → 360° − φ)
        labelled = [q for q in split.queries if q.polar_deg is not None and q.azimuth_deg is not None]
        imgs = [q.image() for q in labelled]
        az_true = np.array([q.azimuth_deg for q in labelled], dtype=np.float64)
        pol_true = np.array([q.polar_deg for q in labelled], dtype=np.float64)
        results["photos"] = {}
        print(f"\n{len(imgs)} dev photos incl. mirrors")
        print(f"{'method':<9} {'cropped':>7} {'az acc30 bal':>12} {'az median':>9} {'pose median':>11} {'crop ms':>7}")
        for method in METHODS:
            if method == "oracle":
                continue
            frames, ms = frames_for(imgs, [None] * len(imgs), method)
            q = pred.predict(imgs, frames=frames)
            az_err = azimuth_errors_deg(az_true, q.azimuth_deg)
            az_summary = summarize_pose(az_err)
            pose_summary = summarize_pose(pose_errors_deg(pol_true, az_true, q.polar_deg, q.azimuth_deg))
            r = {
                "n": len(imgs),
                "cropped": float(np.mean([f is not None for f in frames])),
                "azimuth_acc30_sector_balanced": float(sector_balanced_accuracy(az_err, az_true, 30.0, 8).balanced),
                "azimuth_acc30": az_summary["acc30"],
                "azimuth_median_deg": az_summary["median"],
                "pose_median_deg": pose_summary["median"],
                "crop_ms": ms,
            }
            results["photos"][method] = r
            print(f"{method:<9} {r['cropped']:7.2f} {r['azimuth_acc30_sector_balanced']:12.3f} "
                  f"{r['azimuth_median_deg']:9.1f} {r['pose_median_deg']:11.1f} {ms:7.1f}", flush=True)  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
