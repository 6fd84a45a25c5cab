"""View maps: a viewpoint-sensitive descriptor of an image, from the transfer network's frozen ImageNet body.

The embedding is trained to name the model whatever the viewpoint, and the pose head to read the viewpoint of the
kinds of object it trained on. For an object of another kind (a cup added to a library of chairs after training)
neither knows its viewpoint, but the frozen body's feature map still does: it keeps *where* each part of the object
is. Comparing the query's map with the maps of that model's rendered views finds the view taken from the same side
(:func:`cadsearch.search.pose.pose_from_view_maps`).

A view map is the body's (C, h, w) map (the one the heads read: h = w = input / 16 for the default stride-16 block)
projected to :data:`VIEW_MAP_CHANNELS` channels by a fixed orthonormal matrix (seeded, so that an index and a query
always agree), L2-normalised at each location, flattened and L2-normalised again, so that the inner product of two
maps is the mean over locations of the cosine between their features.

Measured before it was built (a scratch script over the open library's 10 other-category models, 100 renders on
random backgrounds against each model's 100 plain views, the right model given): the nearest view by full
stride-16 maps erred by 12.9° mean / 8.3° median, with the 32-channel projection 11.8° / 8.4° (pooled to 5 × 5:
13.6° and 16.1° with the projection), against 23.6–26.0° mean for today's search of those renders (BENCHMARKS.md).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["VIEW_MAP_CHANNELS", "VIEW_MAP_SEED", "projection", "view_maps"]

#: Channels of a view map after the projection: 10 × 10 × 32 = 3,200 values per view at the default 160 px input.
VIEW_MAP_CHANNELS = 32
#: Seed of the projection: index and query must use the same one.
VIEW_MAP_SEED = 0


@functools.lru_cache(maxsize=8)
def projection(channels: int, out: int = VIEW_MAP_CHANNELS, seed: int = VIEW_MAP_SEED) -> torch.Tensor:
    """A fixed (channels, min(out, channels)) float32 matrix with orthonormal columns (QR of a seeded Gaussian)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
    return torch.from_numpy(q[:, : min(out, channels)].astype(np.float32))


def view_maps(fmap: torch.Tensor) -> np.ndarray:
    """(B, C, h, w) feature maps → (B, min(C, 32) · h · w) float32 view maps, L2-normalised (see the module)."""
    f = torch.einsum("bchw,cd->bdhw", fmap.float().cpu(), projection(int(fmap.shape[1])))
    f = torch.nn.functional.normalize(f, dim=1).flatten(1)
    return torch.nn.functional.normalize(f, dim=1).numpy().astype(np.float32)
