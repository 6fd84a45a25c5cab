"""Does the localiser find more chairs when it runs at a larger input than it was trained at? (issue #13, third round)

A trained detector (``checkpoints/detector``: frozen EfficientNet-Lite body + CenterNet head, fully convolutional)
is run, without retraining, at other input squares: its body and heads are rebuilt at each size (``DetectorNet`` at
``S``, the checkpoint's head weights) and exported to ONNX once (into ``--cache``). Box sizes are decoded as
fractions of the *trained* input (the head learned sizes in its pixels: an object 1.5 × larger in pixels at 384 than
at 256 is predicted 1.5 × larger), centres from the stride-16 grid as usual, then mapped back to the photo.

Test-time settings (``--specs``):

- ``S`` — one pass at input ``S`` (``256`` = the product's localiser exactly: same boxes and scores);
- ``A+B`` — two passes, a size partition: the ``A`` pass keeps its boxes whose longer side is more than ``--split``
  of the input square (large objects: chairs that fill the photo), the ``B`` pass those at most that (small objects,
  seen larger); then one NMS over both (IoU 0.5) and at most 5 boxes.

Measured per detector folder and setting, detection only (no search):

(a) ``rooms``: the 65 real COCO room photos (``shared/data/photos/rooms``, evaluation only): recall at IoU ≥ 0.5 of
    the chairs covering ≥ 5 % of the photo (36) and of all chairs (219), false positives per photo, at several
    score thresholds (as ``benchmarks/localise.py``'s rooms section); and the localiser's ms per photo.
(b) ``clutter``: the 200 synthetic clutter queries of ``benchmarks/localise.py`` (fresh eval renders at 25–60 % of
    a held-out room photo, longer side 320 px; same seeds): box recall at IoU ≥ 0.5 (any box; the first box) and
    false positives per photo at the same thresholds.

Usage:
    python benchmarks/localise_scales.py WORKSPACE DETECTOR_FOLDER [DETECTOR_FOLDER ...]
        [--specs 256,384,256+384] [--split 0.5] [--n 200] [--cache DIR] [--json benchmarks/results/localise_scales.json]

``WORKSPACE`` gives the eval renders for the clutter queries (any workspace with ``eval_views/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import autocrop as ac  # noqa: E402 - the synthetic clutter set is autocrop's
import localise as lb  # noqa: E402 - rooms' boxes and the matching rule are localise.py's

from cadsearch.detect.composites import split_backgrounds  # noqa: E402
from cadsearch.detect.localiser import Detection, decode, input_tensor, letterbox, nms  # noqa: E402
from cadsearch.detect.model import DetectorNet, export_detector_onnx  # noqa: E402
from cadsearch.imageio import read_image  # noqa: E402
from cadsearch.render.backgrounds import IMAGE_SUFFIXES  # noqa: E402
from cadsearch.render.job import read_view_table  # noqa: E402

THRESHOLDS = (0.2, 0.3, 0.35, 0.4, 0.45, 0.5)


class ScaledLocaliser:
    """A trained detector run at other input sizes (see the module doc); ``detect`` as ``Localiser.detect``."""

    def __init__(self, folder: Path, sizes: tuple[int, ...], split: float, cache: Path) -> None:
        from cadsearch.models.onnx_runtime import cpu_session

        ckpt = torch.load(folder / "best.pt", map_location="cpu", weights_only=False)
        self.train_size, self.stride = int(ckpt["input_size"]), float(ckpt["stride"])
        self.sizes, self.split = sizes, split
        self.sessions = {}
        tag = "_".join(folder.resolve().parts[1:])
        for s in sizes:
            path = folder / "detector.onnx" if s == self.train_size else cache / f"{tag}-{s}.onnx"
            if not path.is_file():
                net = DetectorNet(ckpt["backbone"], s, int(ckpt["width"]), mask=isinstance(ckpt.get("mask_head"), dict))
                net.head.load_state_dict(ckpt["head"])
                if net.mask_head is not None:
                    net.mask_head.load_state_dict(ckpt["mask_head"])
                export_detector_onnx(net, path)
            self.sessions[s] = cpu_session(path, 1)

    def _pass(self, image: np.ndarray, size: int, threshold: float, keep_large: bool | None):
        square, frame = letterbox(image, size)
        heat, sizes, offset = self.sessions[size].run(None, {"image": input_tensor(square[None])})[:3]
        heat = 1.0 / (1.0 + np.exp(-heat[0, 0]))
        # sizes are fractions of the trained input: decode them against it, centres on this input's grid
        boxes, scores = decode(heat, sizes[0], offset[0], self.stride, self.train_size, threshold)
        if keep_large is not None and len(boxes):
            large = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) > self.split * size
            boxes, scores = boxes[large == keep_large], scores[large == keep_large]
        k = frame.side / size
        return boxes * k + np.array([frame.x0, frame.y0, frame.x0, frame.y0], np.float32), scores

    def detect(self, image: np.ndarray, threshold: float) -> list[Detection]:
        h, w = image.shape[:2]
        if len(self.sizes) == 1:
            boxes, scores = self._pass(image, self.sizes[0], threshold, None)
        else:
            (b0, s0), (b1, s1) = (self._pass(image, self.sizes[0], threshold, True),
                                  self._pass(image, self.sizes[1], threshold, False))  # fmt: skip
            boxes, scores = np.concatenate([b0, b1]), np.concatenate([s0, s1])
            keep = nms(boxes, scores)[:5] if len(boxes) else []
            boxes, scores = boxes[keep], scores[keep]
        out = []
        for b, s in zip(boxes, scores, strict=True):
            x0, y0, x1, y1 = max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3])
            if x1 - x0 >= min(4, w) and y1 - y0 >= min(4, h):
                out.append(Detection((float(x0), float(y0), float(x1), float(y1)), float(s)))
        return out


def rooms(loc: ScaledLocaliser, photos, truths, large) -> dict:
    n_large, n_all = int(sum(m.sum() for m in large)), int(sum(len(t) for t in truths))
    ms, found = [], []
    for im in photos:
        t = time.perf_counter()
        found.append(loc.detect(im, min(THRESHOLDS)))
        ms.append(1000 * (time.perf_counter() - t))
    out: dict = {"ms_p50": float(np.median(ms))}
    for thr in THRESHOLDS:
        hl = ha = fp = 0
        for dets, t, lg in zip(found, truths, large, strict=True):
            hit, f = lb.matched([d.box for d in dets if d.score >= thr], t)
            ha, hl, fp = ha + int(hit.sum()), hl + int(hit[lg].sum()), fp + f
        out[f"{thr:g}"] = {"recall_large": hl / n_large, "found_large": hl, "recall_all": ha / n_all,
                           "fp_per_photo": fp / len(photos)}  # fmt: skip
    return out


def clutter(loc: ScaledLocaliser, images, boxes) -> dict:
    found = [loc.detect(im, min(THRESHOLDS)) for im in images]
    out = {}
    for thr in THRESHOLDS:
        hits, first, fps = [], [], []
        for dets, tb in zip(found, boxes, strict=True):
            kept = [d.box for d in dets if d.score >= thr]
            hit, fp = lb.matched(kept, [tb])
            hits.append(bool(hit[0]))
            fps.append(fp)
            first.append(bool(kept) and bool(lb.matched(kept[:1], [tb])[0][0]))
        out[f"{thr:g}"] = {"box_recall50": float(np.mean(hits)), "first_box_recall50": float(np.mean(first)),
                           "fp_per_photo": float(np.mean(fps))}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", type=Path)
    ap.add_argument("detectors", type=Path, nargs="+", help="checkpoints/detector folders")
    ap.add_argument("--specs", default="256,384,256+384")
    ap.add_argument("--split", type=float, default=0.5)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=None, help="folder for the ONNX graphs at other sizes")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "localise_scales.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="localise_scales-"))
    cache.mkdir(parents=True, exist_ok=True)
    files, chairs = lb.read_rooms(lb.SHARED / "photos" / "rooms")
    photos = [read_image(p) for p in files]
    truths = [np.asarray(chairs.get(p.name, []), np.float64).reshape(-1, 4) for p in files]
    large = [((t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) >= 0.05 * im.shape[0] * im.shape[1]) for t, im in
             zip(truths, photos, strict=True)]  # fmt: skip
    backgrounds = sorted(p for p in (lb.SHARED / "backgrounds").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    rows = read_view_table(args.workspace, "eval_views")
    rng = np.random.default_rng(1)  # the same 200 queries as localise.py's clutter section
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(args.n, len(rows)), replace=False))]
    images, boxes = ac.make_queries(args.workspace, rows, split_backgrounds(backgrounds)[1])["clutter"]
    results: dict = {"split": args.split, "thresholds": THRESHOLDS, "chairs_large": int(sum(m.sum() for m in large)),
                     "clutter_n": len(images), "detectors": {}}  # fmt: skip
    for folder in args.detectors:
        per = results["detectors"].setdefault(str(folder), {})
        for spec in args.specs.split(","):
            loc = ScaledLocaliser(folder, tuple(int(s) for s in spec.split("+")), args.split, cache)
            r = {"rooms": rooms(loc, photos, truths, large), "clutter": clutter(loc, images, boxes)}
            per[spec] = r
            for thr in THRESHOLDS:
                a, c = r["rooms"][f"{thr:g}"], r["clutter"][f"{thr:g}"]
                print(f"{folder}  {spec:<8} @{thr:<4g} rooms ≥5 % {a['recall_large']:.3f} ({a['found_large']}) "
                      f"all {a['recall_all']:.3f} FP {a['fp_per_photo']:.3f} | clutter recall {c['box_recall50']:.3f} "
                      f"first {c['first_box_recall50']:.3f} FP {c['fp_per_photo']:.3f}", flush=True)  # fmt: skip
            print(f"{folder}  {spec:<8} localiser {r['rooms']['ms_p50']:.1f} ms p50 per room photo", flush=True)
            _write(args.json, results)  # after each setting: an interrupted run keeps its rows


def _write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
