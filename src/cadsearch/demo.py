"""``cadsearch demo``: the whole pipeline on built-in procedural chairs, in a few minutes on a laptop CPU.

Stages: generate chairs → render views → contact sheets → train both networks (briefly; the transfer one beside as
many training-only chairs as the library has) and the detector (a short run on a few hundred composites) → index
the views → evaluate the search on fresh renders → search held-out renders, a made-up room photo with two chairs
(every chair found and searched) and a real photo when ``../shared/data`` is there, with overlays → serve the web
app. Every stage resumes: a second run reuses what the first one made.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import typer
from PIL import Image

from cadsearch.workspace import atomic_open

__all__ = ["run_demo"]

STAGES = 8
#: The development photos' split CSV, relative to the shared data folder.
DEV_PHOTOS = Path("photos") / "dev_viewpoints.csv"


def _say(message: str) -> None:
    typer.echo(message)


def _stage(k: int, message: str, started: float) -> None:
    """Announce stage ``k``, with the minutes and seconds since the demo started (``started``: perf_counter)."""
    minutes, seconds = divmod(int(time.perf_counter() - started), 60)
    _say(f"[{k}/{STAGES}] {message}  ({minutes}:{seconds:02d})")


def _save_png(image: Image.Image, path: Path) -> Path:
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")
    return path


def _shared_data() -> Path | None:
    """The project's real data folder, if present: ``$CADSEARCH_SHARED_DATA``, else ``../shared/data``."""
    candidates = [
        os.environ.get("CADSEARCH_SHARED_DATA"),
        "../shared/data",
        Path(__file__).resolve().parents[3] / ".." / "shared" / "data",
    ]
    for c in candidates:
        if c and (Path(c) / DEV_PHOTOS).exists():
            return Path(c)
    return None


def _photo_split(shared: Path, workspace: Path, limit: int | None) -> Path:
    """The development photos' split CSV, or, with ``limit``, a copy of its first ``limit`` rows (photo paths made
    absolute) at ``<workspace>/eval/dev_viewpoints_first<limit>.csv``, written atomically."""
    csv_path = shared / DEV_PHOTOS
    if limit is None:
        return csv_path
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)[:limit]
    out = workspace / "eval" / f"dev_viewpoints_first{limit}.csv"
    with atomic_open(out, "w") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({**r, "photo": str((csv_path.parent / r["photo"]).resolve())} for r in rows)
    return out


def _demo_photo(shared: Path) -> tuple[Path, float, float] | None:
    """A labelled real chair photo (path, polar, azimuth) from the development set."""
    csv_path = shared / DEV_PHOTOS
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("confidence") == "high" and row["azimuth_deg"] and row["polar_deg"]:
                path = csv_path.parent / row["photo"]
                if path.exists():
                    return path, float(row["polar_deg"]), float(row["azimuth_deg"])
    return None


#: The demo's detector run: a few hundred composites and a few epochs (measured: see the README). At 256 px, not the
#: default 384: 384 px steps cost 2.3x, and its 0.75 min then gave 2 epochs and 2 % validation recall (256: 6, 48 %).
DEMO_DETECTOR = {"composites": 400, "val_composites": 48, "cutouts": 300, "epochs": 6, "max_minutes": 0.75,
                 "input_size": 256}  # fmt: skip


#: Queries the demo's calibration registers to fit the outline match model (the product's default is
#: :data:`~cadsearch.search.calibration.OUTLINE_QUERIES`, 150).
DEMO_OUTLINE_QUERIES = 24
#: Fresh renders per chair that the demo evaluates on (``cadsearch evaluate``'s default is 10).
DEMO_EVAL_VIEWS = 4


def _room_with_chairs(workspace: Path, ids: list[str], shared: Path | None):
    """A 400 × 300 photo with two rendered chairs (fresh views, not the training views) pasted over a room photo
    the detector never trained on (procedural when ``../shared/data`` is absent)."""
    import numpy as np

    from cadsearch.detect.composites import BackgroundPhotos, split_backgrounds
    from cadsearch.library import Library
    from cadsearch.render import create_renderer
    from cadsearch.render.cameras import Camera

    rooms = []
    if shared is not None and (shared / "backgrounds").is_dir():
        rooms = split_backgrounds(sorted((shared / "backgrounds").glob("*.jpg")))[1][:1]
    rng = np.random.default_rng(7)
    canvas = BackgroundPhotos(rooms).crop(rng, 400, 300).astype(np.float32)
    library = Library.open(workspace)
    renderer = create_renderer("low", 160)
    try:
        for model_id, (x, y), camera in ((ids[0], (30, 110), Camera(70, 35)), (ids[-1], (230, 60), Camera(80, 300))):
            out = renderer.render(library.mesh(model_id), camera)
            a = out.alpha[..., None].astype(np.float32)
            region = canvas[y : y + 160, x : x + 160]
            region[:] = out.rgb.astype(np.float32) + (1.0 - a) * region  # rgb is premultiplied by coverage
    finally:
        renderer.close()
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def run_demo(
    workspace: Path,
    chairs: int = 16,
    views: int = 60,
    size: int = 128,
    workers: int = 2,
    train_minutes: float = 1.0,
    serve: bool = True,
    port: int = 8000,
    photos: int | None = None,
) -> dict:
    """Run the demo in ``workspace``; returns the paths of what it wrote (also printed). ``photos``: how many of the
    development photos it evaluates on when ``../shared/data`` is there (None: all, 0: none)."""
    from cadsearch.detect import train_detector
    from cadsearch.evaluate import run_evaluation
    from cadsearch.evaluate.experiment import experiment_markdown, write_experiment
    from cadsearch.evaluate.report import metrics_table
    from cadsearch.imageio import read_image
    from cadsearch.index import build_index, load_index
    from cadsearch.library import Library
    from cadsearch.models import checkpoint_path, list_models, load_predictor, train_model
    from cadsearch.render.job import RenderConfig, load_view, read_view_table, render_views
    from cadsearch.render.thumbnails import library_sheet
    from cadsearch.search import Searcher
    from cadsearch.search.calibration import load_or_fit_calibration
    from cadsearch.search.overlay import render_objects_overlay
    from cadsearch.viz import contact_sheet

    t0 = time.perf_counter()
    workspace = Path(workspace)
    reports = workspace / "reports"
    library = Library.open(workspace)
    wrote: dict[str, Path] = {}

    _stage(1, f"generating {chairs} procedural chairs in {workspace}", t0)
    report = library.generate_chairs(chairs, seed=0, progress=True)
    ids = sorted([m.model_id for m in report.added] + [model_id for _, model_id in report.skipped])

    _stage(2, f"rendering {views} views of each chair at {size} px", t0)
    summary = render_views(workspace, RenderConfig(views=views, size=size, backgrounds="random"), ids, workers)
    rate = f" ({summary.views_per_second:.0f} views/s)" if summary.rendered else ""
    _say(f"      {summary.rendered} views rendered{rate}, {summary.reused} reused")

    _stage(3, "writing contact sheets", t0)
    wrote["library_sheet"] = _save_png(library_sheet(library, ids, size=max(size, 160)), reports / "demo_library.png")
    rows = [r for r in read_view_table(workspace) if r.model_id == ids[0]][:24]
    sheet = contact_sheet(
        [load_view(workspace, r)[0] for r in rows],
        [f"θ {r.polar_deg:.0f}°  φ {r.azimuth_deg:.0f}°" for r in rows],
        columns=8,
    )
    wrote["views_sheet"] = _save_png(sheet, reports / "demo_views.png")
    _say(f"      library: {wrote['library_sheet']}\n      views of {ids[0]}: {wrote['views_sheet']}")

    _stage(4, f"training both networks, about {train_minutes:g} min each (a real run trains far longer)", t0)
    # The transfer network trains beside training-only chairs by default (100: models added later are found
    # better); the demo makes as many as its library has, so that rendering them stays a small share of its time.
    _say(f"      transfer also trains on {chairs} training-only chairs (a real run: 100), never in the library")
    for arch in list_models():
        extras = {"extra_chairs": chairs} if arch == "transfer" else {}
        s = train_model(workspace, arch, {"max_minutes": train_minutes, "epochs": 30} | extras)
        v = s.val_views
        _say(
            f"      {arch}: {s.epochs_total} epochs, held-out views top-1 {100 * v.get('top1', 0):.0f}%, "
            f"pose mean {v.get('pose_mean_deg', float('nan')):.0f}°"
        )
    _say("      detector (finds the chairs in a whole photo): a short run on a few hundred composites")
    # scaled with the networks' time (fully from one minute on), so that a quick demo (tests) trains a tiny detector
    f = min(1.0, train_minutes)
    d = train_detector(
        workspace,
        DEMO_DETECTOR
        | {
            "composites": max(16, round(DEMO_DETECTOR["composites"] * f)),
            "val_composites": max(8, round(DEMO_DETECTOR["val_composites"] * f)),
            "max_minutes": DEMO_DETECTOR["max_minutes"] * f,
        },
    )
    _say(
        f"      detector: {d.epochs_total} epochs, validation composites recall@IoU0.5 "
        f"{100 * d.metrics.get('recall50', 0):.0f}%, {d.metrics.get('fp_per_image', float('nan')):.2f} false "
        f"positives per photo, object-mask IoU {100 * d.metrics.get('mask_iou', float('nan')):.0f}%; pictures: "
        f"{', '.join(str(p) for p in d.pictures)}"
        + (f"; search runs its 8-bit copy {d.int8_onnx.name}" if d.int8_onnx is not None else "")
    )

    _stage(5, "indexing every view and calibrating the scores", t0)
    for arch in list_models():
        built = build_index(workspace, arch, progress=True)
        # fitted here, not on the first search, with fewer registered queries for the outline model: 150 took
        # 72 s per network, each a ninth of the demo (2026-12-06)
        index = load_index(workspace, arch)
        cal = load_or_fit_calibration(
            workspace, arch, index, load_predictor(checkpoint_path(workspace, arch)), DEMO_OUTLINE_QUERIES
        )
        outline = ((cal.get("match") or {}).get("outline") or {}).get("n_queries", 0)
        _say(
            f"      {arch}: {built.views} views of {built.models} models ({built.embedded} embedded now); scores "
            f"calibrated on {cal.get('n', 0)} held-out views, the outline match on {outline}"
        )

    shared = _shared_data()
    evaluate_photos = shared is not None and photos != 0
    on_photos = " and labelled photos" if evaluate_photos else ""
    _stage(6, f"evaluating the search on fresh renders (new cameras, random backgrounds){on_photos}", t0)
    result = run_evaluation(workspace, models="both", split="graphics", views_per_model=DEMO_EVAL_VIEWS, progress=True)
    _say(metrics_table(result))
    wrote["evaluation"] = reports / "eval-graphics" / "report.md"
    if evaluate_photos:  # the reference's experiment: both networks, on renders and on real photos, in one table
        # The photos alone, not their mirror images too (as `cadsearch evaluate` asks by default): each query runs
        # the whole search, and the 236 queries took 165 of the demo's 657 s (2026-12-06), over its budget.
        dev = _photo_split(shared, workspace, photos)
        on_dev = run_evaluation(workspace, models="both", split=dev, mirror_photos=False, progress=True)
        _say(experiment_markdown([result, on_dev]))
        wrote["experiment"] = write_experiment(reports, [result, on_dev])

    _stage(7, "searching held-out renders" + (" and a real photo" if shared else ""), t0)
    searcher = Searcher.from_workspace(workspace)
    queries = []
    for r in read_view_table(workspace, "eval/graphics")[:: max(1, len(ids) * DEMO_EVAL_VIEWS // 3)][:3]:
        queries.append(
            (f"render of {r.model_id} (θ {r.polar_deg:.0f}°, φ {r.azimuth_deg:.0f}°)", load_view(workspace, r)[0])
        )
    if queries:  # the first render again, on a plain backdrop, from a camera tilted 20° (object turned ccw)
        import numpy as np

        first = read_view_table(workspace, "eval/graphics")[0]
        rgb, mask, _ = load_view(workspace, first)
        alpha = mask[..., None]  # coverage in [0, 1]
        plain = (rgb * alpha + (1.0 - alpha) * 225.0).astype(np.uint8)
        tilted = Image.fromarray(plain).rotate(20.0, Image.Resampling.BICUBIC, expand=True, fillcolor=(225, 225, 225))
        label = f"render of {first.model_id} on a plain backdrop, tilted 20° (camera roll)"
        queries.append((label, np.asarray(tilted)))
    queries.append(("a made-up room photo with two chairs", _room_with_chairs(workspace, ids, shared)))
    photo = _demo_photo(shared) if shared else None
    if photo is not None:
        queries.append((f"photo {photo[0].name} (labelled θ {photo[1]:.0f}°, φ {photo[2]:.0f}°)", read_image(photo[0])))
    for k, (label, image) in enumerate(queries):
        res = searcher.search(image, k=3)
        _say(f"      {label}: " + ("exact match" if res.exact_match else "no exact match — closest models"))
        for n, obj in enumerate(res.objects, 1):
            if obj.detection_score is not None:
                box = ", ".join(f"{v:.0f}" for v in obj.box)
                _say(f"        object {n} (detection score {obj.detection_score:.2f}, box [{box}])")
            elif len(res.objects) > 1:  # the whole photo's answer won over the box of a part of it
                _say(f"        object {n} (the whole photo)")
            for m in obj.results:
                pose = f"θ {m.polar_deg:5.1f}°  φ {m.azimuth_deg:5.1f}°"
                if m.placement is not None:  # registered: its outline was fitted to the photo's object
                    pose += f"  roll {m.roll_deg:+5.1f}°  outline fit {m.silhouette_iou:.2f}"
                _say(f"        #{m.rank} {m.name:<28} score {100 * m.score:3.0f}%  match {100 * m.match:3.0f}%  {pose}")
        # Small renders are drawn larger so that the outline can be seen.
        side = min(1024, max(384, *image.shape[:2]))
        overlay = render_objects_overlay(searcher.library, image, res.objects, size=side)
        wrote[f"overlay_{k}"] = _save_png(Image.fromarray(overlay), reports / f"demo_overlay_{k}.png")
        _say(f"        overlay: {wrote[f'overlay_{k}']}")

    _say(f"demo pipeline finished in {time.perf_counter() - t0:.0f} s; evaluation report: {wrote['evaluation']}")
    _stage(8, "web app" + ("" if serve else " skipped (--no-serve)"), t0)
    if serve:
        from cadsearch.web import serve as serve_app

        _say(f"      open http://127.0.0.1:{port}/ in a browser (Ctrl+C stops it)")
        serve_app(workspace, "127.0.0.1", port)
    return wrote
