"""Models: the from-scratch CNN and the transfer model, their training loop, predictor and pictures.

Public API:

- :func:`train_model` (workspace, ``"scratch"`` | ``"transfer"``, overrides) → :class:`TrainSummary`
- :func:`checkpoint_path` (workspace, arch) → ``<workspace>/checkpoints/<arch>/best.pt``
- :func:`load_predictor` (checkpoint) → :class:`Predictor`; ``predict(images)`` → :class:`Prediction`
- :func:`write_filters`, :func:`write_feature_maps` — pictures of what a network learnt
- :func:`create_model`, :func:`register_model`, :func:`list_models` — the registry

Defaults chosen by measurement on a 2-core CPU (shared with other jobs, so throughputs varied 2-4×):

- scratch: 64 px input, width 32 (VGG-style, 1.9 M parameters): ~130 img/s training alone, ~65 img/s with the
  batched augmentation; 96 px halves that.
- transfer: lite0, ``stride16`` block, 160 px input; the frozen body runs on onnxruntime, ~530 img/s at batch 32
  vs ~75 img/s for torch eager (its static-padding convolutions are slow in eager mode). The heads then train on
  the cached features at ~1,800 img/s.
- pose head: ``bins`` (320 Fibonacci bins, soft targets, local soft-argmax) beat ``vector`` regression on the
  same transfer feature cache: 5.4° vs 15.6° mean error on held-out views.
"""

from cadsearch.models.inspect import write_feature_maps, write_filters
from cadsearch.models.predictor import Prediction, Predictor, load_predictor
from cadsearch.models.registry import create_model, list_models, register_model
from cadsearch.models.train import TrainConfig, TrainSummary, checkpoint_path, train_model

__all__ = [
    "checkpoint_path",
    "load_predictor",
    "Predictor",
    "Prediction",
    "train_model",
    "TrainConfig",
    "TrainSummary",
    "write_filters",
    "write_feature_maps",
    "create_model",
    "list_models",
    "register_model",
]
