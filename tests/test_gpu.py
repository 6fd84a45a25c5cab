"""Training and embedding on a CUDA GPU: they skip on machines without one (``scripts/gpu_check.sh`` runs them on a
lent GPU machine).

- a tiny scratch run on the GPU beats chance on held-out renders, in bf16 autocast where the GPU has it;
- GPU embeddings equal CPU embeddings (cosine > 0.999) for the same checkpoint, scratch and transfer (CPU:
  onnxruntime body, GPU: torch body);
- a GPU-trained checkpoint loads with a plain ``torch.load`` and searches in a process that sees no GPU.

``CADSEARCH_GPU_WS``: a rendered workspace to use (copied; the GPU machine may lack a working EGL to render one);
default: render 6 chairs × 40 views at 64 px (as ``scripts/gpu_check.sh`` carries). ``CADSEARCH_TEST_DEVICE=cpu``
runs the same tests with the CPU in the GPU's place (to check the tests themselves on a machine without a GPU;
default ``cuda``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cadsearch.models import load_predictor, train_model
from cadsearch.render.job import read_view_table

DEVICE = os.environ.get("CADSEARCH_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)"
)

#: Small but learnable in seconds on a GPU: 5 training classes (one of the 6 models held out), 30 training views
#: each, clean views (no augmentation: this checks the device, not the augmentation).
SCRATCH = {
    "epochs": 10,
    "input_size": 48,
    "width": 16,
    "feat_dim": 128,
    "embed_dim": 32,
    "n_pose_bins": 128,
    "batch_size": 16,
    "background_pool": 16,
    "holdout_models": 1,
    "val_fraction": 0.25,
    "augment": False,
    "patience": 10,
}
TRANSFER = SCRATCH | {"epochs": 3, "input_size": 64, "cache_copies": 1, "extra_chairs": 0}


@pytest.fixture(scope="module", name="gpu_ws")
def gpu_ws_fixture(tmp_path_factory) -> Path:
    """A rendered workspace with both networks trained on :data:`DEVICE` (do not write in it)."""
    ws = tmp_path_factory.mktemp("gpu") / "ws"
    given = os.environ.get("CADSEARCH_GPU_WS")
    if given:
        shutil.copytree(given, ws, ignore=shutil.ignore_patterns("checkpoints", "index", "runs", "reports"))
    else:
        from conftest import render_tiny_workspace

        render_tiny_workspace(ws, chairs=6, views=40, size=64)
    ws.joinpath("summaries.txt").write_text("")
    for arch, cfg in (("scratch", SCRATCH), ("transfer", TRANSFER)):
        s = train_model(ws, arch, cfg | {"device": DEVICE}, progress=False)
        with ws.joinpath("summaries.txt").open("a") as f:
            f.write(f"{arch}: {s.val_views} | {s.val_models} | {s.notes}\n")
        pytest.gpu_summaries = getattr(pytest, "gpu_summaries", {}) | {arch: s}
    return ws


def _summary(arch: str):
    return pytest.gpu_summaries[arch]


def test_training_on_the_gpu_beats_chance_on_held_out_renders(gpu_ws: Path) -> None:
    s = _summary("scratch")
    ckpt = torch.load(s.checkpoint, weights_only=False)
    classes = len(ckpt["model_ids"])
    assert classes == 5
    # Chance: top-1 1/5. Measured on the CPU with these settings: 0.82 (10 epochs are too few for the pose head,
    # which is not asserted); the margin leaves room for another device's numerics and bf16.
    assert s.val_views["top1"] >= 0.5, s.val_views
    assert ckpt["device"].startswith(DEVICE.split(":")[0]), ckpt["device"]
    if DEVICE.startswith("cuda"):
        assert any(f"training on {torch.device(DEVICE).type}" in n for n in s.notes), s.notes
        if torch.cuda.is_bf16_supported():
            assert any("bfloat16 autocast (the GPU" in n for n in s.notes), s.notes
    # Everything the checkpoint holds is on the CPU: it loads anywhere.
    assert all(v.device.type == "cpu" for v in ckpt["state_dict"].values())
    last = torch.load(s.checkpoint.parent / "last.pt", weights_only=False)
    moments = [t for st in last["optimizer"]["state"].values() for t in st.values() if isinstance(t, torch.Tensor)]
    assert moments and all(t.device.type == "cpu" for t in moments)


def test_transfer_on_the_gpu_learns_and_keeps_an_onnx_body_for_cpus(gpu_ws: Path) -> None:
    s = _summary("transfer")
    ckpt = torch.load(s.checkpoint, weights_only=False)
    assert s.val_views["top1"] >= 0.5, s.val_views
    assert ckpt["backend"] == "onnx" and (s.checkpoint.parent / ckpt["onnx"]).is_file()


@pytest.mark.parametrize("arch", ["scratch", "transfer"])
def test_gpu_embeddings_equal_cpu_embeddings(gpu_ws: Path, arch: str) -> None:
    rows = read_view_table(gpu_ws)[::3]
    images = [np.asarray(Image.open(gpu_ws / r.path).convert("RGB")) for r in rows]
    ckpt = _summary(arch).checkpoint
    cpu, dev = load_predictor(ckpt, device="cpu"), load_predictor(ckpt, device=DEVICE)
    assert dev.device.type == torch.device(DEVICE).type
    assert dev.backend == ("torch" if dev.device.type == "cuda" else cpu.backend)
    if arch == "transfer":
        assert cpu.backend == "onnx"  # the CPU's fast path, against the GPU's torch body
    a, b = cpu.embed(images, batch_size=16), dev.embed(images, batch_size=16)
    cosine = (a * b).sum(1)
    assert a.shape == b.shape == (len(images), 32) and cosine.min() > 0.999, cosine.min()
    pa, pb = cpu.predict(images[:8]), dev.predict(images[:8])
    # Same answers (one near-tie may flip on another device's rounding).
    assert (pa.class_probs.argmax(1) == pb.class_probs.argmax(1)).sum() >= 7
    # The mirror images' embeddings (search's category vote) come back to the CPU and agree too.
    assert pb.mirror_embedding is not None and (pa.mirror_embedding * pb.mirror_embedding).sum(1).min() > 0.999


def test_a_gpu_trained_checkpoint_loads_and_searches_without_a_gpu(gpu_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(gpu_ws, ws)
    row = read_view_table(ws)[5]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    script = (
        "import json, sys, torch\n"
        "assert not torch.cuda.is_available()\n"
        f"torch.load({str(ws / 'checkpoints/scratch/best.pt')!r}, weights_only=False)\n"  # no map_location
        "from cadsearch.cli import main\n"
        f"main(['--workspace', {str(ws)!r}, 'index', '--model', 'scratch', '--device', 'auto'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    args = ["--workspace", str(ws), "search", str(ws / row.path), "--model", "scratch", "--json", "--no-refine",
            "--crop", "none", "--top", "3"]  # fmt: skip
    search = [sys.executable, "-c", f"from cadsearch.cli import main; main({args!r})"]
    done = subprocess.run(search, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer = answer[0] if isinstance(answer, list) else answer
    assert answer["results"][0]["model_id"] == row.model_id, answer["results"]
