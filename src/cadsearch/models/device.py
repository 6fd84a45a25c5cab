"""Which torch device a job runs on: the one place that turns ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` into a
:class:`torch.device`.

Who uses which (see README "GPU"):

- ``cadsearch train scratch|transfer``: ``--set device=auto`` (default) trains on the GPU when torch sees one.
- ``cadsearch index``: ``--device auto`` (default) embeds the views on the GPU when torch sees one; Ray actors
  embed on the GPU share Ray gave them.
- query-time search (``search``, ``serve``, ``evaluate``) stays on the CPU: one photo at a time is too little work
  to pay a GPU's start-up and transfers, and its latency was measured on the CPU (``Predictor(device="cpu")``).
- the detector (``cadsearch train detector``) and rendering's silhouettes stay on the CPU.
"""

from __future__ import annotations

import re

import torch

from cadsearch.errors import InputError

__all__ = ["DEVICE_CHOICES", "resolve_device", "describe_device", "state_to_cpu"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` → ``cuda:0`` when torch sees a CUDA GPU, else ``cpu``; ``cpu``; ``cuda`` / ``cuda:N`` → that GPU.

    Raises:
        InputError: an unknown name, or a GPU asked for that torch cannot see (one line that says what to use).
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    match = _PATTERN.match(text)
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise InputError(f"device must be {DEVICE_CHOICES}, got {name!r}")
    kind, index = match.group(1), int(match.group(2) or 0)
    if kind == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if kind == "auto":
        return torch.device("cuda", 0) if available else torch.device("cpu")
    if not available:
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise InputError(
            f"device {text!r} asked for, but torch ({torch.__version__}, {build}) sees no CUDA GPU; "
            "use device cpu or auto"
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise InputError(f"device {text!r} asked for, but torch sees {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``: for logs and checkpoint metadata."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def state_to_cpu(obj):
    """``obj`` (tensors, or dicts/lists/tuples of them) with every tensor copied to the CPU: checkpoints written
    on a GPU then load anywhere, even with a plain ``torch.load`` on a machine without CUDA."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: state_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(state_to_cpu(v) for v in obj)
    return obj
