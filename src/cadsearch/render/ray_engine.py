"""The render job on a Ray cluster: the job's chunks as a Ray Dataset, mapped by an actor pool of renderers.

The plan (models × cameras, the seeds, what is finished) is made on the driver by
:func:`~cadsearch.render.job.plan_render_job`, exactly as for the local engine; each chunk ``(model_id, view
indices)`` becomes one row of a :func:`ray.data.from_items` dataset, and :meth:`ray.data.Dataset.map_batches`
runs it through :class:`_RenderChunks`, an actor that builds its renderer once (the GL context, or the ray
tracer with its compiled kernels) and calls the same chunk function as a local worker process
(:func:`~cadsearch.render.job._render_chunk`). So the files are byte-identical to a local run with the same
seeds, written by the workers atomically into the same workspace layout, and the driver writes each model's
``views.json`` and the view table as chunk results stream back, as it does locally.

Requirements of a real cluster: the workspace is on storage that every node mounts at the same path (NFS, a
cluster file system; each worker reads the library and writes its views there), and cadsearch is installed on
every node. Faults: Ray restarts an actor whose process dies and retries its chunks (the default of Ray Data's
actor pools); a retried chunk skips the views whose colour image already exists, and a view is only ever seen
complete or not at all (atomic renames).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from cadsearch.errors import InputError
from cadsearch.render.job import RenderConfig, RenderPlan, ViewRow

__all__ = ["RAY_MISSING", "check_engine", "pool_size", "connect", "import_ray", "iter_results", "run_ray"]

#: Views per Ray task. Larger than the local engine's chunks: each task costs Ray Data ~10-20 ms of scheduling,
#: object store and driver work, which 25 views (~0.1 s of rendering at 128 px) would feel; 100 views keep it to
#: a few %, and a killed actor still loses under a second of work.
RAY_CHUNK_VIEWS = 100
#: Seconds the actor pool may take to start (process start, imports, a renderer or network each) before the job
#: fails: generous, since a node may first have to pull cadsearch's imports from a cold disk.
ACTOR_START_TIMEOUT_S = 600
#: What the CLI says when the extra is not installed.
RAY_MISSING = "the ray engine needs Ray; install it with `pip install cadsearch[scale]`"


def import_ray():
    """``ray`` and ``ray.data``, or :class:`InputError` with how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401  (the engine maps datasets)
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


def check_engine(engine: str) -> None:
    """:class:`InputError` for an engine other than ``local`` and ``ray``, or ``ray`` when Ray is not installed:
    called before any work, so a job never starts that cannot finish."""
    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be local or ray, got {engine!r}")
    if engine == "ray":
        import_ray()


def connect(address: str | None = None) -> Any:
    """Join the Ray cluster at ``address`` (``auto``: the running one, ``ray://host:port`` or ``host:port``), or
    start a local instance when ``address`` is None and none runs. A connection this process already has is
    kept. Returns the ``ray`` module."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,  # workers' output stays in the session's log files, not on the terminal
                configure_logging=True,
            )
        except (ConnectionError, ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise InputError(f"cannot reach the Ray cluster at {address or 'a local instance'}: {first}") from None
    _quiet_ray_data()
    return ray


def iter_results(ds: Any) -> Iterator[dict[str, Any]]:
    """The output rows of ``ds`` as they are produced. A row whose ``error`` is set carries a cadsearch
    :class:`InputError` from a worker (a missing view, a broken mesh): it is raised here as itself, one line for
    the user. Workers send it as data because Ray passes a worker's exception to the driver only as text inside
    its own wrapped traceback."""
    for row in ds.iter_rows():
        if row.get("error"):
            raise InputError(str(row["error"]))
        yield row


def _quiet_ray_data() -> None:
    """Our own progress bar tells how far the job is; Ray Data's per-operator bars and logs would interleave."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # Start the whole actor pool before handing out work (Ray Data's default hands it to the first actor that is
    # ready, which in a short job can take every chunk before the others, on other nodes, are up).
    ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    # ERROR: its warnings are about its own progress bars and tuning; failures raise in the driver anyway.
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def pool_size(ray: Any, workers: int | None, tasks: int) -> int:
    """Actors for a job of ``tasks`` tasks: ``workers`` (None: one per CPU of the cluster), at most one per CPU
    (each reserves one: more could never all start) and per task."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(workers or cpus, cpus, tasks))


class _RenderChunks:
    """A Ray Data actor: renders the chunks of its batches with one renderer per actor and quality.

    The renderer lives in :mod:`cadsearch.render.job`'s per-process state (the same one a local worker
    process uses), so it is built on the first chunk and reused for every later one; the constructor builds the
    state and the low-quality renderer up front, so that an actor that is ready is ready to render.
    """

    def __init__(self, workspace: str, out_dir: str, config: RenderConfig, raytrace_threads: int) -> None:
        from cadsearch.render import job

        job._init_worker(raytrace_threads)
        self.args = (workspace, out_dir, config)
        state = job._worker_state(workspace, config)
        if config.quality in ("low", "mixed"):
            job._renderer(state, "low", config)
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """``batch``: ``model_id`` (n,) str, ``indices`` (n,) JSON lists → one output row per chunk."""
        from cadsearch.render.job import _render_chunk

        out: dict[str, list] = {"model_id": [], "rows": [], "rendered": [], "node": [], "error": []}
        for model_id, indices in zip(batch["model_id"], batch["indices"], strict=True):
            try:
                rows, rendered, error = *_render_chunk(*self.args, str(model_id), json.loads(str(indices))), ""
            except InputError as err:  # bad input is the user's to fix, not a fault for Ray to retry
                rows, rendered, error = [], 0, str(err)
            out["model_id"].append(str(model_id))
            out["rows"].append(json.dumps([r.__dict__ for r in rows]))
            out["rendered"].append(int(rendered))
            out["node"].append(self.node)
            out["error"].append(error)
        return out


def run_ray(
    plan: RenderPlan, workers: int | None = None, address: str | None = None
) -> Iterator[tuple[str, list[ViewRow], int, str]]:
    """The ray engine: yields ``(model_id, rows, rendered now, node id)`` per chunk of ``plan`` as it finishes.

    ``workers`` actors (None: one per CPU of the cluster), each reserving one CPU, and a share of the cluster's
    GPUs when it has any (the rasteriser's EGL context then lands on a GPU).
    """
    ray = connect(address)
    tasks = plan.chunks(RAY_CHUNK_VIEWS)
    if not tasks:
        return
    actors = pool_size(ray, workers, len(tasks))
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    remote_args: dict[str, Any] = {"num_cpus": 1}
    if gpus > 0:
        remote_args["num_gpus"] = min(1.0, gpus / actors)
    items = [{"model_id": m, "indices": json.dumps(idx)} for m, idx in tasks]
    # One chunk per block: blocks are what Ray Data hands out, so chunks spread over every actor at once.
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        _RenderChunks,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_args=(str(plan.root), plan.out_dir, plan.config, _threads_per_actor(remote_args)),
        **remote_args,
    )
    for row in iter_results(ds):
        rows = [ViewRow(**r) for r in json.loads(row["rows"])]
        yield str(row["model_id"]), rows, int(row["rendered"]), str(row["node"])


def _threads_per_actor(remote_args: dict[str, Any]) -> int:
    """The ray tracer's threads in one actor: the CPUs it reserved (Ray runs one actor per reserved CPU)."""
    return max(1, int(remote_args.get("num_cpus", 1)))
