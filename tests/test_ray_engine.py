"""The Ray engine of ``render`` and ``index`` on one local Ray instance (started once for this module):
identical outputs to the local engine, resume, a worker killed mid-chunk, and the index built from shards.

The two-node cluster is in ``test_ray_cluster.py`` (it needs a Ray instance of its own).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.library import Library
from cadsearch.render.job import RenderConfig, read_view_table, render_views

ray = pytest.importorskip("ray", reason="the ray engine needs Ray (pip install cadsearch[scale])")
pytest.importorskip("ray.data", reason="the ray engine needs Ray Data (pip install cadsearch[scale])")

CONFIG = RenderConfig(views=30, size=32, backgrounds="texture")  # > one chunk per model; backgrounds drawn per view


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance with 2 CPUs for the whole module (starting one costs ~5-10 s)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    yield ray
    ray.shutdown()


def _library(ws: Path, chairs: int = 2) -> Path:
    Library.open(ws).generate_chairs(chairs)
    return ws


def _same_files(a: Path, b: Path) -> None:
    """Same view table and byte-identical colour, mask and depth images in workspaces ``a`` and ``b``."""
    rows_a, rows_b = read_view_table(a), read_view_table(b)
    assert rows_a == rows_b and rows_a
    for r in rows_a:
        for rel in (r.path, r.mask_path, r.depth_path):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path: Path) -> None:
    local, remote = _library(tmp_path / "local"), _library(tmp_path / "ray")
    render_views(local, CONFIG, workers=1, progress=False)
    summary = render_views(remote, CONFIG, engine="ray", workers=2, progress=False)
    assert (summary.rendered, summary.reused, summary.models) == (60, 0, 2)
    assert sum(summary.views_by_worker.values()) == 60 and "local" not in summary.views_by_worker
    _same_files(local, remote)
    for model_id in {r.model_id for r in read_view_table(local)}:  # the per-model tables that mark completion
        name = f"views/{model_id}/views.json"
        assert (local / name).read_text() == (remote / name).read_text()
    assert not list(remote.rglob("*.tmp"))


def test_ray_engine_resumes_like_the_local_one(tmp_path: Path) -> None:
    ws = _library(tmp_path / "ws")
    render_views(ws, CONFIG, engine="ray", progress=False)
    row = read_view_table(ws)[33]
    (ws / row.path).unlink()  # as if interrupted before this view's colour image was renamed in
    (ws / "views" / row.model_id / "views.json").unlink()
    again = render_views(ws, CONFIG, engine="ray", progress=False)
    assert (again.rendered, again.reused) == (1, 59)
    done = render_views(ws, CONFIG, engine="ray", progress=False)
    assert (done.rendered, done.reused) == (0, 60)


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (Linux /proc): the Ray instance this test process started, and its workers."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the actor's process through /proc")
def test_a_killed_actor_process_is_retried_and_the_job_completes(tmp_path: Path) -> None:
    ws = _library(tmp_path / "ws")
    config = RenderConfig(views=100, size=96)  # chunks of 25 views take long enough to be killed in the middle
    killed: list[tuple[int, int]] = []

    def kill_first_actor_mid_chunk() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any((ws / "views").glob("chair-*/0*.png")):  # an actor is inside its first chunk
                actors = [p for p in _descendants(os.getpid()) if "_RenderChunks" in _cmdline(p)]
                if actors:
                    done = len(list((ws / "views").glob("chair-*/0*.png")))  # colour, mask and depth files
                    os.kill(actors[0], signal.SIGKILL)
                    killed.append((actors[0], done))
                    return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_first_actor_mid_chunk, daemon=True)
    killer.start()
    summary = render_views(ws, config, engine="ray", workers=2, progress=False)
    killer.join(timeout=5)
    assert killed, "no actor process was found to kill"
    _, files_at_kill = killed[0]
    assert 0 < files_at_kill < 3 * 200  # the kill landed while the job was writing its views
    # Every view is there, each once; the views finished before the kill were reused by the retried chunk.
    assert summary.rendered + summary.reused == 200
    rows = read_view_table(ws)
    assert len(rows) == 200 and len({r.view_id for r in rows}) == 200
    assert not list(ws.rglob("*.tmp")), "temporary files of the killed writer were left behind"
    # No corrupt or half-written file: every image decodes and equals what the local engine renders.
    reference = _library(tmp_path / "reference")
    render_views(reference, config, workers=1, progress=False)
    for r in rows:
        for rel in (r.path, r.mask_path, r.depth_path):
            with Image.open(ws / rel) as im:
                im.load()
    _same_files(reference, ws)


def test_a_mesh_gone_after_adding_is_one_clear_error_from_the_actors(tmp_path: Path) -> None:
    ws = _library(tmp_path / "ws")
    for glb in (ws / "models").rglob("*.glb"):
        glb.unlink()
    with pytest.raises(InputError, match="source file") as err:
        render_views(ws, CONFIG, engine="ray", progress=False)
    assert "\n" not in str(err.value)
    assert not (ws / "views" / "views.csv").exists()


def test_missing_library_is_one_clear_error_before_ray_work(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        render_views(tmp_path / "empty", CONFIG, engine="ray", progress=False)
    with pytest.raises(InputError, match="--engine"):
        render_views(tmp_path / "empty", CONFIG, engine="spark", progress=False)


# --- embedding and the index from shards ----------------------------------------------------------------------


@pytest.fixture()
def two_search_workspaces(search_ws_master: Path, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(search_ws_master, a)
    shutil.copytree(search_ws_master, b)
    return a, b


def test_index_from_ray_shards_finds_the_same_neighbours(two_search_workspaces, monkeypatch) -> None:
    import fakes
    from cadsearch.index import build_index, index_dir, load_index, ray_embed

    ray.cloudpickle.register_pickle_by_value(fakes)  # the actors build the test's fake network
    monkeypatch.setattr(ray_embed, "SHARD_VIEWS", 4)  # 18 views → 5 shards over 2 actors
    local_ws, ray_ws = two_search_workspaces
    fake = fakes.fake_for(local_ws)
    build_index(local_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    factory = functools.partial(fakes.FakePredictor, fake.model_ids)
    summary = build_index(
        ray_ws, "scratch", progress=False, predictor=fake, fingerprint="A", engine="ray", predictor_factory=factory
    )
    assert (summary.views, summary.embedded, summary.models) == (18, 18, 3)
    local, remote = load_index(local_ws, "scratch"), load_index(ray_ws, "scratch")
    assert list(remote.table.view_id) == list(local.table.view_id)
    assert list(remote.table.key) == list(local.table.key)
    np.testing.assert_allclose(remote.vectors, local.vectors, rtol=0, atol=1e-6)
    queries = np.random.default_rng(0).standard_normal((8, local.dim)).astype(np.float32)
    queries = np.concatenate([queries / np.linalg.norm(queries, axis=1, keepdims=True), local.vectors[:5]])
    sims_l, ids_l = local.search(queries, 10)
    sims_r, ids_r = remote.search(queries, 10)
    np.testing.assert_array_equal(ids_r, ids_l)
    np.testing.assert_allclose(sims_r, sims_l, atol=1e-5)
    assert not (index_dir(ray_ws, "scratch") / "parts").exists()  # the shards go once the index is saved
    # Nothing new: nothing to embed, on either engine.
    again = build_index(ray_ws, "scratch", progress=False, predictor=fake, fingerprint="A", engine="ray",
                        predictor_factory=factory)  # fmt: skip
    assert again.unchanged


def test_shards_of_an_interrupted_build_are_reused(two_search_workspaces, monkeypatch) -> None:
    """Shards found on disk (left by an interrupted build, either engine) are not embedded again."""
    import fakes
    from cadsearch.index import index_dir, ray_embed
    from cadsearch.index.embed import _save_part, view_key

    ray.cloudpickle.register_pickle_by_value(fakes)
    monkeypatch.setattr(ray_embed, "SHARD_VIEWS", 4)
    _, ws = two_search_workspaces
    rows = read_view_table(ws)
    fake = fakes.fake_for(ws)
    parts = index_dir(ws, "scratch") / "parts"
    # A shard of the first 10 views whose vectors are marked (a re-embedding would overwrite the mark).
    marked = np.tile(np.eye(1, fake.dim, 0, dtype=np.float32), (10, 1))
    _save_part(parts, "A", [view_key(r) for r in rows[:10]], marked)
    vectors = ray_embed.embed_views_ray(ws, functools.partial(fakes.FakePredictor, fake.model_ids), rows, parts, "A",
                                        progress=False)  # fmt: skip
    assert vectors.shape == (18, fake.dim) and isinstance(vectors, np.memmap)  # read shard by shard into a file
    np.testing.assert_array_equal(vectors[:10], marked)
    images = [np.asarray(Image.open(ws / r.path).convert("RGB")) for r in rows[10:]]
    np.testing.assert_allclose(vectors[10:], fake.embed(images), atol=1e-6)


def test_a_missing_view_is_one_clear_error_from_the_actors(search_ws: Path) -> None:
    """An :class:`InputError` raised inside an actor (here: a view image deleted after rendering) reaches the
    caller as itself, with its one-line reason, not as Ray's wrapped traceback."""
    import fakes
    from cadsearch.index import build_index

    ray.cloudpickle.register_pickle_by_value(fakes)
    fake = fakes.fake_for(search_ws)
    row = read_view_table(search_ws)[4]
    (search_ws / row.path).unlink()
    factory = functools.partial(fakes.FakePredictor, fake.model_ids)
    with pytest.raises(InputError, match=f"view {row.view_id} .* is missing or unreadable") as err:
        build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A", engine="ray",
                    predictor_factory=factory)  # fmt: skip
    assert "\n" not in str(err.value)
