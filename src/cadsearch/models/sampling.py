"""Look-alike batches: training batches made of a few models that resemble each other, several views of each.

A batch of random views holds ~1 view per model among dozens of unrelated ones, so a loss between the batch's
views (:func:`cadsearch.models.heads.supervised_contrastive`) mostly compares a chair with a cup. Here each batch
takes ``models_per_batch`` models × ``batch_size / models_per_batch`` views: a seed model and the models nearest
to it by ``class_dirs`` (the cosine classifier's class directions: the models the network itself currently places
closest, i.e. the look-alikes it must learn to separate; drawn among its 2(P − 1) nearest, so that the groups
vary), so every view has views of its own model in the batch (positives) and views of its look-alikes (hard
negatives).
"""

from __future__ import annotations

import numpy as np

__all__ = ["lookalike_batches"]


def lookalike_batches(
    labels: np.ndarray,
    class_dirs: np.ndarray | None,
    models_per_batch: int,
    batch_size: int,
    n_batches: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """``n_batches`` batches of view indices, each ``models_per_batch`` look-alike models × ``k`` views.

    Args:
        labels: (N,) int class of each training view (0 … C−1).
        class_dirs: (C, D) class directions (any scale; they are normalised), or None for random groups (the first
            epoch, when the classifier knows nothing yet).
        models_per_batch: P, models in a batch (at least 2; capped at the number of classes).
        batch_size: B; each model gives ``k = B // P`` views (at least 2), so a batch holds P·k ≤ B views.
        n_batches: how many batches (an epoch's steps).
        rng: the source of randomness (seeded per epoch by the caller, so runs are reproducible).

    Returns:
        ``n_batches`` sorted int64 arrays of indices into ``labels``. Every view of a model is used once before any
        is used again (each model's views are dealt out in chunks of ``k`` from a random permutation; a model with
        fewer than ``k`` views gives them all).
    """
    classes = np.unique(labels)
    p = int(min(max(2, models_per_batch), len(classes)))
    k = max(2, batch_size // p)
    views_of = {int(c): np.flatnonzero(labels == c) for c in classes}
    # Per class, the views of the current round not dealt yet, in random order. When fewer than k are left, the
    # chunk takes them and is topped up from the next round (a new permutation), never with a view it holds.
    pending: dict[int, np.ndarray] = {c: np.zeros(0, np.int64) for c in views_of}

    def deal(c: int) -> np.ndarray:
        left = pending[c]
        if len(left) >= k:
            pending[c] = left[k:]
            return left[:k]
        fresh = rng.permutation(views_of[c])
        top = fresh[~np.isin(fresh, left)][: k - len(left)]
        pending[c] = fresh[~np.isin(fresh, top)]
        return np.r_[left, top]

    if class_dirs is not None:
        d = np.asarray(class_dirs, np.float64)[classes]
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        sim = d @ d.T
    else:
        sim = rng.random((len(classes), len(classes)))  # random groups
    np.fill_diagonal(sim, np.inf)  # the seed itself sorts first
    # Seeds cycle through a permutation of the classes, so every model seeds batches equally often.
    seeds: list[int] = []
    batches = []
    for _ in range(n_batches):
        if not seeds:
            seeds = list(rng.permutation(len(classes)))
        s = seeds.pop()
        # The seed and p − 1 classes drawn from its 2(p − 1) nearest: look-alikes, not always the same few.
        near = np.argsort(-sim[s], kind="stable")[1 : 2 * (p - 1) + 1]
        group = np.r_[s, rng.choice(near, size=p - 1, replace=False)]
        batches.append(np.sort(np.concatenate([deal(int(classes[g])) for g in group])))
    return batches
