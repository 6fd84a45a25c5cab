"""Registration benchmark (issue #15): silhouette IoU and pose error with roll, before and after render-and-compare.

**Composites.** Library models rendered at a random pose (polar 40–100°, any azimuth) and pasted into held-out room
photos (``shared/data/backgrounds``, the tenth the localiser never trains on) with a random roll (±25°), a size
(the object's box 20–70 % of the photo's longer side) and a position; the true mask and pose are known. Each
composite goes through the product's search (``Searcher.search``, crop as the workspace's default: the detector
when trained) without registration, then:

- *before*: the top model at the search's pose, roll 0, placed as the overlay places it without registration (fitted
  to the detection box, else the square the network saw);
- *after*: the top-5 models each registered (``Registrar``) against the product's object mask (the detector's mask
  head, else a plain backdrop: none on room photos);
- *true mask*: the same refinement against the composite's exact mask (what the refinement can do with a perfect
  mask), and *true model*: the true model registered (from the search's pose for it, else the top model's), to
  separate registration from recognition;
- *the product*: ``Searcher.search`` with its own registration (the answer a user gets), beside the same search
  without each of its steps (``ABLATIONS``: the look-alike check, the outline ranking with ``outline_rank=1``, the
  outline-twin check, the upright pass, the other starts, the far starts, the far starts of poorly fitting
  registered models; ``--ablations`` picks some), on the composites and on the development
  photos, with each search's time (on the composites run in that order on each composite, so the later ones find the
  meshes already loaded; each development photo is asked of every variant in turn). The contact sheet
  ``WORKSPACE/reports/registration/composites.png`` shows the product's answers on the first 24 (true outline red).

Silhouette IoU is measured in photo pixels (the placed render's coverage ≥ 0.5 against the true mask), pose error
with roll by :func:`cadsearch.metrics.rotation_errors_deg` (symmetry-aware), and refinement time per model.

**Development photos.** ``dev_viewpoints.csv`` (high-confidence rows, and mirrored) answered with and without
registration: sector-balanced azimuth Acc@30 and median azimuth error, as ``benchmarks/real_photos.py``, and a
contact sheet of 24 registered overlays (``WORKSPACE/reports/registration/dev_overlays.png``) to look at.

Prints a table and writes ``benchmarks/results/registration.json``.

Usage:
    python benchmarks/registration.py WORKSPACE [--arch transfer] [--composites 60] [--seed 0] [--no-photos]
        [--refine KEY=VALUE ...] [--ablations NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from accuracy import SHARED
from PIL import Image, ImageDraw
from real_photos import high_confidence, summarise

from cadsearch.detect.composites import BackgroundPhotos, split_backgrounds
from cadsearch.detect.masks import frame_mask
from cadsearch.evaluate.run import IndexAnswerer, answer_split, symmetry_orders
from cadsearch.evaluate.splits import photo_split
from cadsearch.framing import frame_for
from cadsearch.metrics import rotation_errors_deg
from cadsearch.register import Placement, RefineConfig, Registrar, object_mask, warp_render
from cadsearch.register.masks import restrict_to_box
from cadsearch.render.cameras import Camera
from cadsearch.render.raster import RasterRenderer
from cadsearch.search import Searcher
from cadsearch.search.overlay import fit_to_box, render_overlay
from cadsearch.search.searcher import registration_alternatives
from cadsearch.workspace import atomic_open, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
RENDER = 320  # side of the renders pasted into composites and of those placed to measure IoU


def make_composite(rng: np.random.Generator, mesh: Any, photos: BackgroundPhotos, renderer: RasterRenderer):
    """One composite: ``(photo (H, W, 3) uint8, true mask (H, W) bool, (polar, azimuth, roll), placement)``."""
    polar, azimuth, roll = rng.uniform(40, 100), rng.uniform(0, 360), rng.uniform(-25, 25)
    out = renderer.render(mesh, Camera(polar, azimuth), light_seed=int(rng.integers(2**31)))
    w, h = (480, 360) if rng.random() < 0.6 else (360, 480)
    # the object's box at side = RENDER (1:1), to scale it to the drawn size
    _, probe = warp_render(Placement(RENDER, RENDER, RENDER, roll), out.rgb, out.alpha, 2 * RENDER, 2 * RENDER)
    ys, xs = np.nonzero(probe >= 0.5)
    bw, bh = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
    k = rng.uniform(0.2, 0.7) * max(w, h) / max(bw, bh)
    k = min(k, 0.95 * w / bw, 0.95 * h / bh)  # the whole object in the photo
    ox, oy = (xs.min() + xs.max() + 1) / 2 - RENDER, (ys.min() + ys.max() + 1) / 2 - RENDER  # box centre offset
    bx, by = rng.uniform(k * bw / 2, w - k * bw / 2), rng.uniform(k * bh / 2, h - k * bh / 2)
    placement = Placement(bx - k * ox, by - k * oy, RENDER * k, roll)
    rgb, alpha = warp_render(placement, out.rgb, out.alpha, h, w)
    background = photos.crop(rng, w, h).astype(np.float32) * rng.uniform(0.8, 1.2)
    photo = np.clip(rgb * rng.uniform(0.8, 1.2) + (1.0 - alpha[..., None]) * background + 0.5, 0, 255)
    return photo.astype(np.uint8), alpha >= 0.5, (polar, azimuth, roll), placement


def placed_iou(renderer, mesh, pose: tuple[float, float], placement: Placement, truth: np.ndarray) -> float:
    """IoU in photo pixels of the model rendered at ``pose`` and placed at ``placement`` with the true mask."""
    out = renderer.render(mesh, Camera(pose[0], pose[1] % 360.0))
    _, alpha = warp_render(placement, out.rgb, out.alpha, *truth.shape)
    a = alpha >= 0.5
    union = np.logical_or(a, truth).sum()
    return float(np.logical_and(a, truth).sum() / union) if union else 1.0


def placement_before(renderer, mesh, match, obj, h: int, w: int) -> Placement:
    """Where the overlay put a match before registration: its silhouette box fitted to the detection box
    (:func:`cadsearch.search.overlay.fit_to_box`), else the square the network looked at."""
    frame = obj.frame if obj.frame is not None else frame_for(h, w)
    if obj.detection_score is None:
        return Placement.from_frame(frame)
    alpha = renderer.render(mesh, Camera(match.polar_deg, match.azimuth_deg % 360.0)).alpha
    return fit_to_box(alpha, obj.box) or Placement.from_frame(frame)


#: The product's ablations, each without one step: (name, Searcher option, its value).
ABLATIONS = (
    ("no_check", "look_alikes", False),
    ("no_outline", "outline_rank", 1),
    ("no_twins", "outline_twins", False),
    ("no_upright", "upright_pass", False),
    ("no_other_starts", "other_starts", False),
    ("no_far_starts", "far_starts", False),
    ("no_far_starts_registered", "far_starts_below", 0.0),
)


def stats(values: list[float]) -> dict[str, float | int | None]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if not len(v):
        return {"n": 0, "mean": None, "median": None}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90))}  # fmt: skip


def run_composites(
    ws: Path, searcher: Searcher, n: int, seed: int, sheet: Path, config: RefineConfig = RefineConfig()
) -> dict[str, Any]:
    library = searcher.library
    symmetry = symmetry_orders(ws)
    ids = sorted(set(searcher.model_ids))
    held = split_backgrounds(sorted((SHARED / "backgrounds").glob("*.*")))[1]
    if not held:  # BackgroundPhotos would paste onto procedural backdrops: other composites, other numbers
        raise SystemExit(f"no room photos in {SHARED / 'backgrounds'}: the composites are pasted onto them")
    photos = BackgroundPhotos(held, max_side=640)
    registrar = Registrar(library, config)
    product = _with_refine(searcher, 1, config)
    # the product without one of its steps: the look-alike check, the outline ranking, the outline-twin check
    ablations = {name: _with_refine(searcher, 1, config, **{option: value}) for name, option, value in ABLATIONS}
    renderer = RasterRenderer(size=RENDER, samples=4)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    pictures: list[np.ndarray] = []
    for i in range(n):
        model_id = ids[int(rng.integers(len(ids)))]
        mesh = library.mesh(model_id)
        photo, truth, pose, _ = make_composite(rng, mesh, photos, renderer)
        h, w = truth.shape
        result = searcher.search(photo, k=5, refine_top=0)
        obj = result.objects[0]
        order = symmetry.get(model_id, 1)
        top = obj.results[0]
        top_mesh = library.mesh(top.model_id)
        row: dict[str, Any] = {"model_id": model_id, "category": library.get(model_id).category,
                               "top1": top.model_id, "found": top.model_id == model_id,
                               "detected": obj.detection_score is not None}  # fmt: skip
        before = placement_before(renderer, top_mesh, top, obj, h, w)
        row["iou_before"] = placed_iou(renderer, top_mesh, (top.polar_deg, top.azimuth_deg), before, truth)
        row["pose_before"] = float(rotation_errors_deg([pose], [[top.polar_deg, top.azimuth_deg, 0.0]], order)[0])
        frame = obj.frame if obj.frame is not None else frame_for(h, w)
        found = object_mask(photo, frame, searcher.localiser)
        # the true mask at the product mask's size (the detector's input size, e.g. 384), so the two compare pixel
        # by pixel; 256 when there is no product mask
        size = found[0].shape[0] if found is not None else 256
        masks: dict[str, np.ndarray | None] = {"product": None, "true": frame_mask(truth, size, frame)}
        # the starts besides each model's estimate, as the product's registration has them (the pose head's other
        # modes where the mask can be trusted; the true mask always can)
        starts: dict[str, list] = {"true": registration_alternatives(obj, masks["true"], frame, "backdrop")}
        if found is not None:
            target = found[0]
            masks["product"] = restrict_to_box(target, frame, obj.box) if obj.detection_score is not None else target
            starts["product"] = registration_alternatives(obj, masks["product"], frame, found[1])
            row["mask_trusted"] = bool(starts["product"])
            row["mask_iou"] = float(
                np.logical_and(masks["product"] >= 0.5, masks["true"] >= 0.5).sum()
                / max(np.logical_or(masks["product"] >= 0.5, masks["true"] >= 0.5).sum(), 1)
            )
        # the product as `cadsearch search` answers: its own registration of the top model, kept only when it fits
        # (Searcher's REGISTER_MIN_FIT and REGISTER_SIZE_RANGE), else the unregistered answer
        t0 = time.perf_counter()
        answered = product.search(photo, k=1).objects[0]
        row["search_ms_product"] = 1000 * (time.perf_counter() - t0)  # the whole search, registration included
        answer = answered.results[0]
        if len(pictures) < 24:
            box = answered.box if answered.detection_score is not None else None
            pictures.append(_picture(library, photo, answer, truth, answered.frame, box))
        row["registered"] = answer.placement is not None
        row["found_product"] = answer.model_id == model_id  # the product's first model, after the outline ranking
        placed = answer.placement if answer.placement is not None else before
        row["iou_product"] = placed_iou(renderer, library.mesh(answer.model_id),
                                        (answer.polar_deg, answer.azimuth_deg), placed, truth)  # fmt: skip
        est = [[answer.polar_deg, answer.azimuth_deg, answer.roll_deg]]
        row["pose_product"] = float(rotation_errors_deg([pose], est, order)[0])
        for name, variant in ablations.items():
            t0 = time.perf_counter()
            plain = variant.search(photo, k=1).objects[0].results[0]
            row[f"search_ms_product_{name}"] = 1000 * (time.perf_counter() - t0)
            row[f"found_product_{name}"] = plain.model_id == model_id
            placed = plain.placement if plain.placement is not None else before
            row[f"iou_product_{name}"] = placed_iou(renderer, library.mesh(plain.model_id),
                                                    (plain.polar_deg, plain.azimuth_deg), placed, truth)  # fmt: skip
            est = [[plain.polar_deg, plain.azimuth_deg, plain.roll_deg]]
            row[f"pose_product_{name}"] = float(rotation_errors_deg([pose], est, order)[0])
        for name, target in masks.items():
            if target is None:
                continue
            per_rank = []
            for m in obj.results[:5]:
                t0 = time.perf_counter()
                reg = registrar.refine(m.model_id, target, frame, m.polar_deg, m.azimuth_deg, starts[name])
                wall = 1000 * (time.perf_counter() - t0)
                if reg is None:
                    continue
                est = [[reg.polar_deg, reg.azimuth_deg, reg.roll_deg]]
                per_rank.append({"model_id": m.model_id, "ms": reg.ms, "wall_ms": wall,
                                 "pose": float(rotation_errors_deg([pose], est, order)[0]),
                                 "pose_head": float(rotation_errors_deg([pose], [[m.polar_deg, m.azimuth_deg, 0]],
                                                                        order)[0])})  # fmt: skip
                if m.rank == 1:
                    row[f"iou_after_{name}"] = placed_iou(renderer, top_mesh, (reg.polar_deg, reg.azimuth_deg),
                                                          reg.placement, truth)  # fmt: skip
                    row[f"pose_after_{name}"] = per_rank[-1]["pose"]
            row[f"ranks_{name}"] = per_rank
            # the true model registered, from the search's pose for it (else the top model's): registration alone
            start = next((m for m in obj.results if m.model_id == model_id), top)
            reg = registrar.refine(model_id, target, frame, start.polar_deg, start.azimuth_deg, starts[name])
            if reg is not None:
                row[f"true_model_pose_{name}"] = float(
                    rotation_errors_deg([pose], [[reg.polar_deg, reg.azimuth_deg, reg.roll_deg]], order)[0]
                )
                row[f"true_model_iou_{name}"] = placed_iou(renderer, mesh, (reg.polar_deg, reg.azimuth_deg),
                                                           reg.placement, truth)  # fmt: skip
        rows.append(row)
        print(f"[{i + 1}/{n}] {row['category']:<10} found {row['found']!s:<5} IoU {row['iou_before']:.2f} → "
              f"{row.get('iou_after_product', float('nan')):.2f} (true mask {row.get('iou_after_true', 0):.2f})  "
              f"pose {row['pose_before']:5.1f}° → {row.get('pose_after_product', float('nan')):5.1f}° "
              f"(true model, true mask {row.get('true_model_pose_true', float('nan')):5.1f}°)", flush=True)  # fmt: skip
    registrar.close()
    renderer.close()
    _sheet(pictures, sheet)
    return {"rows": rows, "summary": summarise_composites(rows)}


def summarise_composites(rows: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in rows if r["found"]]
    out: dict[str, Any] = {"n": len(rows), "top1": len(found) / max(len(rows), 1),
                           "with_product_mask": sum("iou_after_product" in r for r in rows)}  # fmt: skip
    out["registered_share"] = sum(r.get("registered", False) for r in rows) / max(len(rows), 1)
    out["mask_trusted_share"] = sum(r.get("mask_trusted", False) for r in rows) / max(len(rows), 1)
    variants = [""] + [f"_{name}" for name, _, _ in ABLATIONS]
    for key in [f"found_product{v}" for v in variants]:
        out[key] = sum(r.get(key, False) for r in rows) / max(len(rows), 1)
    for key in [f"search_ms_product{v}" for v in variants]:
        out[key] = stats([r.get(key) for r in rows])
    for key in ["iou_before"] + [f"iou_product{v}" for v in variants] + ["iou_after_product", "iou_after_true",
                "mask_iou", "true_model_iou_product", "true_model_iou_true"]:  # fmt: skip
        out[key] = stats([r.get(key) for r in rows])
    for key in ["pose_before"] + [f"pose_product{v}" for v in variants] + ["pose_after_product", "pose_after_true"]:
        out[key] = stats([r.get(key) for r in rows])
        out[key + "_found"] = stats([r.get(key) for r in found])  # library objects recognised: their own pose
    for key in ("true_model_pose_product", "true_model_pose_true"):
        out[key] = stats([r.get(key) for r in rows])
    for name in ("product", "true"):
        ranks = [r.get(f"ranks_{name}", []) for r in rows]
        out[f"per_rank_pose_{name}"] = [stats([rk[i]["pose"] for rk in ranks if len(rk) > i]) for i in range(5)]
        out[f"per_rank_pose_head_{name}"] = [stats([rk[i]["pose_head"] for rk in ranks if len(rk) > i])
                                             for i in range(5)]  # fmt: skip
        out[f"ms_{name}"] = stats([x["ms"] for rk in ranks for x in rk])
        out[f"wall_ms_{name}"] = stats([x["wall_ms"] for rk in ranks for x in rk])
    return out


def _picture(library, photo: np.ndarray, match, truth: np.ndarray, frame=None, box=None) -> np.ndarray:
    """The product's answer ``match`` drawn over the photo as the overlay draws it (at its registered placement; an
    unregistered one fitted to its detection ``box``, else in its ``frame``), with the true outline in red and the
    model's fit: (H, W, 3) uint8, longer side 320."""
    over = render_overlay(library, photo, match, size=320, frame=frame, box=box)
    t = np.asarray(Image.fromarray((truth * 255).astype(np.uint8)).resize(over.shape[1::-1]))
    edge = (t > 127) & ~(np.asarray(Image.fromarray(t).resize((t.shape[1] // 2, t.shape[0] // 2)).resize(
        t.shape[::-1])) > 200)  # fmt: skip
    over = over.copy()
    over[edge & (t > 127)] = (255, 60, 60)
    label = f"fit {match.silhouette_iou:.2f}" if match.placement is not None else "not registered"
    ImageDraw.Draw(im := Image.fromarray(over)).text((4, 4), f"{match.model_id[-12:]} {label}", fill=(255, 255, 0))
    return np.asarray(im)


def _sheet(pictures: list[np.ndarray], path: Path, cols: int = 6, cell: int = 320) -> None:
    if not pictures:
        return
    rows = (len(pictures) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * cell), (30, 30, 30))
    for i, p in enumerate(pictures):
        im = Image.fromarray(p)
        im.thumbnail((cell, cell))
        sheet.paste(im, ((i % cols) * cell + (cell - im.width) // 2, (i // cols) * cell + (cell - im.height) // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:  # a new file renamed over the old: a hard-linked copy of a workspace stays intact
        sheet.save(f, format="PNG")


class TimedAnswerer(IndexAnswerer):
    """The product's answerer, timing each search (``ms``: wall milliseconds, one per photo asked)."""

    def __init__(self, searcher: Searcher) -> None:
        super().__init__(searcher)
        self.ms: list[float] = []

    def answer(self, image: np.ndarray) -> Any:
        t0 = time.perf_counter()
        try:
            return super().answer(image)
        finally:
            self.ms.append(1000 * (time.perf_counter() - t0))


def run_dev_photos(
    ws: Path, searcher: Searcher, csv: Path, sheet: Path, config: RefineConfig = RefineConfig()
) -> dict[str, Any]:
    library = searcher.library
    category_of = {m.model_id: m.category for m in library.list()}
    photos = high_confidence(photo_split(csv, mirror=True))
    registered = _with_refine(searcher, 1, config)
    answerers = {"before": TimedAnswerer(searcher), "after": TimedAnswerer(registered)}
    for name, option, value in ABLATIONS:
        answerers[f"after_{name}"] = TimedAnswerer(_with_refine(searcher, 1, config, **{option: value}))
    # every photo is asked of each answerer in turn: their times compare within the run
    raw = answer_split(answerers, photos, symmetry_orders(ws), progress=True)
    out = {name: summarise(rows, "photos", category_of, "chair") for name, rows in raw.items()}
    for name, answerer in answerers.items():
        out[name]["search_ms"] = stats(answerer.ms)
    # the sheet: 24 registered overlays of unmirrored photos, spread over the split
    queries = [q for q in photos.queries if not q.query_id.endswith("mirrored")]
    pictures = []
    for q in queries[:: max(1, len(queries) // 24)][:24]:
        image = q.image()
        result = registered.search(image, k=1)
        over = render_overlay(library, image, result.results[0], size=320, frame=result.frame)
        draw = ImageDraw.Draw(im := Image.fromarray(over))
        m = result.results[0]
        fit = f" fit {m.silhouette_iou:.2f} roll {m.roll_deg:.0f}" if m.placement is not None else " (not registered)"
        draw.text((4, 4), f"{m.category}{fit}", fill=(255, 255, 0))
        pictures.append(np.asarray(im))
    _sheet(pictures, sheet)
    return out


def _with_refine(searcher: Searcher, top: int, config: RefineConfig = RefineConfig(), **options: Any) -> Searcher:
    """The same searcher (network, index, detector, calibration) with another ``refine_top``, refinement settings and
    other search ``options`` (:class:`~cadsearch.search.Searcher`'s keywords, e.g. ``look_alikes=False``)."""
    other = searcher.with_options(refine_top=top, **options)
    if other.registrar is not None:
        other.registrar.config = config
    return other


def print_table(results: dict[str, Any]) -> None:
    s = results["composites"]["summary"]

    def f(d, key="mean", fmt="{:.3f}"):
        v = d.get(key) if isinstance(d, dict) else None
        return fmt.format(v) if v is not None else "—"

    print(f"\ncomposites: {s['n']} (top-1 {s['top1']:.1%}; product mask on {s['with_product_mask']})")
    print(f"the product (search with its registration; {s['registered_share']:.0%} kept): IoU "
          f"{f(s['iou_before'])} → {f(s['iou_product'])}, pose with roll {f(s['pose_before'], fmt='{:.1f}°')} → "
          f"{f(s['pose_product'], fmt='{:.1f}°')} (top-1 = true model: {f(s['pose_before_found'], fmt='{:.1f}°')}"
          f" → {f(s['pose_product_found'], fmt='{:.1f}°')})")  # fmt: skip
    print(f"  search ms, registration included, p50: {f(s['search_ms_product'], 'median', '{:.0f}')}")
    for name, _, _ in ABLATIONS:  # the product without one of its steps, in the same run
        v = f"_{name}"
        ms = f(s[f"search_ms_product{v}"], "median", "{:.0f}")
        print(f"  {name:<26}: IoU {f(s['iou_product' + v])}, pose with roll {f(s['pose_product' + v], fmt='{:.1f}°')}"
              f" (top-1 = true model: {f(s['pose_product' + v + '_found'], fmt='{:.1f}°')}); first model right "
              f"{s['found_product' + v]:.1%}; search ms p50 {ms}")  # fmt: skip
    print("every registration, kept or not:")
    print("                         | before  | after (product mask) | after (true mask)")
    print(f"silhouette IoU mean      | {f(s['iou_before'])}   | {f(s['iou_after_product'])}                | "
          f"{f(s['iou_after_true'])}")  # fmt: skip
    print(
        f"pose error w/ roll mean  | {f(s['pose_before'], fmt='{:.1f}°')}   | "
        f"{f(s['pose_after_product'], fmt='{:.1f}°')}                | {f(s['pose_after_true'], fmt='{:.1f}°')}"
    )
    print(f"  top-1 = true model     | {f(s['pose_before_found'], fmt='{:.1f}°')}   | "
          f"{f(s['pose_after_product_found'], fmt='{:.1f}°')}                | "
          f"{f(s['pose_after_true_found'], fmt='{:.1f}°')}")  # fmt: skip
    print(f"true model registered    |         | {f(s['true_model_pose_product'], fmt='{:.1f}°')} "
          f"IoU {f(s['true_model_iou_product'])} | {f(s['true_model_pose_true'], fmt='{:.1f}°')} "
          f"IoU {f(s['true_model_iou_true'])}")  # fmt: skip
    print(f"mask IoU (product mask vs truth, over the frame): {f(s['mask_iou'])}")
    print(f"refinement ms per model: mean {f(s['ms_true'], fmt='{:.0f}')}, median "
          f"{f(s['ms_true'], 'median', '{:.0f}')}, p90 {f(s['ms_true'], 'p90', '{:.0f}')} "
          f"(with mesh loading: mean {f(s['wall_ms_true'], fmt='{:.0f}')})")  # fmt: skip
    print(
        "per rank (true mask): pose "
        + ", ".join(f(x, fmt="{:.1f}°") for x in s["per_rank_pose_true"])
        + "  (search's: "
        + ", ".join(f(x, fmt="{:.1f}°") for x in s["per_rank_pose_head_true"])
        + ")"
    )
    if "dev_photos" in results:
        d = results["dev_photos"]
        for name, p in d.items():
            ms = f(p["search_ms"], "median", "{:.0f}")
            print(f"dev photos {name:<16}: azimuth Acc@30 (sector-balanced) {p['azimuth_acc30_sector_balanced']:.3f}, "
                  f"median {p['azimuth_median_deg']:.1f}°, search ms p50 {ms}")  # fmt: skip


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    global ABLATIONS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--composites", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-photos", action="store_true")
    ap.add_argument("--photos", type=Path, default=SHARED / "photos" / "dev_viewpoints.csv")
    ap.add_argument("--json", type=Path, default=RESULTS / "registration.json")
    ap.add_argument("--refine", nargs="*", default=[], help="k=v RefineConfig overrides (e.g. global_step=0)")
    ap.add_argument(
        "--ablations",
        nargs="*",
        default=None,
        choices=[name for name, _, _ in ABLATIONS],
        help="run only these of the product's ablations (default: all; none: the product alone)",
    )
    args = ap.parse_args()
    if args.ablations is not None:  # fewer variants, a shorter run: every table and JSON key follows ABLATIONS
        ABLATIONS = tuple(a for a in ABLATIONS if a[0] in args.ablations)
    config = RefineConfig(**{k: _literal(v) for k, v in (kv.split("=", 1) for kv in args.refine)})
    ws: Path = args.workspace
    searcher = Searcher.from_workspace(ws, args.arch, refine_top=0)
    out_dir = ws / "reports" / "registration"
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setup": {k: str(v) for k, v in vars(args).items()}
        | {"crop": searcher.crop, "mask_head": bool(getattr(searcher.localiser, "has_mask", False))},  # fmt: skip
    }
    results["refine_config"] = {k: str(v) for k, v in vars(config).items()}
    sheet = out_dir / "composites.png"
    results["composites"] = run_composites(ws, searcher, args.composites, args.seed, sheet, config)
    if not args.no_photos:
        results["dev_photos"] = run_dev_photos(ws, searcher, args.photos, out_dir / "dev_overlays.png", config)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(results, indent=2, default=float))
    print_table(results)
    print(f"\nwrote {args.json}; pictures in {out_dir}")


if __name__ == "__main__":
    main()
