"""Refinement settings compared on the same composites, interleaved: pose error, IoU and time per registration.

The composites are those of ``benchmarks/registration.py`` (same seed: the same models, poses, rolls, places and
room photos); each is searched once (no registration), and the top model is then registered by every
:class:`~cadsearch.register.RefineConfig` given, one after the other on the same composite, against the product's
object mask and against the true mask, with the starts the product gives it
(:func:`cadsearch.search.searcher.registration_alternatives`). Interleaving makes the times comparable on a
shared, busy machine (each setting sees the same load); the ratios are the result, not the absolute times.

Prints a table and writes ``benchmarks/results/registration_configs.json``.

Usage:
    python benchmarks/registration_configs.py WORKSPACE NAME=KEY=VALUE[,KEY=VALUE] ... [--composites 40] [--seed 0]

e.g. ``... /tmp/ws 'estimate=hypotheses=1' 'default='`` (``default=``: ``RefineConfig()``). One key is not a
``RefineConfig`` field: ``silhouettes=raster`` draws the silhouettes with the full rasteriser
(``RasterRenderer(samples=1).render(...).alpha``, shading, depth test and resolve pass) instead of the product's
coverage path (:class:`~cadsearch.render.raster.CoverageRenderer`): the same masks, to time the two.
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
from registration import RENDER, _literal, make_composite

from cadsearch.detect.composites import BackgroundPhotos, split_backgrounds
from cadsearch.detect.masks import frame_mask
from cadsearch.evaluate.run import symmetry_orders
from cadsearch.framing import frame_for
from cadsearch.metrics import rotation_errors_deg
from cadsearch.register import RefineConfig, Registrar, SilhouetteRenderer, object_mask
from cadsearch.register.masks import restrict_to_box
from cadsearch.render.cameras import Camera
from cadsearch.render.raster import RasterRenderer
from cadsearch.search import Searcher
from cadsearch.search.searcher import registration_alternatives
from cadsearch.workspace import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


class RasterSilhouettes(SilhouetteRenderer):
    """The silhouettes as the full rasteriser draws them (one sample per pixel): the ablation of the coverage path."""

    def __init__(self, size: int = 96, cache_size: int = 8) -> None:
        super().__init__(size, cache_size)
        # the coverage renderer made above holds nothing yet; not closed, since closing a renderer drops every mesh
        # this process has uploaded (the composites' renderer's too)
        self._renderer = RasterRenderer(size=self.size, samples=1, cache_size=cache_size)

    def __call__(self, mesh: Any, polar_deg: float, azimuth_deg: float, key: Any = None) -> np.ndarray:
        camera = Camera(float(polar_deg), float(azimuth_deg) % 360.0)
        drawn = self._mesh_for(mesh, key)
        return self._renderer.render(drawn, camera, key=None if key is None else ("silhouette", key)).alpha


def parse_config(spec: str) -> tuple[str, RefineConfig, str]:
    """``NAME=KEY=VALUE,KEY=VALUE`` → (name, RefineConfig with those overrides, silhouettes: ``coverage`` or
    ``raster``); ``NAME=`` → the defaults."""
    name, _, overrides = spec.partition("=")
    kwargs = dict(kv.split("=", 1) for kv in overrides.split(",") if kv)
    silhouettes = kwargs.pop("silhouettes", "coverage")
    if silhouettes not in ("coverage", "raster"):
        raise SystemExit(f"silhouettes must be coverage or raster, got {silhouettes!r}")
    return name, RefineConfig(**{k: _literal(v) for k, v in kwargs.items()}), silhouettes


def make_registrar(library: Any, cfg: RefineConfig, silhouettes: str) -> Registrar:
    registrar = Registrar(library, cfg)
    if silhouettes == "raster":
        # the registrar makes its coverage renderer on first use; give it the ablation's instead
        registrar._renderer = RasterSilhouettes(cfg.render_size, cache_size=registrar.cache_size)
    return registrar


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("configs", nargs="+", help="NAME=KEY=VALUE[,KEY=VALUE] (NAME= for the defaults)")
    ap.add_argument("--composites", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=RESULTS / "registration_configs.json")
    args = ap.parse_args()
    parsed = [parse_config(spec) for spec in args.configs]
    configs = {name: cfg for name, cfg, _ in parsed}
    searcher = Searcher.from_workspace(args.workspace, refine_top=0)
    library, symmetry = searcher.library, symmetry_orders(args.workspace)
    ids = sorted(set(searcher.model_ids))
    photos = BackgroundPhotos(split_backgrounds(sorted((SHARED / "backgrounds").glob("*.*")))[1], max_side=640)
    renderer = RasterRenderer(size=RENDER, samples=4)
    registrars = {name: make_registrar(library, cfg, silhouettes) for name, cfg, silhouettes in parsed}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    rng = np.random.default_rng(args.seed)  # the same draws as benchmarks/registration.py
    for i in range(args.composites):
        model_id = ids[int(rng.integers(len(ids)))]
        photo, truth, pose, _ = make_composite(rng, library.mesh(model_id), photos, renderer)
        obj = searcher.search(photo, k=1, refine_top=0).objects[0]
        top = obj.results[0]
        frame = obj.frame if obj.frame is not None else frame_for(*truth.shape)
        masks = {"true": (frame_mask(truth, 256, frame), "backdrop")}  # the true mask is exact: trusted
        found = object_mask(photo, frame, searcher.localiser)
        if found is not None:
            target = restrict_to_box(found[0], frame, obj.box) if obj.detection_score is not None else found[0]
            masks["product"] = (target, found[1])
        for mask, (target, source) in masks.items():
            starts = registration_alternatives(obj, target, frame, source)
            for name, registrar in registrars.items():  # interleaved: every setting under the same load
                reg = registrar.refine(top.model_id, target, frame, top.polar_deg, top.azimuth_deg, starts)
                if reg is None:
                    continue
                est = [[reg.polar_deg, reg.azimuth_deg, reg.roll_deg]]
                err = float(rotation_errors_deg([pose], est, symmetry.get(model_id, 1))[0])
                rows[name].append({"composite": i, "mask": mask, "pose": err, "iou": reg.iou, "ms": reg.ms,
                                   "renders": reg.renders, "found": top.model_id == model_id})  # fmt: skip
        print(f"[{i + 1}/{args.composites}]", flush=True)
    for registrar in registrars.values():
        registrar.close()
    renderer.close()
    summary: dict[str, Any] = {}
    for name, rs in rows.items():
        out: dict[str, Any] = {}
        for mask in ("product", "true"):
            sel = [r for r in rs if r["mask"] == mask]
            out[mask] = {"n": len(sel), "pose_mean": float(np.mean([r["pose"] for r in sel])),
                         "iou_mean": float(np.mean([r["iou"] for r in sel]))}  # fmt: skip
        ms = np.array([r["ms"] for r in rs])
        out["ms"] = {"mean": float(ms.mean()), "median": float(np.median(ms)), "p90": float(np.percentile(ms, 90))}
        summary[name] = out
    base = next(iter(summary.values()))["ms"]
    print(f"\n{'setting':<12} | product mask: pose / IoU | true mask: pose / IoU | ms mean / median (× the first)")
    for name, s in summary.items():
        print(f"{name:<12} | {s['product']['pose_mean']:6.2f}° / {s['product']['iou_mean']:.3f}      | "
              f"{s['true']['pose_mean']:6.2f}° / {s['true']['iou_mean']:.3f}   | {s['ms']['mean']:.0f} / "
              f"{s['ms']['median']:.0f} ({s['ms']['mean'] / base['mean']:.2f} / "
              f"{s['ms']['median'] / base['median']:.2f})")  # fmt: skip
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "setup": {k: str(v) for k, v in vars(args).items()},
              "configs": {name: {k: str(v) for k, v in vars(cfg).items()} | {"silhouettes": silhouettes}
                          for name, cfg, silhouettes in parsed},
              "summary": summary, "rows": rows}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
