"""``Localiser``: a photo → boxes of the library's kinds of objects in it, most confident first.

The photo is letterboxed exactly as the networks frame a whole photo (:func:`cadsearch.framing.frame_for` of the
whole photo, padded with its border's median colour by :func:`cadsearch.framing.frame_image`) to the detector's
input square; the ONNX graph of body + head (:mod:`cadsearch.detect.model`; its 8-bit copy where the detector has
one that passes its check on this CPU, :mod:`cadsearch.detect.quantize`) runs once; :func:`decode` turns its
maps into boxes: local maxima of the centre heat map (3 × 3) above ``threshold``, each with its predicted size and
sub-cell offset, then each box voted by its neighbours (the heat-weighted mean of the boxes that the cells around it
predict, :data:`BOX_VOTE_IOU`), non-maximum suppression (:func:`nms`) and at most ``max_objects`` boxes. Boxes are
mapped back to the photo's pixels and clipped to it.

Object masks (:meth:`Localiser.segment`): the same pass's stride-4 foreground logits, for any square of the photo
(e.g. a found object's, :func:`cadsearch.framing.frame_for` of its box with a margin), upsampled bilinearly to the
input square before the sigmoid. :func:`cadsearch.detect.masks.unframe_mask` maps it back onto the photo.

Coordinates: photo pixels, x right, y down, boxes ``(x0, y0, x1, y1)`` with exclusive ends (as
:mod:`cadsearch.framing`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cadsearch.errors import InputError
from cadsearch.framing import Frame, as_rgb_uint8, frame_for, frame_image

__all__ = [
    "Detection",
    "Localiser",
    "decode",
    "nms",
    "box_iou",
    "letterbox",
    "input_tensor",
    "detector_dir",
    "DEFAULT_THRESHOLD",
    "PRECISIONS",
]

#: Default score threshold of a detection (heat-map peak probability).
DEFAULT_THRESHOLD = 0.3
#: Default most boxes returned per photo.
DEFAULT_MAX_OBJECTS = 5
#: Boxes overlapping a more confident one by more than this IoU are dropped.
NMS_IOU = 0.5
#: Whether :meth:`Localiser.maps` also runs the mirrored photo and averages (test-time flip; doubles the cost).
DEFAULT_FLIP_TEST = False
#: Boxes smaller than this (pixels of the photo, either side) are dropped: nothing to search in them.
MIN_BOX_SIDE = 4.0
#: Box voting: a peak's box becomes the heat-weighted mean of the boxes predicted by every cell with heat ≥
#: :data:`BOX_VOTE_MIN_HEAT` that overlaps it at IoU ≥ this (None: the peak's own box). On real photos the heat
#: often peaks off the object's centre (on a chair's backrest, at its edge), where the box the head predicts is
#: centred on the wrong point; the cells nearer the centre predict the whole object (the size head at a room
#: chair's true centre is right for 31–34 of 36 chairs in two trainings: ``benchmarks/localise_misses.py``).
BOX_VOTE_IOU: float | None = 0.4
#: Lowest heat of a cell whose box takes part in a vote.
BOX_VOTE_MIN_HEAT = 0.05
#: ``Localiser(precision=...)``: ``auto`` runs the detector's 8-bit graph when it has one that passes its check on
#: this CPU (:mod:`cadsearch.detect.quantize`), else the 32-bit one; ``fp32`` always the 32-bit one.
PRECISIONS = ("auto", "fp32")


@dataclass(frozen=True)
class Detection:
    """One found object: ``box`` ``(x0, y0, x1, y1)`` in photo pixels and ``score`` in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float


def detector_dir(workspace: str | Path) -> Path:
    """``<workspace>/checkpoints/detector``: the detector's checkpoints and ONNX graph."""
    return Path(workspace) / "checkpoints" / "detector"


def has_detector(workspace: str | Path) -> bool:
    """Whether a detector is trained in ``workspace`` (its ``best.pt``): ``search`` and ``evaluate`` then crop with
    ``detect`` by default."""
    return (detector_dir(workspace) / "best.pt").is_file()


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Frame]:
    """The whole photo padded to a square and resized to ``size``: ``(square (size, size, 3) uint8, frame)``;
    ``frame`` is the square in photo pixels (photo pixel = frame.x0 + square pixel · frame.side / size)."""
    a = as_rgb_uint8(image)
    frame = frame_for(a.shape[0], a.shape[1])
    return frame_image(a, size, frame), frame


def input_tensor(squares: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8 input squares → (B, 3, S, S) float32, normalised as the body was trained (ImageNet mean
    and standard deviation)."""
    from cadsearch.detect.model import MEAN, STD

    x = squares.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    x = (x - np.asarray(MEAN, np.float32)[:, None, None]) / np.asarray(STD, np.float32)[:, None, None]
    return np.ascontiguousarray(x)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of boxes (N, 4) and (M, 4) ``(x0, y0, x1, y1)``."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix0, iy0 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    ix1, iy1 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression, most confident first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if order:
            overlap = box_iou(boxes[[i]], boxes[order])[0]
            order = [j for j, o in zip(order, overlap, strict=True) if o <= iou]
    return keep


def decode(
    heat: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    stride: float,
    input_size: int,
    threshold: float = DEFAULT_THRESHOLD,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    iou: float = NMS_IOU,
    vote_iou: float | None = BOX_VOTE_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """The head's maps for one image → ``(boxes (N, 4) in input-square pixels, scores (N,))``, best first.

    Peaks (3 × 3 local maxima of ``heat`` ≥ ``threshold``) give the scores; each peak's box is voted (see
    :data:`BOX_VOTE_IOU`; ``vote_iou`` None: the peak's own box), then NMS.

    Args:
        heat: (h, w) probabilities (sigmoid of the logits).
        size: (2, h, w) log(box width, height / ``input_size``).
        offset: (2, h, w) centre position (x, y) inside the cell, in cells.
        stride: input pixels per cell.
        input_size: the input square's side, pixels.
        threshold: lowest score kept; max_objects: most boxes kept; iou: NMS overlap; vote_iou: box voting overlap.
    """
    peaks = (heat == ndimage.maximum_filter(heat, size=3, mode="constant", cval=0.0)) & (heat >= threshold)
    ys, xs = np.nonzero(peaks)
    if len(xs) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    scores = heat[ys, xs]
    top = np.argsort(-scores, kind="stable")[: 8 * max_objects]  # bounded work even on a noisy map
    ys, xs, scores = ys[top], xs[top], scores[top]
    boxes = _cell_boxes(ys, xs, size, offset, stride, input_size)
    if vote_iou is not None:
        vy, vx = np.nonzero(heat >= min(BOX_VOTE_MIN_HEAT, threshold))
        voters, weights = _cell_boxes(vy, vx, size, offset, stride, input_size), heat[vy, vx].astype(np.float64)
        member = box_iou(boxes, voters) >= vote_iou  # (peaks, voters); a peak always votes for itself
        w = member * weights[None, :]
        total = w.sum(axis=1, keepdims=True)
        boxes = np.where(total > 0, (w @ voters) / np.maximum(total, 1e-12), boxes)
    keep = nms(boxes, scores, iou)[:max_objects]
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32)


def _cell_boxes(ys: np.ndarray, xs: np.ndarray, size: np.ndarray, offset: np.ndarray, stride: float,
                input_size: int) -> np.ndarray:  # fmt: skip
    """The boxes (N, 4) in input-square pixels that the head predicts at cells (``ys``, ``xs``)."""
    cx = (xs + offset[0, ys, xs]) * stride
    cy = (ys + offset[1, ys, xs]) * stride
    bw = np.exp(np.clip(size[0, ys, xs], -8.0, 1.0)) * input_size
    bh = np.exp(np.clip(size[1, ys, xs], -8.0, 1.0)) * input_size
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float64)


def _upsample_probability(logits: np.ndarray, size: int) -> np.ndarray:
    """(g, g) logits → (size, size) sigmoid of their bilinear upsampling (half-pixel centres, edges clamped, as
    torch's ``interpolate(..., align_corners=False)``)."""
    from PIL import Image

    up = np.asarray(Image.fromarray(np.asarray(logits, np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR), np.float32)  # fmt: skip
    return (1.0 / (1.0 + np.exp(-np.clip(up, -30.0, 30.0)))).astype(np.float32)


class Localiser:
    """Finds objects of the library's kinds in a photo. Load once, :meth:`detect` many times (thread-safe).

    Attributes:
        folder: the checkpoint folder (:func:`detector_dir`).
        input_size: the detector's input square, pixels.
        threshold: lowest detection score returned (default: the checkpoint's, else :data:`DEFAULT_THRESHOLD`).
        max_objects: most detections returned per photo.
        backend: ``onnx`` (the exported body + head on onnxruntime) or ``torch`` (fallback).
        precision: ``int8`` (the detector's 8-bit graph, :mod:`cadsearch.detect.quantize`: asked for by
            ``precision="auto"``, the default, and used when it exists and passes its check on this CPU) or ``fp32``.
        has_mask: whether the detector has an object-mask head (:meth:`segment`); False for checkpoints trained
            before it existed (they still detect).
        box_vote_iou: box voting overlap of :func:`decode` (None: each peak's own box, as before voting existed).
    """

    def __init__(
        self,
        folder: str | Path,
        threshold: float | None = None,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        threads: int = 1,
        flip_test: bool | None = None,
        box_vote_iou: float | None = BOX_VOTE_IOU,
        precision: str = "auto",
    ) -> None:
        import torch

        if precision not in PRECISIONS:
            raise InputError(f"unknown detector precision {precision!r}; choose one of {', '.join(PRECISIONS)}")

        folder = Path(folder)
        self.folder = folder
        path = folder / "best.pt"
        if not path.is_file():
            raise InputError(f"no trained detector at {path}; train it first with `cadsearch train detector`")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(
                f"detector checkpoint {path} is unreadable ({type(exc).__name__}); delete it and train again with "
                "`cadsearch train detector`"
            ) from None
        if not isinstance(ckpt, dict) or ckpt.get("format") != "cadsearch-detector/1":
            raise InputError(
                f"{path} is not a cadsearch detector checkpoint; train one with `cadsearch train detector`"
            )
        self.input_size = int(ckpt["input_size"])
        with_mask = isinstance(ckpt.get("mask_head"), dict)
        self.stride = float(ckpt["stride"])
        self.threshold = float(threshold if threshold is not None else ckpt.get("threshold", DEFAULT_THRESHOLD))
        self.max_objects = int(max_objects)
        self.flip_test = bool(DEFAULT_FLIP_TEST if flip_test is None else flip_test)
        self.box_vote_iou = box_vote_iou
        self.metrics: dict[str, Any] = ckpt.get("metrics", {})
        self._session = None
        self._net = None
        self.precision = "fp32"
        onnx_path = folder / str(ckpt.get("onnx", "detector.onnx"))
        if precision == "auto" and onnx_path.name == "detector.onnx":
            from cadsearch.detect.quantize import load_int8_session

            self._session = load_int8_session(folder, threads)
            self.precision = "int8" if self._session is not None else "fp32"
        if self._session is None and onnx_path.is_file():
            try:
                from cadsearch.models.onnx_runtime import cpu_session

                self._session = cpu_session(onnx_path, threads)
            except Exception:  # noqa: BLE001 - torch always works
                self._session = None
        if self._session is not None:
            self._outputs = [o.name for o in self._session.get_outputs()]
            self.has_mask = "mask" in self._outputs
        else:
            from cadsearch.detect.model import DetectorNet

            self._net = DetectorNet(ckpt["backbone"], self.input_size, int(ckpt["width"]), mask=with_mask)
            self._net.head.load_state_dict(ckpt["head"])
            if with_mask:
                self._net.mask_head.load_state_dict(ckpt["mask_head"])
            self._net.eval()
            self._outputs = ["heat", "size", "offset"] + (["mask"] if with_mask else [])
            self.has_mask = with_mask
        self.backend = "onnx" if self._session is not None else "torch"

    def _run(self, squares: np.ndarray) -> dict[str, np.ndarray]:
        """(B, S, S, 3) uint8 input squares → the net's raw outputs by name (``heat``, ``size``, ``offset`` and,
        with a mask head, ``mask`` logits (B, 1, S/4, S/4)), one pass."""
        x = input_tensor(squares)
        if self._session is not None:
            outs = self._session.run(None, {"image": x})
        else:
            import torch

            with torch.no_grad():
                outs = [t.numpy() for t in self._net(torch.from_numpy(x))]
        return dict(zip(self._outputs, outs, strict=True))

    def maps(self, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, S, S, 3) uint8 input squares → ``heat`` (B, h, w) probabilities, ``size`` (B, 2, h, w),
        ``offset`` (B, 2, h, w).

        With :attr:`flip_test`, the squares are also run mirrored left-right (one batch of 2B) and the maps are
        averaged with the mirrored ones flipped back: heat, size and the y offset cell by cell, the x offset as
        ``1 - x`` of the mirrored cell (a centre at ``j + x`` cells is at ``g - j - x`` = cell ``g - 1 - j`` plus
        ``1 - x`` in the mirror)."""
        b = len(squares)
        if self.flip_test:
            squares = np.concatenate([squares, squares[:, :, ::-1]])
        out = self._run(np.ascontiguousarray(squares))
        heat = 1.0 / (1.0 + np.exp(-out["heat"][:, 0]))
        size, offset = out["size"], out["offset"]
        if not self.flip_test:
            return heat, size, offset
        mirrored_offset = offset[b:, :, :, ::-1].copy()
        mirrored_offset[:, 0] = 1.0 - mirrored_offset[:, 0]
        heat = (heat[:b] + heat[b:, :, ::-1]) / 2
        size = (size[:b] + size[b:, :, :, ::-1]) / 2
        offset = np.clip((offset[:b] + mirrored_offset) / 2, 0.0, 0.999)
        return heat, size, offset

    def segment(self, image: np.ndarray, frame: Frame | None = None) -> np.ndarray:
        """Foreground probability (``input_size``, ``input_size``) float32 in [0, 1] over the square ``frame`` of
        ``image`` (photo pixels, as :func:`cadsearch.framing.frame_image` cuts it; None = the whole photo
        letterboxed, as :meth:`detect` sees it): one pass of the net, the stride-4 mask logits upsampled bilinearly
        (half-pixel centres) before the sigmoid. Square pixel (u, v) is photo point ``frame.x0 + (u + 0.5) ·
        frame.side / input_size`` (x; y likewise); :func:`cadsearch.detect.masks.unframe_mask` maps it onto the photo.

        Raises:
            InputError: ``image`` is not an image array, or the detector has no mask head (:attr:`has_mask`).
        """
        return self.segment_many([image], [frame])[0]

    def segment_many(self, images: Sequence[np.ndarray], frames: Sequence[Frame | None] | None = None) -> np.ndarray:
        """:meth:`segment` for several (photo, square) pairs in one batch → (B, S, S) float32."""
        if not self.has_mask:
            raise InputError(
                f"the detector in {self.folder} has no mask head (trained before masks existed); train it again "
                "with `cadsearch train detector`"
            )
        frames = list(frames) if frames is not None else [None] * len(images)
        if len(frames) != len(images):
            raise InputError(f"segment_many: {len(images)} images but {len(frames)} frames")
        if not len(images):
            return np.zeros((0, self.input_size, self.input_size), np.float32)
        squares = []
        for im, f in zip(images, frames, strict=True):
            a = as_rgb_uint8(im)
            squares.append(frame_image(a, self.input_size, f or frame_for(a.shape[0], a.shape[1])))
        logits = self._run(np.stack(squares))["mask"][:, 0]
        return np.stack([_upsample_probability(m, self.input_size) for m in logits])

    def detect(self, image: np.ndarray, threshold: float | None = None) -> list[Detection]:
        """Objects in ``image`` (RGB uint8 (H, W, 3), RGBA, grayscale or float [0, 1]; any size), most confident
        first; at most :attr:`max_objects`, none below ``threshold`` (default :attr:`threshold`).

        Raises:
            InputError: ``image`` is not an image array.
        """
        return self.detect_many([image], threshold)[0]

    def detect_many(self, images: Sequence[np.ndarray], threshold: float | None = None) -> list[list[Detection]]:
        """:meth:`detect` for several photos in one batch."""
        if not len(images):
            return []
        squares, frames = zip(*(letterbox(im, self.input_size) for im in images), strict=True)
        heat, size, offset = self.maps(np.stack(squares))
        thr = self.threshold if threshold is None else float(threshold)
        out = []
        for i, (im, frame) in enumerate(zip(images, frames, strict=True)):
            boxes, scores = decode(heat[i], size[i], offset[i], self.stride, self.input_size, thr, self.max_objects,
                                   vote_iou=self.box_vote_iou)  # fmt: skip
            h, w = np.shape(im)[:2]
            k = frame.side / self.input_size
            found = []
            for b, s in zip(boxes, scores, strict=True):
                x0, y0 = max(0.0, frame.x0 + b[0] * k), max(0.0, frame.y0 + b[1] * k)
                x1, y1 = min(float(w), frame.x0 + b[2] * k), min(float(h), frame.y0 + b[3] * k)
                if x1 - x0 >= min(MIN_BOX_SIDE, w) and y1 - y0 >= min(MIN_BOX_SIDE, h):
                    found.append(Detection((float(x0), float(y0), float(x1), float(y1)), float(s)))
            out.append(found)
        return out

    def timed_detect(self, image: np.ndarray) -> tuple[list[Detection], float]:
        """:meth:`detect` and its wall time in milliseconds."""
        t = time.perf_counter()
        found = self.detect(image)
        return found, 1000 * (time.perf_counter() - t)

    def __repr__(self) -> str:
        vote = "no box vote" if self.box_vote_iou is None else f"box vote {self.box_vote_iou:g}"
        backend = f"{self.backend} {self.precision}" if self.backend == "onnx" else self.backend
        return f"Localiser(input={self.input_size}, threshold={self.threshold:g}, {vote}, {backend})"
