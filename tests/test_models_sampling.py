"""Look-alike batches (models.sampling) and the metric-learning term between a batch's views (heads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cadsearch.models.heads import supervised_contrastive
from cadsearch.models.sampling import lookalike_batches


def test_lookalike_batches_group_each_model_with_its_nearest_models():
    # 6 classes × 10 views; classes 0-2 point one way, 3-5 the opposite way: two families of look-alikes. With 2
    # models per batch, a model's partner is drawn among its 2 nearest classes: its own family.
    labels = np.repeat(np.arange(6), 10)
    dirs = np.array([[1.0, 0.1], [1.0, 0.0], [1.0, -0.1], [-1.0, 0.1], [-1.0, 0.0], [-1.0, -0.1]])
    batches = lookalike_batches(labels, dirs, models_per_batch=2, batch_size=8, n_batches=30,
                                rng=np.random.default_rng(0))  # fmt: skip
    assert len(batches) == 30
    for b in batches:
        classes, counts = np.unique(labels[b], return_counts=True)
        assert counts.tolist() == [4, 4]  # 2 models × 8 / 2 views
        assert set(classes.tolist()) <= {0, 1, 2} or set(classes.tolist()) <= {3, 4, 5}
        assert np.all(np.diff(b) > 0)  # sorted, no view twice in a batch
    # Every class seeds 5 batches; within a class, each view is dealt once before any is dealt again.
    used = np.bincount(np.concatenate(batches), minlength=len(labels)).reshape(6, 10)
    assert np.all(used.max(1) - used.min(1) <= 1) and np.all(used.min(1) >= 2)


def test_lookalike_batches_without_directions_and_with_more_models_per_batch_than_classes():
    labels = np.repeat(np.arange(3), 5)
    batches = lookalike_batches(labels, None, models_per_batch=8, batch_size=12, n_batches=4,
                                rng=np.random.default_rng(1))  # fmt: skip
    for b in batches:  # capped at the 3 classes, 12 // 3 = 4 views each
        assert np.unique(labels[b], return_counts=True)[1].tolist() == [4, 4, 4]
    again = lookalike_batches(labels, None, 8, 12, 4, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))  # reproducible from the seed


def test_supervised_contrastive_matches_its_formula_and_rewards_separated_models():
    torch.manual_seed(0)
    emb = F.normalize(torch.randn(6, 5), dim=-1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    tau = 0.2
    # The formula, one anchor at a time.
    want = []
    for i in range(6):
        others = [a for a in range(6) if a != i]
        denom = torch.logsumexp(torch.stack([emb[i] @ emb[a] / tau for a in others]), 0)
        pos = [p for p in others if labels[p] == labels[i]]
        want.append(-torch.stack([emb[i] @ emb[p] / tau - denom for p in pos]).mean())
    assert float(supervised_contrastive(emb, labels, tau)) == pytest.approx(float(torch.stack(want).mean()), 1e-5)
    # Views of one model together, models apart: a lower loss than the same views with models mixed.
    apart = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=-1)
    two = torch.tensor([0, 0, 1, 1])
    assert supervised_contrastive(apart, two, tau) < supervised_contrastive(apart, torch.tensor([0, 1, 0, 1]), tau)


def test_supervised_contrastive_without_positives_is_zero_and_differentiable():
    emb = F.normalize(torch.randn(3, 4), dim=-1).requires_grad_()
    loss = supervised_contrastive(emb, torch.tensor([0, 1, 2]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and emb.grad is not None
