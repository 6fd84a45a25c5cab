"""``cadsearch train detector``: train the localiser's head on composites of the library's renders.

Runs on the CPU only, even where a GPU is present (unlike ``train scratch|transfer``): the frozen body runs once per
composite on onnxruntime and the small heads train on the cached maps, a job of minutes that a GPU would not change
much (the composites are drawn on the CPU either way).

1. Cut ``cutouts`` rendered views out by their masks (:func:`~cadsearch.detect.composites.load_cutouts`) and load the
   training share of the room photos (:func:`~cadsearch.detect.composites.split_backgrounds`; procedural backgrounds
   when there is no folder).
2. Draw ``composites`` training and ``val_composites`` validation photos (seeded, :func:`make_composite`, with the
   objects' visible masks), letterbox each to the input square (:func:`~cadsearch.detect.localiser.letterbox`, as at
   inference; a ``square_share`` of the training ones are cut to one object's square instead, as registration asks
   for a found object's mask; the validation composites are used both ways) and run the frozen body once on each
   (onnxruntime). Its four maps are cached in RAM as fp16 with the targets: 895 kB per composite at the default
   384 px (stride 4: 24 × 96 × 96 = 442 kB, stride 8: 184 kB, stride 16 and 32: 221 kB, the stride-4 mask target
   9 kB as uint8; 393 kB at 256 px), 5.8 GB for the default 6,000 + 2 × 300 (peak RSS of the run 8.84 GiB; 3.2 GB
   for 3,000).
   The body never changes, so the heads then train for many cheap epochs on the cache. (Recomputing the stride-4
   stage on the fly instead would cost the body's first three blocks at full resolution every step: caching is
   cheaper while it fits.)
3. Train :class:`~cadsearch.detect.model.CenterHead` and :class:`~cadsearch.detect.model.MaskHead` together with
   AdamW, warm-up + cosine learning rate (stretched to ``max_minutes`` when that ends the run first): CenterNet's
   focal loss on the centre heat map (Gaussian targets whose spread follows the box's size), L1 on log box size
   and centre offset at the centre cells; for the mask, binary cross-entropy + soft Dice of the stride-4 logits
   against the union of the objects' visible masks area-averaged to the stride-4 grid (``mask_weight``).
4. After every epoch: validation loss, recall at IoU ≥ 0.5 and false positives per photo at the default threshold,
   and mask IoU (the predicted foreground, upsampled to the input square and thresholded at 0.5, against the true
   union mask; mean over composites with objects; ``mask_iou`` on whole photos, ``mask_iou_object`` on object
   squares); ``last.pt`` (resume) and, when the validation F1 or the mean mask IoU improves, ``best.pt`` (the box
   head of the best-F1 epoch, the mask head of the best-mask epoch), both written atomically; at the end the best
   heads are exported with the body to ``detector.onnx`` and pictures of their detections and masks on validation
   composites and held-out room photos are written to ``reports/detector_*.png``.
5. An 8-bit copy of ``detector.onnx`` for the localiser (:mod:`cadsearch.detect.quantize`), calibrated on
   :data:`~cadsearch.detect.quantize.CALIBRATION_COMPOSITES` fresh training composites (seconds).

Resume: re-running with the same settings continues from ``last.pt`` (the cache is rebuilt, deterministically); a
change of only ``epochs`` or ``max_minutes`` extends the run; any other change starts over.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cadsearch.detect.composites import (
    BackgroundPhotos,
    CompositeConfig,
    load_cutouts,
    make_composite,
    split_backgrounds,
    usable_backgrounds,
)
from cadsearch.detect.localiser import DEFAULT_THRESHOLD, box_iou, decode, detector_dir, letterbox
from cadsearch.detect.masks import frame_mask
from cadsearch.detect.model import (
    MASK_STRIDE,
    MEAN,
    STD,
    STRIDE,
    CenterHead,
    MaskHead,
    MultiScaleBody,
    export_body_onnx,
)
from cadsearch.errors import InputError
from cadsearch.framing import MARGIN, Frame, frame_for, frame_image
from cadsearch.workspace import atomic_write_bytes

__all__ = ["DetectorConfig", "DetectorSummary", "train_detector", "default_backgrounds", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "cadsearch-detector/1"
_RUN_LENGTH = ("epochs", "max_minutes")


@dataclass
class DetectorConfig:
    """Every setting of a detector training run (stored in the checkpoint)."""

    # the detector's input square, pixels (a multiple of 32). 384: two trainings found 10 of the 36 room chairs
    # >= 5 % at <= 1 false positive per photo where six at 256 found 6-9, with synthetic clutter and development
    # photos slightly up; it costs 2.3x the cached features (peak RSS 7.6-7.9 GB) and 2x the localiser's time
    # (BENCHMARKS.md, the localiser's third round)
    input_size: int = 384
    backbone: str = "lite0"
    width: int = 64  # channels of the head (96 measured 2.2x the step time)
    # training composites (each seen once per epoch, cached features). 6000: with 3000 the validation loss was
    # lowest at epoch 6 and rose from there in both runs (the head overfits its cached composites); twice as many
    # took synthetic clutter top-1 through search from 0.76 to 0.835-0.875 (pose mean 16.9° to 9.5-12.4°) and the
    # development photos from 0.658 to 0.692-0.706, two seed-0 trainings (seed 1: 0.83, 13.8°; BENCHMARKS.md, the
    # localiser's fifth round), for 17 min of training alone instead of 9 and a feature cache of 5.8 GB instead of
    # 3.2 (10⁹ bytes)
    composites: int = 6000
    val_composites: int = 300
    cutouts: int = 1500  # rendered views to paste
    backgrounds: str = "auto"  # a folder of room photos; auto: shared/data/backgrounds if present; procedural: none
    # the learning rate decays to 0 over these epochs (or max_minutes, whichever ends first): with 30 the box head
    # peaked at epoch 5-6 and then overfitted the cached composites at a high rate; with 12 it kept improving to
    # epoch 6-12 (BENCHMARKS.md, the localiser's second round)
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    max_minutes: float = 12.0  # budget for the head's training steps (0 = none); the LR schedule follows it
    num_threads: int = 0  # torch threads (0 = all cores)
    size_weight: float = 1.0
    offset_weight: float = 1.0
    mask_weight: float = 1.0  # weight of the mask head's loss (BCE + soft Dice)
    square_share: float = 0.25  # training composites cut to one object's square (registration's view) instead of whole

    def validate(self) -> None:
        if self.input_size < 64 or self.input_size % 32:
            raise InputError(f"input_size must be a multiple of 32 and at least 64, got {self.input_size}")
        for name in ("composites", "val_composites", "cutouts", "epochs", "batch_size", "width"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class DetectorSummary:
    """What a run did: epochs, best epoch (box head; ``best_mask_epoch``: mask head), validation metrics of
    ``best.pt``, time and paths."""

    epochs_total: int
    best_epoch: int
    metrics: dict[str, float]
    seconds: float
    checkpoint: Path
    onnx: Path
    pictures: list[Path]
    notes: list[str]
    best_mask_epoch: int = 0
    int8_onnx: Path | None = None  # the 8-bit copy the localiser runs (None: none that passes its check)


def default_backgrounds() -> Path | None:
    """The shared room photos (``$CADSEARCH_SHARED_DATA/backgrounds`` or ``../shared/data/backgrounds``), if any."""
    candidates = [os.environ.get("CADSEARCH_SHARED_DATA"), "../shared/data",
                  Path(__file__).resolve().parents[4] / "shared" / "data"]  # fmt: skip
    for c in candidates:
        if c and (Path(c) / "backgrounds").is_dir():
            return Path(c) / "backgrounds"
    return None


def background_files(spec: str) -> list[Path]:
    """The training room photos for a ``backgrounds`` setting (held-out ones and those showing a chair removed); [] =
    procedural."""
    from cadsearch.render.backgrounds import IMAGE_SUFFIXES

    if spec in ("procedural", "none", ""):
        return []
    folder = default_backgrounds() if spec == "auto" else Path(spec).expanduser()
    if folder is None:
        return []
    if not folder.is_dir():
        raise InputError(f"background folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return usable_backgrounds(split_backgrounds(files)[0])


def targets_for(boxes: np.ndarray, input_size: int, stride: int = STRIDE) -> dict[str, np.ndarray]:
    """CenterNet targets on the (g, g) grid (g = input_size / stride) for boxes (N, 4) in input-square pixels.

    Returns ``heat`` (g, g) float32 (a Gaussian per box, exactly 1 at its centre cell, spread ``box side / 6``
    cells per axis, at least 0.5 cell; the maximum where boxes overlap), ``size`` (2, g, g) log(width, height /
    input_size), ``offset`` (2, g, g) sub-cell centre, and ``mask`` (g, g) 1 at centre cells.
    """
    g = input_size // stride
    heat = np.zeros((g, g), np.float32)
    size = np.zeros((2, g, g), np.float32)
    offset = np.zeros((2, g, g), np.float32)
    mask = np.zeros((g, g), np.float32)
    yy, xx = np.mgrid[0:g, 0:g].astype(np.float32)
    # largest first, so a small object's centre in the same cell as a big one's keeps its own size target
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) if len(boxes) else []
    for x0, y0, x1, y1 in boxes[order] if len(boxes) else []:
        bw, bh = max(1.0, x1 - x0), max(1.0, y1 - y0)
        cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
        ix, iy = int(np.clip(cx, 0, g - 1)), int(np.clip(cy, 0, g - 1))
        sx, sy = max(0.5, bw / stride / 6), max(0.5, bh / stride / 6)
        gauss = np.exp(-((xx - ix) ** 2) / (2 * sx * sx) - ((yy - iy) ** 2) / (2 * sy * sy))
        heat = np.maximum(heat, gauss)
        heat[iy, ix] = 1.0
        size[:, iy, ix] = np.log(bw / input_size), np.log(bh / input_size)
        offset[:, iy, ix] = np.clip(cx - ix, 0, 0.999), np.clip(cy - iy, 0, 0.999)
        mask[iy, ix] = 1.0
    return {"heat": heat, "size": size, "offset": offset, "mask": mask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (α = 2, β = 4), summed and divided by the number of centres."""
    pos = target.eq(1).float()
    log_p, log_1p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_loss = (log_p * (1 - p) ** 2 * pos).sum()
    neg_loss = (log_1p * p**2 * (1 - target) ** 4 * (1 - pos)).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Foreground loss: mean binary cross-entropy + soft Dice (per image, +1 smoothing so an empty photo's target
    asks for an empty mask), of logits (B, 1, g, g) against coverage targets (B, g, g) in [0, 1]."""
    x = logits[:, 0]
    bce = F.binary_cross_entropy_with_logits(x, target)
    p = torch.sigmoid(x)
    inter = (p * target).sum(dim=(1, 2))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)
    return bce + dice.mean()


def detector_loss(out, tgt: dict[str, torch.Tensor], cfg: DetectorConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of the heads' ``(heat, size, offset[, mask])`` against :func:`targets_for`'s tensors (batched;
    ``fg`` (B, g4, g4) is the mask target)."""
    heat, size, offset = out[:3]
    hm = focal_loss(heat[:, 0], tgt["heat"])
    m = tgt["mask"][:, None]
    n = tgt["mask"].sum().clamp(min=1.0)
    sz = (F.l1_loss(size, tgt["size"], reduction="none") * m).sum() / n
    off = (F.l1_loss(offset, tgt["offset"], reduction="none") * m).sum() / n
    total = hm + cfg.size_weight * sz + cfg.offset_weight * off
    parts = {"heat": float(hm.detach()), "size": float(sz.detach()), "offset": float(off.detach())}
    if len(out) > 3:
        fg = mask_loss(out[3], tgt["fg"])
        total = total + cfg.mask_weight * fg
        parts["fg"] = float(fg.detach())
    return total, parts


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """(S, S) → (S/k, S/k) means of k × k blocks (area averaging)."""
    s = a.shape[0] // k
    return a[: s * k, : s * k].reshape(s, k, s, k).mean(axis=(1, 3))


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def object_frame(rng: np.random.Generator, height: int, width: int, box) -> Frame:
    """The square a found object is segmented in (:func:`cadsearch.framing.frame_for` of its box with
    :data:`~cadsearch.framing.MARGIN`), jittered as a detector's box would be: margin × 0.5–2, centre moved by up to
    10 % of the side."""
    f = frame_for(height, width, box, MARGIN * rng.uniform(0.5, 2.0))
    dx, dy = rng.uniform(-0.1, 0.1, 2) * f.side
    return Frame(f.x0 + dx, f.y0 + dy, f.side)


def _make_set(
    n: int,
    seed: int,
    cutouts,
    photos,
    cfg: DetectorConfig,
    body_fn,
    progress: bool,
    desc: str,
    full_masks: bool = False,
    square_share: float = 0.0,
    comp: CompositeConfig | None = None,
):
    """``n`` composites → cached body features (fp16), targets (``fg``: the union mask on the stride-4 grid, uint8
    0–255), the true boxes (input-square pixels) of each, and with ``full_masks`` (validation) the union masks at
    the input square (``fg_full``, uint8).

    Each composite is letterboxed whole, as :meth:`Localiser.detect` frames a photo, except a ``square_share`` of
    those with objects: they are cut to one object's square (:func:`object_frame`), as registration asks
    :meth:`Localiser.segment` for a found object's mask; boxes are then those cut to the square (objects with under
    30 % of their box inside it are dropped from the box targets, not from the mask)."""
    # the features go straight into arrays of all n rows, allocated at the first batch: collecting them in lists and
    # concatenating at the end held the cache twice at its peak (peak RSS 12.4 GiB for 6,000 composites, 5.4 GiB of
    # them the cache; 8.8 GiB since)
    feats: dict[str, np.ndarray] = {}
    done = 0
    targets, truths, images, fgs, fulls, shown_masks = [], [], [], [], [], []
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress)
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    batch: list[np.ndarray] = []

    def flush() -> None:
        nonlocal done
        x = (np.stack(batch).astype(np.float32) / 255.0 - mean) / std
        for key, value in zip(("c4", "c8", "c16", "c32"), body_fn(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
                              strict=True):  # fmt: skip
            if key not in feats:
                feats[key] = np.empty((n, *value.shape[1:]), np.float16)
            feats[key][done : done + len(batch)] = value
        done += len(batch)
        bar.update(len(batch))
        batch.clear()

    for i in range(n):
        rng = np.random.default_rng([seed, i])
        image, boxes, masks = make_composite(rng, cutouts, photos, comp or CompositeConfig(), return_masks=True)
        square, frame = letterbox(image, cfg.input_size)
        if square_share > 0 and len(boxes) and rng.random() < square_share:
            frame = object_frame(rng, image.shape[0], image.shape[1], boxes[int(rng.integers(len(boxes)))])
            square = frame_image(image, cfg.input_size, frame)
        union = frame_mask(masks.max(axis=0) if len(masks) else np.zeros(image.shape[:2], np.float32),
                           cfg.input_size, frame)  # fmt: skip
        fgs.append(np.round(_block_mean(union, MASK_STRIDE) * 255).astype(np.uint8))
        if full_masks:
            fulls.append(np.round(union * 255).astype(np.uint8))
        k = cfg.input_size / frame.side
        sq_boxes = (boxes - np.array([frame.x0, frame.y0, frame.x0, frame.y0], np.float32)) * k
        cut = np.clip(sq_boxes, 0, cfg.input_size)
        inside = _area(cut) >= 0.3 * np.maximum(_area(sq_boxes), 1e-6)
        sq_boxes = cut[inside]
        targets.append(targets_for(sq_boxes, cfg.input_size))
        truths.append(sq_boxes)
        if len(images) < 16:
            images.append(square)
            shown_masks.append(union)
        batch.append(square)
        if len(batch) == 32:
            flush()
    if batch:
        flush()
    bar.close()
    stacked = {key: np.stack([t[key] for t in targets]) for key in targets[0]} | {"fg": np.stack(fgs)}
    return feats | {"targets": stacked, "truths": truths, "images": images, "image_masks": shown_masks,
                  "fg_full": np.stack(fulls) if fulls else None}  # fmt: skip


def cache_megabytes(data: dict[str, Any]) -> float:
    """RAM held by a set's cached features and targets, MB (10⁶ bytes)."""
    arrays = [data[k] for k in ("c4", "c8", "c16", "c32")] + list(data["targets"].values())
    arrays += [data["fg_full"]] if data.get("fg_full") is not None else []
    return sum(a.nbytes for a in arrays) / 1e6


def _body_runner(body: MultiScaleBody, folder: Path):
    """(B, 3, S, S) float32 numpy → (c16, c32) numpy: onnxruntime when the export works, else torch eager."""
    path = folder / f"body4-{body.input_size}.onnx"  # four taps (c4, c8, c16, c32); "body-*" had two
    try:
        from cadsearch.models.onnx_runtime import cpu_session

        if not path.is_file():
            export_body_onnx(body, path)
        session = cpu_session(path, torch.get_num_threads())
        return lambda x: tuple(session.run(None, {"image": x}))
    except Exception as exc:  # noqa: BLE001 - torch always works
        tqdm.write(f"onnx backend unavailable ({exc}); using torch")

        def run(x: np.ndarray):
            with torch.no_grad():
                return tuple(t.numpy() for t in body(torch.from_numpy(x)))

        return run


def _batch(data: dict[str, Any], idx: np.ndarray) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Cached features (float32 tensors ``c4``, ``c8``, ``c16``, ``c32``) and targets of composites ``idx``."""
    feats = {k: torch.from_numpy(data[k][idx].astype(np.float32)) for k in ("c4", "c8", "c16", "c32")}
    tgt = {k: torch.from_numpy(v[idx]) for k, v in data["targets"].items() if k != "fg"}
    tgt["fg"] = torch.from_numpy(data["targets"]["fg"][idx].astype(np.float32) / 255.0)
    return feats, tgt


def run_heads(head: CenterHead, mask_head: MaskHead, feats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Both heads on cached features → ``(heat logits, size, offset, mask logits)``, as :class:`DetectorNet`."""
    return (*head(feats["c16"], feats["c32"]), mask_head(feats["c4"], feats["c8"], feats["c16"], feats["c32"]))


def evaluate_head(head: CenterHead, mask_head: MaskHead, data: dict[str, Any], cfg: DetectorConfig,
                  threshold: float = DEFAULT_THRESHOLD, with_boxes: bool = True):  # fmt: skip
    """Validation: mean loss, recall at IoU ≥ 0.5, false positives per photo and F1 at ``threshold`` (unless not
    ``with_boxes``), and the mean mask IoU (``mask_iou``: foreground probability upsampled to the input square, ≥ 0.5,
    against the union of the true masks, over the composites with objects; needs ``data["fg_full"]``)."""
    head.eval()
    mask_head.eval()
    losses, hits, n_true, fps, n_det, ious = [], 0, 0, 0, 0, []
    with torch.no_grad():
        for i in range(0, len(data["c16"]), 128):
            idx = np.arange(i, min(len(data["c16"]), i + 128))
            feats, tgt = _batch(data, idx)
            out = run_heads(head, mask_head, feats)
            losses.append(float(detector_loss(out, tgt, cfg)[0]) * len(idx))
            if data.get("fg_full") is not None:
                size = (cfg.input_size, cfg.input_size)
                fg = F.interpolate(out[3], size=size, mode="bilinear", align_corners=False)[:, 0].numpy() >= 0
                truth = data["fg_full"][idx] >= 128
                for p, t in zip(fg, truth, strict=True):
                    if t.any():
                        ious.append(float((p & t).sum() / (p | t).sum()))
            heat = torch.sigmoid(out[0][:, 0]).numpy()
            for j, k in enumerate(idx if with_boxes else []):
                boxes, _ = decode(heat[j], out[1][j].numpy(), out[2][j].numpy(), STRIDE, cfg.input_size, threshold)
                truth = data["truths"][k]
                n_true += len(truth)
                n_det += len(boxes)
                matched = _match(boxes, truth)
                hits += matched
                fps += len(boxes) - matched
    n = len(data["c16"])
    recall = hits / max(1, n_true)
    precision = (n_det - fps) / max(1, n_det)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return {"loss": sum(losses) / max(1, n), "recall50": recall, "fp_per_image": fps / max(1, n),
            "precision": precision, "f1": f1, "mask_iou": float(np.mean(ious)) if ious else float("nan")}  # fmt: skip


def _match(boxes: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> int:
    """Detections (best first) matched one-to-one to true boxes at IoU ≥ ``iou``: how many hit."""
    if not len(boxes) or not len(truth):
        return 0
    overlap = box_iou(boxes, truth)
    used: set[int] = set()
    hits = 0
    for row in overlap:
        for j in np.argsort(-row):
            if row[j] < iou:
                break
            if j not in used:
                used.add(int(j))
                hits += 1
                break
    return hits


def _save(path: Path, payload: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _payload(head: dict[str, torch.Tensor], mask_head: dict[str, torch.Tensor], cfg: DetectorConfig, epoch: int,
             metrics: dict[str, float], mask_epoch: int, comp: CompositeConfig) -> dict[str, Any]:  # fmt: skip
    """A checkpoint of the heads' weights (state dicts) and how they were made; ``epoch`` / ``mask_epoch``: the
    epochs the box and the mask head's weights come from."""
    from cadsearch import __version__

    return {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "config": asdict(cfg) | {"composite": asdict(comp)},
        "input_size": cfg.input_size,
        "stride": STRIDE,
        "backbone": cfg.backbone,
        "width": cfg.width,
        "head": head,
        # the mask head (absent from checkpoints made before it: those detect but have no masks)
        "mask_head": mask_head,
        "mask_stride": MASK_STRIDE,
        "mask_epoch": mask_epoch,
        "threshold": DEFAULT_THRESHOLD,
        "epoch": epoch,
        "metrics": metrics,
        "onnx": "detector.onnx",
    }


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k not in _RUN_LENGTH} == {k: v for k, v in b.items() if k not in _RUN_LENGTH}


def train_detector(
    workspace: str | Path, overrides: dict[str, Any] | None = None, progress: bool = True
) -> DetectorSummary:
    """Train (or resume) the localiser of ``workspace``; see the module doc. Needs rendered views.

    Raises:
        InputError: unknown setting, no rendered views, or a bad backgrounds folder.
    """
    from cadsearch.detect.model import DetectorNet, export_detector_onnx
    from cadsearch.detect.pictures import write_detection_sheets

    cfg = DetectorConfig()
    comp_fields = {f.name: f for f in dataclasses.fields(CompositeConfig)}
    comp_overrides: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key.startswith("composite."):  # a CompositeConfig field, e.g. composite.table_p=0
            name = key.removeprefix("composite.")
            if name not in comp_fields or name in ("area_range", "fill_area"):
                known = ", ".join(f"composite.{n}" for n in comp_fields if n not in ("area_range", "fill_area"))
                raise InputError(f"unknown composite setting {key!r}; known: {known}")
            kind = type(getattr(CompositeConfig(), name))
            try:
                comp_overrides[name] = kind(value)
            except (TypeError, ValueError):
                raise InputError(f"composite setting {name} must be a {kind.__name__}, got {value!r}") from None
            continue
        if key not in {f.name for f in dataclasses.fields(cfg)}:
            known = ", ".join(f.name for f in dataclasses.fields(cfg))
            raise InputError(f"unknown detector setting {key!r}; known: {known}")
        current = getattr(cfg, key)
        try:
            setattr(cfg, key, type(current)(value) if not isinstance(current, str) else str(value))
        except (TypeError, ValueError):
            raise InputError(f"detector setting {key} must be a {type(current).__name__}, got {value!r}") from None
    cfg.validate()
    comp = dataclasses.replace(CompositeConfig(), **comp_overrides)
    t_start = time.perf_counter()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    ws = Path(workspace)
    folder = detector_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    files = background_files(cfg.backgrounds)
    if not files:
        notes.append("no room photos: composites use procedural backgrounds (pass --backgrounds FOLDER)")
    cutouts = load_cutouts(ws, cfg.cutouts, cfg.seed, progress)
    if not cutouts:
        raise InputError(f"no rendered views with an object in {ws}; run `cadsearch render` first")
    photos = BackgroundPhotos(files)
    body = MultiScaleBody(cfg.backbone, cfg.input_size)
    body_fn = _body_runner(body, folder)
    train = _make_set(cfg.composites, cfg.seed * 1000 + 1, cutouts, photos, cfg, body_fn, progress, "composites",
                      square_share=cfg.square_share, comp=comp)  # fmt: skip
    val = _make_set(cfg.val_composites, cfg.seed * 1000 + 2, cutouts, photos, cfg, body_fn, progress, "validation",
                    full_masks=True, comp=comp)  # fmt: skip
    # the same validation composites, each cut to one object's square: the mask as registration will ask for it
    val_sq = _make_set(cfg.val_composites, cfg.seed * 1000 + 2, cutouts, photos, cfg, body_fn, progress,
                       "validation squares", full_masks=True, square_share=1.0, comp=comp)  # fmt: skip
    cache_mb = cache_megabytes(train) + cache_megabytes(val) + cache_megabytes(val_sq)
    n_cached = len(train["c16"]) + len(val["c16"]) + len(val_sq["c16"])
    notes.append(f"feature cache {cache_mb:.0f} MB ({1000 * cache_mb / n_cached:.0f} kB "
                 "per composite)")  # fmt: skip

    head = CenterHead(body.channels[2:], cfg.width)
    mask_head = MaskHead(body.channels, cfg.width)
    params = list(head.parameters()) + list(mask_head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # best.pt: the box head of the epoch with the best validation F1 and the mask head of the epoch with the best
    # mean mask IoU (whole photos and object squares): the heads share no weights, and the box head overfits the
    # cached composites several epochs before the mask head stops improving
    start_epoch, best_f1, best_mask, best_epoch, best_mask_epoch = 0, -1.0, -1.0, 0, 0
    best_head, best_mask_head = _state(head), _state(mask_head)
    best_box_metrics: dict[str, float] = {}
    best_mask_metrics: dict[str, float] = {}
    last = folder / "last.pt"
    if last.is_file():
        try:
            state = torch.load(last, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - an unreadable last.pt means starting over
            state = None
        if (state and "best_mask_head" in state
                and _same_run(state["config"], asdict(cfg) | {"composite": asdict(comp)})):  # fmt: skip
            head.load_state_dict(state["head"])
            mask_head.load_state_dict(state["mask_head"])
            opt.load_state_dict(state["optimizer"])
            start_epoch, best_f1, best_mask = int(state["epoch"]), float(state["best_f1"]), float(state["best_mask"])
            best_epoch, best_mask_epoch = int(state["best_epoch"]), int(state["best_mask_epoch"])
            best_head, best_mask_head = state["best_head"], state["best_mask_head"]
            best_box_metrics, best_mask_metrics = dict(state["best_box_metrics"]), dict(state["best_mask_metrics"])
            notes.append(f"resumed from epoch {start_epoch}")
        elif state:
            notes.append("settings changed since the last run: training starts over")

    steps_per_epoch = math.ceil(len(train["c16"]) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    t_train, step = time.perf_counter(), start_epoch * steps_per_epoch

    def lr_at(s: int, fraction: float) -> float:
        if s < warmup:
            return cfg.lr * (s + 1) / warmup
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))

    epoch = start_epoch
    ended_by_time = False
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        head.train()
        mask_head.train()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train["c16"]))
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"detector epoch {epoch}/{cfg.epochs}",
                   unit="batch", disable=not progress, leave=False)  # fmt: skip
        for i in bar:
            elapsed = (time.perf_counter() - t_train) / 60
            fraction = step / total_steps
            if cfg.max_minutes:
                fraction = max(fraction, elapsed / cfg.max_minutes)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, fraction)
            feats, tgt = _batch(train, np.sort(order[i : i + cfg.batch_size]))
            loss, parts = detector_loss(run_heads(head, mask_head, feats), tgt, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            if cfg.max_minutes and elapsed >= cfg.max_minutes:
                ended_by_time = True
                break
        metrics = evaluate_head(head, mask_head, val, cfg)
        metrics["mask_iou_object"] = evaluate_head(head, mask_head, val_sq, cfg, with_boxes=False)["mask_iou"]
        if progress:
            tqdm.write(f"detector epoch {epoch}: val loss {metrics['loss']:.3f}, recall@0.5 {metrics['recall50']:.3f}, "
                       f"FP/photo {metrics['fp_per_image']:.2f}, F1 {metrics['f1']:.3f}, "
                       f"mask IoU {metrics['mask_iou']:.3f} (object squares "
                       f"{metrics['mask_iou_object']:.3f})")  # fmt: skip
        mask_score = float(np.nan_to_num(np.nanmean([metrics["mask_iou"], metrics["mask_iou_object"]]), nan=0.0))
        improved = False
        if metrics["f1"] > best_f1:
            best_f1, best_epoch, best_head, improved = metrics["f1"], epoch, _state(head), True
            best_box_metrics = {k: v for k, v in metrics.items() if not k.startswith("mask_iou")}
        if mask_score > best_mask:
            best_mask, best_mask_epoch, best_mask_head, improved = mask_score, epoch, _state(mask_head), True
            best_mask_metrics = {k: v for k, v in metrics.items() if k.startswith("mask_iou")}
        if improved:
            _save(folder / "best.pt", _payload(best_head, best_mask_head, cfg, best_epoch, best_box_metrics
                                               | best_mask_metrics, best_mask_epoch, comp))  # fmt: skip
        state = _payload(_state(head), _state(mask_head), cfg, epoch, metrics, epoch, comp) | {
            "optimizer": opt.state_dict(), "best_f1": best_f1, "best_mask": best_mask, "best_epoch": best_epoch,
            "best_mask_epoch": best_mask_epoch, "best_head": best_head, "best_mask_head": best_mask_head,
            "best_box_metrics": best_box_metrics, "best_mask_metrics": best_mask_metrics,
        }  # fmt: skip
        _save(last, state)
        if ended_by_time:
            notes.append(f"stopped after {cfg.max_minutes:g} min of training (max_minutes)")
            break

    best = torch.load(folder / "best.pt", map_location="cpu", weights_only=False)
    net = DetectorNet(cfg.backbone, cfg.input_size, cfg.width)
    net.body = body
    net.head.load_state_dict(best["head"])
    net.mask_head.load_state_dict(best["mask_head"])
    onnx_path = export_detector_onnx(net, folder / "detector.onnx")
    int8 = _quantize(folder, cutouts, photos, cfg, comp, body.taps[0], notes)
    shown = val["images"]
    pictures = write_detection_sheets(ws, folder, shown, val["truths"][: len(shown)], photos_held_out(cfg),
                                      truth_masks=val["image_masks"])  # fmt: skip
    return DetectorSummary(epoch, best_epoch, best_box_metrics | best_mask_metrics, time.perf_counter() - t_start,
                           folder / "best.pt", onnx_path, pictures, notes, best_mask_epoch, int8)  # fmt: skip


def _quantize(folder: Path, cutouts, photos: BackgroundPhotos, cfg: DetectorConfig, comp: CompositeConfig,
              last_full_precision_block: int, notes: list[str]) -> Path | None:  # fmt: skip
    """The 8-bit copy of ``folder/detector.onnx`` (:mod:`cadsearch.detect.quantize`), calibrated on fresh training
    composites; None, with a note, when it cannot be made or fails its own check here (the localiser then runs
    the 32-bit graph, as it always could)."""
    from cadsearch.detect.quantize import calibration_squares, load_int8_session, quantize_detector

    try:
        squares = calibration_squares(cutouts, photos, cfg.input_size, seed=cfg.seed, comp=comp)
        path = quantize_detector(folder, squares, last_full_precision_block)
    except Exception as exc:  # noqa: BLE001 - an optimisation: the detector is trained and usable without it
        notes.append(f"no 8-bit copy of the detector ({type(exc).__name__}: {exc}); searches run the 32-bit graph")
        return None
    if load_int8_session(folder) is None:
        notes.append("the 8-bit copy of the detector disagrees with the 32-bit graph on this CPU; searches here run "
                     "the 32-bit graph")  # fmt: skip
        return None
    return path


def photos_held_out(cfg: DetectorConfig, n: int = 8) -> list[Path]:
    """A few room photos the detector never trained on (the held-out share of the backgrounds), for pictures."""
    from cadsearch.render.backgrounds import IMAGE_SUFFIXES

    folder = default_backgrounds() if cfg.backgrounds == "auto" else Path(cfg.backgrounds).expanduser()
    if folder is None or not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return split_backgrounds(files)[1][:n]
