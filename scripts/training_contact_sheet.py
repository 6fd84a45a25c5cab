"""Training images as the network sees them: rendered views after the default augmentations, in one grid.

Usage::

    python scripts/training_contact_sheet.py WORKSPACE [--out training.png] [--n 32] [--size 160]
                                             [--backgrounds scenes] [--seed 0]

Each tile is one augmented view (procedural room or texture backgrounds, other library objects as clutter,
occluders, colour, blur, noise, JPEG) captioned with its model and azimuth after flipping. Look at it after
changing :mod:`cadsearch.models.data`: the object must stay recognisable and the label must stay right.
"""

from __future__ import annotations

import argparse

import numpy as np

from cadsearch.models.data import Augmenter, BackgroundPool, ViewBank
from cadsearch.render.job import read_view_table
from cadsearch.viz import contact_sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace")
    parser.add_argument("--out", default="training.png")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--backgrounds", default="scenes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = read_view_table(args.workspace)
    pick = np.random.default_rng(args.seed).choice(len(rows), size=min(args.n, len(rows)), replace=False)
    rows = [rows[i] for i in sorted(pick)]
    bank = ViewBank.load(args.workspace, rows, sorted({r.model_id for r in rows}), progress=False)
    pool = BackgroundPool(args.backgrounds, args.size, pool_size=64).refresh(args.seed)
    images, azimuths = Augmenter(args.size, backgrounds=pool)(bank.rgb, bank.mask, bank.azimuth_deg, args.seed)
    tiles = [(x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8) for x in images]
    captions = [f"{m} φ{a:.0f}°" for m, a in zip(bank.model_of, azimuths, strict=True)]
    contact_sheet(tiles, captions, columns=8).save(args.out)
    print(f"wrote {args.out} ({len(tiles)} training images)")


if __name__ == "__main__":
    main()
