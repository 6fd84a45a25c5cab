"""The frozen transfer body on onnxruntime: export to ONNX (atomically), run, and measure against torch eager.

The body is frozen, so it is a pure function of the image: exported once next to the checkpoint, it can run
on whichever backend is faster on this CPU. :func:`measure_backends` times both at batch 32 and
:func:`pick_backend` keeps the winner.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cadsearch.workspace import atomic_write_bytes

__all__ = ["export_onnx", "cpu_session", "OnnxBackbone", "frozen_body", "measure_backends"]


def export_onnx(body: nn.Module, input_size: int, path: str | Path) -> Path:
    """Export ``body`` ((B, 3, S, S) → map) to ONNX at ``path`` atomically, with a dynamic batch axis."""
    path = Path(path)
    buf = io.BytesIO()
    body.eval()
    # The legacy TorchScript exporter handles the static-padding convolutions; its deprecation and
    # constant-folding warnings say nothing a user can act on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            body,
            (torch.zeros(1, 3, input_size, input_size),),
            buf,
            input_names=["image"],
            output_names=["features"],
            dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    atomic_write_bytes(path, buf.getvalue())
    return path


def cpu_session(path: str | Path, threads: int):
    """An onnxruntime session of the graph at ``path`` on the CPU provider: ``threads`` intra-op threads, one
    inter-op thread, every graph optimisation (the frozen body here, the detector and its 8-bit copy)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxBackbone:
    """Callable: (B, 3, S, S) float32 tensor → (B, C, h, w) float32 tensor, on onnxruntime's CPU provider."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.session = cpu_session(path, threads or torch.get_num_threads())
        self.path = Path(path)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"image": np.ascontiguousarray(x.detach().numpy(), np.float32)})[0]
        return torch.from_numpy(out)


def frozen_body(
    build: Callable[[], nn.Module], input_size: int, onnx_path: str | Path | None, threads: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A frozen body as a callable (B, 3, S, S) float32 tensor → its output tensor: on onnxruntime from the export at
    ``onnx_path`` (made there from ``build()`` at ``input_size`` when missing), else torch eager on ``build()``.

    Torch eager when ``onnx_path`` is None, onnxruntime is missing, the folder cannot be written, or the export cannot
    be loaded (an interrupted copy): a frozen body is a pure function of its input, so either backend gives the same
    answer, the export only runs it faster.
    """
    net = None
    if onnx_path is not None:
        onnx_path = Path(onnx_path)
        try:
            if not onnx_path.is_file():
                net = build()
                export_onnx(net, input_size, onnx_path)
            return OnnxBackbone(onnx_path, threads)
        except Exception:  # noqa: BLE001 - onnxruntime's load errors derive from Exception only
            pass
    net = net or build()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x)

    return run


def _throughput(fn, x: torch.Tensor, repeats: int = 3) -> float:
    fn(x)  # warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t)
    return len(x) / best


def measure_backends(body: nn.Module, onnx_path: str | Path, input_size: int, batch: int = 32) -> dict[str, float]:
    """Images per second of torch eager and onnxruntime on a batch of ``batch`` (best of 3)."""
    x = torch.rand(batch, 3, input_size, input_size) * 2 - 1
    with torch.no_grad():
        eager = _throughput(body, x)
    ort = _throughput(OnnxBackbone(onnx_path), x)
    return {"torch": eager, "onnx": ort}
