"""The models issue's benchmark: train both networks on a fixed setup and evaluate them.

Setup (defaults): 50 procedural chairs + the real chairs of the shared data (manifest category ``chair``), 200
training views each at 128 px, ``low`` quality. Evaluation: fresh views of every model from new random cameras
(another render seed, ``eval_views/``): classifier top-1 and pose error; and the labelled development photos
(``photos/dev_viewpoints.csv``) plus their mirror images (φ → 360 − φ): azimuth error, sector-balanced Acc@30.

Usage:
    python benchmarks/accuracy.py WORKSPACE [--train scratch,transfer] [--eval-views 10] [--scratch k=v ...]
        [--transfer k=v ...] [--json OUT]

Training resumes from the workspace's checkpoints (same config) and is skipped for models not in --train.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cadsearch.framing import centre_frame
from cadsearch.library import Library
from cadsearch.models import checkpoint_path, load_predictor, train_model
from cadsearch.render.cameras import pose_error_deg
from cadsearch.render.job import RenderConfig, load_view, read_view_table, render_views

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def setup_workspace(ws: Path, procedural: int, views: int, size: int) -> None:
    lib = Library.open(ws)
    if len(lib) == 0:
        lib.generate_chairs(procedural, progress=True)
        manifest = ws / "chairs_manifest.csv"
        with open(SHARED / "meshes" / "manifest.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["category"] == "chair"]
        with open(manifest, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow(r | {"path": str(SHARED / r["path"])})
        lib.add_manifest(manifest, progress=True)
    render_views(ws, RenderConfig(views=views, size=size, quality="low"), workers=2)


def parse_kv(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def sector_balanced(err: np.ndarray, true_az: np.ndarray, thr: float = 30.0, n: int = 8) -> float:
    """Share of errors under ``thr`` averaged over ``n`` azimuth sectors of the truth (cadsearch.evaluate's)."""
    from cadsearch.evaluate.metrics import sector_balanced_accuracy

    return float(sector_balanced_accuracy(err, true_az, thr, n).balanced)


def graphics_metrics(p, eval_rows, index) -> dict:
    known = np.array([r.model_id in index for r in eval_rows])
    labels = np.array([index.get(r.model_id, -1) for r in eval_rows])
    err = pose_error_deg(p.polar_deg, p.azimuth_deg, [r.polar_deg for r in eval_rows],
                         [r.azimuth_deg for r in eval_rows])  # fmt: skip
    return {
        "n": len(eval_rows),
        "top1": float(np.mean(p.class_probs.argmax(1)[known] == labels[known])),
        "top5": float(np.mean([labels[i] in np.argsort(-p.class_probs[i])[:5] for i in np.flatnonzero(known)])),
        "pose_mean_deg": float(err.mean()),
        "pose_median_deg": float(np.median(err)),
        "acc15": float(np.mean(err < 15)),
        "acc30": float(np.mean(err < 30)),
    }


def photo_metrics(q, az_true, pol_true) -> dict:
    az_err = np.abs((q.azimuth_deg - az_true + 180) % 360 - 180)
    pose_err = pose_error_deg(q.polar_deg, q.azimuth_deg, pol_true, az_true)
    return {
        "n": len(az_true),
        "azimuth_mean_deg": float(az_err.mean()),
        "azimuth_median_deg": float(np.median(az_err)),
        "azimuth_acc30": float(np.mean(az_err < 30)),
        "azimuth_acc30_sector_balanced": sector_balanced(az_err, az_true),
        "pose_mean_deg": float(pose_err.mean()),
        "pose_median_deg": float(np.median(pose_err)),
    }


def evaluate(ws: Path, arch: str, eval_rows, photos) -> dict:
    """Metrics of ``arch`` as a user gets them (Predictor defaults: photos padded to squares, flip-averaged
    pose), plus ablations: without the flip, and photos centre-cropped as before."""
    pred = load_predictor(checkpoint_path(ws, arch))
    images = [load_view(ws, r)[0] for r in eval_rows]
    t = time.perf_counter()
    p = pred.predict(images)
    ms = 1000 * (time.perf_counter() - t) / max(1, len(images))
    index = {m: i for i, m in enumerate(pred.model_ids)}
    out = {
        "backend": pred.backend,
        "ms_per_image": ms,
        "graphics": graphics_metrics(p, eval_rows, index),
        "graphics_no_flip": graphics_metrics(pred.predict(images, flip_pose=False), eval_rows, index),
    }
    if photos:
        imgs, az_true, pol_true = [], [], []
        for path, polar, az in photos:
            im = np.asarray(Image.open(path).convert("RGB"))
            imgs += [im, im[:, ::-1].copy()]
            az_true += [az, (360 - az) % 360]
            pol_true += [polar, polar]
        az_true, pol_true = np.array(az_true), np.array(pol_true)
        out["photos"] = photo_metrics(pred.predict(imgs), az_true, pol_true)
        out["photos_no_flip"] = photo_metrics(pred.predict(imgs, flip_pose=False), az_true, pol_true)
        centre = [centre_frame(*im.shape[:2]) for im in imgs]  # the framing used before padding, for the comparison
        out["photos_centre_crop_no_flip"] = photo_metrics(
            pred.predict(imgs, frames=centre, flip_pose=False), az_true, pol_true
        )
    return out


def read_photos(csv_path: Path):
    rows = []
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            if r["azimuth_deg"] and r["polar_deg"]:
                rows.append((csv_path.parent / r["photo"], float(r["polar_deg"]), float(r["azimuth_deg"])))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--procedural", type=int, default=50)
    ap.add_argument("--views", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--eval-views", type=int, default=10)
    ap.add_argument("--train", default="scratch,transfer")
    ap.add_argument("--evaluate", default="scratch,transfer")
    ap.add_argument("--scratch", nargs="*", default=[])
    ap.add_argument("--transfer", nargs="*", default=[])
    ap.add_argument("--photos", type=Path, default=SHARED / "photos" / "dev_viewpoints.csv")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ws = args.workspace
    setup_workspace(ws, args.procedural, args.views, args.size)
    render_views(ws, RenderConfig(views=args.eval_views, size=args.size, seed=20240611), workers=2,
                 out_dir="eval_views")  # fmt: skip
    eval_rows = read_view_table(ws, "eval_views")
    results: dict = {"setup": vars(args) | {"workspace": str(ws), "photos": str(args.photos), "json": str(args.json)}}
    for arch in filter(None, args.train.split(",")):
        s = train_model(ws, arch, parse_kv(getattr(args, arch)))
        results[f"train_{arch}"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in s.__dict__.items()}
    photos = read_photos(args.photos) if args.photos.exists() else []
    for arch in filter(None, args.evaluate.split(",")):
        if checkpoint_path(ws, arch).exists():
            results[arch] = evaluate(ws, arch, eval_rows, photos)
            print(arch, json.dumps(results[arch], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
