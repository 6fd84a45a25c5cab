"""A timm-like registry: ``@register_model`` fills a name → builder map, :func:`create_model` is the one constructor.

Builders are tiny functions that pass numbers to a model class (segment-anything's ``build_sam_*`` style), so a
variant is three lines. Every registered network has ``forward_features`` (image → feature map), ``forward_head``
(feature map → outputs) and ``embed`` (image → L2-normalised embedding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

__all__ = ["register_model", "create_model", "list_models", "is_model"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None):
    """Decorator: register ``fn`` under ``name`` (default: the function's name)."""

    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or f.__name__
        if key in _MODELS and _MODELS[key] is not f:
            raise ValueError(f"model {key!r} is already registered")
        _MODELS[key] = f
        return f

    return wrap(fn) if fn is not None else wrap


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    _import_builtin()
    return sorted(_MODELS)


def is_model(name: str) -> bool:
    _import_builtin()
    return name in _MODELS


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (``num_classes``, ``pose_head``, ...)."""
    _import_builtin()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(_MODELS))}")
    return _MODELS[name](**kwargs)


def _import_builtin() -> None:
    # Importing the modules runs their @register_model decorators.
    from cadsearch.models import scratch, transfer  # noqa: F401
