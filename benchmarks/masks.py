"""Issue #15 (part 1): how well does the localiser's mask head outline the objects, whole photo and per object square?

Held-out composites (:func:`cadsearch.detect.composites.make_composite` with today's defaults: 0–5 objects at 2–90 %
of the area, rolled half the time by up to ±25°, occluders, photometric noise) of the workspace's **eval views**
(``eval_views``: fresh cameras, rendered by ``benchmarks/localise.py``) over the **room photos held out of the
detector's training** (:func:`cadsearch.detect.composites.split_backgrounds`). Reported (mask IoU = predicted
probability ≥ 0.5 against true coverage ≥ 0.5):

- ``whole``: :meth:`Localiser.segment` of the whole photo (letterboxed), mapped back onto the photo
  (:func:`cadsearch.detect.masks.unframe_mask`), against the union of the objects' visible masks, photo pixels;
  mean over composites with objects (the training's validation ``mask_iou`` is the same on the input square);
- ``true square`` / ``detected square``: each object's square as the search frames a found box
  (:func:`cadsearch.framing.frame_for` with :data:`cadsearch.framing.MARGIN`: the object fills ~78 % of it), of its
  true visible box or of the detection matched to it (IoU ≥ 0.5), segmented alone (:meth:`Localiser.segment` with
  that frame: what registration does), against that object's own visible mask (``own``) and against the union of
  all objects in the square (``union``: what the class-agnostic head is trained to find); objects at least half
  visible only;
- ``box baseline``: the IoU of the true box itself (filled) with the object's mask (what placing by the box alone
  could reach at best), for scale;
- IoU by object size (share of the photo's area of its box) and for rolled vs upright objects, and ms per square;
- with ``--baseline OTHER_DETECTOR_FOLDER`` (e.g. one trained before the mask head): :meth:`Localiser.detect`'s ms
  on a 640 × 480 photo for both, one thread, interleaved (the machine is noisy), p50 of ``--reps``; and both
  detectors' box recall at IoU ≥ 0.5 and false positives per photo (default threshold) on the same composites,
  rolled as above and the same seeds with ``roll_p`` 0 (upright, as the composites were before roll existed).

A contact sheet of object squares (prediction tinted cyan, true outline magenta) goes to ``--pictures``; with
``--real SHARED_PHOTOS`` (``shared/data/photos``) a second one, ``masks_real.png`` beside it, shows the masks on
real photos (no true masks there, so pictures only): the squares of the COCO room chairs covering ≥ 5 % of their
photo (true boxes) and 12 development photos (the first detection's square, else the whole photo).

Usage:
    python benchmarks/masks.py WORKSPACE [--n 200] [--json benchmarks/results/masks.json]
        [--pictures WORKSPACE/reports/masks_objects.png] [--baseline OTHER_WORKSPACE/checkpoints/detector]
        [--real ../shared/data/photos]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cadsearch.detect import Localiser, box_iou, detector_dir
from cadsearch.detect.composites import (
    BackgroundPhotos,
    CompositeConfig,
    load_cutouts,
    make_composite,
    split_backgrounds,
)
from cadsearch.detect.masks import frame_mask, mask_iou, outline, tint, unframe_mask
from cadsearch.detect.pictures import TRUTH_RGB
from cadsearch.detect.train import default_backgrounds
from cadsearch.framing import MARGIN, frame_for, frame_image
from cadsearch.render.backgrounds import IMAGE_SUFFIXES
from cadsearch.viz import contact_sheet

SIZE_BINS = ((0.0, 0.1), (0.1, 0.4), (0.4, 1.01))


def held_out_rooms() -> list[Path]:
    folder = default_backgrounds()
    if folder is None:
        return []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return split_backgrounds(files)[1]


def object_square_ious(
    loc: Localiser, image: np.ndarray, box, own: np.ndarray, union: np.ndarray, margin: float = MARGIN
) -> dict:
    """Segment the square framing ``box`` (photo pixels, framed as the search frames a detection) and compare:
    ``own`` / ``union`` IoU against the object's own and all objects' masks (H, W) cut to the same square,
    ``prob`` the (S, S) prediction, ``square`` the framed photo, ``truth`` the own mask framed, ``ms``."""
    h, w = image.shape[:2]
    f = frame_for(h, w, box, margin)
    t = time.perf_counter()
    prob = loc.segment(image, f)
    ms = 1000 * (time.perf_counter() - t)
    s = loc.input_size
    own_sq, union_sq = frame_mask(own, s, f), frame_mask(union, s, f)
    return {"own": mask_iou(prob, own_sq), "union": mask_iou(prob, union_sq), "prob": prob, "truth": own_sq,
            "square": frame_image(image, s, f), "ms": ms}  # fmt: skip


def box_mask(box, h: int, w: int) -> np.ndarray:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m = np.zeros((h, w), np.float32)
    m[max(0, y0) : y1, max(0, x0) : x1] = 1
    return m


def summary(values: list[float]) -> dict:
    v = np.asarray([x for x in values if not np.isnan(x)], np.float64)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)),
            "ge_0.8": float((v >= 0.8).mean())}  # fmt: skip


def detection_scores(loc: Localiser, sets: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Box recall at IoU ≥ 0.5 (greedy one-to-one, detections best first) and false positives per photo."""
    hits = n_true = fps = 0
    for image, truth in sets:
        found = np.asarray([d.box for d in loc.detect(image)], np.float32).reshape(-1, 4)
        used: set[int] = set()
        overlap = box_iou(found, truth) if len(truth) else np.zeros((len(found), 0))
        for row in overlap:
            j = next((int(j) for j in np.argsort(-row) if row[j] >= 0.5 and int(j) not in used), None)
            if j is None:
                fps += 1
            else:
                used.add(j)
        hits += len(used)
        fps += 0 if len(truth) else len(found) - len(overlap)
        n_true += len(truth)
    return {"recall50": hits / max(1, n_true), "fp_per_image": fps / max(1, len(sets)), "objects": n_true}


def detect_ms(folders: dict[str, Path], photo: np.ndarray, reps: int) -> dict[str, float]:
    """p50 ms of ``Localiser.detect`` (one thread) on ``photo`` for each detector folder, calls interleaved."""
    locs = {name: Localiser(folder, threads=1) for name, folder in folders.items()}
    times: dict[str, list[float]] = {name: [] for name in locs}
    for loc in locs.values():
        loc.detect(photo)  # warm-up
    for _ in range(reps):
        for name, loc in locs.items():
            times[name].append(loc.timed_detect(photo)[1])
    return {name: float(np.median(t)) for name, t in times.items()}


def real_photo_sheet(loc: Localiser, shared: Path, path: Path) -> Path:
    """Masks on real photos, tinted (see the module doc); returns ``path``."""
    import csv

    from cadsearch.imageio import read_image

    cells, captions = [], []
    with (shared / "rooms" / "boxes.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "chair"]
    big = [r for r in rows if (float(r["x1"]) - float(r["x0"])) * (float(r["y1"]) - float(r["y0"]))
           >= 0.05 * float(r["width"]) * float(r["height"])]  # fmt: skip
    for r in big[:12]:
        image = read_image(shared / "rooms" / "images" / r["image"])
        f = frame_for(image.shape[0], image.shape[1], [float(r[k]) for k in ("x0", "y0", "x1", "y1")], MARGIN)
        cells.append(tint(frame_image(image, loc.input_size, f), loc.segment(image, f)))
        captions.append("room chair (true box's square)")
    with (shared / "dev_viewpoints.csv").open(newline="") as f:
        dev = list(csv.DictReader(f))
    for i in np.random.default_rng(0).choice(len(dev), min(12, len(dev)), replace=False):
        image = read_image(shared / dev[i]["photo"])
        found = loc.detect(image)
        f = frame_for(image.shape[0], image.shape[1], found[0].box, MARGIN) if found else None
        cells.append(tint(frame_image(image, loc.input_size, f), loc.segment(image, f)))
        captions.append(f"dev photo, detected square {found[0].score:.2f}" if found else "dev photo, whole")
    contact_sheet(cells, captions, columns=6, cell=200).save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--n", type=int, default=200, help="composites")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "masks.json")
    ap.add_argument("--pictures", type=Path, default=None)
    ap.add_argument("--baseline", type=Path, default=None, help="a detector folder to time detect against")
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--real", type=Path, default=None, help="shared/data/photos: a sheet of masks on real photos")
    args = ap.parse_args()
    ws = args.workspace
    loc = Localiser(detector_dir(ws))
    if not loc.has_mask:
        raise SystemExit(f"the detector in {detector_dir(ws)} has no mask head; train it again")
    if not (ws / "eval_views" / "views.csv").is_file():
        raise SystemExit(f"no eval views in {ws}; run benchmarks/localise.py on it first (it renders them)")
    cutouts = load_cutouts(ws, 100_000, seed=0, out_dir="eval_views")
    rooms = held_out_rooms()
    photos = BackgroundPhotos(rooms)
    cfg = CompositeConfig()
    whole: list[float] = []
    rows: list[dict] = []
    shown, captions, ms = [], [], []
    timing = {}
    if args.baseline:
        photo = make_composite(np.random.default_rng(0), cutouts, photos, CompositeConfig(photo_side=640),
                               n_objects=2)[0]  # fmt: skip
        if photo.shape[:2] != (480, 640):
            from PIL import Image

            photo = np.asarray(Image.fromarray(photo).resize((640, 480)))
        timing = detect_ms({"with mask head": detector_dir(ws), "baseline": args.baseline}, photo, args.reps)
        print("detect on a 640 × 480 photo, one thread, p50: "
              + ", ".join(f"{k} {v:.1f} ms" for k, v in timing.items())
              + f" (ratio {timing['with mask head'] / timing['baseline']:.2f})")  # fmt: skip
    t0 = time.perf_counter()
    for i in range(args.n):
        placements: list[dict] = []
        rng = np.random.default_rng([20261204, i])
        image, boxes, masks = make_composite(rng, cutouts, photos, cfg, return_masks=True, placements=placements)
        if not len(boxes):
            continue
        h, w = image.shape[:2]
        union = masks.max(axis=0)
        whole.append(mask_iou(unframe_mask(loc.segment(image), frame_for(h, w), h, w), union))
        found = loc.detect(image)
        det_boxes = np.asarray([d.box for d in found], np.float32).reshape(-1, 4)
        overlap = box_iou(boxes, det_boxes) if len(det_boxes) else np.zeros((len(boxes), 0))
        for j, (box, own, how) in enumerate(zip(boxes, masks, placements, strict=True)):
            if how["visible"] < 0.5:
                continue
            area = float((box[2] - box[0]) * (box[3] - box[1]) / (w * h))
            row = {"area": area, "roll_deg": how["roll_deg"], "box_baseline": mask_iou(box_mask(box, h, w), own)}
            r = object_square_ious(loc, image, box, own, union)
            ms.append(r["ms"])
            row |= {"true_own": r["own"], "true_union": r["union"]}
            if len(shown) < 24:
                cell = outline(tint(r["square"], r["prob"]), r["truth"], TRUTH_RGB)
                shown.append(cell)
                captions.append(f"IoU {r['own']:.2f} (box {row['box_baseline']:.2f}), roll {how['roll_deg']:.0f}°")
            k = int(np.argmax(overlap[j])) if overlap.shape[1] else -1
            if k >= 0 and overlap[j, k] >= 0.5:
                d = object_square_ious(loc, image, det_boxes[k], own, union)
                row |= {"detected_own": d["own"], "detected_union": d["union"]}
            rows.append(row)
    seconds = time.perf_counter() - t0
    detection = {}
    if args.baseline:
        upright = CompositeConfig(roll_p=0.0)
        for name, c in (("rolled (default composites)", cfg), ("upright (roll_p 0)", upright)):
            sets = [make_composite(np.random.default_rng([20261204, i]), cutouts, photos, c) for i in range(args.n)]
            for who, folder in (("with mask head", detector_dir(ws)), ("baseline", args.baseline)):
                detection[f"{who}, {name}"] = detection_scores(Localiser(folder), sets)
        print(f"{'boxes (held-out composites)':58s} {'recall@0.5':>10s} {'FP/photo':>9s}")
        for name, d in detection.items():
            print(f"{name:58s} {d['recall50']:10.3f} {d['fp_per_image']:9.2f}")

    def pick(key: str, cond=lambda r: True) -> list[float]:
        return [r[key] for r in rows if key in r and cond(r)]

    table = {
        "whole photo vs union": summary(whole),
        "true square vs own": summary(pick("true_own")),
        "true square vs union": summary(pick("true_union")),
        "detected square vs own": summary(pick("detected_own")),
        "detected square vs union": summary(pick("detected_union")),
        "box baseline vs own": summary(pick("box_baseline")),
    }
    for lo, hi in SIZE_BINS:
        table[f"true square vs own, box {lo:.0%}–{min(hi, 1):.0%} of photo"] = summary(
            pick("true_own", lambda r, lo=lo, hi=hi: lo <= r["area"] < hi)
        )
    table["true square vs own, rolled"] = summary(pick("true_own", lambda r: r["roll_deg"] != 0))
    table["true square vs own, upright"] = summary(pick("true_own", lambda r: r["roll_deg"] == 0))
    print(f"{'mask IoU':58s} {'n':>5s} {'mean':>6s} {'median':>6s} {'≥0.8':>6s}")
    for name, s in table.items():
        if s["n"]:
            print(f"{name:58s} {s['n']:5d} {s['mean']:6.3f} {s['median']:6.3f} {s['ge_0.8']:6.3f}")
    print(f"segment: {np.median(ms):.1f} ms p50 per square ({loc.backend}); {seconds:.0f} s in all; "
          f"{len(rooms)} held-out rooms, {len(cutouts)} eval views")  # fmt: skip
    out = {"workspace": str(ws), "n_composites": args.n, "table": table, "segment_ms_p50": float(np.median(ms)),
           "detector_metrics": loc.metrics,
           "detect_ms_p50_640x480": timing, "detection": detection, "held_out_rooms": len(rooms),
           "eval_views": len(cutouts)}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=float))
    picture = args.pictures or ws / "reports" / "masks_objects.png"
    picture.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(shown, captions, columns=6, cell=200).save(picture)
    print(f"wrote {args.json} and {picture}")
    if args.real:
        print(f"wrote {real_photo_sheet(loc, args.real, picture.parent / 'masks_real.png')}")


if __name__ == "__main__":
    main()
