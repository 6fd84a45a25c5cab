"""Pictures of detections: numbered boxes (and tinted object masks) drawn over photos, and the contact sheets training
writes to ``reports/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cadsearch.viz import _font, contact_sheet
from cadsearch.workspace import atomic_open

__all__ = ["draw_boxes", "write_detection_sheets", "BOX_RGB", "TRUTH_RGB"]

#: Colour of a detection's box and number (the overlay's outline green).
BOX_RGB = (40, 255, 90)
#: Colour of a true box (benchmark pictures).
TRUTH_RGB = (255, 60, 200)


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    scores: Sequence[float | None] | None = None,
    truths: Sequence[Sequence[float]] = (),
    numbered: bool = True,
    numbers: Sequence[int] | None = None,
) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``boxes`` (photo pixels ``(x0, y0, x1, y1)``) drawn, each labelled with its
    number (``numbers``, default 1 = first) and score; ``truths`` drawn thinner in :data:`TRUTH_RGB` underneath.
    Returns a new array."""
    im = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(im)
    h, w = im.height, im.width
    line = max(2, round(max(h, w) / 250))
    font = _font(max(11, round(max(h, w) / 40)))
    for b in truths:
        draw.rectangle([float(v) for v in b], outline=TRUTH_RGB, width=max(1, line - 1))
    for i, b in enumerate(boxes):
        x0, y0, x1, y1 = (float(v) for v in b)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=BOX_RGB, width=line)
        score = scores[i] if scores is not None else None
        number = numbers[i] if numbers is not None else i + 1
        label = " ".join(([str(number)] if numbered else []) + ([f"{score:.2f}"] if score is not None else []))
        if label:
            tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), label, font=font)
            lx, ly = x0, max(0.0, y0 - (ty1 - ty0) - 2 * line)
            draw.rectangle((lx, ly, lx + tx1 - tx0 + 2 * line, ly + ty1 - ty0 + 2 * line), fill=BOX_RGB)
            draw.text((lx + line - tx0, ly + line - ty0), label, fill=(0, 0, 0), font=font)
    return np.asarray(im)


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")
    return path


def _photo_mask(loc, image: np.ndarray) -> np.ndarray:
    """The localiser's foreground probability over the whole photo, in photo pixels (H, W)."""
    from cadsearch.detect.masks import unframe_mask
    from cadsearch.framing import frame_for

    h, w = image.shape[:2]
    return unframe_mask(loc.segment(image), frame_for(h, w), h, w)


def object_mask_cells(loc, photos: Sequence[np.ndarray], limit: int = 16) -> tuple[list[np.ndarray], list[str]]:
    """Each detected object's square (its box framed as the search frames it: :data:`cadsearch.framing.MARGIN`)
    with :meth:`Localiser.segment` of that square tinted, as registration will use it; at most ``limit``."""
    from cadsearch.detect.masks import tint
    from cadsearch.framing import MARGIN, frame_for, frame_image

    cells, captions = [], []
    for image in photos:
        h, w = image.shape[:2]
        for d in loc.detect(image):
            if len(cells) >= limit:
                return cells, captions
            f = frame_for(h, w, d.box, MARGIN)
            cells.append(tint(frame_image(image, loc.input_size, f), loc.segment(image, f)))
            captions.append(f"object square, score {d.score:.2f}")
    return cells, captions


def write_detection_sheets(
    workspace: str | Path,
    folder: Path,
    composites: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    rooms: Sequence[Path],
    truth_masks: Sequence[np.ndarray] | None = None,
) -> list[Path]:
    """Run the trained localiser in ``folder`` on validation composites (true boxes and, given ``truth_masks`` (H, W)
    per composite, true mask outlines in magenta) and on room photos it never trained on; write
    ``reports/detector_composites.png`` and ``reports/detector_rooms.png``; with a mask head the predicted masks
    are tinted cyan, and ``reports/detector_object_masks.png`` shows each found object's square with the mask
    :meth:`Localiser.segment` gives for it (the registration's view)."""
    from cadsearch.detect.localiser import Localiser
    from cadsearch.detect.masks import mask_iou, outline, tint
    from cadsearch.imageio import read_image

    loc = Localiser(folder)
    reports = Path(workspace) / "reports"
    wrote = []
    if composites:
        found = loc.detect_many(list(composites))
        cells, captions = [], []
        for i, (im, f, t) in enumerate(zip(composites, found, truths, strict=True)):
            caption = f"{len(f)} found / {len(t)} true"
            if loc.has_mask:
                prob = _photo_mask(loc, im)
                im = tint(im, prob)
                if truth_masks is not None and i < len(truth_masks):
                    im = outline(im, truth_masks[i], TRUTH_RGB)
                    iou = mask_iou(prob, truth_masks[i])
                    caption += f", mask IoU {iou:.2f}" if len(t) and not np.isnan(iou) else ""
            cells.append(draw_boxes(im, [d.box for d in f], [d.score for d in f], t))
            captions.append(caption)
        wrote.append(_save(contact_sheet(cells, captions, columns=4, cell=256), reports / "detector_composites.png"))
    photos = []
    for p in rooms:
        try:
            photos.append(read_image(p))
        except Exception:  # noqa: BLE001 - a picture is not worth failing a training run over
            continue
    if photos:
        cells, captions = [], []
        for im in photos:
            f = loc.detect(im)
            shown = tint(im, _photo_mask(loc, im)) if loc.has_mask else im
            cells.append(draw_boxes(shown, [d.box for d in f], [d.score for d in f]))
            captions.append(f"{len(f)} found (room photo held out of training)")
        wrote.append(_save(contact_sheet(cells, captions, columns=4, cell=256), reports / "detector_rooms.png"))
    if loc.has_mask and (composites or photos):
        cells, captions = object_mask_cells(loc, list(composites) + photos)
        if cells:
            sheet = contact_sheet(cells, captions, columns=4, cell=256)
            wrote.append(_save(sheet, reports / "detector_object_masks.png"))
    return wrote
