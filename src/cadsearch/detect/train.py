"""``cadsearch train detector``: train the localiser's head on composites of the library's renders.

1. Cut ``cutouts`` rendered views out by their masks (:func:`~cadsearch.detect.composites.load_cutouts`) and load the
   training share of the room photos (:func:`~cadsearch.detect.composites.split_backgrounds`; procedural backgrounds
   when there is no folder).
2. Draw ``composites`` training and ``val_composites`` validation photos (seeded, :func:`make_composite`), letterbox
   each to the input square (:func:`~cadsearch.detect.localiser.letterbox`, as at inference) and run the frozen body
   once on each (onnxruntime, fp16 cache in RAM: about 100 kB per composite at 256 px). The body never changes, so
   the head then trains for many cheap epochs on the cache.
3. Train :class:`~cadsearch.detect.model.CenterHead` with AdamW, warm-up + cosine learning rate (stretched to
   ``max_minutes`` when that ends the run first): CenterNet's focal loss on the centre heat map (Gaussian targets
   whose spread follows the box's size), L1 on log box size and centre offset at the centre cells.
4. After every epoch: validation loss, recall at IoU ≥ 0.5 and false positives per photo at the default threshold;
   ``last.pt`` (resume) and, when the validation F1 improves, ``best.pt``, both written atomically; at the end the
   best head is exported with the body to ``detector.onnx`` and pictures of its detections on validation composites
   and held-out room photos are written to ``reports/detector_*.png``.

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
)
from cadsearch.detect.localiser import DEFAULT_THRESHOLD, box_iou, decode, detector_dir, letterbox
from cadsearch.detect.model import MEAN, STD, STRIDE, CenterHead, MultiScaleBody, export_body_onnx
from cadsearch.errors import InputError
from cadsearch.workspace import atomic_write_bytes

__all__ = ["DetectorConfig", "DetectorSummary", "train_detector", "default_backgrounds", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "cadsearch-detector/1"
_RUN_LENGTH = ("epochs", "max_minutes")


@dataclass
class DetectorConfig:
    """Every setting of a detector training run (stored in the checkpoint)."""

    input_size: int = 256  # the detector's input square, pixels (a multiple of 32)
    backbone: str = "lite0"
    width: int = 64  # channels of the head (96 measured 2.2x the step time)
    composites: int = 3000  # training composites (each seen once per epoch, cached features)
    val_composites: int = 300
    cutouts: int = 1500  # rendered views to paste
    backgrounds: str = "auto"  # a folder of room photos; auto: shared/data/backgrounds if present; procedural: none
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    max_minutes: float = 12.0  # budget for the head's training steps (0 = none); the LR schedule follows it
    num_threads: int = 0  # torch threads (0 = all cores)
    size_weight: float = 1.0
    offset_weight: float = 1.0

    def validate(self) -> None:
        if self.input_size < 64 or self.input_size % 32:
            raise InputError(f"input_size must be a multiple of 32 and at least 64, got {self.input_size}")
        for name in ("composites", "val_composites", "cutouts", "epochs", "batch_size", "width"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class DetectorSummary:
    """What a run did: epochs, best epoch, validation metrics of ``best.pt``, time and paths."""

    epochs_total: int
    best_epoch: int
    metrics: dict[str, float]
    seconds: float
    checkpoint: Path
    onnx: Path
    pictures: list[Path]
    notes: list[str]


def default_backgrounds() -> Path | None:
    """The shared room photos (``$CADSEARCH_SHARED_DATA/backgrounds`` or ``../shared/data/backgrounds``), if any."""
    candidates = [os.environ.get("CADSEARCH_SHARED_DATA"), "../shared/data",
                  Path(__file__).resolve().parents[4] / "shared" / "data"]  # fmt: skip
    for c in candidates:
        if c and (Path(c) / "backgrounds").is_dir():
            return Path(c) / "backgrounds"
    return None


def background_files(spec: str) -> list[Path]:
    """The training room photos for a ``backgrounds`` setting (held-out ones removed); [] = procedural."""
    from cadsearch.render.backgrounds import IMAGE_SUFFIXES

    if spec in ("procedural", "none", ""):
        return []
    folder = default_backgrounds() if spec == "auto" else Path(spec).expanduser()
    if folder is None:
        return []
    if not folder.is_dir():
        raise InputError(f"background folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return split_backgrounds(files)[0]


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


def detector_loss(out, tgt: dict[str, torch.Tensor], cfg: DetectorConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of the head's ``(heat, size, offset)`` against :func:`targets_for`'s tensors (batched)."""
    heat, size, offset = out
    hm = focal_loss(heat[:, 0], tgt["heat"])
    m = tgt["mask"][:, None]
    n = tgt["mask"].sum().clamp(min=1.0)
    sz = (F.l1_loss(size, tgt["size"], reduction="none") * m).sum() / n
    off = (F.l1_loss(offset, tgt["offset"], reduction="none") * m).sum() / n
    total = hm + cfg.size_weight * sz + cfg.offset_weight * off
    return total, {"heat": float(hm.detach()), "size": float(sz.detach()), "offset": float(off.detach())}


def _make_set(n: int, seed: int, cutouts, photos, cfg: DetectorConfig, body_fn, progress: bool, desc: str):
    """``n`` composites → cached body features, targets, and the true boxes (input-square pixels) of each."""
    c16s, c32s, targets, truths, images = [], [], [], [], []
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress)
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    batch: list[np.ndarray] = []

    def flush() -> None:
        x = (np.stack(batch).astype(np.float32) / 255.0 - mean) / std
        c16, c32 = body_fn(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        c16s.append(c16.astype(np.float16))
        c32s.append(c32.astype(np.float16))
        bar.update(len(batch))
        batch.clear()

    for i in range(n):
        rng = np.random.default_rng([seed, i])
        image, boxes = make_composite(rng, cutouts, photos, CompositeConfig())
        square, frame = letterbox(image, cfg.input_size)
        k = cfg.input_size / frame.side
        sq_boxes = (boxes - np.array([frame.x0, frame.y0, frame.x0, frame.y0], np.float32)) * k
        targets.append(targets_for(sq_boxes, cfg.input_size))
        truths.append(sq_boxes)
        if len(images) < 16:
            images.append(square)
        batch.append(square)
        if len(batch) == 32:
            flush()
    if batch:
        flush()
    bar.close()
    stacked = {key: np.stack([t[key] for t in targets]) for key in targets[0]}
    return {"c16": np.concatenate(c16s), "c32": np.concatenate(c32s), "targets": stacked, "truths": truths,
            "images": images}  # fmt: skip


def _body_runner(body: MultiScaleBody, folder: Path):
    """(B, 3, S, S) float32 numpy → (c16, c32) numpy: onnxruntime when the export works, else torch eager."""
    path = folder / f"body-{body.input_size}.onnx"
    try:
        import onnxruntime as ort

        if not path.is_file():
            export_body_onnx(body, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return lambda x: tuple(session.run(None, {"image": x}))
    except Exception as exc:  # noqa: BLE001 - torch always works
        tqdm.write(f"onnx backend unavailable ({exc}); using torch")

        def run(x: np.ndarray):
            with torch.no_grad():
                c16, c32 = body(torch.from_numpy(x))
            return c16.numpy(), c32.numpy()

        return run


def _batch(data: dict[str, Any], idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    c16 = torch.from_numpy(data["c16"][idx].astype(np.float32))
    c32 = torch.from_numpy(data["c32"][idx].astype(np.float32))
    tgt = {k: torch.from_numpy(v[idx]) for k, v in data["targets"].items()}
    return c16, c32, tgt


def evaluate_head(head: CenterHead, data: dict[str, Any], cfg: DetectorConfig, threshold: float = DEFAULT_THRESHOLD):
    """Validation: mean loss, recall at IoU ≥ 0.5, false positives per photo and F1 at ``threshold``."""
    head.eval()
    losses, hits, n_true, fps, n_det = [], 0, 0, 0, 0
    with torch.no_grad():
        for i in range(0, len(data["c16"]), 128):
            idx = np.arange(i, min(len(data["c16"]), i + 128))
            c16, c32, tgt = _batch(data, idx)
            out = head(c16, c32)
            losses.append(float(detector_loss(out, tgt, cfg)[0]) * len(idx))
            heat = torch.sigmoid(out[0][:, 0]).numpy()
            for j, k in enumerate(idx):
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
            "precision": precision, "f1": f1}  # fmt: skip


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


def _payload(head: CenterHead, cfg: DetectorConfig, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
    from cadsearch import __version__

    return {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "config": asdict(cfg) | {"composite": asdict(CompositeConfig())},
        "input_size": cfg.input_size,
        "stride": STRIDE,
        "backbone": cfg.backbone,
        "width": cfg.width,
        "head": {k: v.clone() for k, v in head.state_dict().items()},
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
    for key, value in (overrides or {}).items():
        if key not in {f.name for f in dataclasses.fields(cfg)}:
            known = ", ".join(f.name for f in dataclasses.fields(cfg))
            raise InputError(f"unknown detector setting {key!r}; known: {known}")
        current = getattr(cfg, key)
        try:
            setattr(cfg, key, type(current)(value) if not isinstance(current, str) else str(value))
        except (TypeError, ValueError):
            raise InputError(f"detector setting {key} must be a {type(current).__name__}, got {value!r}") from None
    cfg.validate()
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
    train = _make_set(cfg.composites, cfg.seed * 1000 + 1, cutouts, photos, cfg, body_fn, progress, "composites")
    val = _make_set(cfg.val_composites, cfg.seed * 1000 + 2, cutouts, photos, cfg, body_fn, progress, "validation")

    head = CenterHead(body.channels, cfg.width)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, best_f1, best_epoch, best_metrics = 0, -1.0, 0, {}
    last = folder / "last.pt"
    if last.is_file():
        try:
            state = torch.load(last, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - an unreadable last.pt means starting over
            state = None
        if state and _same_run(state["config"], asdict(cfg) | {"composite": asdict(CompositeConfig())}):
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["optimizer"])
            start_epoch, best_f1 = int(state["epoch"]), float(state["best_f1"])
            best_epoch, best_metrics = int(state["best_epoch"]), dict(state["best_metrics"])
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
            c16, c32, tgt = _batch(train, np.sort(order[i : i + cfg.batch_size]))
            loss, parts = detector_loss(head(c16, c32), tgt, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            if cfg.max_minutes and elapsed >= cfg.max_minutes:
                ended_by_time = True
                break
        metrics = evaluate_head(head, val, cfg)
        if progress:
            tqdm.write(f"detector epoch {epoch}: val loss {metrics['loss']:.3f}, recall@0.5 {metrics['recall50']:.3f}, "
                       f"FP/photo {metrics['fp_per_image']:.2f}, F1 {metrics['f1']:.3f}")  # fmt: skip
        if metrics["f1"] > best_f1:
            best_f1, best_epoch, best_metrics = metrics["f1"], epoch, metrics
            _save(folder / "best.pt", _payload(head, cfg, epoch, metrics))
        state = _payload(head, cfg, epoch, metrics) | {
            "optimizer": opt.state_dict(), "best_f1": best_f1, "best_epoch": best_epoch, "best_metrics": best_metrics,
        }  # fmt: skip
        _save(last, state)
        if ended_by_time:
            notes.append(f"stopped after {cfg.max_minutes:g} min of training (max_minutes)")
            break

    best = torch.load(folder / "best.pt", map_location="cpu", weights_only=False)
    net = DetectorNet(cfg.backbone, cfg.input_size, cfg.width)
    net.body = body
    net.head.load_state_dict(best["head"])
    onnx_path = export_detector_onnx(net, folder / "detector.onnx")
    shown = val["images"]
    pictures = write_detection_sheets(ws, folder, shown, val["truths"][: len(shown)], photos_held_out(cfg))
    return DetectorSummary(epoch, best_epoch, best_metrics, time.perf_counter() - t_start, folder / "best.pt",
                           onnx_path, pictures, notes)  # fmt: skip


def photos_held_out(cfg: DetectorConfig, n: int = 8) -> list[Path]:
    """A few room photos the detector never trained on (the held-out share of the backgrounds), for pictures."""
    from cadsearch.render.backgrounds import IMAGE_SUFFIXES

    folder = default_backgrounds() if cfg.backgrounds == "auto" else Path(cfg.backgrounds).expanduser()
    if folder is None or not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return split_backgrounds(files)[1][:n]
