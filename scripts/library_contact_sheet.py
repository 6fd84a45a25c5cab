"""Draw every model of a workspace's library (or one category) from the thumbnail viewpoint, for a visual check
of the canonical frame: every object should stand upright (+Y up) and show its front turned to the left of the
image's centre line at the thumbnail azimuth of 35°.

    .venv/bin/python scripts/library_contact_sheet.py --workspace WS [--category chair] [--out sheet.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cadsearch.library import Library
from cadsearch.render.thumbnails import library_sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--category")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("library_sheet.png"))
    args = parser.parse_args()
    library = Library.open(args.workspace)
    ids = [m.model_id for m in library.list(category=args.category)]
    if not ids:
        raise SystemExit("error: no models to draw")
    library_sheet(library, ids, size=args.size, columns=args.columns, captions=ids).save(args.out)
    print(f"wrote {args.out} ({len(ids)} models)")


if __name__ == "__main__":
    main()
