"""Issue #13's benchmark: does the localiser find the objects of a whole photo, and does search then answer right?

Compares, in one table per data set, the ways a query photo can be framed before the search:
``none`` (the whole photo padded to a square), ``auto`` (today's default: the backdrop crop with its zoom gate),
``grabcut`` (any GrabCut box, as ``benchmarks/autocrop.py`` runs it), ``oracle`` (the true box, synthetic set
only) and ``detect`` (the trained localiser; the most confident object's results are the answer).

(a) ``clutter``: the synthetic set of ``benchmarks/autocrop.py`` (a fresh eval render's object, box side 25–60 % of
    the photo's shorter side, at a random place over a room photo), made here over the *held-out* room photos
    (:func:`cadsearch.detect.composites.split_backgrounds`: the localiser never trained on them). Reported: top-1 of
    the full search (``Searcher.search_embedding``: the view index, calibrated ranking, combined pose) against the
    true model, mean / median pose error of the top answer (symmetry-aware), box recall at IoU ≥ 0.5 of the
    method's (first) box and false positives per photo (detections that hit no true box).
(b) ``rooms``: the 65 real COCO room photos of ``shared/data/photos/rooms`` (evaluation only, never trained on):
    recall at IoU ≥ 0.5 of chairs covering ≥ 5 % of the photo and of all chairs, and false positives per photo
    (boxes matching no chair), for the localiser at several score thresholds and for GrabCut / backdrop's one box.
    Pictures of the detections (true chair boxes in magenta) go to ``--pictures``.
(c) ``photos``: the development photos plus mirrors (chairs filling the photo): the sector-balanced azimuth
    Acc@30 of the top answer's pose (the full search) and of the pose head, ``auto`` vs ``detect`` (and ``detect``
    with the whole-photo check of the first object at any size, ``detect_verify``, without it even where the object
    is large, ``detect_crop_only`` (``DETECT_VERIFY_ZOOM``), and without the zoom gate, ``DETECT_MIN_ZOOM``).
    The synthetic clutter reports ``detect``, ``detect_verify`` and ``detect_crop_only`` too.
(d) speed: the localiser's ms per photo (letterbox, ONNX body + head, decode; one thread), and the whole
    ``Searcher.search`` of a one-object clutter photo with ``detect`` at 40,000 views (synthetic vectors added to
    an exact index of that size, as ``benchmarks/search_speed.py``). The localiser runs the detector's 8-bit copy
    where it has one (:mod:`cadsearch.detect.quantize`; ``setup.precision`` says which); with ``--baseline-fp32`` the
    baseline is the same detector's 32-bit graph, timed photo by photo in turn with it.

Usage:
    python benchmarks/localise.py WORKSPACE [--n 200] [--json benchmarks/results/localise.json]
        [--pictures WORKSPACE/reports] [--baseline OLD_DETECTOR_FOLDER] [--baseline-without-vote]
        [--baseline-threshold T] [--baseline-fp32] [--skip clutter,rooms,photos,speed]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import autocrop as ac  # noqa: E402 - the synthetic clutter set is autocrop's

from cadsearch.detect import Localiser, box_iou  # noqa: E402
from cadsearch.detect.composites import split_backgrounds  # noqa: E402
from cadsearch.detect.pictures import draw_boxes  # noqa: E402
from cadsearch.evaluate.run import symmetry_orders  # noqa: E402
from cadsearch.evaluate.splits import photo_split  # noqa: E402
from cadsearch.framing import MARGIN, crop_frame, find_object_box, frame_for, frame_query  # noqa: E402
from cadsearch.imageio import read_image  # noqa: E402
from cadsearch.metrics import azimuth_errors_deg, pose_errors_deg, sector_balanced_accuracy  # noqa: E402
from cadsearch.render.backgrounds import IMAGE_SUFFIXES  # noqa: E402
from cadsearch.render.job import RenderConfig, read_render_config, read_view_table, render_views  # noqa: E402
from cadsearch.search import Searcher  # noqa: E402
from cadsearch.search.searcher import query_of  # noqa: E402
from cadsearch.viz import contact_sheet  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def matched(boxes, truths, iou: float = 0.5) -> tuple[np.ndarray, int]:
    """Greedy one-to-one matching, detections best first: (which truths were hit (M,) bool, unmatched detections)."""
    hit = np.zeros(len(truths), bool)
    if not len(truths):
        return hit, len(boxes)
    fp = 0
    overlap = box_iou(np.asarray(boxes).reshape(-1, 4), np.asarray(truths).reshape(-1, 4))
    for row in overlap:
        ok = False
        for j in np.argsort(-row):
            if row[j] < iou:
                break
            if not hit[j]:
                hit[j], ok = True, True
                break
        fp += not ok
    return hit, fp


def method_box(image: np.ndarray, method: str, true_box=None):
    """The box a framing method finds (None: whole photo)."""
    if method == "oracle":
        return true_box
    if method in ("none",):
        return None
    if method == "auto":
        f = frame_query(image, "auto")
        return None if f is None else find_object_box(image, "auto")
    return find_object_box(image, method)


def clutter_queries(ws: Path, files: list[Path], n: int) -> tuple[list, list[np.ndarray], list]:
    """The synthetic clutter set: ``n`` fresh eval renders of the workspace (rendered once, new cameras) pasted over
    the room photos ``files`` → ``(their view rows, images, true boxes (x0, y0, x1, y1))``; seeded: the same every
    run."""
    if not (ws / "eval_views" / "views.csv").is_file():
        render_views(ws, RenderConfig(views=10, size=read_render_config(ws).size, seed=20240611), workers=2,
                     out_dir="eval_views")  # fmt: skip
    rows = read_view_table(ws, "eval_views")
    rng = np.random.default_rng(1)
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(n, len(rows)), replace=False))]
    images, boxes = ac.make_queries(ws, rows, files)["clutter"]
    return rows, images, boxes


def clutter(ws: Path, searcher: Searcher, loc: Localiser, files: list[Path], n: int, pictures: Path | None,
            methods: tuple[str, ...] = ("none", "auto", "grabcut", "oracle", "detect", "detect_verify",
                                        "detect_crop_only"),
            label: str = "") -> dict:  # fmt: skip
    rows, images, boxes = clutter_queries(ws, files, n)
    symmetry = symmetry_orders(ws)
    orders = np.array([symmetry.get(r.model_id, 1) for r in rows])
    pol, az = np.array([r.polar_deg for r in rows]), np.array([r.azimuth_deg for r in rows])
    truth_ids = [r.model_id for r in rows]
    out = {}
    shown = []
    for method in methods:
        if method == "grabcut" and not ac.grabcut_available():
            continue
        top1, ppol, paz, hits, fps, ms = [], [], [], [], [], []
        for i, (im, tb) in enumerate(zip(images, boxes, strict=True)):
            t = time.perf_counter()
            if method.startswith("detect"):
                verify_zoom = searcher.detect_verify_zoom
                searcher.detect_verify = method == "detect_verify"
                searcher.detect_verify_zoom = 0.0 if method == "detect_crop_only" else verify_zoom
                res = searcher.search(im, k=5, crop="detect")
                searcher.detect_verify, searcher.detect_verify_zoom = False, verify_zoom
                dets = [o.box for o in res.objects if o.detection_score is not None]
                if i < 12 and method == "detect":
                    shown.append(draw_boxes(im, dets, [o.detection_score for o in res.objects if dets], [tb]))
            else:
                if method == "oracle":
                    frame = frame_for(im.shape[0], im.shape[1], tb, MARGIN)
                elif method == "grabcut":
                    frame = crop_frame(im, "grabcut", min_zoom=0.0)
                else:
                    frame = frame_query(im, method)
                pred = searcher.predictor.predict([im], batch_size=1, frames=[frame])
                res = searcher.search_embedding(**query_of(pred, 0), k=5)
                b = method_box(im, method, tb)
                dets = [] if b is None else [b]
            ms.append(1000 * (time.perf_counter() - t))
            top = res.results[0]
            top1.append(top.model_id == truth_ids[i])
            ppol.append(top.polar_deg)
            paz.append(top.azimuth_deg)
            hit, fp = matched(dets, [tb])
            hits.append(bool(hit[0]))
            fps.append(fp)
        err = pose_errors_deg(pol, az, np.array(ppol), np.array(paz), orders)
        out[method] = {
            "top1": float(np.mean(top1)),
            "pose_mean_deg": float(np.mean(err)),
            "pose_median_deg": float(np.median(err)),
            "pose_mean_deg_when_right": float(np.mean(err[np.array(top1)])) if any(top1) else None,
            "box_recall50": float(np.mean(hits)),
            "fp_per_photo": float(np.mean(fps)),
            "ms_per_photo": float(np.median(ms)),
        }
        r = out[method]
        print(f"clutter  {method + label:<8} top1 {r['top1']:.3f}  pose mean {r['pose_mean_deg']:5.1f}° median "
              f"{r['pose_median_deg']:5.1f}°  box recall {r['box_recall50']:.3f}  FP/photo {r['fp_per_photo']:.2f}  "
              f"{r['ms_per_photo']:.0f} ms", flush=True)  # fmt: skip
    if pictures and shown:
        _save(contact_sheet(shown, [f"query {i}" for i in range(len(shown))], columns=4, cell=320),
              pictures / f"localise_clutter{label}.png")  # fmt: skip
    return {"n": len(rows), "backgrounds_held_out": len(files), "methods": out}


def read_rooms(folder: Path) -> tuple[list[Path], dict[str, list[tuple]]]:
    boxes: dict[str, list[tuple]] = defaultdict(list)
    with (folder / "boxes.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if r["label"] == "chair":
                boxes[r["image"]].append((float(r["x0"]), float(r["y0"]), float(r["x1"]), float(r["y1"])))
    files = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return files, boxes


def rooms(loc: Localiser, folder: Path, pictures: Path | None, label: str = "", others: bool = True) -> dict:
    files, chairs = read_rooms(folder)
    photos = [read_image(p) for p in files]
    truths = [np.asarray(chairs.get(p.name, []), np.float64).reshape(-1, 4) for p in files]
    large = [((t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) >= 0.05 * im.shape[0] * im.shape[1]) for t, im in
             zip(truths, photos, strict=True)]  # fmt: skip
    n_large, n_all = int(sum(m.sum() for m in large)), int(sum(len(t) for t in truths))
    low = Localiser(loc.folder, threshold=min(THRESHOLDS), max_objects=loc.max_objects, flip_test=loc.flip_test,
                    box_vote_iou=loc.box_vote_iou, precision="fp32" if loc.precision == "fp32" else "auto")  # fmt: skip
    t0 = time.perf_counter()
    found = [low.detect(im) for im in photos]
    detect_ms = 1000 * (time.perf_counter() - t0) / len(photos)
    results: dict = {"photos": len(photos), "chairs": n_all, "chairs_large": n_large,
                     "photos_with_large_chair": int(sum(m.any() for m in large)), "detect": {}}  # fmt: skip

    def score(dets_per_photo) -> dict:
        hit_large = hit_all = fp = 0
        for dets, t, lg in zip(dets_per_photo, truths, large, strict=True):
            hit, f = matched(dets, t)
            hit_all += int(hit.sum())
            hit_large += int(hit[lg].sum())
            fp += f
        return {"recall_large": hit_large / max(1, n_large), "recall_all": hit_all / max(1, n_all),
                "fp_per_photo": fp / len(photos)}  # fmt: skip

    for thr in THRESHOLDS:
        r = score([[d.box for d in f if d.score >= thr] for f in found])
        results["detect"][f"{thr:g}"] = r
        print(f"rooms    detect{label}@{thr:<4g} recall ≥5 % {r['recall_large']:.3f}  all {r['recall_all']:.3f}  "
              f"FP/photo {r['fp_per_photo']:.2f}", flush=True)  # fmt: skip
    for method in ("backdrop", "grabcut") if others else ():
        if method == "grabcut" and not ac.grabcut_available():
            continue
        dets = []
        for im in photos:
            b = find_object_box(im, method)
            dets.append([] if b is None else [b])
        r = score(dets)
        results[method] = r
        print(f"rooms    {method:<11} recall ≥5 % {r['recall_large']:.3f}  all {r['recall_all']:.3f}  "
              f"FP/photo {r['fp_per_photo']:.2f}", flush=True)  # fmt: skip
    results["localiser_ms_per_photo_incl_decode"] = detect_ms
    if pictures:
        thr = loc.threshold
        cells, captions = [], []
        order = sorted(range(len(photos)), key=lambda i: -int(large[i].any()))  # photos with a large chair first
        for i in order[:24]:
            dets = [d for d in found[i] if d.score >= thr]
            cells.append(draw_boxes(photos[i], [d.box for d in dets], [d.score for d in dets], truths[i]))
            hit, fp = matched([d.box for d in dets], truths[i])
            captions.append(f"{files[i].name[-10:]}: {int(hit.sum())}/{len(truths[i])} chairs, {fp} FP")
        _save(contact_sheet(cells, captions, columns=4, cell=320), pictures / f"localise_rooms{label}.png")
    return results


def dev_photos(searcher: Searcher, csv_path: Path,
               methods: tuple[str, ...] = ("auto", "detect", "detect_verify", "detect_crop_only", "detect_no_gate"),
               label: str = "", pictures: Path | None = None) -> dict:  # fmt: skip
    split = photo_split(csv_path, mirror=True)
    labelled = [q for q in split.queries if q.polar_deg is not None and q.azimuth_deg is not None]
    az_true = np.array([q.azimuth_deg for q in labelled], np.float64)
    out = {}
    gate, verify_zoom = searcher.detect_min_zoom, searcher.detect_verify_zoom
    for method in methods:
        search_az, head_az, detected = [], [], 0
        cells, captions = [], []
        searcher.detect_min_zoom = 1.0 if method == "detect_no_gate" else gate
        searcher.detect_verify = method == "detect_verify"
        searcher.detect_verify_zoom = 0.0 if method == "detect_crop_only" else verify_zoom
        for q in labelled:
            res = searcher.search(q.image(), k=1, crop="auto" if method == "auto" else "detect")
            search_az.append(res.results[0].azimuth_deg)
            head_az.append(res.head_pose[1])
            detected += res.objects[0].detection_score is not None
            if pictures and method == "detect" and len(cells) < 32 and res.objects[0].detection_score is not None:
                image = q.image()
                boxes = [o.box for o in res.objects]
                cells.append(draw_boxes(image, boxes, [o.detection_score for o in res.objects], []))
                err = azimuth_errors_deg(np.array([q.azimuth_deg]), np.array([res.results[0].azimuth_deg]))[0]
                used = "cropped" if res.objects[0].frame is not None else "whole photo"
                captions.append(f"{used}, azimuth error {err:.0f}°")
        r = {"n": len(labelled), "detected": detected / len(labelled)}
        for name, est in (("search", search_az), ("head", head_az)):
            err = azimuth_errors_deg(az_true, np.array(est))
            r[f"azimuth_acc30_balanced_{name}"] = float(sector_balanced_accuracy(err, az_true, 30.0, 8).balanced)
            r[f"azimuth_median_deg_{name}"] = float(np.median(err))
        out[method] = r
        if cells:
            _save(contact_sheet(cells, captions, columns=8, cell=200), pictures / f"localise_photos{label}.png")
        print(f"photos   {method + label:<14} az Acc@30 balanced: search "
              f"{r['azimuth_acc30_balanced_search']:.3f}, head "
              f"{r['azimuth_acc30_balanced_head']:.3f}; median {r['azimuth_median_deg_search']:.1f}°; detected "
              f"{r['detected']:.2f}", flush=True)  # fmt: skip
    searcher.detect_min_zoom, searcher.detect_verify, searcher.detect_verify_zoom = gate, False, verify_zoom
    return out


def speed(searcher: Searcher, loc: Localiser, images: list[np.ndarray], views: int = 40000,
          baseline: Localiser | None = None) -> dict:  # fmt: skip
    """Localiser ms per photo and the whole detect search at ``views`` views (synthetic vectors, exact index); with
    ``baseline``, the same for it too, photo by photo in turn with ``loc`` (so both see the same machine load)."""
    from search_speed import synthetic

    from cadsearch.index.faiss_index import ViewIndex

    locs = {"": loc} | ({"baseline_": baseline} if baseline is not None else {})
    loc_ms: dict[str, list[float]] = {key: [] for key in locs}
    for im in images:
        for key, each in locs.items():
            t = time.perf_counter()
            each.detect(im)
            loc_ms[key].append(1000 * (time.perf_counter() - t))
    x, table, _ = synthetic(views, searcher.index.dim)
    index = ViewIndex.build(x, table, "IDMap,Flat")
    bigs = {key: Searcher(searcher.predictor, index, None, crop="detect", localiser=each,
                          temperature=searcher.temperature, detect_verify_zoom=searcher.detect_verify_zoom)
            for key, each in locs.items()}  # fmt: skip
    total: dict[str, list[float]] = {key: [] for key in locs}
    n_obj: dict[str, list[int]] = {key: [] for key in locs}
    for im in images:
        for key, big in bigs.items():
            res = big.search(im, k=5)
            total[key].append(res.timing_ms["total"])
            n_obj[key].append(len(res.objects))
    out: dict = {"views": views, "photos": len(images)}
    for key in locs:
        one = [t for t, k in zip(total[key], n_obj[key], strict=True) if k == 1] or total[key]
        out |= {f"{key}localiser_p50_ms": float(np.median(loc_ms[key][2:] or loc_ms[key])),
                f"{key}search_detect_p50_ms_one_object": float(np.median(one)),
                f"{key}search_detect_p50_ms_all": float(np.median(total[key])),
                f"{key}one_object_photos": int(sum(k == 1 for k in n_obj[key]))}  # fmt: skip
        label = f" ({locs[key].precision}, {key.rstrip('_') or 'measured'})"
        print(f"speed    localiser{label} p50 {out[f'{key}localiser_p50_ms']:.1f} ms; search (detect) p50 at {views} "
              f"views {out[f'{key}search_detect_p50_ms_one_object']:.1f} ms on {out[f'{key}one_object_photos']} "
              f"one-object photos ({out[f'{key}search_detect_p50_ms_all']:.1f} ms all)", flush=True)  # fmt: skip
    return out


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    print(f"picture: {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--n", type=int, default=200, help="synthetic clutter queries")
    ap.add_argument("--backgrounds", type=Path, default=SHARED / "backgrounds")
    ap.add_argument("--rooms", type=Path, default=SHARED / "photos" / "rooms")
    ap.add_argument("--photos", type=Path, default=SHARED / "photos" / "dev_viewpoints.csv")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "localise.json")
    ap.add_argument("--pictures", type=Path, default=None, help="folder for pictures (default WORKSPACE/reports)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: clutter,rooms,photos,speed")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another detector's folder (checkpoints/detector of an older run): its detect rows too, "
                         "in the same run, as `detect (baseline)`")  # fmt: skip
    ap.add_argument("--baseline-without-vote", action="store_true",
                    help="the baseline decodes without box voting (BOX_VOTE_IOU); with no --baseline, the baseline "
                         "is the workspace's own detector")  # fmt: skip
    ap.add_argument("--baseline-fp32", action="store_true",
                    help="the baseline runs the 32-bit graph (Localiser(precision='fp32')) where the measured "
                         "localiser runs the detector's 8-bit copy; with no --baseline, the baseline is the "
                         "workspace's own detector; the speed section then times both, photo by photo in "
                         "turn")  # fmt: skip
    ap.add_argument("--baseline-threshold", type=float, default=None,
                    help="the baseline detects at this score threshold (default: its checkpoint's); with no "
                         "--baseline, the baseline is the workspace's own detector")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)
    ws = args.workspace
    pictures = args.pictures or ws / "reports"
    skip = set(filter(None, args.skip.split(",")))
    searcher = Searcher.from_workspace(ws, "transfer", crop="detect")
    loc = searcher.localiser
    files = sorted(p for p in args.backgrounds.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    held = split_backgrounds(files)[1]
    results: dict = {"setup": {"workspace": str(ws), "threshold": loc.threshold, "max_objects": loc.max_objects,
                               "box_vote_iou": loc.box_vote_iou, "detector_metrics": loc.metrics,
                               "backend": loc.backend, "precision": loc.precision}}  # fmt: skip
    if "clutter" not in skip:
        results["clutter"] = clutter(ws, searcher, loc, held, args.n, pictures)
    if "rooms" not in skip and (args.rooms / "boxes.csv").is_file():
        results["rooms"] = rooms(loc, args.rooms, pictures)
    if "photos" not in skip and args.photos.is_file():
        results["photos"] = dev_photos(searcher, args.photos, pictures=pictures)
    base = None
    if args.baseline or args.baseline_without_vote or args.baseline_threshold is not None or args.baseline_fp32:
        base_folder = args.baseline or loc.folder
        base = Localiser(base_folder, flip_test=loc.flip_test, threshold=args.baseline_threshold,
                         box_vote_iou=None if args.baseline_without_vote else loc.box_vote_iou,
                         precision="fp32" if args.baseline_fp32 else "auto")  # fmt: skip
        searcher.localiser = base
        results["baseline"] = {"folder": str(base_folder), "detector_metrics": base.metrics,
                               "box_vote_iou": base.box_vote_iou, "threshold": base.threshold,
                               "precision": base.precision}  # fmt: skip
        if "clutter" not in skip:
            results["baseline"]["clutter"] = clutter(ws, searcher, base, held, args.n, pictures,
                                                     ("detect", "detect_verify"), " (baseline)")  # fmt: skip
        if "rooms" not in skip and (args.rooms / "boxes.csv").is_file():
            results["baseline"]["rooms"] = rooms(base, args.rooms, pictures, " (baseline)", others=False)
        if "photos" not in skip and args.photos.is_file():
            results["baseline"]["photos"] = dev_photos(searcher, args.photos, ("detect", "detect_verify",
                                                       "detect_no_gate"), " (baseline)", pictures)  # fmt: skip
        searcher.localiser = loc
    if "speed" not in skip:
        rows = read_view_table(ws, "eval_views")[:40]
        images = ac.make_queries(ws, rows, held, seed=5)["clutter"][0]
        results["speed"] = speed(searcher, loc, images, baseline=base if args.baseline_fp32 else None)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
