"""The kind prior: what a classifier trained on real photos says the query shows, as evidence for the category vote.

The networks learn the library from renders, and on real photos their category vote is sometimes confidently
wrong (a chair photo answered with a cup or a toilet). EfficientNet-Lite's own ImageNet classifier
(:class:`~cadsearch.models.imagenet.ImageNetClassifier`) learnt from real photos. It has no class for the library's
models, but its answers on the library's own renders tell which of its 1,000 classes each category excites (chairs:
"folding chair", "rocking chair"; toilets: "toilet seat"; cups: "measuring cup"...). Nothing is named by hand: a
category whose renders excite nothing in particular gets a flat profile and weighs nothing.

- **Profiles** (:func:`build_kind_profiles`): per category, the mean ImageNet probabilities of up to
  :data:`VIEWS_PER_MODEL` views of each of its models (at most :data:`VIEWS_PER_CATEGORY`), a (C, 1000) matrix.
- **Posterior** (:meth:`KindProfiles.posterior`): for a query's probabilities ``p`` (1000,), ``k = P p`` normalised
  to sum 1 over the categories: how much the query looks, to ImageNet, like the renders of each. Each profile is
  first shrunk toward the mean of all (:data:`PROFILE_SHRINK`): one model's profile holds its quirks.
- **Prior** (:func:`cadsearch.search.scoring.weigh_by_kind`): the category vote's mass of each category times
  ``k^power`` (:data:`KIND_PRIOR_POWER`); the search then orders the categories as before.

File ``<workspace>/index/kind_profiles.npz`` (atomic; shared by both networks: it depends on the library's
renders, not on a network): ``categories`` (C,), ``profiles`` (C, 1000) float32, ``models`` (C,) int (the models
behind each profile), ``key`` (the library's models and categories that have views, and this module's sampling).
A library with fewer than two categories has no vote to weigh and gets no file. Beside it, ``imagenet-lite0.onnx``:
the classifier's ONNX export (made once).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.workspace import atomic_write_bytes

__all__ = [
    "KIND_PRIOR_POWER",
    "KIND_PROFILES_FILE",
    "KindProfiles",
    "build_kind_profiles",
    "imagenet_classifier",
    "load_kind_profiles",
    "load_or_build_kind_profiles",
]

KIND_PROFILES_FILE = "kind_profiles.npz"
#: The classifier's ONNX export, beside the profiles.
IMAGENET_ONNX_FILE = "imagenet-lite0.onnx"
#: Views of each model whose ImageNet probabilities make its category's profile.
VIEWS_PER_MODEL = 8
#: At most this many views per category (a catalogue of 10,000 chairs costs as much as one of 16).
VIEWS_PER_CATEGORY = 128
#: Each profile is shrunk toward the mean of all of them as if this many more models had the mean profile
#: (:attr:`KindProfiles.shrunk`).
PROFILE_SHRINK = 2.0
#: Exponent of the kind posterior in the category vote: the vote's mass × k^power. Chosen with :data:`PROFILE_SHRINK`
#: on the recorded votes of three networks (two trainings on a 166-model library of 11 categories, one trained on
#: chairs alone with one model of each other category added), among powers 1–4 and shrinkage of 0–8 models: the most
#: photos answered with the right category for no net loss on renders (BENCHMARKS.md, "The kind prior").
KIND_PRIOR_POWER = 3.0


@dataclass(frozen=True)
class KindProfiles:
    """Each category's mean ImageNet probabilities over its renders.

    Attributes:
        categories: (C,) category names, sorted.
        profiles: (C, 1000) float32, each row a probability vector.
        key: what they were made from (:func:`_profiles_key`); a different library makes them again.
        models: (C,) how many models each profile was made from (None: unknown, no shrinkage).
    """

    categories: tuple[str, ...]
    profiles: np.ndarray
    key: str
    models: np.ndarray | None = None

    @functools.cached_property
    def shrunk(self) -> np.ndarray:
        """(C, 1000) the profiles shrunk toward their mean by the number of models behind each: ``(n P_c + s P̄) /
        (n + s)``, s = :data:`PROFILE_SHRINK`. A profile of one model is that model's quirks (a toilet's "soap
        dispenser"): alone, every render that excites them a little looked like a toilet."""
        profiles = self.profiles.astype(np.float64)
        if self.models is None:
            return profiles
        n = np.asarray(self.models, np.float64)[:, None]
        return (n * profiles + PROFILE_SHRINK * profiles.mean(axis=0, keepdims=True)) / (n + PROFILE_SHRINK)

    def posterior(self, probabilities: np.ndarray) -> np.ndarray:
        """(B, 1000) ImageNet probabilities of queries → (B, C) kind posterior, each row summing to 1 over
        :attr:`categories` (uniform where the query excites none of the profiles' classes)."""
        k = np.asarray(probabilities, np.float64) @ self.shrunk.T  # computed once per profiles, not per query
        total = k.sum(axis=1, keepdims=True)
        uniform = np.full_like(k, 1.0 / max(len(self.categories), 1))
        return np.where(total > 0, k / np.where(total > 0, total, 1.0), uniform)


def _profiles_key(models: dict[str, str]) -> str:
    """The key of profiles made from these ``{model_id: category}`` (models that have views) with this sampling."""
    text = json.dumps([sorted(models.items()), VIEWS_PER_MODEL, VIEWS_PER_CATEGORY, "lite0", "models"])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sample_views(rows: Sequence[Any], category_of: dict[str, str], seed: int = 0) -> dict[str, list[Any]]:
    """Per category, the view rows its profile is made from (seeded: the same library gives the same views)."""
    by_model: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        if r.model_id in category_of:
            by_model[r.model_id].append(r)
    rng = random.Random(seed)
    chosen: dict[str, list[Any]] = defaultdict(list)
    for model_id in sorted(by_model):
        views = by_model[model_id]
        chosen[category_of[model_id]] += rng.sample(views, min(VIEWS_PER_MODEL, len(views)))
    return {c: rng.sample(v, VIEWS_PER_CATEGORY) if len(v) > VIEWS_PER_CATEGORY else v for c, v in chosen.items()}


def build_kind_profiles(
    workspace: str | Path, rows: Sequence[Any], category_of: dict[str, str], classifier: Any, progress: bool = False
) -> KindProfiles | None:
    """Each category's profile from the workspace's rendered views (not written; see :func:`load_or_build_kind_
    profiles`).

    Args:
        workspace: the workspace folder (view paths are relative to it).
        rows: the view table's rows (:func:`cadsearch.render.job.read_view_table`).
        category_of: ``{model_id: category}``; views of other models are ignored.
        classifier: anything with ``probabilities(images) → (N, 1000)`` for a list of RGB uint8 images
            (:class:`~cadsearch.models.imagenet.ImageNetClassifier`).
        progress: show a progress bar.

    Returns:
        The profiles, or None when the views show fewer than two categories (no vote to weigh). Views that cannot
        be read are left out.
    """
    from PIL import Image
    from tqdm import tqdm

    chosen = _sample_views(rows, category_of)
    if len(chosen) < 2:
        return None
    ws = Path(workspace)
    sums: dict[str, np.ndarray] = {}
    read: dict[str, int] = {}
    bar = tqdm(total=sum(len(v) for v in chosen.values()), desc="kind profiles", unit="view", disable=not progress)
    for category, views in chosen.items():
        for start in range(0, len(views), 32):
            squares = []
            for r in views[start : start + 32]:
                try:
                    with Image.open(ws / r.path) as im:
                        squares.append(np.asarray(im.convert("RGB")))
                except (OSError, ValueError):
                    continue  # a view deleted or damaged since rendering: the profile is made from the others
            bar.update(len(views[start : start + 32]))
            if squares:
                p = np.asarray(classifier.probabilities(squares), np.float64).sum(axis=0)
                sums[category] = sums.get(category, 0.0) + p
                read[category] = read.get(category, 0) + len(squares)
    bar.close()
    if len(sums) < 2:
        return None
    categories = tuple(sorted(sums))
    profiles = np.stack([sums[c] / read[c] for c in categories])
    models = {r.model_id: category_of[r.model_id] for r in rows if r.model_id in category_of}
    counts = np.array([sum(1 for c in models.values() if c == category) for category in categories], np.int64)
    return KindProfiles(categories, profiles.astype(np.float32), _profiles_key(models), counts)


def load_kind_profiles(folder: str | Path) -> KindProfiles | None:
    """The profiles in ``folder`` (``<workspace>/index``), or None (missing or damaged)."""
    try:
        with np.load(Path(folder) / KIND_PROFILES_FILE, allow_pickle=False) as z:
            return KindProfiles(
                tuple(str(c) for c in z["categories"].tolist()),
                np.asarray(z["profiles"], np.float32),
                str(z["key"]),
                np.asarray(z["models"], np.int64),
            )
    except (OSError, ValueError, KeyError):
        return None


def _save(folder: Path, profiles: KindProfiles) -> None:
    buf = io.BytesIO()
    models = profiles.models if profiles.models is not None else np.ones(len(profiles.categories), np.int64)
    np.savez(
        buf, categories=np.array(profiles.categories), profiles=profiles.profiles, key=np.array(profiles.key),
        models=np.asarray(models, np.int64),
    )  # fmt: skip
    atomic_write_bytes(folder / KIND_PROFILES_FILE, buf.getvalue())


def imagenet_classifier(workspace: str | Path):
    """The :class:`~cadsearch.models.imagenet.ImageNetClassifier` of a workspace (its ONNX export in ``index/``)."""
    from cadsearch.models.imagenet import ImageNetClassifier

    return ImageNetClassifier("lite0", Path(workspace) / "index" / IMAGENET_ONNX_FILE)


def load_or_build_kind_profiles(
    workspace: str | Path, classifier: Any = None, progress: bool = False
) -> KindProfiles | None:
    """The workspace's profiles: read from ``index/kind_profiles.npz`` when they were made from today's library
    (same models with views, same categories), else made from its views and written (atomically; a workspace that
    cannot be written gets them for this call only). None for a library of fewer than two categories (the file,
    if any, is removed) or without views."""
    from cadsearch.errors import InputError
    from cadsearch.library import Library
    from cadsearch.render.job import read_view_table

    ws = Path(workspace)
    folder = ws / "index"

    def none() -> None:
        with contextlib.suppress(OSError):
            (folder / KIND_PROFILES_FILE).unlink(missing_ok=True)

    category_of = {m.model_id: m.category for m in Library.open(ws).list()}
    if len(set(category_of.values())) < 2:
        return none()  # the catalog alone says so: a large library of one kind never reads its view table here
    try:
        rows = read_view_table(ws)
    except InputError:
        return None
    models = {r.model_id: category_of[r.model_id] for r in rows if r.model_id in category_of}
    if len(set(models.values())) < 2:
        return none()
    found = load_kind_profiles(folder)
    if found is not None and found.key == _profiles_key(models):
        return found
    profiles = build_kind_profiles(ws, rows, category_of, classifier or imagenet_classifier(ws), progress)
    if profiles is not None:
        with contextlib.suppress(OSError):  # a read-only workspace: used for this search only, made again next time
            _save(folder, profiles)
    return profiles
