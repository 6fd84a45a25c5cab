"""Views → L2-normalised embedding vectors, in batches, resumable.

Each view is identified by a *key* (:func:`view_key`): its id, camera, quality and background. A view whose key
is unchanged keeps its vector across builds; a re-rendered view with other settings gets a new key and is
embedded again. While a build runs, every chunk of finished vectors is saved atomically under ``parts/`` of the
index folder, tagged with the checkpoint's fingerprint, so an interrupted ``cadsearch index`` resumes where it
stopped and never mixes vectors of two checkpoints.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.render.job import ViewRow
from cadsearch.workspace import atomic_write_bytes, file_fingerprint

__all__ = ["CHUNK_VIEWS", "view_key", "file_fingerprint", "embed_views", "load_parts"]

#: Views embedded between two saves of partial results: a lost chunk costs a few seconds at most.
CHUNK_VIEWS = 512


def view_key(row: ViewRow) -> str:
    """What a view's vector depends on besides the network: ``view_id|polar|azimuth|quality|background``."""
    return f"{row.view_id}|{row.polar_deg:.4f}|{row.azimuth_deg:.4f}|{row.quality}|{row.background}"


def _read_rgb(root: Path, row: ViewRow) -> np.ndarray:
    try:
        with Image.open(root / row.path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise InputError(
            f"view {row.view_id} ({row.path}) is missing or unreadable ({type(err).__name__}); "
            "run `cadsearch render` again to redo it"
        ) from None


def load_parts(parts_dir: Path, fingerprint: str) -> dict[str, np.ndarray]:
    """key → (D,) float32 vector from the partial results of an interrupted build with this fingerprint."""
    found: dict[str, np.ndarray] = {}
    if not parts_dir.is_dir():
        return found
    for part in sorted(parts_dir.glob(f"part-{fingerprint[:16]}-*.npz")):
        try:
            with np.load(part, allow_pickle=False) as z:
                for key, vec in zip(z["keys"].tolist(), z["vectors"], strict=True):
                    found[str(key)] = vec
        except (OSError, ValueError, KeyError):
            continue  # a damaged part is simply embedded again
    return found


def part_path(parts_dir: Path, fingerprint: str, keys: Sequence[str]) -> Path:
    """The file of the partial result holding ``keys``: named by the network and by the keys themselves."""
    name = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
    return parts_dir / f"part-{fingerprint[:16]}-{name}.npz"


def _save_part(parts_dir: Path, fingerprint: str, keys: Sequence[str], vectors: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, keys=np.array(list(keys), dtype=str), vectors=vectors.astype(np.float32))
    # durable=False: a lost part is only re-embedded, never wrong (the rename is still atomic)
    atomic_write_bytes(part_path(parts_dir, fingerprint, keys), buf.getvalue(), durable=False)


def embed_views(
    workspace: str | Path,
    predictor: Any,
    rows: Sequence[ViewRow],
    batch_size: int = 64,
    progress: bool = True,
    parts_dir: Path | None = None,
    fingerprint: str = "",
) -> np.ndarray:
    """Embed the colour image of every view in ``rows`` with ``predictor``.

    Args:
        workspace: the workspace the rows' paths are relative to.
        predictor: has ``embed(list of (H, W, 3) uint8, batch_size) -> (N, D) float32`` (a
            :class:`~cadsearch.models.Predictor`).
        rows: the views to embed.
        parts_dir: where partial results are saved and found again (None: no resume).
        fingerprint: the checkpoint's fingerprint; partial results of other checkpoints are ignored.

    Returns:
        (len(rows), D) float32, each row L2-normalised (re-normalised here, so cosine = inner product).
    """
    from tqdm import tqdm

    root = Path(workspace)
    keys = [view_key(r) for r in rows]
    done = load_parts(parts_dir, fingerprint) if parts_dir is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in done]
    out: list[np.ndarray | None] = [done.get(k) for k in keys]
    bar = tqdm(total=len(todo), unit="view", desc="embed", disable=not progress or not todo, smoothing=0.1)
    try:
        for start in range(0, len(todo), CHUNK_VIEWS):
            chunk = todo[start : start + CHUNK_VIEWS]
            for b in range(0, len(chunk), batch_size):
                batch = chunk[b : b + batch_size]
                images = [_read_rgb(root, rows[i]) for i in batch]
                emb = np.asarray(predictor.embed(images, batch_size=batch_size), dtype=np.float32)
                for i, vec in zip(batch, emb, strict=True):
                    out[i] = vec
                bar.update(len(batch))
            if parts_dir is not None:
                _save_part(parts_dir, fingerprint, [keys[i] for i in chunk], np.stack([out[i] for i in chunk]))
    finally:
        bar.close()
    if not rows:
        return np.zeros((0, 0), np.float32)
    vectors = np.stack(out).astype(np.float32)  # type: ignore[arg-type]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
