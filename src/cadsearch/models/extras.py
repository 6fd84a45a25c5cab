"""Training-only chairs: procedural chairs the networks train on beside the library, never indexed or searched.

A network that has seen a few dozen chairs learns to tell *those* chairs apart; one that has seen many more chair
shapes learns an embedding that also separates chairs added to the library after training (measured on the open
library, BENCHMARKS.md "`cadsearch train --extra-chairs 100` through today's product": 100 extra chairs beside a
50-model library raised the top-1 of models unseen in training from 0.795 / 0.770 to 0.881 / 0.897 over two seeds,
and lowered their pose error; as many training steps without them lowered it, to 0.727).
``TrainConfig.extra_chairs`` = N asks for them; the transfer network's default is 100 (``ARCH_DEFAULTS`` of
:mod:`cadsearch.models.train`), the scratch network's 0.

Layout: ``<workspace>/training-extras/`` is a workspace of its own (catalog, ``models/procedural/``, ``views/``),
so ``library``, ``render``, ``index`` and ``search`` of the library never see its chairs. The chairs are those of
:meth:`cadsearch.library.Library.generate_chairs` with generator seed :data:`EXTRA_CHAIR_SEED` (ids
``chair-s9001-NNN``; chair ``i`` depends on the seed and ``i`` only, so asking for more extends the set) and are
rendered with the library's own render settings (``views/render_config.json``), so that they look like the
library's views. Generation and rendering are resumable, as every render job is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cadsearch.errors import InputError
from cadsearch.library import Library, ModelInfo
from cadsearch.library.procedural import chair_id
from cadsearch.render.job import ViewRow, read_render_config, read_view_table, render_views

__all__ = ["EXTRAS_DIR", "EXTRA_CHAIR_SEED", "extra_chair_ids", "prepare_extra_chairs", "extra_chairs"]

#: The training-only workspace, inside the library's.
EXTRAS_DIR = "training-extras"
#: Generator seed of the extra chairs: far from the small seeds users and the demo generate their libraries with,
#: so that no extra chair is one of the library's (:func:`extra_chairs` refuses ids that are).
EXTRA_CHAIR_SEED = 9001


def extra_chair_ids(n: int) -> list[str]:
    """The ids of the first ``n`` extra chairs."""
    return [chair_id(EXTRA_CHAIR_SEED, i) for i in range(n)]


def prepare_extra_chairs(workspace: str | Path, n: int, workers: int = 2, progress: bool = True) -> Path:
    """Generate and render the first ``n`` extra chairs in ``<workspace>/training-extras`` (what is already there
    is kept); returns that folder. Views follow the library's render settings (its ``views/render_config.json``).

    Raises:
        InputError: the library itself has no views yet (nothing is made then), or a chair cannot be made.
    """
    read_view_table(workspace)  # a library not rendered yet: say so before rendering anything beside it
    root = Path(workspace) / EXTRAS_DIR
    report = Library.open(root).generate_chairs(n, seed=EXTRA_CHAIR_SEED, progress=progress)
    if report.failed:
        path, reason = report.failed[0]
        raise InputError(
            f"cannot make the training-only chair {Path(path).stem} ({reason}); delete {root} to make them again"
        )
    config = read_render_config(workspace)
    render_views(root, config, model_ids=extra_chair_ids(n), workers=workers, progress=progress)
    return root


def extra_chairs(workspace: str | Path, n: int) -> tuple[list[ViewRow], list[ModelInfo]]:
    """The views and catalog entries of the first ``n`` extra chairs of ``workspace`` (:func:`prepare_extra_chairs`
    made them). View paths are relative to ``workspace`` (``training-extras/views/...``), as the library's are.

    Raises:
        InputError: some of the chairs are not rendered, or one of their ids is also a library model's.
    """
    if n <= 0:
        return [], []
    ws = Path(workspace)
    ids = extra_chair_ids(n)
    clash = sorted(set(ids) & {m.model_id for m in Library.open(ws).list()})
    if clash:
        raise InputError(f"the library has models with the training-only chairs' ids ({clash[0]}, ...); rename them")
    root = ws / EXTRAS_DIR
    wanted = set(ids)
    rows = [r for r in read_view_table(root) if r.model_id in wanted] if (root / "views" / "views.csv").exists() else []
    missing = wanted - {r.model_id for r in rows}
    if missing:
        raise InputError(f"{len(missing)} of the {n} training-only chairs are not rendered in {root}")
    prefix = f"{EXTRAS_DIR}/"
    rows = [
        dataclasses.replace(r, path=prefix + r.path, mask_path=prefix + r.mask_path, depth_path=prefix + r.depth_path)
        for r in rows
    ]
    catalog = [m for m in Library.open(root).list() if m.model_id in wanted]
    return rows, catalog
