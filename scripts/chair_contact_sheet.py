"""Render the procedural chairs into one labelled grid image, to check by eye that each reads as its family.

Usage::

    python scripts/chair_contact_sheet.py [--n 24] [--seed 0] [--out chairs.png]
                                          [--polar 65] [--azimuth 35] [--size 256] [--family office]

The default view is a front three-quarter view (camera polar 65°, azimuth 35° in DESIGN.md's convention
``c = r·(sinθ sinφ, cosθ, sinθ cosφ)``): the seat front faces the viewer, slightly to the right, and the
chair's left side shows on the image's right. ``--azimuth 0`` is a straight front view and ``--azimuth 90``
shows the chair's left side with its front pointing to the image's left.

Renders with ``cadsearch.render.create_renderer("low")`` when it is importable and works; otherwise with a
small painter's-algorithm renderer built on Pillow (``--fallback`` forces it).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import trimesh
from PIL import Image, ImageDraw

from cadsearch.library.procedural import FAMILIES, FAMILY_LABELS, generate_chair, generate_chairs
from cadsearch.render.cameras import Camera, look_at, perspective

BACKGROUND = (246, 246, 242)
LABEL_HEIGHT = 30


def painter_render(mesh: trimesh.Trimesh, camera: Camera, size: int) -> np.ndarray:
    """Fallback renderer: project triangles, sort far-to-near, fill with Lambert-shaded vertex colours.

    Returns (size, size, 3) uint8 over :data:`BACKGROUND`. Good enough to judge shape and orientation.
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces)
    view = look_at(camera.position)
    proj = perspective(camera.fov_deg, 1.0, 0.1, camera.distance + 2.0)
    cam = v @ view[:3, :3].T + view[:3, 3]
    clip = np.c_[cam, np.ones(len(cam))] @ proj.T
    ndc = clip[:, :2] / clip[:, 3:4]
    # NDC y is up, image rows go down.
    px = np.stack([(ndc[:, 0] + 1) * 0.5 * size, (1 - ndc[:, 1]) * 0.5 * size], -1)
    tri = v[f]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    centroid = tri.mean(axis=1)
    to_cam = camera.position - centroid
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    # Two-sided Lambert with a key light from the upper left of the camera plus ambient.
    light = camera.position / np.linalg.norm(camera.position) + np.array([-0.3, 0.8, 0.0]) @ view[:3, :3]
    light /= np.linalg.norm(light)
    facing = np.sign(np.sum(normals * to_cam, axis=1))
    lam = np.clip(np.sum(normals * facing[:, None] * light, axis=1), 0.0, 1.0)
    shade = 0.35 + 0.65 * lam
    colors = (
        np.asarray(mesh.visual.vertex_colors)[f][:, :, :3].mean(axis=1)
        if mesh.visual.kind == "vertex"
        else (np.full((len(f), 3), 180.0))
    )
    rgb = np.clip(colors * shade[:, None], 0, 255).astype(np.uint8)
    depth = -cam[f][:, :, 2].mean(axis=1)
    img = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for k in np.argsort(-depth):
        pts = [tuple(p) for p in px[f[k]]]
        c = tuple(int(x) for x in rgb[k])
        draw.polygon(pts, fill=c, outline=c)
    return np.asarray(img)


def make_renderer(size: int, fallback: bool):
    """A function (mesh, camera) → RGB uint8 image over :data:`BACKGROUND`."""
    if not fallback:
        try:
            from cadsearch.render import create_renderer

            renderer = create_renderer("low", size=size)
            test = trimesh.creation.box()
            renderer.render(test, Camera(65.0, 35.0))

            def render(mesh: trimesh.Trimesh, camera: Camera) -> np.ndarray:
                out = renderer.render(mesh, camera)
                alpha = out.alpha[..., None] if hasattr(out, "alpha") else (out.rgb.sum(-1, keepdims=True) > 0)
                # rgb is premultiplied by coverage: composite over the sheet's background.
                rgb = out.rgb.astype(np.float32) + (1.0 - alpha) * np.array(BACKGROUND, dtype=np.float32)
                return np.clip(rgb, 0, 255).astype(np.uint8)

            return render, "create_renderer('low')"
        except Exception as exc:  # no GL context, module not there yet, ...
            print(
                f"low renderer unavailable ({type(exc).__name__}: {exc}); using the painter fallback",
                file=sys.stderr,
            )
    return (lambda mesh, camera: painter_render(mesh, camera, size)), "painter fallback"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=24, help="number of chairs (generate_chairs(n, seed))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="chairs.png")
    ap.add_argument("--polar", type=float, default=65.0, help="camera polar angle in degrees (90 = level)")
    ap.add_argument("--azimuth", type=float, default=35.0, help="camera azimuth in degrees (0 = front)")
    ap.add_argument("--size", type=int, default=256, help="tile size in pixels")
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--family", choices=FAMILIES, help="only this family: generate_chair(seed + k, family)")
    ap.add_argument("--fallback", action="store_true", help="force the built-in painter's renderer")
    args = ap.parse_args(argv)

    if args.family:
        chairs = [generate_chair(args.seed + k, args.family) for k in range(args.n)]
    else:
        chairs = generate_chairs(args.n, args.seed)
    render, how = make_renderer(args.size, args.fallback)
    camera = Camera(args.polar, args.azimuth)
    cols = min(args.cols, len(chairs))
    rows = math.ceil(len(chairs) / cols)
    tile_h = args.size + LABEL_HEIGHT
    sheet = Image.new("RGB", (cols * args.size, rows * tile_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for k, chair in enumerate(chairs):
        x, y = (k % cols) * args.size, (k // cols) * tile_h
        sheet.paste(Image.fromarray(render(chair.mesh, camera)), (x, y))
        label = f"{FAMILY_LABELS[chair.family]}\n{chair.model_id}  {len(chair.mesh.faces)} tris"
        draw.multiline_text((x + 4, y + args.size + 1), label, fill=(20, 20, 20), spacing=1)
    title = f"polar {args.polar:g}°, azimuth {args.azimuth:g}° - {how}"
    draw.text((4, 2), title, fill=(120, 20, 20))
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(chairs)} chairs, {how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
