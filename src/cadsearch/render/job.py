"""``cadsearch render``: every catalog model × N views into the workspace, resumable and parallel.

Layout under ``<workspace>/views/`` (paths in the view table are relative to the workspace):

- ``<model_id>/<i:04d>.png``       RGB uint8, the object composited over its background
- ``<model_id>/<i:04d>_mask.png``  8-bit coverage of the object (255 = object), exact whatever the background
- ``<model_id>/<i:04d>_depth.png`` 16-bit depth along the viewing axis in units of ``1 / DEPTH_SCALE``; 0 = none
- ``<model_id>/config.json``       the render settings this folder was started with
- ``<model_id>/views.json``        this model's rows of the view table; written last, so it marks completion
- ``views.csv``                    the view table of all models (view_id, model_id, polar_deg, azimuth_deg,
  distance, fov_deg, quality, background, path, mask_path, depth_path)
- ``render_config.json``           the settings and code version of the last run

Every file is written atomically. A re-run skips finished models and, inside an unfinished model, the views
whose files exist, so an interrupted job resumes where it stopped. Cameras of the ``random`` sampler are drawn
per view from ``(seed, model_id, view index)``, so asking for more views later keeps the existing ones.

A job is planned on the driver (:func:`plan_render_job`: settings, models, what is finished), its chunks are
rendered by one function (``_render_chunk``) on an *engine* — ``local`` worker processes here, or a Ray cluster
(:mod:`cadsearch.render.ray_engine`) — and the driver writes each model's ``views.json`` and the view table as
results arrive (``_JobWriter``). Both engines therefore write the same files for the same seeds.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import multiprocessing
import os
import shutil
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cadsearch import __version__
from cadsearch.errors import InputError
from cadsearch.render.cameras import DEFAULT_FOV_DEG, SAMPLERS, Camera, fit_distance
from cadsearch.workspace import atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = [
    "DEPTH_SCALE",
    "RenderConfig",
    "RenderPlan",
    "RenderSummary",
    "ViewRow",
    "plan_cameras",
    "plan_render_job",
    "render_views",
    "read_view_table",
    "read_render_config",
    "load_view",
    "camera_of",
]

#: Stored depth = round(depth × DEPTH_SCALE) as uint16; canonical distances stay below 6.5, so this fits.
DEPTH_SCALE = 10_000.0
#: Views handed to a worker at a time: small enough for a smooth progress bar, large enough to amortise IPC.
CHUNK_VIEWS = 25
VIEW_TABLE_COLUMNS = (
    "view_id",
    "model_id",
    "polar_deg",
    "azimuth_deg",
    "distance",
    "fov_deg",
    "quality",
    "background",
    "path",
    "mask_path",
    "depth_path",
)


@dataclass(frozen=True)
class RenderConfig:
    """Settings of a render job. Angles in degrees, sizes in pixels.

    ``polar_range`` defaults to 15°–105°: from well above to a little below the object, where photos of
    furniture are taken (the labelled development photos span 40°–80°); pass (0, 180) for the whole sphere.
    """

    views: int = 100
    size: int = 128
    quality: str = "low"  # low | high | mixed
    high_fraction: float = 0.25  # share of high-quality views when quality == "mixed"
    sampling: str = "random"  # random | fibonacci | grid
    backgrounds: str = "plain"  # plain | white | gradient | texture | random | none | a folder of images
    polar_range: tuple[float, float] = (15.0, 105.0)
    fov_deg: float = DEFAULT_FOV_DEG
    seed: int = 0
    light_jitter: bool = True
    spp: int = 16  # samples per pixel of the ray tracer
    # Ray tracer only: an environment (built-in sky name, image file or folder) that lights the object and shows
    # behind it (skybox), and a ground plane that catches its shadow. Either makes the ray tracer's picture
    # final, so those views are not composited over ``backgrounds``.
    environment: str | None = None
    ground_plane: bool = False

    def validate(self) -> None:
        """Raise :class:`InputError` with a one-line reason if a setting is out of range."""
        if self.views < 1:
            raise InputError(f"--views must be at least 1, got {self.views}")
        if not 16 <= self.size <= 2048:
            raise InputError(f"--size must be between 16 and 2048 pixels, got {self.size}")
        if self.quality not in ("low", "high", "mixed"):
            raise InputError(f"--quality must be low, high or mixed, got {self.quality!r}")
        if not 0.0 <= self.high_fraction <= 1.0:
            raise InputError(f"--high-fraction must be in [0, 1], got {self.high_fraction}")
        if self.sampling not in SAMPLERS:
            raise InputError(f"--sampling must be one of {', '.join(SAMPLERS)}, got {self.sampling!r}")
        lo, hi = self.polar_range
        if not 0.0 <= lo < hi <= 180.0:
            raise InputError(f"polar range must satisfy 0 <= min < max <= 180, got {lo}..{hi}")
        if not 5.0 <= self.fov_deg <= 120.0:
            raise InputError(f"--fov must be between 5 and 120 degrees, got {self.fov_deg}")

    def validate_environment(self) -> None:
        """Raise :class:`InputError` if the ray-tracer-only settings are used without it, or ``environment`` is
        neither a built-in sky nor an existing path."""
        if self.environment is None and not self.ground_plane:
            return
        from cadsearch.render.environments import BUILTIN_SKIES

        if self.quality == "low":
            raise InputError("--environment and --ground-plane need --quality high or mixed (the ray tracer)")
        if (
            self.environment is not None
            and self.environment not in BUILTIN_SKIES
            and not Path(self.environment).exists()
        ):
            raise InputError(
                f"--environment {self.environment!r} is neither a built-in sky ({', '.join(BUILTIN_SKIES)}) "
                "nor an image file or folder"
            )

    def folder_key(self) -> dict:
        """Settings that a model's stored views depend on. The view count is left out for the random sampler,
        whose cameras do not depend on it (so more views can be added later)."""
        key = dataclasses.asdict(self)
        key["polar_range"] = list(self.polar_range)
        if self.sampling == "random":
            key.pop("views")
        return key


@dataclass(frozen=True)
class ViewRow:
    """One row of the view table (paths relative to the workspace, angles in degrees)."""

    view_id: str
    model_id: str
    polar_deg: float
    azimuth_deg: float
    distance: float
    fov_deg: float
    quality: str
    background: str
    path: str
    mask_path: str
    depth_path: str


@dataclass
class RenderSummary:
    """What a render job did."""

    rendered: int  # views rendered now
    reused: int  # views found finished on disk (finished models, and finished views of unfinished ones)
    models: int
    seconds: float
    view_table: Path
    #: views delivered per worker: ``{"local": n}`` for the local engine, Ray node id → n for the ray engine
    views_by_worker: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def views_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else float("nan")


def _model_seed(seed: int, model_id: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(model_id.encode())) & 0xFFFFFFFF


def plan_cameras(config: RenderConfig, model_id: str) -> list[tuple[Camera, str]]:
    """The ``config.views`` cameras of one model, each with its quality (``low`` or ``high``).

    Deterministic in ``(config, model_id)``; for the random sampler view ``i`` depends only on
    ``(seed, model_id, i)``.
    """
    distance = fit_distance(config.fov_deg)
    mseed = _model_seed(config.seed, model_id)
    # The job's polar limits are the sampler's zone; the random sampler draws view i from (mseed, i) alone.
    polar, azimuth = SAMPLERS[config.sampling](config.views, seed=mseed, polar_range=config.polar_range)
    out = []
    for i, (polar_deg, azimuth_deg) in enumerate(zip(polar.tolist(), azimuth.tolist(), strict=True)):
        quality = config.quality
        if quality == "mixed":
            draw = np.random.default_rng([mseed, i, 1]).random()
            quality = "high" if draw < config.high_fraction else "low"
        out.append((Camera(polar_deg, azimuth_deg, distance, config.fov_deg), quality))
    return out


def _view_paths(out_dir: str, model_id: str, i: int) -> tuple[str, str, str]:
    stem = f"{out_dir}/{model_id}/{i:04d}"
    return f"{stem}.png", f"{stem}_mask.png", f"{stem}_depth.png"


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # compress_level 1: PNG stays lossless; higher levels cost several ms per view for a few % of bytes.
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --- worker side --------------------------------------------------------------------------------------------
# One renderer per process and quality, created on first use: an OpenGL context cannot cross a fork, and
# creating it once per process is what makes per-view rendering cheap.

_WORKER: dict = {}


def _worker_state(workspace: str, config: RenderConfig) -> dict:
    if _WORKER.get("key") != (workspace, config):
        from cadsearch.library import Library
        from cadsearch.render.backgrounds import make_background_source

        for renderer in _WORKER.get("renderers", {}).values():
            renderer.close()
        _WORKER.clear()
        _WORKER.update(
            key=(workspace, config),
            library=Library.open(workspace),
            renderers={},
            background=None if config.backgrounds == "none" else make_background_source(config.backgrounds),
        )
    return _WORKER


#: Threads the ray tracer may use in this process; set in worker processes so that W workers share the cores
#: instead of each starting a thread per core (measured: 2 single-threaded workers render 30 views/s where two
#: workers with a thread per core manage 21, on 2 cores at 128 px / 16 spp). None: all cores.
_RAYTRACE_THREADS: int | None = None


def _init_worker(raytrace_threads: int | None) -> None:
    global _RAYTRACE_THREADS
    _RAYTRACE_THREADS = raytrace_threads


def _renderer(state: dict, quality: str, config: RenderConfig):
    if quality not in state["renderers"]:
        from cadsearch.render import create_renderer

        if quality == "low":
            options = {"light_jitter": config.light_jitter}
        else:
            options = {"spp": config.spp, "environment": config.environment, "ground_plane": config.ground_plane}
            if _RAYTRACE_THREADS:
                options["threads"] = _RAYTRACE_THREADS
        state["renderers"][quality] = create_renderer(quality, config.size, **options)
    return state["renderers"][quality]


def _mesh(state: dict, model_id: str):
    """The canonical mesh of ``model_id``, the same object for every chunk of that model in this process:
    renderers cache their uploads (GPU buffers, a ray-tracing scene and its compiled kernels, ~1 s) per mesh
    object, and ``Library.mesh`` returns a fresh copy each call."""
    meshes = state.setdefault("meshes", {})
    if model_id not in meshes:
        if len(meshes) >= 4:  # chunks arrive model by model; a few recent models are enough
            meshes.pop(next(iter(meshes)))
        meshes[model_id] = state["library"].mesh(model_id)
    return meshes[model_id]


def _render_chunk(
    workspace: str, out_dir: str, config: RenderConfig, model_id: str, indices: Sequence[int]
) -> tuple[list[ViewRow], int]:
    """Render views ``indices`` of ``model_id``; files that exist already are kept. Runs in a worker.

    Returns the views' rows and how many of them were rendered now.
    """
    state = _worker_state(workspace, config)
    mesh = _mesh(state, model_id)
    cameras = plan_cameras(config, model_id)
    mseed = _model_seed(config.seed, model_id)
    root = Path(workspace)
    rows = []
    rendered = 0
    for i in indices:
        camera, quality = cameras[i]
        path, mask_path, depth_path = _view_paths(out_dir, model_id, i)
        rng = np.random.default_rng([mseed, i, 2])
        light_seed = int(rng.integers(2**31))  # drawn first, always, so the background draw below is stable
        background_name = "none"
        # The ray tracer with a skybox or ground plane makes the whole picture itself: nothing to composite.
        own_background = quality == "high" and (config.environment is not None or config.ground_plane)
        if own_background:
            background_name = f"skybox:{config.environment}" if config.environment else "ground-plane"
        if not (root / path).exists():
            out = _renderer(state, quality, config).render(mesh, camera, light_seed=light_seed)
            rgb = out.rgb
            if state["background"] is not None and not own_background:
                from cadsearch.render.backgrounds import composite

                bg, background_name = state["background"].draw(config.size, rng)
                rgb = composite(out, bg)
            depth = np.clip(np.round(out.depth * DEPTH_SCALE), 0, 65535).astype(np.uint16)
            mask = np.clip(np.round(out.alpha * 255.0), 0, 255).astype(np.uint8)
            # The colour image goes last: its presence is what marks the view finished on resume.
            atomic_write_bytes(root / depth_path, _png_bytes(depth), durable=False)
            atomic_write_bytes(root / mask_path, _png_bytes(mask), durable=False)
            atomic_write_bytes(root / path, _png_bytes(rgb), durable=False)
            rendered += 1
        elif state["background"] is not None and not own_background:
            background_name = state["background"].draw(config.size, rng)[1]  # same draw as when rendered
        rows.append(
            ViewRow(
                f"{model_id}/{i:04d}",
                model_id,
                round(camera.polar_deg, 4),
                round(camera.azimuth_deg, 4),
                round(camera.distance, 6),
                camera.fov_deg,
                quality,
                background_name,
                path,
                mask_path,
                depth_path,
            )
        )
    return rows, rendered


# --- driver -------------------------------------------------------------------------------------------------


def _prepare_model_folder(root: Path, out_dir: str, model_id: str, config: RenderConfig) -> list[ViewRow] | None:
    """Make ``<out_dir>/<model_id>/`` ready for ``config``. Returns its finished rows when nothing is left to do."""
    folder = root / out_dir / model_id
    key = config.folder_key()
    config_path = folder / "config.json"
    if config_path.exists():
        try:
            same = json.loads(config_path.read_text()) == key
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:  # rendered with other settings: those views would be wrong for this table
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not config_path.exists():
        atomic_write_json(config_path, key)
    done = folder / "views.json"
    if done.exists():
        try:
            rows = [ViewRow(**r) for r in json.loads(done.read_text())]
        except (OSError, json.JSONDecodeError, TypeError):
            rows = []
        if len(rows) >= config.views and all((root / r.path).exists() for r in rows[: config.views]):
            return rows[: config.views]
    return None


@dataclass
class RenderPlan:
    """What a render job has to do, decided on the driver before any rendering (either engine).

    Attributes:
        root: the workspace folder (on storage every worker sees, for the ray engine).
        out_dir: the views folder inside it (``views``).
        config: the settings.
        model_ids: the models of this job, in order.
        finished: model id → its rows, for models found complete on disk.
        pending: model id → the view indices still to do (files of finished views inside are reused by the
            chunk function).
        reused: views of finished models.
    """

    root: Path
    out_dir: str
    config: RenderConfig
    model_ids: list[str]
    finished: dict[str, list[ViewRow]]
    pending: dict[str, list[int]]
    reused: int

    @property
    def tasks(self) -> list[tuple[str, list[int]]]:
        """The chunks ``(model_id, view indices)`` of at most :data:`CHUNK_VIEWS` views, model by model."""
        return self.chunks(CHUNK_VIEWS)

    def chunks(self, size: int) -> list[tuple[str, list[int]]]:
        """The pending views cut into chunks of at most ``size`` views of one model each, model by model. Views
        are seeded one by one, so the cut changes nothing in the files, only the unit of work."""
        return [
            (model_id, idx[start : start + size])
            for model_id, idx in self.pending.items()
            for start in range(0, len(idx), size)
        ]

    @property
    def total(self) -> int:
        """Views in the pending chunks."""
        return sum(len(idx) for idx in self.pending.values())


def plan_render_job(
    workspace: str | Path, config: RenderConfig, model_ids: Sequence[str] | None = None, out_dir: str = "views"
) -> RenderPlan:
    """Check the settings and the models, make each model's folder ready, and list what is left to render.

    Raises :class:`InputError` for bad settings, unknown model ids and an empty library.
    """
    from cadsearch.library import Library

    config.validate()
    config.validate_environment()
    named = ("plain", "white", "gradient", "texture", "random", "rooms", "scenes", "none")
    if config.backgrounds not in named and not Path(config.backgrounds).is_dir():
        raise InputError(
            f"--backgrounds {config.backgrounds!r} is neither a background kind "
            "(plain, white, gradient, texture, random, rooms, scenes, none) nor a folder of images"
        )
    root = Path(workspace)
    library = Library.open(root)
    ids = list(model_ids) if model_ids is not None else [m.model_id for m in library.list()]
    for model_id in ids:
        library.get(model_id)  # unknown ids fail now, before any work
    if not ids:
        raise InputError(
            "the library is empty; add models with `cadsearch library add` or "
            "`cadsearch library generate-chairs N` first"
        )
    finished: dict[str, list[ViewRow]] = {}
    pending: dict[str, list[int]] = {}
    reused = 0
    for model_id in ids:
        rows = _prepare_model_folder(root, out_dir, model_id, config)
        if rows is not None:
            finished[model_id] = rows
            reused += len(rows)
        else:
            pending[model_id] = list(range(config.views))
    return RenderPlan(root, out_dir, config, ids, finished, pending, reused)


class _JobWriter:
    """The driver's side of a job, for either engine: takes chunk results as they come, writes a model's
    ``views.json`` when its last chunk is in, and the view table at the end.

    Results are keyed by view id, so a chunk that an engine delivers twice (a retried task) counts once.
    """

    def __init__(self, plan: RenderPlan, progress: bool) -> None:
        from tqdm import tqdm

        self.plan = plan
        self.rows_by_model: dict[str, list[ViewRow]] = dict(plan.finished)
        self.partial: dict[str, dict[str, ViewRow]] = {m: {} for m in plan.pending}
        self.rendered = 0
        self.reused = plan.reused
        self.views_by_worker: dict[str, int] = {}
        self.bar = tqdm(
            total=plan.total, unit="view", desc="render", disable=not progress or plan.total == 0, smoothing=0.1
        )

    def add(self, model_id: str, rows: list[ViewRow], rendered: int, worker: str = "local") -> None:
        """Record one finished chunk of ``model_id``: its rows, how many were rendered now, and where."""
        got = self.partial[model_id]
        fresh = [r for r in rows if r.view_id not in got]
        if len(fresh) < len(rows):  # a chunk delivered again: its views were counted the first time
            rendered = 0
        self.rendered += rendered
        self.reused += len(fresh) - rendered
        self.views_by_worker[worker] = self.views_by_worker.get(worker, 0) + len(fresh)
        self.bar.update(len(fresh))
        got.update((r.view_id, r) for r in fresh)
        if len(got) == len(self.plan.pending[model_id]):
            model_rows = sorted(got.values(), key=lambda r: r.view_id)
            folder = self.plan.root / self.plan.out_dir / model_id
            atomic_write_json(folder / "views.json", [dataclasses.asdict(r) for r in model_rows])
            self.rows_by_model[model_id] = model_rows
            # A worker killed inside an atomic write leaves its hidden temporary file (never a half-written
            # artefact); every chunk of this model is in, so nothing writes here any more: sweep them.
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def close(self) -> None:
        self.bar.close()

    def finish(self, seconds: float) -> RenderSummary:
        """Write the view table and the run's settings; every pending model must be complete."""
        plan = self.plan
        missing = [m for m in plan.model_ids if m not in self.rows_by_model]
        if missing:  # an engine that returns without every chunk is a bug, not a user error
            raise RuntimeError(f"render job ended with {len(missing)} model(s) unfinished, e.g. {missing[0]}")
        table = plan.root / plan.out_dir / "views.csv"
        # Rows of models not rendered in this run (``model_ids`` given) stay in the table.
        kept = (
            [r for r in read_view_table(plan.root, plan.out_dir) if r.model_id not in self.rows_by_model]
            if table.exists()
            else []
        )
        rendered_rows = kept + [row for model_id in plan.model_ids for row in self.rows_by_model[model_id]]
        _write_view_table(table, rendered_rows)
        atomic_write_json(
            plan.root / plan.out_dir / "render_config.json",
            {
                "config": plan.config.folder_key() | {"views": plan.config.views},
                "cadsearch_version": __version__,
                "models": len(plan.model_ids),
                "views": len(rendered_rows),
            },
        )
        return RenderSummary(
            rendered=self.rendered,
            reused=self.reused,
            models=len(plan.model_ids),
            seconds=seconds,
            view_table=table,
            views_by_worker=dict(self.views_by_worker),
        )


def _run_local(plan: RenderPlan, workers: int) -> Iterator[tuple[str, list[ViewRow], int, str]]:
    """The local engine: chunks in this process (``workers == 1``) or a pool of ``workers`` spawned processes.
    Yields ``(model_id, rows, rendered, "local")`` per chunk as it finishes."""
    tasks = plan.tasks
    args = (str(plan.root), plan.out_dir, plan.config)
    if workers == 1 or len(tasks) <= 1:
        for model_id, idx in tasks:
            yield model_id, *_render_chunk(*args, model_id, idx), "local"
        return
    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold a GL context
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        queue = list(reversed(tasks))
        running = {}
        # Keep a bounded number of chunks in flight so an interrupt loses little work.
        while queue or running:
            while queue and len(running) < 2 * workers:
                model_id, idx = queue.pop()
                running[pool.submit(_render_chunk, *args, model_id, idx)] = model_id
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield running.pop(fut), *fut.result(), "local"


def render_views(
    workspace: str | Path,
    config: RenderConfig,
    model_ids: Sequence[str] | None = None,
    workers: int | None = 1,
    progress: bool = True,
    out_dir: str = "views",
    engine: str = "local",
    ray_address: str | None = None,
) -> RenderSummary:
    """Render ``config.views`` views of every model (or of ``model_ids``) into ``<workspace>/<out_dir>``.

    ``out_dir`` is ``views`` for the training views; other stages (e.g. an evaluation split) render their own
    sets elsewhere in the workspace with the same machinery. Returns a :class:`RenderSummary`; writes the view
    table ``<out_dir>/views.csv``. Safe to interrupt and re-run.

    ``engine`` ``local`` runs the chunks in ``workers`` local processes (None: 1); ``ray`` maps them over an
    actor pool of ``workers`` actors (None: one per CPU of the cluster) on the Ray cluster at ``ray_address``
    (None: start or join a local one; ``auto``: the running cluster), see :mod:`cadsearch.render.ray_engine`.
    Both render the same chunks with the same function, so their files and view tables are identical.
    """
    import time

    from cadsearch.render.ray_engine import check_engine

    check_engine(engine)
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    plan = plan_render_job(workspace, config, model_ids, out_dir)
    if engine == "ray" and plan.tasks:
        from cadsearch.render.ray_engine import run_ray

        results = run_ray(plan, workers, ray_address)
    else:
        results = _run_local(plan, workers or 1)
    writer = _JobWriter(plan, progress)
    start = time.perf_counter()
    try:
        for model_id, rows, rendered, worker in results:
            writer.add(model_id, rows, rendered, worker)
    finally:
        writer.close()
    return writer.finish(time.perf_counter() - start)


def _write_view_table(path: Path, rows: list[ViewRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(VIEW_TABLE_COLUMNS)
    for r in rows:
        writer.writerow([getattr(r, c) for c in VIEW_TABLE_COLUMNS])
    atomic_write_text(path, buf.getvalue())


def read_view_table(workspace: str | Path, out_dir: str = "views") -> list[ViewRow]:
    """The view table of ``<workspace>/<out_dir>``; :class:`InputError` if nothing has been rendered there."""
    path = Path(workspace) / out_dir / "views.csv"
    if not path.exists():
        raise InputError(f"no views in {workspace}; run `cadsearch render` first")
    with path.open(newline="") as f:
        rows = []
        for r in csv.DictReader(f):
            for name in ("polar_deg", "azimuth_deg", "distance", "fov_deg"):
                r[name] = float(r[name])
            rows.append(ViewRow(**r))
    return rows


def read_render_config(workspace: str | Path, out_dir: str = "views") -> RenderConfig:
    """The :class:`RenderConfig` of the last render run into ``<workspace>/<out_dir>`` (its
    ``render_config.json``), or the defaults when there is none (or it cannot be read)."""
    path = Path(workspace) / out_dir / "render_config.json"
    try:
        stored = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return RenderConfig()
    known = {k: v for k, v in stored.items() if k in RenderConfig.__dataclass_fields__}
    if "polar_range" in known:
        known["polar_range"] = tuple(known["polar_range"])
    try:
        return RenderConfig(**known)
    except TypeError:
        return RenderConfig()


def load_view(workspace: str | Path, row: ViewRow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rgb (H,W,3) uint8, mask (H,W) float32 coverage in [0,1], depth (H,W) float32 canonical units)``."""
    root = Path(workspace)
    rgb = np.asarray(Image.open(root / row.path).convert("RGB"))
    mask = np.asarray(Image.open(root / row.mask_path), dtype=np.float32) / 255.0
    depth = np.asarray(Image.open(root / row.depth_path), dtype=np.float32) / DEPTH_SCALE
    return rgb, mask, depth


def camera_of(row: ViewRow) -> Camera:
    """The :class:`Camera` a view was rendered with."""
    return Camera(row.polar_deg, row.azimuth_deg, row.distance, row.fov_deg)
