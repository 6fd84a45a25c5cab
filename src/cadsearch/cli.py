"""The ``cadsearch`` command line: one subcommand per part (DESIGN.md, "Command line").

Errors reach the user as one line on stderr (``error: ...``) with exit code 2 for bad usage or input and 1 for
failures; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import io
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

try:  # typer >= 0.26 vendors its own copy of click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException, UsageError

from cadsearch.errors import CadsearchError, InputError
from cadsearch.workspace import resolve_workspace

app = typer.Typer(
    help="Find the 3D model in your library that a photo shows, and the camera pose it was taken from.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
library_app = typer.Typer(help="Add, generate and list the 3D models of the library.", no_args_is_help=True)
app.add_typer(library_app, name="library")

_STATE = {"workspace": None, "debug": False}


def _workspace() -> Path:
    return resolve_workspace(_STATE["workspace"])


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


@app.callback()
def _global(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (default: $CADSEARCH_WORKSPACE, else ./cadsearch-workspace).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False,
) -> None:
    _STATE["workspace"] = workspace
    _STATE["debug"] = debug


# --- library ------------------------------------------------------------------------------------------------


def _print_report(report, verb: str = "added") -> bool:
    """Print an :class:`~cadsearch.library.AddReport`: one error line per failed file, then a summary line.

    Returns whether any file failed.
    """
    for path, reason in report.failed:
        _err(f"{path}: {reason}")
    typer.echo(
        f"{verb} {len(report.added)} model(s); {len(report.skipped)} already in the catalog; "
        f"{len(report.failed)} failed"
    )
    return bool(report.failed)


@library_app.command("add")
def library_add(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Mesh files or folders (OBJ, OFF, PLY, STL, GLB, GLTF).",
            show_default=False,
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="CSV with columns path,source,category,model_id,up_axis,front_axis (paths relative to the CSV)."
        ),
    ] = None,
    category: Annotated[str | None, typer.Option(help="Category of the added files, e.g. chair.")] = None,
    up: Annotated[str, typer.Option(help="The files' up axis: +x -x +y -y +z -z.")] = "+y",
    front: Annotated[str, typer.Option(help="The axis the objects' front faces.")] = "+z",
) -> None:
    """Add mesh files to the library, rotated into the canonical frame. Adding a file twice is a no-op."""
    from cadsearch.library import Library

    if not paths and manifest is None:
        raise InputError("give mesh files or folders, or --manifest CSV")
    library = Library.open(_workspace())
    failed = False
    if manifest is not None:
        failed |= _print_report(library.add_manifest(manifest, progress=True), verb="manifest: added")
    if paths:
        failed |= _print_report(library.add_paths(list(paths), category=category, up=up, front=front, progress=True))
    if failed:
        raise typer.Exit(1)


@library_app.command("generate-chairs")
def library_generate_chairs(
    n: Annotated[int, typer.Argument(help="How many chairs.", min=1, max=100_000)],
    seed: Annotated[int, typer.Option(help="Seed; the same N and seed give the same chairs.")] = 0,
) -> None:
    """Generate N procedural chairs (the built-in default library) and add them."""
    from cadsearch.library import Library

    if _print_report(Library.open(_workspace()).generate_chairs(n, seed=seed, progress=True), verb="generated"):
        raise typer.Exit(1)


@library_app.command("list")
def library_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
) -> None:
    """List the models in the library."""
    from cadsearch.library import Library

    models = Library.open(_workspace()).list(category=category)
    if as_json:
        typer.echo(json.dumps([{**asdict(m), "symmetry": m.symmetry} for m in models], indent=2, default=str))
        return
    if not models:
        typer.echo(
            "the library is empty: add models with `cadsearch library add` or `cadsearch library generate-chairs N`"
        )
        return
    width = max(len(m.model_id) for m in models)
    typer.echo(f"{'model_id':<{width}}  {'category':<10}  {'source':<16}  {'faces':>7}  {'symmetry':<10}  name")
    for m in models:
        typer.echo(
            f"{m.model_id:<{width}}  {m.category:<10.10}  {m.source:<16.16}  {m.n_faces:>7}  {m.symmetry:<10}  {m.name}"
        )
    typer.echo(f"{len(models)} model(s)")


# --- render -------------------------------------------------------------------------------------------------

_ENGINE_HELP = "local (this machine's processes) or ray (a Ray cluster; needs `pip install cadsearch[scale]`)."
_RAY_ADDRESS_HELP = (
    "Ray cluster to use with --engine ray: 'auto' (the running one), host:port or ray://host:port. "
    "Default: start or join a local Ray instance."
)


@app.command()
def render(
    views: Annotated[int, typer.Option(help="Views per model.", min=1)] = 100,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=16, max=2048)] = 128,
    quality: Annotated[str, typer.Option(help="low (OpenGL Phong), high (ray traced) or mixed.")] = "low",
    high_fraction: Annotated[float, typer.Option(help="Share of high-quality views for --quality mixed.")] = 0.25,
    sampling: Annotated[str, typer.Option(help="Camera sampling: random, fibonacci or grid.")] = "random",
    backgrounds: Annotated[
        str,
        typer.Option(
            help="plain, white, gradient, texture, random, rooms, scenes, none, or a folder of images to crop from."
        ),
    ] = "plain",
    polar_min: Annotated[float, typer.Option(help="Smallest polar angle (degrees from straight above).")] = 15.0,
    polar_max: Annotated[float, typer.Option(help="Largest polar angle (90 = level with the object).")] = 105.0,
    seed: Annotated[int, typer.Option(help="Seed for cameras, lights and backgrounds.")] = 0,
    spp: Annotated[int, typer.Option(help="Ray-tracer samples per pixel (high quality).", min=1)] = 16,
    environment: Annotated[
        str | None,
        typer.Option(
            help="High quality: a sky (studio, daylight, overcast, sunset) or an environment image/folder "
            "that lights the object and shows behind it."
        ),
    ] = None,
    ground_plane: Annotated[bool, typer.Option(help="High quality: a floor that catches the cast shadow.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (local engine, default 1) or Ray actors (default: one per CPU).", min=1),
    ] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these model ids (repeatable).")] = None,
    engine: Annotated[str, typer.Option(help=_ENGINE_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(help=_RAY_ADDRESS_HELP, show_default=False)] = None,
) -> None:
    """Render views of every library model into the workspace (resumes an interrupted run)."""
    from cadsearch.render.job import RenderConfig, render_views

    config = RenderConfig(
        views=views,
        size=size,
        quality=quality,
        high_fraction=high_fraction,
        sampling=sampling,
        backgrounds=backgrounds,
        polar_range=(polar_min, polar_max),
        seed=seed,
        spp=spp,
        environment=environment,
        ground_plane=ground_plane,
    )
    summary = render_views(
        _workspace(), config, model_ids=model, workers=workers, engine=engine, ray_address=ray_address
    )
    rate = f" at {summary.views_per_second:.0f} views/s" if summary.rendered else ""
    if engine == "ray" and summary.views_by_worker:
        rate += f" on {len(summary.views_by_worker)} Ray node(s)"
    typer.echo(
        f"rendered {summary.rendered} view(s){rate} ({summary.reused} already done) of "
        f"{summary.models} model(s); view table: {summary.view_table}"
    )


# --- train and inspect --------------------------------------------------------------------------------------

inspect_app = typer.Typer(help="Pictures of what a trained network learnt.", no_args_is_help=True)
app.add_typer(inspect_app, name="inspect")


def _parse_override(text: str) -> tuple[str, object]:
    """``key=value`` → (key, value); ``true``/``false`` become booleans, numbers stay strings for the config to
    parse against its field types."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InputError(f"--set takes KEY=VALUE, got {text!r}")
    lowered = value.strip().lower()
    return key.strip().replace("-", "_"), {"true": True, "false": False}.get(lowered, value.strip())


@app.command()
def train(
    arch: Annotated[
        str,
        typer.Argument(
            help="scratch (CNN from scratch), transfer (frozen EfficientNet-Lite), or detector (finds the objects "
            "in a whole photo)."
        ),
    ],
    epochs: Annotated[int | None, typer.Option(help="Epochs (early stopping may end sooner).", min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.", min=1)] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed.")] = None,
    backgrounds: Annotated[
        str | None,
        typer.Option(
            help="Training backgrounds: scenes (the default: procedural rooms, textures, gradients), rooms, random, "
            "gradient, texture, plain, or a folder of photos."
        ),
    ] = None,
    pose_head: Annotated[str | None, typer.Option(help="bins or vector.")] = None,
    backbone: Annotated[str | None, typer.Option(help="Transfer backbone: lite0, lite1 or lite2.")] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(help="Budget of the training steps, minutes; the schedule follows it (scratch: 40; 0: none)."),
    ] = None,
    extra_chairs: Annotated[
        int | None,
        typer.Option(
            help="Also train on N procedural chairs that are never in the library (made and rendered like it in "
            "<workspace>/training-extras): models added to the library later are found better. Default: 100 for "
            "transfer, 0 for scratch; 0 = none.",
            min=0,
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any training option as KEY=VALUE (repeatable), e.g. --set input_size=96."),
    ] = None,
) -> None:
    """Train a model on the rendered views (resumes an interrupted run with the same settings).

    `cadsearch train detector` trains the localiser that finds every object of the library's kinds in a whole
    photo (on composites of the renders over room photos; --backgrounds FOLDER, --epochs, --lr, --batch-size,
    --seed, --max-minutes and --set KEY=VALUE apply)."""
    from cadsearch.models import train_model

    options = dict(_parse_override(o) for o in overrides or [])
    if arch == "detector":
        _train_detector(options, epochs, batch_size, lr, seed, backgrounds, max_minutes)
        return
    named = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "backgrounds": backgrounds,
        "pose_head": pose_head,
        "backbone": backbone,
        "max_minutes": max_minutes,
        "extra_chairs": extra_chairs,
    }
    options.update({k: v for k, v in named.items() if v is not None})
    summary = train_model(_workspace(), arch, options)
    v, m = summary.val_views, summary.val_models
    typer.echo(
        f"trained {arch}: {summary.epochs_total} epoch(s) (best {summary.best_epoch}) in {summary.seconds / 60:.1f} min"
    )
    if v:
        nan = float("nan")
        typer.echo(
            f"held-out views: top-1 {100 * v.get('top1', nan):.1f}%, pose mean {v.get('pose_mean_deg', nan):.1f}°, "
            f"median {v.get('pose_median_deg', nan):.1f}°"
        )
    if m:
        typer.echo(f"held-out models: retrieval top-1 {100 * m.get('top1', float('nan')):.1f}%")
    for note in summary.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"checkpoint: {summary.checkpoint}")


def _train_detector(options: dict, epochs, batch_size, lr, seed, backgrounds, max_minutes) -> None:
    from cadsearch.detect import train_detector

    named = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "backgrounds": backgrounds,
             "max_minutes": max_minutes}  # fmt: skip
    options.update({k: v for k, v in named.items() if v is not None})
    summary = train_detector(_workspace(), options)
    m = summary.metrics
    typer.echo(
        f"trained detector: {summary.epochs_total} epoch(s) (best {summary.best_epoch}, masks "
        f"{summary.best_mask_epoch}) in "
        f"{summary.seconds / 60:.1f} min; validation composites: recall@IoU0.5 {100 * m.get('recall50', 0):.1f}%, "
        f"{m.get('fp_per_image', float('nan')):.2f} false positives per photo"
        + (f", mask IoU {100 * m['mask_iou']:.1f}%" if "mask_iou" in m else "")
        + (f" ({100 * m['mask_iou_object']:.1f}% on object squares)" if "mask_iou_object" in m else "")
    )
    for note in summary.notes:
        typer.echo(f"note: {note}")
    for picture in summary.pictures:
        typer.echo(f"picture: {picture}")
    typer.echo(f"checkpoint: {summary.checkpoint}")
    if summary.int8_onnx is not None:
        typer.echo(f"8-bit copy for faster search: {summary.int8_onnx}")


@inspect_app.command("filters")
def inspect_filters(
    model: Annotated[str, typer.Option(help="scratch or transfer.")] = "scratch",
    out: Annotated[
        Path | None, typer.Option(help="PNG to write (default: <workspace>/reports/filters-<model>.png).")
    ] = None,
) -> None:
    """Write the first-layer filters of a trained network as an image."""
    from cadsearch.models import checkpoint_path, write_filters

    out = out or _workspace() / "reports" / f"filters-{model}.png"
    typer.echo(f"filters: {write_filters(checkpoint_path(_workspace(), model), out)}")


@inspect_app.command("features")
def inspect_features(
    image: Annotated[Path, typer.Argument(help="A photo or render.")],
    model: Annotated[str, typer.Option(help="scratch or transfer.")] = "scratch",
    layer: Annotated[list[str] | None, typer.Option(help="Layer names (repeatable; default: a few).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="PNG to write (default: <workspace>/reports/features-<model>.png).")
    ] = None,
) -> None:
    """Write the feature maps of chosen layers of a trained network for an image."""
    from cadsearch.models import checkpoint_path, write_feature_maps

    out = out or _workspace() / "reports" / f"features-{model}.png"
    typer.echo(f"feature maps: {write_feature_maps(checkpoint_path(_workspace(), model), image, out, layer)}")


# --- index and search ---------------------------------------------------------------------------------------


@app.command()
def index(
    model: Annotated[str, typer.Option(help="The trained network that embeds the views: scratch or transfer.")] = (
        "scratch"
    ),
    factory: Annotated[
        str | None,
        typer.Option(
            help="FAISS index factory string, e.g. 'IDMap,Flat' (exact, default) or 'IDMap,IVF1024,Flat' "
            "(large libraries; 'IDMap,HNSW32,Flat' also works). Default: keep the current index's.",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[str, typer.Option(help=_ENGINE_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(help=_RAY_ADDRESS_HELP, show_default=False)] = None,
    device: Annotated[
        str,
        typer.Option(
            help="Where the network embeds the views: auto (a CUDA GPU when there is one, else the CPU), cpu, "
            "cuda or cuda:N. With --engine ray, auto/cuda give each actor a share of the cluster's GPUs."
        ),
    ] = "auto",
) -> None:
    """Embed every rendered view into the search index (only new views on a re-run; resumes if interrupted), and
    record what ImageNet says of each category's renders (the category vote's kind prior; two or more categories)."""
    from cadsearch.index import build_index, load_index
    from cadsearch.index.embed import file_fingerprint
    from cadsearch.models import checkpoint_path, list_models, load_predictor
    from cadsearch.models.device import resolve_device
    from cadsearch.render.ray_engine import check_engine
    from cadsearch.search.calibration import load_or_fit_calibration
    from cadsearch.search.kinds import load_or_build_kind_profiles

    if model not in list_models():
        raise InputError(f"--model must be {' or '.join(list_models())}, got {model!r}")
    check_engine(engine)
    if engine == "local":
        resolve_device(device)  # a GPU asked for that is not here: one line before anything is loaded
    ckpt = checkpoint_path(_workspace(), model)
    # once: it embeds the views and then fits the score calibration (on the driver: CPU unless it has a GPU)
    predictor = load_predictor(ckpt, device=device if engine == "local" else "auto")
    summary = build_index(
        _workspace(),
        model,
        factory=factory,
        progress=True,
        predictor=predictor,
        fingerprint=file_fingerprint(ckpt),
        engine=engine,
        ray_address=ray_address,
        predictor_factory=functools.partial(load_predictor, ckpt, device=device),  # what each Ray actor loads
        device=device,
    )
    maps = (
        f"; view maps of {summary.view_maps} view(s) of models of kinds the network never trained on (their pose)"
        if summary.view_maps
        else ""
    )
    kinds = load_or_build_kind_profiles(_workspace(), progress=True)  # the category vote's kind prior
    if kinds is not None:
        maps += f"; kind profiles of {len(kinds.categories)} categories (the category vote's ImageNet prior)"
    if summary.unchanged:
        typer.echo(f"index up to date: {summary.views} view(s) of {summary.models} model(s) in {summary.folder}{maps}")
        return
    cal = load_or_fit_calibration(_workspace(), model, load_index(_workspace(), model), predictor)
    calibration = (
        f"; scores calibrated on {cal['n']} held-out view(s) (top-1 {cal['top1']:.1%}, ECE {cal['ece']:.3f})"
        if cal.get("n")
        else ""
    )
    typer.echo(
        f"indexed {summary.views} view(s) of {summary.models} model(s) with {summary.factory} "
        f"({summary.embedded} embedded now, {summary.reused} reused, {summary.removed} removed) "
        f"in {summary.seconds:.1f} s{calibration}{maps}; index: {summary.folder}"
    )


@app.command()
def search(
    images: Annotated[list[Path], typer.Argument(help="Photos to search for (any image file).", show_default=False)],
    model: Annotated[
        str | None,
        typer.Option(help="scratch or transfer (default: transfer if it is trained and indexed).", show_default=False),
    ] = None,
    top: Annotated[int, typer.Option(help="How many models to return per photo.", min=1)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per photo (DESIGN.md).")] = False,
    overlay: Annotated[
        Path | None,
        typer.Option(help="Write the top model drawn at its pose over the photo to this PNG.", show_default=False),
    ] = None,
    crop: Annotated[
        str | None,
        typer.Option(
            help="Find the object(s) before embedding: detect (every object, each searched, a large first box also "
            "against the whole photo; the default once `cadsearch train detector` ran), auto (on a plain or "
            "gradient backdrop; the default otherwise), backdrop, grabcut, saliency, or none (the whole photo).",
            show_default=False,
        ),
    ] = None,
    refine: Annotated[
        bool,
        typer.Option(
            help="Register the best model(s): refine polar, azimuth, roll, scale and position until the model's "
            "outline lies on the photo's object (needs a detector with a mask head, or a plain backdrop). When the "
            "ranking is unsure of its first model, the second is registered too and goes first if its outline fits "
            "clearly better; a registration seen from the chair's other side (the same outline) is turned when the "
            "photo's appearance says so; an object registered as seen by a tilted camera is searched again turned "
            "upright, and that answer kept when it fits better; a registered model that fits well is registered again "
            "from other starts around its pose, and that kept when it fits better and looks as alike; a first model "
            "that could not be registered, or fits poorly, is registered again from starts all around it, and that "
            "kept when it fits (better, to replace a registration) and looks clearly more alike."
        ),
    ] = True,
    refine_top: Annotated[
        int, typer.Option(help="How many of each object's best models to register (with --refine).", min=1)
    ] = 1,
    detect_threshold: Annotated[
        float | None,
        typer.Option(
            help="With --crop detect: the lowest detection score of an object (default: the detector's, 0.3). "
            "Higher: fewer false objects in a room photo, more objects missed (README, whole photos).",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Find the library models a photo shows, with a score and the camera pose of each."""
    code = _run_search(
        _workspace(),
        [str(p) for p in images],
        model=model,
        top=top,
        as_json=as_json,
        overlay=overlay,
        crop=crop,
        refine_top=refine_top if refine else 0,
        detect_threshold=detect_threshold,
    )
    if code:
        raise typer.Exit(code)


def _overlay_path(overlay: Path, i: int, n: int) -> Path:
    """Where query ``i`` of ``n`` writes its overlay: ``overlay`` itself for one query, else ``<stem>-<i>.png``."""
    return overlay if n == 1 else overlay.with_name(f"{overlay.stem}-{i + 1}{overlay.suffix or '.png'}")


def _results_table(path: str, result) -> str:
    lines = [f"{path}  ({result.timing_ms.get('total', 0.0):.0f} ms)"]
    objects = getattr(result, "objects", [])
    if len(objects) > 1 or (objects and objects[0].detection_score is not None):
        for i, obj in enumerate(objects, 1):
            box = ", ".join(f"{v:.0f}" for v in obj.box)
            if obj.detection_score is None:  # the whole photo's answer won over a box of a part of it
                lines.append(f"  object {i}: the whole photo [{box}]")
            else:
                lines.append(f"  object {i}: box [{box}], detection score {obj.detection_score:.2f}")
            lines += ["  " + line for line in _match_lines(obj.results)]
        return "\n".join(lines)
    lines += _match_lines(result.results)
    return "\n".join(lines)


def _match_lines(results) -> list[str]:
    from cadsearch.search.searcher import is_exact_match

    lines = []
    if not results:
        lines.append("  no match")
    else:
        exact = is_exact_match(results)
        lines.append("  Exact match" if exact else "  No exact match — closest models in your library")
    for m in results:
        # roll and fit only for registered results (their pose was refined on the photo's outline)
        fit = f"  roll {m.roll_deg:5.1f}°  fit {m.silhouette_iou:4.2f}" if m.placement is not None else ""
        lines.append(
            f"  {m.rank:>2}. {m.model_id:<24} score {m.score:6.1%}  match {m.match:6.1%}  polar {m.polar_deg:5.1f}°"
            f"  azimuth {m.azimuth_deg:5.1f}°{fit}  {m.name} ({m.category})"
        )
    return lines


def _run_search(
    workspace: str | Path,
    images: Sequence[str | Path],
    model: str | None = None,
    top: int = 5,
    as_json: bool = False,
    overlay: str | Path | None = None,
    crop: str | None = None,
    refine_top: int = 1,
    detect_threshold: float | None = None,
) -> int:
    """``cadsearch search IMAGE...``: answer every query; an unreadable image gets a one-line error on stderr
    and the others still run.

    Prints one JSON object per line per query with ``as_json`` (DESIGN.md format), else a table. With
    ``overlay``, writes the top model's registration overlay (``OUT.png``, or ``OUT-<i>.png`` for several
    queries; every found object's best model, numbered boxes). ``crop`` is the crop method
    (:data:`~cadsearch.search.searcher.CROP_CHOICES`; None: ``detect`` when a detector is trained, else ``auto``).
    ``refine_top``: how many of each object's best models are registered (0: none). ``detect_threshold``: the
    detector's lowest object score (None: its own). Returns the exit code: 0, or 2 if any image could not be read.

    Raises:
        InputError: no trained model or no index (nothing can be answered), or ``detect_threshold`` without a
            detector.
    """
    from cadsearch.imageio import read_image
    from cadsearch.search import Searcher
    from cadsearch.workspace import atomic_write_bytes

    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    if not images:
        raise InputError("give at least one image to search for")
    searcher = Searcher.from_workspace(workspace, model=model, crop=crop, refine_top=refine_top)
    if detect_threshold is not None:
        searcher.set_detect_threshold(detect_threshold)
    code = 0
    for i, path in enumerate(images):
        t0 = time.perf_counter()
        try:
            image = read_image(path)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            code = 2
            continue
        decode_ms = 1000 * (time.perf_counter() - t0)
        result = searcher.search(image, k=top)
        result.timing_ms["decode"] = decode_ms
        result.timing_ms["total"] = 1000 * (time.perf_counter() - t0)
        if as_json:
            print(json.dumps(result.to_json(str(path))), flush=True)
        else:
            print(_results_table(str(path), result), flush=True)
        if overlay is not None and result.results:
            from PIL import Image

            from cadsearch.search.overlay import render_objects_overlay, render_overlay

            out = _overlay_path(Path(overlay), i, len(images))
            if getattr(result, "objects", None):
                picture = render_objects_overlay(searcher.library, image, result.objects)
            else:
                picture = render_overlay(searcher.library, image, result.results[0], frame=result.frame)
            buf = io.BytesIO()
            Image.fromarray(picture).save(buf, format="PNG")
            atomic_write_bytes(out, buf.getvalue())
            if not as_json:
                print(f"  overlay: {out}", flush=True)
    return code


# --- evaluate -----------------------------------------------------------------------------------------------


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="scratch, transfer or both.")] = "both",
    split: Annotated[
        list[str] | None,
        typer.Option(
            help="graphics (fresh renders of the library) or a photo-split CSV file; repeat it to evaluate several "
            "splits and get them side by side in one table (experiment.md). Default: graphics.",
            show_default=False,
        ),
    ] = None,
    ranking: Annotated[
        list[str] | None,
        typer.Option(
            help="index (default: exactly what `cadsearch search` answers) or classifier (ablation: the network's "
            "softmax over its training classes); repeat it to put both side by side.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Report folder (default: <workspace>/reports/eval-<split>); with several splits or rankings, the "
            "folder that holds eval-<split>[-classifier]/ for each and experiment.md.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the metrics as JSON (DESIGN.md format), one line per split and ranking."),
    ] = False,
    views_per_model: Annotated[int, typer.Option(help="Graphics split: views per model.", min=1)] = 10,
    backgrounds: Annotated[str, typer.Option(help="Graphics split backgrounds: random or a folder.")] = "random",
    mirror: Annotated[bool, typer.Option(help="Photo split: also ask each photo mirrored (φ → 360° − φ).")] = True,
    crop: Annotated[
        str | None,
        typer.Option(
            help="How each query is cropped, as `cadsearch search --crop` (default: the same as search: detect once "
            "a detector is trained, else auto)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Render worker processes for the graphics split.", min=1)] = 1,
    refine: Annotated[
        bool, typer.Option(help="Register the top answer before its pose is scored, as `cadsearch search --refine`.")
    ] = True,
    detect_threshold: Annotated[
        float | None,
        typer.Option(
            help="With --crop detect: the lowest detection score of an object, as `cadsearch search "
            "--detect-threshold` (default: the detector's, 0.3).",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Evaluate the trained models as `cadsearch search` answers: top-1/top-5 and pose error, report and plots."""
    from cadsearch.evaluate import default_report_dir, design_json, run_evaluation
    from cadsearch.evaluate.experiment import experiment_markdown, write_experiment
    from cadsearch.evaluate.report import metrics_table
    from cadsearch.evaluate.run import RANKINGS, resolve_models, split_name
    from cadsearch.evaluate.splits import GRAPHICS
    from cadsearch.framing import check_crop_method

    resolve_models(model)  # a clear error for an unknown model before anything runs
    if crop is not None and crop != "detect":  # detect is checked once the workspace's detector is looked for
        check_crop_method(crop)
    rankings = list(dict.fromkeys(ranking or ["index"]))
    for r in rankings:
        if r not in RANKINGS:
            raise InputError(f"--ranking must be {' or '.join(RANKINGS)}, got {r!r}")
    splits = list(dict.fromkeys(split or [GRAPHICS]))  # in order, without repeats
    names = [split_name(s) for s in splits]  # every split checked before the first (long) evaluation starts
    several = len(splits) * len(rankings) > 1
    results = []
    for s, name in zip(splits, names, strict=True):
        for r in rankings:
            folder_name = f"eval-{name}" + ("" if r == "index" else f"-{r}")
            if report is not None:
                folder = report / folder_name if several else report
            else:
                folder = default_report_dir(_workspace(), name).with_name(folder_name)
            result = run_evaluation(
                _workspace(),
                models=model,
                split=s,
                report_dir=folder,
                mirror_photos=mirror,
                views_per_model=views_per_model,
                backgrounds=backgrounds,
                workers=workers,
                ranking=r,
                crop=crop,
                refine_top=1 if refine else 0,
                detect_threshold=detect_threshold,
            )
            results.append(result)
            if as_json:
                typer.echo(json.dumps(design_json(result)))
            else:
                typer.echo(metrics_table(result))
                typer.echo(f"report: {folder}")
    if several:
        path = write_experiment(report or (_workspace() / "reports"), results)
        if not as_json:
            typer.echo("")
            typer.echo(experiment_markdown(results))
            typer.echo(f"experiment: {path}")


# --- serve --------------------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes the app to the network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    model: Annotated[str | None, typer.Option(help="scratch or transfer (default: the workspace's best).")] = None,
    examples: Annotated[
        Path | None, typer.Option(help="A folder of photos to offer as examples (read in place, never copied).")
    ] = None,
    detect_threshold: Annotated[
        float | None,
        typer.Option(
            help="With a trained detector: the lowest detection score of an object, as `cadsearch search "
            "--detect-threshold` (default: the detector's, 0.3).",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the web app: upload a photo, see the ranked models with score, pose, overlay and a 3D view."""
    from cadsearch.web import serve as serve_app

    serve_app(_workspace(), host=host, port=port, model=model, examples_dir=examples, detect_threshold=detect_threshold)


# --- demo ---------------------------------------------------------------------------------------------------


@app.command()
def demo(
    chairs: Annotated[int, typer.Option(help="Procedural chairs to generate.", min=2)] = 16,
    views: Annotated[int, typer.Option(help="Views per chair.", min=8)] = 60,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=32)] = 128,
    workers: Annotated[int, typer.Option(help="Render worker processes.", min=1)] = 2,
    train_minutes: Annotated[float, typer.Option(help="Training time per network, in minutes.")] = 1.0,
    serve: Annotated[bool, typer.Option(help="Serve the web app at the end.")] = True,
    port: Annotated[int, typer.Option(help="Port of the web app.")] = 8000,
    photos: Annotated[
        int | None,
        typer.Option(
            help="Development photos to evaluate on when ../shared/data is there (default: all; 0: none).", min=0
        ),
    ] = None,
) -> None:
    """Run the whole pipeline on built-in procedural chairs, then serve the web app."""
    from cadsearch.demo import run_demo

    run_demo(
        _workspace(),
        chairs=chairs,
        views=views,
        size=size,
        workers=workers,
        train_minutes=train_minutes,
        serve=serve,
        port=port,
        photos=photos,
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app and turn known errors into one line and an exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="cadsearch", standalone_mode=False)
    except typer.Exit as stop:
        code = stop.exit_code
    except ClickException as err:  # bad option or argument: one line, not click's usage block
        ctx = getattr(err, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if isinstance(err, UsageError) and ctx is not None else ""
        _err(f"{err.format_message()}{hint}")
        code = 2 if isinstance(err, UsageError) else err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _err("interrupted; run the same command again to resume")
        code = 130
    except CadsearchError as err:
        if _STATE["debug"]:
            raise
        _err(str(err))
        code = err.exit_code
    except Exception as err:  # a bug: say so in one line, traceback only on request
        if _STATE["debug"]:
            raise
        _err(f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback)")
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
