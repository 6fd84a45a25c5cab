"""Issue #13: why does the localiser miss real room chairs, and does ImageNet's own knowledge of chairs help?

Three rounds of ``benchmarks/localise.py`` found 7–10 of the 36 room chairs covering ≥ 5 % of their photo. This
script takes one trained detector apart on the same 65 room photos (``shared/data/photos/rooms``: evaluation only,
never trained on) to say *which* part of it fails on real chairs, and measures two ways of bringing in the frozen
body's ImageNet classifier (trained on real photos, shipped in the weights package) without new training data.

(a) ``anatomy``, per chair ≥ 5 %: the box the size head predicts at the chair's **true centre** (best IoU over
    the 3 × 3 cells around it: is the size head right where it should fire?); the heat at that centre; the
    highest heat anywhere in the chair's box, where that peak lies in the box (fractions of its width and
    height: 0.5, 0.5 = centre, y 0.1 = the backrest) and the IoU of the box decoded there; and the **candidate
    pool recall**: chairs matched at IoU ≥ 0.5 by any of the ≤ ``--pool`` boxes decoded at heat ≥ 0.05 (what any
    re-scoring of the detector's own boxes can reach at best), with each peak's own box and with box voting
    (:data:`cadsearch.detect.localiser.BOX_VOTE_IOU`). The variants below decode without box voting, but for the
    row that says so.
(b) ``prior``: the ImageNet classifier of the body (``_conv_head`` + ``_fc`` of EfficientNet-Lite, applied per
    stride-32 cell of the same letterboxed square; "class activation map") summed over the **kind classes**,
    fused with the heat map before decoding: noisy-or ``1 − (1 − heat)(1 − prior)``, max, mean, geometric mean.
(c) ``verify``: each candidate box (≤ ``--pool`` at heat ≥ 0.05) cut out (a square with 15 % margin), classified
    whole at 224 px; the kind classes' probability fused with the box's heat score, the same four ways, then NMS.

Kind classes: the ImageNet classes that the library's renders excite (mean softmax over ``--views`` random
rendered views of the workspace, on white) at least 0.01 and ≥ 10 × more than the chair-free room photos of
``--backgrounds`` do (a rule a library of lamps or sofas would use as well); ``hand4`` = ImageNet's four chair
classes (barber chair, folding chair, rocking chair, throne) for comparison.

For each variant: recall of chairs ≥ 5 % and of all chairs and false positives per photo at several thresholds,
and the best recall at ≤ 1 false positive per photo over those thresholds (the threshold is picked on the rooms, so
that number is an upper bound, fair between variants). Picture: ``--pictures``/``localise_misses.png``, the photos
with a chair ≥ 5 %, true chairs in magenta, each chair's highest-heat cell as a dot and the box decoded there.

Usage:
    python benchmarks/localise_misses.py DETECTOR_FOLDER --workspace WS [--json benchmarks/results/localise_misses.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from localise import SHARED, _save, clutter_queries, matched, read_rooms  # noqa: E402

from cadsearch.detect import Localiser, box_iou  # noqa: E402
from cadsearch.detect.localiser import BOX_VOTE_IOU, decode, letterbox, nms  # noqa: E402
from cadsearch.detect.pictures import draw_boxes  # noqa: E402
from cadsearch.framing import Frame, frame_image  # noqa: E402
from cadsearch.imageio import read_image  # noqa: E402
from cadsearch.models.data import preprocess_images  # noqa: E402
from cadsearch.models.transfer import TransferNet, efficientnet_lite  # noqa: E402
from cadsearch.render.backgrounds import IMAGE_SUFFIXES  # noqa: E402
from cadsearch.viz import contact_sheet  # noqa: E402

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
#: ImageNet-1k's chair classes: barber chair, folding chair, rocking chair, throne.
HAND4 = (423, 559, 765, 857)
FUSIONS = {
    "noisy-or": lambda h, p: 1 - (1 - h) * (1 - p),
    "max": np.maximum,
    "mean": lambda h, p: (h + p) / 2,
    "geometric": lambda h, p: np.sqrt(h * np.clip(p, 0, 1)),
}


def imagenet_net(size: int, backbone: str = "lite0"):
    """The whole ImageNet EfficientNet-Lite (body, head convolution, classifier) at input ``size``, eval mode."""
    return efficientnet_lite(backbone, size)


def to_tensor(squares: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 squares → (B, 3, S, S) normalised as the transfer body expects."""
    return preprocess_images(list(squares), squares.shape[1], TransferNet.mean, TransferNet.std)


def kind_classes(ws: Path, backgrounds: Path, n_views: int, seed: int = 0) -> tuple[list[int], dict]:
    """ImageNet classes the library's renders excite: mean softmax ≥ 0.01 and ≥ 10 × the room photos' mean."""
    net = imagenet_net(224)
    with (ws / "views" / "views.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f)]
    rng = random.Random(seed)
    views = [ws / r["path"] for r in rng.sample(rows, min(n_views, len(rows)))]
    photos = sorted(p for p in backgrounds.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    photos = rng.sample(photos, min(300, len(photos)))

    def mean_softmax(paths: list[Path]) -> np.ndarray:
        total = np.zeros(1000)
        for i in range(0, len(paths), 32):
            ims = []
            for p in paths[i : i + 32]:
                im = Image.open(p).convert("RGBA")
                white = Image.new("RGBA", im.size, (255, 255, 255, 255))
                white.alpha_composite(im)
                ims.append(np.asarray(white.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)))
            with torch.no_grad():
                total += net(to_tensor(np.stack(ims))).softmax(1).sum(0).numpy()
        return total / len(paths)

    mv, mb = mean_softmax(views), mean_softmax(photos)
    ratio = mv / (mb + 1e-4)
    chosen = [int(i) for i in np.argsort(-mv) if mv[i] >= 0.01 and ratio[i] >= 10]
    info = {"views": len(views), "photos": len(photos),
            "classes": {str(i): {"renders": float(mv[i]), "ratio": float(ratio[i])} for i in chosen},
            "renders_top10": [[int(i), float(mv[i])] for i in np.argsort(-mv)[:10]]}  # fmt: skip
    return chosen, info


def recall_table(per_photo, truths, large, n_photos) -> tuple[list[dict], dict | None]:
    """``per_photo(threshold)`` → boxes per photo (photo pixels, best first); rows per threshold and the best at
    ≤ 1 false positive per photo."""
    n_large, n_all = int(sum(m.sum() for m in large)), int(sum(len(t) for t in truths))
    rows, best = [], None
    for thr in THRESHOLDS:
        hit_large = hit_all = fp = 0
        for boxes, t, lg in zip(per_photo(thr), truths, large, strict=True):
            hit, f = matched(boxes, t)
            hit_large += int(hit[lg].sum())
            hit_all += int(hit.sum())
            fp += f
        row = {"threshold": thr, "found_large": hit_large, "recall_large": hit_large / n_large,
               "recall_all": hit_all / n_all, "fp_per_photo": fp / n_photos}  # fmt: skip
        rows.append(row)
        if row["fp_per_photo"] <= 1.0 and (best is None or hit_large > best["found_large"]):
            best = row
    return rows, best


def analyse(images: list[np.ndarray], loc: Localiser, cam_net, crop_net, class_sets: dict[str, list[int]],
            pool: int) -> list[dict]:  # fmt: skip
    """One pass per photo: the detector's maps, the per-cell ImageNet kind prior (upsampled to the heat grid), the
    ≤ ``pool`` candidate boxes at heat ≥ 0.05 (own and voted; photo pixels) and their crops' ImageNet softmax."""
    size, stride = loc.input_size, loc.stride
    per_photo = []
    for im in tqdm(images, desc="photos", unit="photo", leave=False):
        square, frame = letterbox(im, size)
        heat, box_size, offset = (m[0] for m in loc.maps(square[None]))
        with torch.no_grad():
            feats = cam_net.extract_features(to_tensor(square[None]))
            logits = torch.einsum("bchw,kc->bkhw", feats, cam_net._fc.weight) + cam_net._fc.bias[:, None, None]
            soft = logits.softmax(1)
        prior = {name: F.interpolate(soft[:, ks].sum(1, keepdim=True), size=heat.shape, mode="bilinear",
                                     align_corners=False)[0, 0].numpy() for name, ks in class_sets.items()}  # fmt: skip
        boxes, scores = decode(heat, box_size, offset, stride, size, 0.05, pool, vote_iou=None)
        voted, voted_scores = decode(heat, box_size, offset, stride, size, 0.05, pool, vote_iou=BOX_VOTE_IOU)
        k = frame.side / size
        shift = np.array([frame.x0, frame.y0, frame.x0, frame.y0])
        photo_boxes = boxes * k + shift
        crops = []
        for x0, y0, x1, y1 in photo_boxes:
            side = 1.15 * max(x1 - x0, y1 - y0, 1.0)
            crops.append(frame_image(im, 224, Frame((x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2, side)))
        crop_p = np.zeros((0, 1000))
        if crops:
            with torch.no_grad():
                crop_p = crop_net(to_tensor(np.stack(crops))).softmax(1).numpy()
        per_photo.append({"k": k, "shift": shift, "heat": heat, "size": box_size, "offset": offset, "prior": prior,
                          "boxes": photo_boxes, "scores": scores, "crop_p": crop_p, "voted": voted * k + shift,
                          "voted_scores": voted_scores})  # fmt: skip
    return per_photo


def variants_of(per_photo: list[dict], class_sets: dict[str, list[int]], size: int, stride: float) -> dict:
    """{variant name: threshold → boxes per photo (photo pixels, best first, ≤ 5)}."""

    def detector(thr, key="boxes", score_key="scores"):
        return [[b for b, s in zip(p[key], p[score_key], strict=True) if s >= thr][:5] for p in per_photo]

    def with_prior(cls_name, fuse):
        def boxes(thr):
            out = []
            for p in per_photo:
                fused = fuse(p["heat"], p["prior"][cls_name])
                b, _ = decode(fused, p["size"], p["offset"], stride, size, thr, 5, vote_iou=None)
                out.append(b * p["k"] + p["shift"])
            return out

        return boxes

    def with_verifier(cls_name, fuse):
        ks = class_sets[cls_name]

        def boxes(thr):
            out = []
            for p in per_photo:
                if not len(p["scores"]):
                    out.append([])
                    continue
                s = fuse(p["scores"], p["crop_p"][:, ks].sum(1))
                out.append([p["boxes"][i] for i in nms(p["boxes"], s) if s[i] >= thr][:5])
            return out

        return boxes

    variants = {"detector (peak boxes)": detector,
                f"detector, box vote {BOX_VOTE_IOU:g}": lambda thr: detector(thr, "voted", "voted_scores")}  # fmt: skip
    for cls_name in class_sets:
        for fname, fuse in FUSIONS.items():
            variants[f"prior map {fname}, {cls_name}"] = with_prior(cls_name, fuse)
            variants[f"crop verifier {fname}, {cls_name}"] = with_verifier(cls_name, fuse)
    return variants


def anatomy_of(per_photo, truths, large, photos, names, size: int, stride: float) -> tuple[dict, list, list, list]:
    """Section (a): per large object, the size head at its true centre and the heat peak in its box; the summary,
    the rows, and a picture cell per photo with a large object."""
    anatomy, cells, captions = [], [], []
    for p, t, lg, im, name in zip(per_photo, truths, large, photos, names, strict=True):
        heat, g = p["heat"], p["heat"].shape[0]
        peaks_drawn, peak_boxes = [], []
        for b in t[lg]:
            sb = (b - p["shift"]) / p["k"]  # the object's box in input-square pixels

            def box_at(i: int, j: int, p=p) -> np.ndarray:
                w, h = np.exp(p["size"][:, i, j]) * size
                cx, cy = (j + p["offset"][0, i, j]) * stride, (i + p["offset"][1, i, j]) * stride
                return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

            ci = int(np.clip(((sb[1] + sb[3]) / 2) // stride, 0, g - 1))
            cj = int(np.clip(((sb[0] + sb[2]) / 2) // stride, 0, g - 1))
            centre_iou = max(box_iou(box_at(i, j)[None], sb[None])[0, 0] for i in range(max(ci - 1, 0), min(ci + 2, g))
                             for j in range(max(cj - 1, 0), min(cj + 2, g)))  # fmt: skip
            y0, x0 = int(max(sb[1] // stride, 0)), int(max(sb[0] // stride, 0))
            y1, x1 = int(min(np.ceil(sb[3] / stride), g)), int(min(np.ceil(sb[2] / stride), g))
            sub = heat[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
            i, j = np.unravel_index(int(np.argmax(sub)), sub.shape)
            i, j = min(i + y0, g - 1), min(j + x0, g - 1)
            peak_box = box_at(i, j)
            px, py = (j + p["offset"][0, i, j]) * stride, (i + p["offset"][1, i, j]) * stride
            anatomy.append({"photo": name, "centre_box_iou": float(centre_iou), "heat_at_centre": float(heat[ci, cj]),
                            "prior_at_centre": float(p["prior"]["library"][ci, cj]),
                            "peak_heat": float(heat[i, j]),
                            "peak_box_iou": float(box_iou(peak_box[None], sb[None])[0, 0]),
                            "peak_in_box_x": float((px - sb[0]) / max(sb[2] - sb[0], 1e-9)),
                            "peak_in_box_y": float((py - sb[1]) / max(sb[3] - sb[1], 1e-9))})  # fmt: skip
            peaks_drawn.append((px * p["k"] + p["shift"][0], py * p["k"] + p["shift"][1]))
            peak_boxes.append(peak_box * p["k"] + p["shift"])
        if lg.any():
            hit, _ = matched(p["boxes"], t)
            cell = draw_boxes(im, peak_boxes, [a["peak_heat"] for a in anatomy[-len(peak_boxes) :]], t[lg])
            canvas = Image.fromarray(cell)
            draw = ImageDraw.Draw(canvas)
            r = max(3, round(max(im.shape[:2]) / 120))
            for x, y in peaks_drawn:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 230, 0), outline=(0, 0, 0))
            cells.append(np.asarray(canvas))
            captions.append(f"{name[-10:]}: pool finds {int(hit[lg].sum())}/{int(lg.sum())} large")
    pool = [sum(int(matched(p[key], t)[0][lg].sum()) for p, t, lg in zip(per_photo, truths, large, strict=True))
            for key in ("boxes", "voted")]  # fmt: skip
    n_large = int(sum(m.sum() for m in large))
    a = {key: np.array([row[key] for row in anatomy]) for key in anatomy[0] if key != "photo"}
    off_centre = (a["peak_in_box_y"] < 0.2) | (np.abs(a["peak_in_box_x"] - 0.5) > 0.25)
    summary = {
        "objects_large": n_large,
        "size_head_at_true_centre_iou50": float(np.mean(a["centre_box_iou"] >= 0.5)),
        "size_head_at_true_centre_iou_median": float(np.median(a["centre_box_iou"])),
        "heat_at_centre_median": float(np.median(a["heat_at_centre"])),
        "peak_heat_median": float(np.median(a["peak_heat"])),
        "prior_at_centre_median": float(np.median(a["prior_at_centre"])),
        "peak_heat_ge_0.3": int((a["peak_heat"] >= 0.3).sum()),
        "peak_heat_ge_0.3_and_its_box_iou50": int(((a["peak_heat"] >= 0.3) & (a["peak_box_iou"] >= 0.5)).sum()),
        "peak_in_top_fifth_or_outside_centre_half": int(off_centre.sum()),
        "pool_found_large": pool[0],
        "pool_recall_large": pool[0] / n_large,
        "pool_found_large_box_vote": pool[1],
        "pool_recall_large_box_vote": pool[1] / n_large,
    }
    return summary, anatomy, cells, captions


def clutter_set(ws: Path, backgrounds: Path, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``benchmarks/localise.py``'s synthetic clutter over the held-out room photos: images and true boxes (1, 4)."""
    from cadsearch.detect.composites import split_backgrounds

    files = sorted(p for p in backgrounds.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    _, images, boxes = clutter_queries(ws, split_backgrounds(files)[1], n)
    return images, [np.asarray([b], np.float64) for b in boxes]


def report(label: str, variants: dict, truths, large, n_photos: int, at: float) -> dict:
    results = {}
    print(f"{label:<8} {'variant':<36} {f'at {at:g}: found, FP':>18}  best at ≤ 1 FP/photo")
    for name, fn in variants.items():
        rows, best = recall_table(fn, truths, large, n_photos)
        results[name] = {"rows": rows, "best_at_1fp": best}
        r = next(r for r in rows if r["threshold"] == at)
        b = (f"{best['found_large']} ({best['recall_large']:.3f}) at t={best['threshold']:g}, "
             f"{best['fp_per_photo']:.2f} FP") if best else "—"  # fmt: skip
        print(f"{label:<8} {name:<36} {r['found_large']:>3} ({r['recall_large']:.3f}), {r['fp_per_photo']:.2f}  {b}",
              flush=True)  # fmt: skip
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("detector", type=Path, help="a detector folder (WS/checkpoints/detector)")
    ap.add_argument("--workspace", type=Path, required=True, help="its workspace (rendered views for kind classes)")
    ap.add_argument("--rooms", type=Path, default=SHARED / "photos" / "rooms")
    ap.add_argument("--backgrounds", type=Path, default=SHARED / "backgrounds")
    ap.add_argument("--views", type=int, default=400, help="rendered views that pick the kind classes")
    ap.add_argument("--pool", type=int, default=12, help="candidate boxes per photo (heat ≥ 0.05)")
    ap.add_argument("--clutter", type=int, default=200, help="synthetic clutter photos (0: none)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "localise_misses.json")
    ap.add_argument("--pictures", type=Path, default=None, help="folder for the picture (default WS/reports)")
    args = ap.parse_args()
    if not (args.rooms / "boxes.csv").is_file():
        sys.exit(f"no room photos at {args.rooms}: this benchmark needs shared/data/photos/rooms")
    torch.set_num_threads(1)
    loc = Localiser(args.detector, threshold=0.05, max_objects=args.pool, box_vote_iou=None)
    size, stride = loc.input_size, loc.stride
    chosen, kind_info = kind_classes(args.workspace, args.backgrounds, args.views)
    class_sets = {"library": chosen, "hand4": list(HAND4)}
    print(f"kind classes from the library's renders: {chosen}", flush=True)
    cam_net, crop_net = imagenet_net(size), imagenet_net(224)
    out: dict = {"detector": str(args.detector), "pool": args.pool, "kind_classes": kind_info}

    files, chairs = read_rooms(args.rooms)
    photos = [read_image(p) for p in files]
    truths = [np.asarray(chairs.get(p.name, []), np.float64).reshape(-1, 4) for p in files]
    large = [((t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) >= 0.05 * im.shape[0] * im.shape[1])
             for t, im in zip(truths, photos, strict=True)]  # fmt: skip
    sets = {"rooms": (photos, truths, large, [f.name for f in files])}
    if args.clutter:
        images, boxes = clutter_set(args.workspace, args.backgrounds, args.clutter)
        sets["clutter"] = (
            images,
            boxes,
            [np.ones(1, bool)] * len(images),
            [f"clutter {i}" for i in range(len(images))],
        )
    for label, (images, truths, large, names) in sets.items():
        per_photo = analyse(images, loc, cam_net, crop_net, class_sets, args.pool)
        summary, rows, cells, captions = anatomy_of(per_photo, truths, large, images, names, size, stride)
        print(f"{label:<8} anatomy: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in summary.items()))  # fmt: skip
        results = report(label, variants_of(per_photo, class_sets, size, stride), truths, large, len(images), 0.3)
        out[label] = {"anatomy": summary, "objects": rows, "variants": results}
        if label == "rooms":
            pictures = args.pictures or args.workspace / "reports"
            _save(contact_sheet(cells, captions, columns=4, cell=320), pictures / "localise_misses.png")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
