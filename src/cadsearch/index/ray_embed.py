"""Embedding on a Ray cluster: view images → shards of vectors written by an actor pool, then assembled.

The views still to embed are cut into shards of :data:`SHARD_VIEWS`; each shard is one row of a Ray Dataset,
mapped by :class:`_EmbedShards`, an actor that loads the network once (a factory it is given: the checkpoint's
:func:`~cadsearch.models.load_predictor`, whose transfer body runs on onnxruntime on a CPU) and writes each shard's
vectors with their view keys as one ``.npz`` under the index folder's ``parts/``, in the very format of the local
engine's partial results (:mod:`cadsearch.index.embed`). Vectors never travel through Ray's object store; only
shard names come back. GPUs: with ``device`` auto or cuda on a cluster that has GPUs, each actor reserves a share
of one; Ray makes it the only GPU the actor sees, and the actor's predictor (made with the same ``device``) embeds
on it. A re-run (or a retried task) finds the finished shards and skips their views, so an
interrupted or faulted build resumes as the local one does, and the two engines can even share partial results.

The driver then reads the shards one by one into a memory-mapped ``(N, D)`` float32 ``.npy`` (normalised as it
goes), which the FAISS build reads (trained on a sample for IVF, filled block by block): the vectors of a million
views are never held twice in one process's memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.errors import InputError
from cadsearch.index.embed import _read_rgb, _save_part, part_path, view_key
from cadsearch.render.job import ViewRow

__all__ = ["SHARD_VIEWS", "embed_views_ray", "assemble_shards", "shard_keys"]

#: Views per shard: one Ray task and one file; a lost task costs seconds, and a million views make 2,000 files.
SHARD_VIEWS = 512


def shard_keys(parts_dir: Path, fingerprint: str) -> set[str]:
    """The view keys of every readable shard of ``fingerprint`` in ``parts_dir`` (only the keys are read)."""
    found: set[str] = set()
    if not parts_dir.is_dir():
        return found
    for part in sorted(parts_dir.glob(f"part-{fingerprint[:16]}-*.npz")):
        try:
            with np.load(part, allow_pickle=False) as z:
                found.update(str(k) for k in z["keys"].tolist())
        except (OSError, ValueError, KeyError):
            continue  # a damaged shard: its views are embedded again
    return found


class _EmbedShards:
    """A Ray Data actor: holds one predictor (built by ``make_predictor`` once) and embeds whole shards."""

    def __init__(
        self, workspace: str, make_predictor: Callable[[], Any], parts_dir: str, fingerprint: str, batch_size: int
    ) -> None:
        import ray

        self.root = Path(workspace)
        self.predictor = make_predictor()
        self.parts_dir = Path(parts_dir)
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """``batch``: ``rows`` (n,) JSON lists of view rows → one output row per shard written."""
        out: dict[str, list] = {"views": [], "node": [], "error": []}
        for text in batch["rows"]:
            rows = [ViewRow(**r) for r in json.loads(str(text))]
            out["views"].append(len(rows))
            out["node"].append(self.node)
            try:
                self._embed_shard(rows)
                out["error"].append("")
            except InputError as err:  # a missing view: the user's to fix, not a fault for Ray to retry
                out["error"].append(str(err))
        return out

    def _embed_shard(self, rows: list[ViewRow]) -> None:
        keys = [view_key(r) for r in rows]
        if part_path(self.parts_dir, self.fingerprint, keys).is_file():
            return  # a retried task whose first try got as far as writing the shard
        vectors = []
        for b in range(0, len(rows), self.batch_size):
            images = [_read_rgb(self.root, r) for r in rows[b : b + self.batch_size]]
            vectors.append(np.asarray(self.predictor.embed(images, batch_size=self.batch_size), np.float32))
        _save_part(self.parts_dir, self.fingerprint, keys, np.concatenate(vectors))


def embed_views_ray(
    workspace: str | Path,
    make_predictor: Callable[[], Any],
    rows: Sequence[ViewRow],
    parts_dir: Path,
    fingerprint: str,
    batch_size: int = 64,
    progress: bool = True,
    workers: int | None = None,
    address: str | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Embed the colour image of every view in ``rows`` on Ray; returns what
    :func:`~cadsearch.index.embed.embed_views` returns, read from the shards.

    Args:
        workspace: the workspace (on storage every node sees); the rows' paths are relative to it.
        make_predictor: called once per actor; returns an object with ``embed(images, batch_size) -> (n, D)``.
            Must be picklable (e.g. ``functools.partial(load_predictor, checkpoint)``).
        rows: the views to embed.
        parts_dir: where the shards go (``<index folder>/parts``); shards found there are reused.
        fingerprint: the network's fingerprint; shards of other networks are ignored.
        workers: actors (None: one per CPU of the cluster); address: as :func:`~cadsearch.render.ray_engine.connect`.
        device: what ``make_predictor`` was told: ``cpu`` reserves no GPU; ``auto`` reserves an equal share of the
            cluster's GPUs for each actor when it has any; ``cuda``/``cuda:N`` too, and is an :class:`InputError`
            on a cluster without GPUs (rather than every actor failing to start).

    Returns:
        (len(rows), D) float32, L2-normalised rows in ``rows`` order: a memory map of
        ``parts_dir/vectors-<hash>.npy`` (deleted with ``parts_dir`` once the index is saved).
    """
    from tqdm import tqdm

    from cadsearch.render.ray_engine import connect, iter_results, pool_size

    keys = [view_key(r) for r in rows]
    done = shard_keys(parts_dir, fingerprint)
    todo = [r for r, k in zip(rows, keys, strict=True) if k not in done]
    if todo:
        ray = connect(address)
        shards = [todo[s : s + SHARD_VIEWS] for s in range(0, len(todo), SHARD_VIEWS)]
        actors = pool_size(ray, workers, len(shards))
        remote_args: dict[str, Any] = {"num_cpus": 1}
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0.0)) if device != "cpu" else 0.0
        if device.startswith("cuda") and cluster_gpus <= 0:
            raise InputError(f"device {device!r} asked for, but the Ray cluster has no GPUs; use device cpu or auto")
        if cluster_gpus > 0:
            # As the render engine does: each actor a share, so every actor can start; Ray sets each actor's
            # CUDA_VISIBLE_DEVICES to its GPU (and to none without a reservation, so `auto` is then the CPU).
            remote_args["num_gpus"] = min(1.0, cluster_gpus / actors)
        items = [{"rows": json.dumps([r.__dict__ for r in shard])} for shard in shards]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _EmbedShards,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_args=(str(Path(workspace)), make_predictor, str(parts_dir), fingerprint, batch_size),
            **remote_args,
        )
        with tqdm(total=len(todo), unit="view", desc="embed", disable=not progress, smoothing=0.1) as bar:
            for out in iter_results(ds):
                bar.update(int(out["views"]))
    return assemble_shards(parts_dir, fingerprint, keys)


def assemble_shards(parts_dir: Path, fingerprint: str, keys: Sequence[str]) -> np.ndarray:
    """The vectors of ``keys`` (in that order) read shard by shard into a memory-mapped ``.npy`` in
    ``parts_dir``, each row L2-normalised. Raises ``RuntimeError`` if a key is in no shard."""
    if not keys:
        return np.zeros((0, 0), np.float32)
    position = {k: i for i, k in enumerate(keys)}
    name = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
    path = parts_dir / f"vectors-{fingerprint[:16]}-{name}.npy"
    out: np.ndarray | None = None
    filled = np.zeros(len(keys), dtype=bool)
    for part in sorted(parts_dir.glob(f"part-{fingerprint[:16]}-*.npz")):
        try:
            with np.load(part, allow_pickle=False) as z:
                part_keys, vectors = z["keys"].tolist(), np.asarray(z["vectors"], np.float32)
        except (OSError, ValueError, KeyError):
            continue
        rows = [(position[str(k)], j) for j, k in enumerate(part_keys) if str(k) in position]
        if not rows:
            continue
        if out is None:
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(keys), vectors.shape[1]))
        dst, src = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
        block = vectors[src]
        out[dst] = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        filled[dst] = True
    if out is None or not filled.all():
        missing = len(keys) - int(filled.sum())
        raise RuntimeError(f"{missing} view(s) are in no embedding shard in {parts_dir}")
    out.flush()
    return out
