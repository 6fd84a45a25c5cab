"""Device choice (``auto`` / ``cpu`` / ``cuda`` / ``cuda:N``) on any machine: resolution, the one-line error for a
GPU that is not there (library, CLI exit 2), CPU training unchanged by the option, and the Ray embedding's GPU
reservation. What needs a real GPU is in ``test_gpu.py``."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from cadsearch.cli import main
from cadsearch.errors import InputError
from cadsearch.models import load_predictor, train_model
from cadsearch.models.device import describe_device, resolve_device, state_to_cpu
from conftest import TINY_TRAIN

TINY = TINY_TRAIN | {"num_threads": 1}


@pytest.fixture(name="no_gpu")
def no_gpu_fixture(monkeypatch) -> None:
    """As on a machine without a CUDA GPU, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture(name="one_gpu")
def one_gpu_fixture(monkeypatch) -> None:
    """As on a machine with one CUDA GPU (only for resolution: nothing may run on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_is_the_gpu_when_there_is_one(one_gpu) -> None:
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device(" CUDA:0 ") == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match=r"sees 1 CUDA GPU\(s\)"):
        resolve_device("cuda:1")


def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_one_clear_line(no_gpu) -> None:
    assert resolve_device() == resolve_device("auto") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert describe_device(resolve_device("auto")) == "cpu"
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InputError) as err:
            resolve_device(name)
        text = str(err.value)
        assert "\n" not in text and "sees no CUDA GPU" in text and "use device cpu or auto" in text


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:1", "auto:0", "", "mps"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_state_to_cpu_copies_nested_tensors() -> None:
    state = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.ones(1), 3)], "c": "text"}
    out = state_to_cpu(state)
    assert out["c"] == "text" and out["b"][1][1] == 3
    assert torch.equal(out["a"], state["a"]) and out["a"].device.type == "cpu"


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["train", "transfer", "--set", "device=cuda"],
        ["train", "scratch", "--set", "device=cuda:0"],
        ["index", "--device", "cuda"],
    ],
)
def test_cli_cuda_without_a_gpu_is_one_line_exit_2(tmp_path: Path, capsys, no_gpu, command: list[str]) -> None:
    ws = tmp_path / "ws"
    code, err = run(capsys, "--workspace", str(ws), *command)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: device ") and "sees no CUDA GPU" in lines[0]
    assert not (ws / "checkpoints").exists()  # refused before any work


def test_cli_unknown_device_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    code, err = run(capsys, "--workspace", str(tmp_path / "ws"), "train", "scratch", "--set", "device=gpu")
    assert code == 2 and err.strip() == "error: device must be auto, cpu, cuda or cuda:N, got 'gpu'"


def test_cpu_training_is_the_same_with_device_cpu_and_auto(tiny_views: Path, tmp_path: Path, no_gpu) -> None:
    """Without a GPU, ``auto`` is the CPU, bit for bit; the checkpoint says where it ran, and a run resumes on
    another device setting instead of starting over."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_views, other)
    train_model(tiny_views, "scratch", TINY | {"device": "cpu"}, progress=False)
    train_model(other, "scratch", TINY, progress=False)  # device auto
    a = torch.load(tiny_views / "checkpoints" / "scratch" / "best.pt", weights_only=False)
    b = torch.load(other / "checkpoints" / "scratch" / "best.pt", weights_only=False)
    assert a["device"] == b["device"] == "cpu"
    assert a["config"]["device"] == "cpu" and b["config"]["device"] == "auto"
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert all(v.device.type == "cpu" for v in a["state_dict"].values())
    # The auto run, extended by an epoch with device=cpu: resumed, not started over.
    s = train_model(other, "scratch", TINY | {"epochs": 2, "device": "cpu"}, progress=False)
    assert s.resumed and s.epochs_run == 1 and not any("starting over" in n for n in s.notes)


def test_predictor_stays_on_the_cpu_unless_asked(tiny_views: Path, no_gpu) -> None:
    s = train_model(tiny_views, "scratch", TINY, progress=False)
    p = load_predictor(s.checkpoint)
    assert p.device == torch.device("cpu") and "cpu" in repr(p)
    auto = load_predictor(s.checkpoint, device="auto")
    views = np.zeros((2, 40, 40, 3), np.uint8)
    np.testing.assert_array_equal(p.embed(views), auto.embed(views))
    with pytest.raises(InputError, match="sees no CUDA GPU"):
        load_predictor(s.checkpoint, device="cuda")


class _FakeData:
    """Just enough of ``ray.data`` to see what an embedding job asks Ray for."""

    def __init__(self) -> None:
        self.kwargs: dict = {}
        self.ActorPoolStrategy = lambda size: ("pool", size)

    def from_items(self, items, override_num_blocks):
        return self

    def map_batches(self, fn, **kwargs):
        self.kwargs = kwargs
        return self


class _FakeRay:
    def __init__(self, resources: dict[str, float]) -> None:
        self.resources, self.data = resources, _FakeData()

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


@pytest.mark.parametrize(
    ("resources", "device", "num_gpus"),
    [
        ({"CPU": 4.0, "GPU": 1.0}, "auto", 0.25),
        ({"CPU": 4.0, "GPU": 8.0}, "cuda", 1.0),
        ({"CPU": 4.0, "GPU": 1.0}, "cpu", None),
        ({"CPU": 4.0}, "auto", None),
    ],
)
def test_ray_embedding_reserves_gpu_shares(search_ws: Path, monkeypatch, resources, device, num_gpus) -> None:
    from cadsearch.index import ray_embed
    from cadsearch.render import ray_engine
    from cadsearch.render.job import read_view_table

    fake = _FakeRay(resources)
    monkeypatch.setattr(ray_engine, "connect", lambda address: fake)
    monkeypatch.setattr(ray_engine, "iter_results", lambda ds: iter(()))
    monkeypatch.setattr(ray_embed, "assemble_shards", lambda parts, fp, keys: None)
    monkeypatch.setattr(ray_embed, "SHARD_VIEWS", 2)  # 4 shards of the 8 views: 4 actors
    rows = read_view_table(search_ws)[:8]
    ray_embed.embed_views_ray(search_ws, functools.partial(int), rows, search_ws / "parts", "A", workers=4,
                              progress=False, device=device)  # fmt: skip
    assert fake.data.kwargs["num_cpus"] == 1 and fake.data.kwargs.get("num_gpus") == num_gpus


def test_ray_embedding_on_cuda_without_cluster_gpus_is_one_clear_error(search_ws: Path, monkeypatch) -> None:
    from cadsearch.index import ray_embed
    from cadsearch.render import ray_engine
    from cadsearch.render.job import read_view_table

    monkeypatch.setattr(ray_engine, "connect", lambda address: _FakeRay({"CPU": 2.0}))
    with pytest.raises(InputError, match="the Ray cluster has no GPUs"):
        ray_embed.embed_views_ray(search_ws, functools.partial(int), read_view_table(search_ws), search_ws / "parts",
                                  "A", progress=False, device="cuda")  # fmt: skip
