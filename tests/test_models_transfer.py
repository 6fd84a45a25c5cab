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
        "extra_chairs": 0,  # the default's 100 chairs would take minutes here
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
    # view maps: the frozen body's 4 x 4 map at 64 px, 32 channels, unit length; the same from predict and alone
    rgb = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    maps = p.view_maps(list(rgb))
    assert p.has_view_maps and maps.shape == (2, 32 * 4 * 4)
    np.testing.assert_allclose(np.linalg.norm(maps, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p.predict(list(rgb)).view_map, maps, atol=1e-4)
    assert maps[0] @ maps[1] < 0.999  # two images, two maps


def test_pose_members_average_their_distributions_and_train_apart():
    from cadsearch.models.transfer import TransferNet

    torch.manual_seed(0)
    kw = dict(input_size=64, feat_dim=16, embed_dim=8, n_pose_bins=32)
    net = TransferNet(3, pose_members=3, **kw).train()
    fmap = torch.randn(4, 112, 4, 4)
    out = net.forward_head(fmap, torch.tensor([0, 1, 2, 0]))
    members = out["pose_members"]
    assert members.shape == (4, 3, 32)
    # the answer is the members' mean distribution, so every decoder (softmax of "pose") reads the ensemble
    np.testing.assert_allclose(torch.softmax(out["pose"], -1).detach(), torch.softmax(members, -1).mean(1).detach(),
                               atol=1e-6)  # fmt: skip
    assert not torch.allclose(members[:, 0], members[:, 1])  # initialised apart
    dirs = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1)
    loss, parts = net.heads.loss(out, torch.tensor([0, 1, 2, 0]), dirs)
    each = [net.heads.pose.loss(m, dirs).item() for m in members.unbind(1)]
    assert parts["pose"] == pytest.approx(np.mean(each), rel=1e-5)  # each member fits the targets on its own
    loss.backward()
    assert all(m.pose.fc.weight.grad.abs().sum() > 0 for m in net.pose_members)
    # one member is the plain network: same outputs, no extra keys or weights
    single = TransferNet(3, **kw)
    assert "pose_members" not in single.forward_head(fmap) and not any("pose_members" in k for k in single.state_dict())
    with pytest.raises(InputError):
        TransferNet(3, pose_members=2, pose_head="vector", **kw)


def test_pose_members_train_save_and_predict(tiny_views):
    cfg = {"epochs": 1, "input_size": 64, "feat_dim": 16, "embed_dim": 8, "n_pose_bins": 32, "batch_size": 8,
           "background_pool": 8, "cache_copies": 1, "holdout_models": 1, "val_fraction": 0.25, "num_threads": 2,
           "pose_members": 2, "extra_chairs": 0}  # fmt: skip
    s = train_model(tiny_views, "transfer", cfg, progress=False)
    ckpt = torch.load(s.checkpoint, weights_only=False)
    assert ckpt["model_kwargs"]["pose_members"] == 2
    assert any(k.startswith("pose_members.0.") for k in ckpt["state_dict"])
    p = load_predictor(s.checkpoint)
    out = p.predict([np.zeros((50, 80, 3), np.uint8)])
    assert out.pose_modes.shape == (1, POSE_MODES, 3) and np.isfinite(out.azimuth_deg).all()
    # indexing's embed skips the pose members and class heads, and gives predict's embeddings exactly
    images = [np.zeros((50, 80, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)]
    np.testing.assert_allclose(p.embed(images), p.predict(images, flip_pose=False).embedding, atol=1e-6)
    assert p.embed([]).shape == (0, 8)
    with pytest.raises(InputError, match="pose_members"):
        train_model(tiny_views, "scratch", {"pose_members": 2}, progress=False)
