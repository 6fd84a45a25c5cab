"""The ``cadsearch`` command line: one subcommand per part (DESIGN.md, "Command line").

Errors reach the user as one line on stderr (``error: ...``) with exit code 2 for bad usage or input and 1 for
failures; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
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
        typer.echo(json.dumps([asdict(m) for m in models], indent=2, default=str))
        return
    if not models:
        typer.echo(
            "the library is empty: add models with `cadsearch library add` or `cadsearch library generate-chairs N`"
        )
        return
    width = max(len(m.model_id) for m in models)
    typer.echo(f"{'model_id':<{width}}  {'category':<10}  {'source':<16}  {'faces':>7}  name")
    for m in models:
        typer.echo(f"{m.model_id:<{width}}  {m.category:<10.10}  {m.source:<16.16}  {m.n_faces:>7}  {m.name}")
    typer.echo(f"{len(models)} model(s)")


# --- render -------------------------------------------------------------------------------------------------


@app.command()
def render(
    views: Annotated[int, typer.Option(help="Views per model.", min=1)] = 100,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=16, max=2048)] = 128,
    quality: Annotated[str, typer.Option(help="low (OpenGL Phong), high (ray traced) or mixed.")] = "low",
    high_fraction: Annotated[float, typer.Option(help="Share of high-quality views for --quality mixed.")] = 0.25,
    sampling: Annotated[str, typer.Option(help="Camera sampling: random, fibonacci or grid.")] = "random",
    backgrounds: Annotated[
        str,
        typer.Option(help="plain, white, gradient, texture, random, none, or a folder of images to crop from."),
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
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    model: Annotated[list[str] | None, typer.Option(help="Only these model ids (repeatable).")] = None,
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
    summary = render_views(_workspace(), config, model_ids=model, workers=workers)
    rate = f" at {summary.views_per_second:.0f} views/s" if summary.rendered else ""
    typer.echo(
        f"rendered {summary.rendered} view(s){rate} ({summary.reused} already done) of "
        f"{summary.models} model(s); view table: {summary.view_table}"
    )


# --- evaluate -----------------------------------------------------------------------------------------------


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="scratch, transfer or both.")] = "both",
    split: Annotated[
        str, typer.Option(help="graphics (fresh renders of the library) or a photo-split CSV file.")
    ] = "graphics",
    report: Annotated[
        Path | None,
        typer.Option(help="Report folder (default: <workspace>/reports/eval-<split>).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON (DESIGN.md format).")] = False,
    views_per_model: Annotated[int, typer.Option(help="Graphics split: views per model.", min=1)] = 10,
    backgrounds: Annotated[str, typer.Option(help="Graphics split backgrounds: random or a folder.")] = "random",
    mirror: Annotated[bool, typer.Option(help="Photo split: also ask each photo mirrored (φ → 360° − φ).")] = True,
    workers: Annotated[int, typer.Option(help="Render worker processes for the graphics split.", min=1)] = 1,
) -> None:
    """Evaluate the trained models: recognition top-1/top-5 and pose error, with a report and plots."""
    from cadsearch.evaluate import default_report_dir, design_json, run_evaluation

    if model not in ("scratch", "transfer", "both"):
        raise InputError(f"--model must be scratch, transfer or both, got {model!r}")
    result = run_evaluation(
        _workspace(),
        models=model,
        split=split,
        report_dir=report,
        mirror_photos=mirror,
        views_per_model=views_per_model,
        backgrounds=backgrounds,
        workers=workers,
    )
    if as_json:
        typer.echo(json.dumps(design_json(result)))
        return
    typer.echo(_metrics_table(result))
    typer.echo(f"report: {report or default_report_dir(_workspace(), result['split'])}")


def _metrics_table(result: dict) -> str:
    """A plain-text table of DESIGN.md's metrics, one row per model."""

    def pct(v):
        return "    -" if v is None else f"{100 * v:4.1f}%"

    def deg(v):
        return "     -" if v is None else f"{v:5.1f}°"

    lines = [f"split: {result['split']}", "model      n      top-1   top-5   pose mean  median   <15°    <30°"]
    for arch, m in result["models"].items():
        lines.append(
            f"{arch:<9} {m['n']:>5}   {pct(m['top1'])}  {pct(m['top5'])}  {deg(m['pose_mean_deg'])}   "
            f"{deg(m['pose_median_deg'])}  {pct(m['acc15'])}  {pct(m['acc30'])}"
        )
    return "\n".join(lines)


# --- demo ---------------------------------------------------------------------------------------------------


@app.command()
def demo(
    chairs: Annotated[int, typer.Option(help="Procedural chairs to generate.", min=1)] = 16,
    views: Annotated[int, typer.Option(help="Views per chair.", min=1)] = 24,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=32)] = 128,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
) -> None:
    """Run the pipeline on built-in procedural chairs: generate, render, and write contact sheets."""
    from cadsearch.demo import run_demo

    run_demo(_workspace(), chairs=chairs, views=views, size=size, workers=workers)


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
