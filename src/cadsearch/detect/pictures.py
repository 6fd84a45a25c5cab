"""Pictures of detections: numbered boxes drawn over photos, and the contact sheets training writes to ``reports/``."""

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
) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``boxes`` (photo pixels ``(x0, y0, x1, y1)``) drawn, each labelled with its
    number (1 = first) and score; ``truths`` drawn thinner in :data:`TRUTH_RGB` underneath. Returns a new array."""
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
        label = " ".join(([str(i + 1)] if numbered else []) + ([f"{score:.2f}"] if score is not None else []))
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


def write_detection_sheets(
    workspace: str | Path,
    folder: Path,
    composites: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    rooms: Sequence[Path],
) -> list[Path]:
    """Run the trained localiser in ``folder`` on validation composites (true boxes in magenta) and on room photos
    it never trained on; write ``reports/detector_composites.png`` and ``reports/detector_rooms.png``."""
    from cadsearch.detect.localiser import Localiser
    from cadsearch.imageio import read_image

    loc = Localiser(folder)
    reports = Path(workspace) / "reports"
    wrote = []
    if composites:
        found = loc.detect_many(list(composites))
        cells = [draw_boxes(im, [d.box for d in f], [d.score for d in f], t) for im, f, t in
                 zip(composites, found, truths, strict=True)]  # fmt: skip
        captions = [f"{len(f)} found / {len(t)} true" for f, t in zip(found, truths, strict=True)]
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
            cells.append(draw_boxes(im, [d.box for d in f], [d.score for d in f]))
            captions.append(f"{len(f)} found (room photo held out of training)")
        wrote.append(_save(contact_sheet(cells, captions, columns=4, cell=256), reports / "detector_rooms.png"))
    return wrote
