"""Fixtures shared by the tests of cadsearch.index and cadsearch.search (imported by test_index_* / test_search_*).

A fake predictor stands in for a trained network: its embedding of an image is a pseudo-random unit vector
seeded by a hash of the pixels (so a view's own image finds exactly that view), and its pose head answers the
true pose of any rendered view it knows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import private_copy, render_tiny_workspace

DIM = 32


def image_hash(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def hash_vector(image: np.ndarray, dim: int = DIM) -> np.ndarray:
    seed = int(image_hash(image)[:8], 16)
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@dataclass
class FakePrediction:
    embedding: np.ndarray
    class_probs: np.ndarray
    polar_deg: np.ndarray
    azimuth_deg: np.ndarray


class FakePredictor:
    """``predict`` like :class:`cadsearch.models.Predictor`; counts the images it was asked about."""

    def __init__(self, model_ids=(), poses: dict[str, tuple[float, float]] | None = None, dim: int = DIM):
        self.model_ids = list(model_ids)
        self.arch = "scratch"
        self.input_size = 48
        self.config: dict = {}
        self.poses = poses or {}
        self.dim = dim
        self.calls = 0
        self.images = 0

    def embed(self, images, batch_size: int = 64) -> np.ndarray:
        return self.predict(images, batch_size).embedding

    def predict(self, images, batch_size: int = 64, frames=None) -> FakePrediction:
        images = list(images)
        self.calls += 1
        self.images += len(images)
        emb = np.stack([hash_vector(im, self.dim) for im in images]) if images else np.zeros((0, self.dim), np.float32)
        pose = np.array([self.poses.get(image_hash(im), (90.0, 0.0)) for im in images]).reshape(-1, 2)
        probs = np.full((len(images), max(len(self.model_ids), 1)), 1.0 / max(len(self.model_ids), 1), np.float32)
        return FakePrediction(emb, probs, pose[:, 0], pose[:, 1])


def fake_for(ws: Path) -> FakePredictor:
    """A fake predictor whose pose head knows every view of ``ws``."""
    from cadsearch.render.job import read_view_table

    poses = {}
    for r in read_view_table(ws):
        rgb = np.asarray(Image.open(ws / r.path).convert("RGB"))
        poses[image_hash(rgb)] = (r.polar_deg, r.azimuth_deg)
    return FakePredictor(sorted({r.model_id for r in read_view_table(ws)}), poses)


@pytest.fixture(scope="session", name="search_ws_master")
def search_ws_master_fixture(tmp_path_factory) -> Path:
    """3 procedural chairs × 6 views at 48 px, rendered once per session (do not write in it)."""
    return render_tiny_workspace(tmp_path_factory.mktemp("search_ws"), chairs=3, views=6, size=48)


@pytest.fixture(name="search_ws")
def search_ws_fixture(search_ws_master, tmp_path) -> Path:
    """A private copy of the tiny rendered workspace."""
    return private_copy(search_ws_master, tmp_path)
