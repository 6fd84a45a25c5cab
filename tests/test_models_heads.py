"""Pose and embedding heads: encode/decode round trips and invariants."""

from __future__ import annotations

import math

import numpy as np
import torch

from cadsearch.models.heads import (
    CosineClassifier,
    PoseBinsHead,
    PoseVectorHead,
    angles_from_directions,
    directions_from_angles,
)
from cadsearch.render.cameras import fibonacci_directions, pose_error_deg


def test_bin_centres_are_the_camera_lattice_and_do_not_move():
    """Checkpoints store the centres: they are render/cameras.py's Fibonacci lattice, pinned to the values the
    pose head has always used (computed before the lattice moved to render/cameras.py)."""
    head = PoseBinsHead(4, n_bins=320)
    np.testing.assert_array_equal(head.centres.numpy(), fibonacci_directions(320).astype(np.float32))
    pinned = np.array(
        [
            [0.07362604, 0.996875, 0.02862586],
            [-0.06044567, 0.990625, -0.1225089],
            [-0.46192646, 0.003125, 0.8869127],
            [0.01875007, -0.996875, 0.07673766],
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(head.centres.numpy()[[0, 1, 159, 319]], pinned, atol=1e-7)


def test_bin_targets_peak_at_the_true_bin():
    head = PoseBinsHead(4, n_bins=100, sigma_deg=8.0)
    t = head.targets(head.centres[[3, 50, 97]])
    assert t.argmax(-1).tolist() == [3, 50, 97]
    assert torch.allclose(t.sum(-1), torch.ones(3))


def test_bins_decode_of_encode_is_close_to_the_pose():
    head = PoseBinsHead(4, n_bins=320, sigma_deg=8.0)
    spacing = math.degrees(math.sqrt(4 * math.pi / 320))
    polar = np.array([20.0, 45.0, 80.0, 100.0, 60.0])
    az = np.array([0.0, 123.0, 250.0, 359.0, 75.5])
    logits = torch.log(head.targets(directions_from_angles(polar, az)) + 1e-12)
    p, a = angles_from_directions(head.decode(logits))
    assert pose_error_deg(p, a, polar, az).max() < spacing / 2


def test_bins_decode_keeps_to_one_mode():
    head = PoseBinsHead(4, n_bins=320)
    # Two equally likely opposite views (front/back symmetry): the answer is one of them, not the average.
    dirs = directions_from_angles([70.0, 70.0], [0.0, 180.0])
    logits = torch.log(0.5 * head.targets(dirs).sum(0, keepdim=True) + 1e-12)
    p, a = angles_from_directions(head.decode(logits))
    assert min(pose_error_deg(p, a, 70.0, 0.0)[0], pose_error_deg(p, a, 70.0, 180.0)[0]) < 10


def test_bins_modes_list_the_distinct_viewpoints_most_probable_first():
    head = PoseBinsHead(4, n_bins=320, sigma_deg=8.0)
    # 0.6 at the front, 0.3 at the back, 0.1 at the left side: three modes, in that order, with about those masses
    dirs = directions_from_angles([70.0, 70.0, 80.0], [10.0, 190.0, 270.0])
    logits = torch.log((torch.tensor([[0.6], [0.3], [0.1]]) * head.targets(dirs)).sum(0, keepdim=True) + 1e-12)
    modes, mass = head.modes(logits, k=3)
    assert modes.shape == (1, 3, 3) and mass.shape == (1, 3)
    p, a = angles_from_directions(modes[0])
    assert pose_error_deg(p, a, [70.0, 70.0, 80.0], [10.0, 190.0, 270.0]).max() < 6.0
    assert np.allclose(mass[0].numpy(), [0.6, 0.3, 0.1], atol=0.05)
    # the first mode is decode's answer
    assert torch.allclose(modes[:, 0], head.decode(logits), atol=1e-6)
    # one sharp mode: the others hold (almost) nothing, so registration weighs them down
    sharp = torch.log(head.targets(dirs[:1]) + 1e-12)
    assert head.modes(sharp, k=3)[1][0, 1:].max() < 0.01


def test_flip_averaging_mirrors_the_flipped_output_back():
    head = PoseBinsHead(4, n_bins=320, sigma_deg=8.0)
    polar, az = np.array([30.0, 70.0, 95.0]), np.array([40.0, 200.0, 300.0])
    direct = torch.log(head.targets(directions_from_angles(polar, az)) + 1e-12)
    flipped = torch.log(head.targets(directions_from_angles(polar, (360.0 - az) % 360.0)) + 1e-12)
    p, a = angles_from_directions(head.decode(direct, flipped))  # both say the same pose: it stays
    assert pose_error_deg(p, a, polar, az).max() < 6.0
    # When the direct view has no opinion, the mirrored-back flipped view decides.
    unsure = torch.zeros_like(direct)
    p, a = angles_from_directions(head.decode(unsure, flipped))
    assert pose_error_deg(p, a, polar, az).max() < 6.0
    vec = PoseVectorHead(4)
    d = directions_from_angles(polar, az)
    p, a = angles_from_directions(vec.decode(d, d * torch.tensor([-1.0, 1.0, 1.0])))
    assert pose_error_deg(p, a, polar, az).max() < 1e-3


def test_vector_head_outputs_unit_vectors_and_zero_loss_at_truth():
    head = PoseVectorHead(8)
    d = head.decode(head(torch.randn(5, 8)))
    assert torch.allclose(d.norm(dim=-1), torch.ones(5), atol=1e-6)
    assert float(head.loss(d.detach() * 3.0, d.detach())) < 1e-6


def test_angles_round_trip():
    polar, az = np.array([10.0, 90.0, 170.0]), np.array([0.0, 90.0, 300.0])
    p, a = angles_from_directions(directions_from_angles(polar, az))
    np.testing.assert_allclose(p, polar, atol=1e-4)
    np.testing.assert_allclose(a, az, atol=1e-3)


def test_cosine_classifier_margin_lowers_only_the_true_logit():
    clf = CosineClassifier(6, 4, scale=10.0, margin=0.3)
    emb = torch.nn.functional.normalize(torch.randn(3, 6), dim=-1)
    labels = torch.tensor([0, 2, 3])
    diff = clf(emb) - clf(emb, labels)
    expected = torch.nn.functional.one_hot(labels, 4).float() * 3.0
    assert torch.allclose(diff, expected, atol=1e-5)
