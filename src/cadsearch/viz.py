"""Pictures for people: contact sheets of images with captions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["contact_sheet"]


def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib, so always here) for Greek letters and degree signs; else Pillow's."""
    try:
        import matplotlib

        return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf", size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def contact_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    columns: int = 8,
    cell: int | None = None,
    caption_px: int = 12,
    background=(255, 255, 255),
) -> Image.Image:
    """Lay out images (each (H, W, 3) uint8) in a grid with one caption line under each.

    ``cell`` is the side of each tile in pixels (default: the first image's height); images are resized to fit.
    Returns a Pillow RGB image.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    cell = cell or int(images[0].shape[0])
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    label_h = caption_px + 6 if captions else 0
    pad = 4
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + label_h + pad) + pad), background)
    draw = ImageDraw.Draw(sheet)
    font = _font(caption_px)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        x, y = pad + c * (cell + pad), pad + r * (cell + label_h + pad)
        tile = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
        if tile.size != (cell, cell):
            tile.thumbnail((cell, cell), Image.LANCZOS)
        sheet.paste(tile, (x + (cell - tile.width) // 2, y + (cell - tile.height) // 2))
        if captions:
            text = str(captions[k])
            while text and draw.textlength(text, font=font) > cell:
                text = text[:-1]
            draw.text((x, y + cell + 2), text, fill=(40, 40, 40), font=font)
    return sheet
