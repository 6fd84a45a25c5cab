"""Transfer model: packaged ImageNet weights (no network), ONNX agreement, a tiny training run."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from cadsearch.errors import InputError
from cadsearch.models import checkpoint_path, load_predictor, train_model
from cadsearch.models.onnx_runtime import OnnxBackbone, export_onnx
from cadsearch.models.predictor import POSE_MODES
from cadsearch.models.transfer import FrozenBackbone, backbone_weights_path
from cadsearch.render.cameras import pose_error_deg


@pytest.fixture(scope="module")
def body() -> FrozenBackbone:
    return FrozenBackbone("lite0", "stride16", 64)


def test_backbone_loads_packaged_weights_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    path = backbone_weights_path("lite0")
    assert path.is_file() and "site-packages" in str(path)
    b = FrozenBackbone("lite0", "stride16", 64)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(b.stem[0].weight, state["_conv_stem.weight"])
    assert b.out_channels == 112 and b.out_hw == (4, 4)
    assert not any(p.requires_grad for p in b.parameters())
    with pytest.raises(InputError):
        FrozenBackbone("lite0", "stride99", 64)


def test_onnx_and_torch_backbones_agree(body, tmp_path):
    path = export_onnx(body, 64, tmp_path / "body.onnx")
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ref = body(x)
    out = OnnxBackbone(path, threads=1)(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-3, rtol=1e-3)


def test_transfer_trains_and_predicts(tiny_views):
    cfg = {
        "epochs": 1,
        "input_size": 64,
        "feat_dim": 32,
        "embed_dim": 16,
        "n_pose_bins": 64,
        "batch_size": 8,
        "background_pool": 8,
        "cache_copies": 1,
        "holdout_models": 1,
        "val_fraction": 0.25,
        "num_threads": 2,
        "backend": "onnx",
    }
    s = train_model(tiny_views, "transfer", cfg, progress=False)
    assert s.checkpoint.is_file() and s.epochs_run == 1
    ckpt = torch.load(s.checkpoint, weights_only=False)
    assert not any(k.startswith("body.") for k in ckpt["state_dict"])  # the frozen body is not duplicated
    p = load_predictor(checkpoint_path(tiny_views, "transfer"))
    assert p.arch == "transfer" and p.backend == "onnx"
    out = p.predict([np.zeros((50, 80, 3), np.uint8)])
    np.testing.assert_allclose(np.linalg.norm(out.embedding, axis=1), 1.0, atol=1e-5)
    torch_out = load_predictor(checkpoint_path(tiny_views, "transfer"), backend="torch").predict(
        [np.zeros((50, 80, 3), np.uint8)]
    )
    np.testing.assert_allclose(out.embedding, torch_out.embedding, atol=1e-2)
    # the bins head lists its distinct viewpoints for registration, the first being the pose answered
    assert out.pose_modes.shape == (1, POSE_MODES, 3)
    assert pose_error_deg(*out.pose_modes[0, 0, :2], out.polar_deg[0], out.azimuth_deg[0]) < 1e-3
    assert np.all((out.pose_modes[0, :, 2] >= 0) & (out.pose_modes[0, :, 2] <= 1))
